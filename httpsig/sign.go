package httpsig

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// DefaultLabel is the signature label Sign uses when none is given.
const DefaultLabel = "sig1"

// DefaultComponents returns the components Vitals signs by default:
// @method and @target-uri, plus content-digest and content-type when the
// request has a body. They are also what a Verifier requires by default.
func DefaultComponents(hasBody bool) []string {
	c := []string{ComponentMethod, ComponentTargetURI}
	if hasBody {
		c = append(c, ComponentContentDigest, ComponentContentType)
	}
	return c
}

// SignParams says what Sign covers and which signature parameters it
// writes. The zero value signs DefaultComponents with created now, a fresh
// random nonce and keyid taken from the key.
type SignParams struct {
	// Label names the signature in Signature-Input and Signature;
	// DefaultLabel when empty.
	Label string
	// Components are the covered components in order;
	// DefaultComponents(len(body) > 0) when nil.
	Components []string
	// Created is the creation time; now when zero.
	Created time.Time
	// Expires, when not zero, is written as the expires parameter.
	Expires time.Time
	// Nonce is the nonce parameter; a fresh random nonce when empty,
	// unless OmitNonce is set.
	Nonce string
	// OmitNonce leaves the nonce parameter out (Vitals' verifier refuses
	// such signatures; the RFC test vectors have none).
	OmitNonce bool
	// KeyID is the keyid parameter; the key's ID when empty.
	KeyID string
	// Alg, when not empty, is written as the alg parameter; it must then be
	// the key's algorithm.
	Alg string
	// Tag, when not empty, is written as the tag parameter.
	Tag string
	// Now is the clock for Created; time.Now when nil.
	Now func() time.Time
}

// Sign signs r with key (RFC 9421). body is the exact content r will send
// (nil for none); Sign does not read or replace r.Body. When content-digest
// is covered, Sign first sets the Content-Digest field to the SHA-256 of
// body (RFC 9530). It then replaces any Signature-Input and Signature
// fields with one signature under p.Label.
//
// The parameters are written in the order created, expires, keyid, alg,
// nonce, tag.
func Sign(r *http.Request, body []byte, key Key, p SignParams) error {
	label := p.Label
	if label == "" {
		label = DefaultLabel
	}
	if err := checkKey(label); err != nil {
		return fmt.Errorf("httpsig: sign: label: %w", err)
	}
	comps := p.Components
	if comps == nil {
		comps = DefaultComponents(len(body) > 0)
	}
	if p.Alg != "" && p.Alg != key.Alg {
		return fmt.Errorf("httpsig: sign: alg %q is not the algorithm %q of key %q", p.Alg, key.Alg, key.ID)
	}
	if slices.Contains(comps, ComponentContentDigest) {
		r.Header.Set("Content-Digest", ContentDigest(body))
	}

	created := p.Created
	if created.IsZero() {
		now := p.Now
		if now == nil {
			now = time.Now
		}
		created = now()
	}
	keyID := p.KeyID
	if keyID == "" {
		keyID = key.ID
	}
	if keyID == "" {
		return errors.New("httpsig: sign: no keyid: set Key.ID or SignParams.KeyID")
	}
	params := sfParams{{key: "created", value: created.Unix()}}
	if !p.Expires.IsZero() {
		params = append(params, sfParam{key: "expires", value: p.Expires.Unix()})
	}
	params = append(params, sfParam{key: "keyid", value: keyID})
	if p.Alg != "" {
		params = append(params, sfParam{key: "alg", value: p.Alg})
	}
	if !p.OmitNonce {
		nonce := p.Nonce
		if nonce == "" {
			nonce = newNonce()
		}
		params = append(params, sfParam{key: "nonce", value: nonce})
	}
	if p.Tag != "" {
		params = append(params, sfParam{key: "tag", value: p.Tag})
	}

	base, _, err := signatureBase(newMessage(r, ""), comps, params)
	if err != nil {
		return fmt.Errorf("httpsig: sign: %w", err)
	}
	sig, err := key.sign([]byte(base))
	if err != nil {
		return fmt.Errorf("httpsig: sign: %w", err)
	}
	items := make([]sfItem, len(comps))
	for i, c := range comps {
		items[i] = sfItem{value: c}
	}
	input, err := serializeDictionary(sfDict{{key: label, list: &sfInnerList{items: items, params: params}}})
	if err != nil {
		return fmt.Errorf("httpsig: sign: Signature-Input: %w", err)
	}
	signature, err := serializeDictionary(sfDict{{key: label, item: &sfItem{value: sig}}})
	if err != nil {
		return fmt.Errorf("httpsig: sign: Signature: %w", err)
	}
	r.Header.Set("Signature-Input", input)
	r.Header.Set("Signature", signature)
	return nil
}

// newNonce returns 128 random bits, base64url-encoded.
func newNonce() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+)
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// Transport is an http.RoundTripper that signs the requests it sends: the
// Vitals Go client and CLI put it under their http.Client so every
// high-value call is signed without the caller doing anything. It reads the
// body to compute Content-Digest and sends a signed clone; the caller's
// request is not modified.
type Transport struct {
	// Base sends the signed request; http.DefaultTransport when nil.
	Base http.RoundTripper
	// Key signs.
	Key Key
	// Params are the signing parameters; Created and Nonce are filled in
	// per request when left empty, so each attempt gets a fresh nonce.
	Params SignParams
	// ShouldSign selects the requests to sign; all when nil.
	ShouldSign func(*http.Request) bool
}

// RoundTrip signs a clone of req and sends it with Base.
func (t *Transport) RoundTrip(req *http.Request) (*http.Response, error) {
	base := t.Base
	if base == nil {
		base = http.DefaultTransport
	}
	if t.ShouldSign != nil && !t.ShouldSign(req) {
		return base.RoundTrip(req)
	}
	var body []byte
	if req.Body != nil && req.Body != http.NoBody {
		b, err := io.ReadAll(req.Body)
		req.Body.Close()
		if err != nil {
			return nil, fmt.Errorf("httpsig: read request body to sign: %w", err)
		}
		body = b
	} else if req.Body != nil {
		req.Body.Close()
	}
	out := req.Clone(req.Context())
	if body != nil {
		out.Body = io.NopCloser(bytes.NewReader(body))
		out.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(bytes.NewReader(body)), nil }
		out.ContentLength = int64(len(body))
	}
	if err := Sign(out, body, t.Key, t.Params); err != nil {
		return nil, err
	}
	return base.RoundTrip(out)
}
