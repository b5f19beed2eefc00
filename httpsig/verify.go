package httpsig

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"
)

// DefaultMaxSkew is how far created may be from the verifier's clock, in
// either direction.
const DefaultMaxSkew = 300 * time.Second

// maxParamLen bounds keyid, nonce, alg and tag: they become cache and log
// keys.
const maxParamLen = 256

// NonceCache remembers the nonces already used. Seen records (keyID, nonce)
// for ttl and reports whether it was already recorded; the check and the
// record are one atomic step, so two concurrent requests with the same
// nonce cannot both pass.
type NonceCache interface {
	Seen(ctx context.Context, keyID, nonce string, ttl time.Duration) (bool, error)
}

// Verifier checks request signatures against the Vitals policy: the
// required components are covered, created is within the skew, the nonce
// is fresh, the body matches Content-Digest and the signature verifies with
// the registered key. It is safe for concurrent use.
type Verifier struct {
	keys         KeyResolver
	nonces       NonceCache
	maxSkew      time.Duration
	required     []string
	bodyRequired []string
	now          func() time.Time
	label        string
	scheme       string
	nonceNeeded  bool
}

// VerifierOption configures a Verifier.
type VerifierOption func(*Verifier)

// WithNonceCache sets the replay cache (a RedisNonceCache when several API
// instances must share it). The default is an in-process MemoryNonceCache
// of DefaultNonceCapacity entries.
func WithNonceCache(c NonceCache) VerifierOption { return func(v *Verifier) { v.nonces = c } }

// WithMaxSkew sets how far created may be from now in either direction;
// DefaultMaxSkew by default.
func WithMaxSkew(d time.Duration) VerifierOption { return func(v *Verifier) { v.maxSkew = d } }

// WithClock sets the clock; time.Now by default.
func WithClock(now func() time.Time) VerifierOption { return func(v *Verifier) { v.now = now } }

// WithRequiredComponents sets the components every signature must cover;
// @method and @target-uri by default.
func WithRequiredComponents(components ...string) VerifierOption {
	return func(v *Verifier) { v.required = slices.Clone(components) }
}

// WithBodyComponents sets the components a signature must also cover when
// the request has a body; content-digest and content-type by default.
func WithBodyComponents(components ...string) VerifierOption {
	return func(v *Verifier) { v.bodyRequired = slices.Clone(components) }
}

// WithLabel makes the verifier check only the signature with this label.
// By default it checks the first label of Signature-Input that Signature
// also has.
func WithLabel(label string) VerifierOption { return func(v *Verifier) { v.label = label } }

// WithScheme sets the scheme the verifier uses for @target-uri and
// @scheme, for servers behind a TLS-terminating proxy ("https"). By default
// it is https when the request came over TLS, http otherwise.
func WithScheme(scheme string) VerifierOption { return func(v *Verifier) { v.scheme = scheme } }

// WithNonceRequired says whether a signature must carry a nonce (true by
// default). Without one a signature can be replayed for as long as created
// is within the skew; turn it off only for interoperability tests such as
// the RFC 9421 vectors.
func WithNonceRequired(required bool) VerifierOption {
	return func(v *Verifier) { v.nonceNeeded = required }
}

// NewVerifier returns a verifier that resolves keyids with keys.
func NewVerifier(keys KeyResolver, opts ...VerifierOption) *Verifier {
	v := &Verifier{
		keys:         keys,
		maxSkew:      DefaultMaxSkew,
		required:     DefaultComponents(false),
		bodyRequired: []string{ComponentContentDigest, ComponentContentType},
		now:          time.Now,
		nonceNeeded:  true,
	}
	for _, o := range opts {
		o(v)
	}
	if v.nonces == nil {
		v.nonces = NewMemoryNonceCache(DefaultNonceCapacity, v.now)
	}
	return v
}

// Result describes a verified signature.
type Result struct {
	// Label is the signature's label.
	Label string
	// KeyID is the keyid parameter; ClientID and Alg come from the key.
	KeyID    string
	ClientID string
	Alg      string
	// Components are the covered components, in order.
	Components []string
	// Created and Expires (zero when absent) are the time parameters.
	Created time.Time
	Expires time.Time
	// Nonce and Tag are the parameters of those names ("" when absent).
	Nonce string
	Tag   string
}

// Verify checks the signature of r, whose body the caller has read into
// body (nil for none). It returns an error matching one of ErrMissingSignature,
// ErrMalformed, ErrUnknownKey, ErrMissingComponent, ErrStale,
// ErrDigestMismatch, ErrBadSignature or ErrReplayed when the request is at
// fault (an *Error, for WriteProblem), and another error when the key
// store or nonce cache failed. The nonce is recorded only when everything
// else passed, so a refused request does not use it up.
func (v *Verifier) Verify(ctx context.Context, r *http.Request, body []byte) (Result, error) {
	required := v.required
	if len(body) > 0 {
		required = append(slices.Clone(required), v.bodyRequired...)
	}
	res, err := v.verify(ctx, r, body, required)
	var e *Error
	if errors.As(err, &e) && e.Required == nil {
		e.Required = required
	}
	return res, err
}

func (v *Verifier) verify(ctx context.Context, r *http.Request, body []byte, required []string) (Result, error) {
	inputLines, sigLines := r.Header.Values("Signature-Input"), r.Header.Values("Signature")
	switch {
	case len(inputLines) == 0 && len(sigLines) == 0:
		return Result{}, failf(ErrMissingSignature, "the request has no Signature-Input and Signature headers")
	case len(inputLines) == 0:
		return Result{}, failf(ErrMissingSignature, "the request has a Signature header but no Signature-Input")
	case len(sigLines) == 0:
		return Result{}, failf(ErrMissingSignature, "the request has a Signature-Input header but no Signature")
	}
	inputs, err := parseDictionary(strings.Join(inputLines, ", "))
	if err != nil {
		return Result{}, malformed(err, "Signature-Input is not a structured dictionary")
	}
	sigs, err := parseDictionary(strings.Join(sigLines, ", "))
	if err != nil {
		return Result{}, malformed(err, "Signature is not a structured dictionary")
	}
	label, err := v.pickLabel(inputs, sigs)
	if err != nil {
		return Result{}, err
	}
	in, _ := inputs.get(label)
	sg, _ := sigs.get(label)
	res, params, err := parseSignatureInput(label, in)
	if err != nil {
		return Result{}, err
	}
	sig, ok := itemBytes(sg)
	if !ok {
		return Result{}, failf(ErrMalformed, "Signature %s is not a byte sequence (:base64:)", label)
	}

	for _, c := range required {
		if !slices.Contains(res.Components, c) {
			return Result{}, &Error{Kind: ErrMissingComponent, Component: c, NotCovered: true,
				Detail: "the signature does not cover " + c}
		}
	}
	if res.KeyID == "" {
		return Result{}, failf(ErrMalformed, "signature %s has no keyid parameter", label)
	}
	if res.Nonce == "" && v.nonceNeeded {
		return Result{}, failf(ErrMalformed, "signature %s has no nonce parameter; a fresh random nonce is required on every request", label)
	}
	if err := v.checkTime(res); err != nil {
		return Result{}, err
	}

	key, err := v.keys.Key(ctx, res.KeyID)
	if errors.Is(err, ErrUnknownKey) {
		return Result{}, &Error{Kind: ErrUnknownKey, Detail: fmt.Sprintf("keyid %q is not registered", res.KeyID)}
	}
	if err != nil {
		return Result{}, fmt.Errorf("httpsig: resolve keyid %q: %w", res.KeyID, err)
	}
	if res.Alg != "" && res.Alg != key.Alg {
		return Result{}, failf(ErrBadSignature, "alg %q does not match the algorithm %q of key %q", res.Alg, key.Alg, res.KeyID)
	}
	res.ClientID, res.Alg = key.ClientID, key.Alg

	base, _, err := signatureBase(newMessage(r, v.scheme), res.Components, params)
	if err != nil {
		return Result{}, err
	}
	ok, err = key.verify([]byte(base), sig)
	if err != nil {
		return Result{}, fmt.Errorf("httpsig: key %q is unusable: %w", res.KeyID, err)
	}
	if !ok {
		return Result{}, failf(ErrBadSignature, "signature %s does not verify with key %q", label, res.KeyID)
	}
	if slices.Contains(res.Components, ComponentContentDigest) {
		if err := checkContentDigest(r.Header.Values("Content-Digest"), body); err != nil {
			return Result{}, err
		}
	}

	if res.Nonce == "" {
		return res, nil // only when WithNonceRequired(false)
	}
	// Remember the nonce until created leaves the accepted window, after
	// which checkTime refuses the signature anyway.
	ttl := res.Created.Add(v.maxSkew).Sub(v.now()) + time.Second
	ttl = max(ttl.Truncate(time.Second), time.Second)
	seen, err := v.nonces.Seen(ctx, res.KeyID, res.Nonce, ttl)
	if err != nil {
		return Result{}, fmt.Errorf("httpsig: nonce cache: %w", err)
	}
	if seen {
		return Result{}, failf(ErrReplayed, "nonce %q was already used with key %q", res.Nonce, res.KeyID)
	}
	return res, nil
}

// pickLabel chooses the signature to check.
func (v *Verifier) pickLabel(inputs, sigs sfDict) (string, error) {
	if v.label != "" {
		_, inOK := inputs.get(v.label)
		_, sigOK := sigs.get(v.label)
		if !inOK || !sigOK {
			return "", failf(ErrMissingSignature, "the request has no signature labeled %s in both Signature-Input and Signature", v.label)
		}
		return v.label, nil
	}
	for _, m := range inputs {
		if _, ok := sigs.get(m.key); ok {
			return m.key, nil
		}
	}
	return "", failf(ErrMalformed, "Signature-Input and Signature have no label in common")
}

// checkTime applies the skew window to created and refuses an expired
// signature.
func (v *Verifier) checkTime(res Result) error {
	now := v.now()
	switch {
	case res.Created.After(now.Add(v.maxSkew)):
		return failf(ErrStale, "created is %d s in the future; at most %d s of clock skew is allowed",
			int64(res.Created.Sub(now)/time.Second), int64(v.maxSkew/time.Second))
	case res.Created.Before(now.Add(-v.maxSkew)):
		return failf(ErrStale, "created is %d s in the past; signatures are accepted for %d s",
			int64(now.Sub(res.Created)/time.Second), int64(v.maxSkew/time.Second))
	case !res.Expires.IsZero() && now.After(res.Expires):
		return failf(ErrStale, "the signature expired %d s ago", int64(now.Sub(res.Expires)/time.Second))
	}
	return nil
}

// parseSignatureInput interprets one Signature-Input member: an inner list
// of distinct component names (Strings without parameters) with the
// signature parameters. It returns the parameters as received, in order,
// for the signature base. Unknown parameters are kept (they are signed) and
// otherwise ignored; created is required.
func parseSignatureInput(label string, m sfMember) (Result, sfParams, error) {
	res := Result{Label: label}
	if m.list == nil {
		return res, nil, failf(ErrMalformed, "Signature-Input %s is not an inner list of components", label)
	}
	for _, it := range m.list.items {
		name, ok := it.value.(string)
		if !ok {
			return res, nil, failf(ErrMalformed, "Signature-Input %s: component identifiers must be quoted strings", label)
		}
		if len(it.params) > 0 {
			return res, nil, failf(ErrMalformed, "Signature-Input %s: component parameters (;%s on %q) are not supported", label, it.params[0].key, name)
		}
		if slices.Contains(res.Components, name) {
			return res, nil, failf(ErrMalformed, "Signature-Input %s covers %q twice", label, name)
		}
		if err := checkComponentName(name); err != nil {
			return res, nil, err
		}
		res.Components = append(res.Components, name)
	}
	haveCreated := false
	for _, p := range m.list.params {
		switch p.key {
		case "created", "expires":
			n, ok := p.value.(int64)
			if !ok || n < 0 {
				return res, nil, failf(ErrMalformed, "Signature-Input %s: %s must be a non-negative integer (Unix seconds)", label, p.key)
			}
			if p.key == "created" {
				res.Created, haveCreated = time.Unix(n, 0), true
			} else {
				res.Expires = time.Unix(n, 0)
			}
		case "keyid", "nonce", "alg", "tag":
			s, ok := p.value.(string)
			if !ok {
				return res, nil, failf(ErrMalformed, "Signature-Input %s: %s must be a quoted string", label, p.key)
			}
			if len(s) > maxParamLen {
				return res, nil, failf(ErrMalformed, "Signature-Input %s: %s is longer than %d characters", label, p.key, maxParamLen)
			}
			switch p.key {
			case "keyid":
				res.KeyID = s
			case "nonce":
				res.Nonce = s
			case "alg":
				res.Alg = s
			case "tag":
				res.Tag = s
			}
		}
	}
	if !haveCreated {
		return res, nil, failf(ErrMalformed, "Signature-Input %s has no created parameter", label)
	}
	return res, m.list.params, nil
}
