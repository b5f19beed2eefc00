package webhook

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Header names of a Standard Webhooks request, in canonical lower case.
const (
	HeaderID        = "webhook-id"
	HeaderTimestamp = "webhook-timestamp"
	HeaderSignature = "webhook-signature"
)

// SecretPrefix starts every secret Vitals hands out; the rest is the base64
// encoding of the key.
const SecretPrefix = "whsec_"

// SignatureVersion is the symmetric signature scheme: HMAC-SHA256.
const SignatureVersion = "v1"

// SignatureVersionEd25519 is the asymmetric signature scheme: ed25519 over
// the same signed content, verified with the endpoint's public key.
const SignatureVersionEd25519 = "v1a"

// secretBytes is the key length of secrets made by NewSecret.
const secretBytes = 32

// MinSecretBytes and MaxSecretBytes bound the key length of a secret
// ParseSecret accepts (Standard Webhooks: 24 to 64 bytes).
const (
	MinSecretBytes = 24
	MaxSecretBytes = 64
)

// Named failure classes. Errors returned by this package wrap one of them;
// test with errors.Is.
var (
	// ErrBadSecret means a secret is empty or not base64 after its prefix.
	ErrBadSecret = errors.New("webhook: bad secret")
	// ErrMissingHeaders means a webhook-id, webhook-timestamp or
	// webhook-signature header is absent or empty.
	ErrMissingHeaders = errors.New("webhook: missing webhook headers")
	// ErrBadTimestamp means webhook-timestamp is not an integer of Unix
	// seconds.
	ErrBadTimestamp = errors.New("webhook: bad webhook-timestamp")
	// ErrTimestampTooOld means the message was signed longer ago than the
	// verifier's tolerance: a likely replay.
	ErrTimestampTooOld = errors.New("webhook: timestamp too old")
	// ErrTimestampTooNew means the message claims to be signed further in
	// the future than the verifier's tolerance.
	ErrTimestampTooNew = errors.New("webhook: timestamp too new")
	// ErrNoMatchingSignature means no v1 signature in webhook-signature
	// matches the message under any of the verifier's secrets.
	ErrNoMatchingSignature = errors.New("webhook: no matching signature")
)

// NewSecret returns a fresh secret: "whsec_" followed by the standard base64
// encoding of 32 random bytes.
func NewSecret() (string, error) {
	b := make([]byte, secretBytes)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("new webhook secret: %w", err)
	}
	return SecretPrefix + base64.StdEncoding.EncodeToString(b), nil
}

// ParseSecret returns the HMAC key of a secret. The "whsec_" prefix is
// optional, as in the Standard Webhooks reference libraries; what follows
// must be standard base64 of MinSecretBytes to MaxSecretBytes bytes.
func ParseSecret(secret string) ([]byte, error) {
	s := strings.TrimPrefix(secret, SecretPrefix)
	if s == "" {
		return nil, fmt.Errorf("%w: empty", ErrBadSecret)
	}
	key, err := base64.StdEncoding.DecodeString(s)
	if err != nil {
		return nil, fmt.Errorf("%w: not base64 after %q", ErrBadSecret, SecretPrefix)
	}
	if len(key) < MinSecretBytes || len(key) > MaxSecretBytes {
		return nil, fmt.Errorf("%w: key is %d bytes, want %d to %d", ErrBadSecret, len(key), MinSecretBytes, MaxSecretBytes)
	}
	return key, nil
}

// Sign returns the webhook-signature entry for one message:
// "v1," + base64(HMAC-SHA256(key, msgID + "." + unix seconds + "." + body)).
// The timestamp is truncated to whole seconds, as on the wire.
func Sign(secret, msgID string, ts time.Time, body []byte) (string, error) {
	key, err := ParseSecret(secret)
	if err != nil {
		return "", err
	}
	return SignKey(key, msgID, ts.Unix(), body), nil
}

// SignKey is Sign with an already parsed key and a Unix-seconds timestamp,
// for callers that sign many messages with one secret.
func SignKey(key []byte, msgID string, unix int64, body []byte) string {
	var sum [sha256.Size]byte
	mac := computeMAC(key, msgID, unix, body, sum[:0])
	out := make([]byte, len(SignatureVersion)+1+base64.StdEncoding.EncodedLen(len(mac)))
	n := copy(out, SignatureVersion)
	out[n] = ','
	base64.StdEncoding.Encode(out[n+1:], mac)
	return string(out)
}

// signedContent is what both schemes sign: msgID "." unix seconds "." body.
func signedContent(msgID string, unix int64, body []byte) []byte {
	out := make([]byte, 0, len(msgID)+len(body)+22)
	out = append(out, msgID...)
	out = append(out, '.')
	out = strconv.AppendInt(out, unix, 10)
	out = append(out, '.')
	return append(out, body...)
}

// computeMAC appends HMAC-SHA256(key, id.ts.body) to dst.
func computeMAC(key []byte, msgID string, unix int64, body, dst []byte) []byte {
	m := hmac.New(sha256.New, key)
	var buf [len("..") + 20]byte
	m.Write([]byte(msgID))
	p := append(buf[:0], '.')
	p = strconv.AppendInt(p, unix, 10)
	p = append(p, '.')
	m.Write(p)
	m.Write(body)
	return m.Sum(dst)
}

// Headers sets the three Standard Webhooks headers on h for one message:
// webhook-id, webhook-timestamp (Unix seconds) and webhook-signature with
// one signature per secret, space separated. Pass both the old and the new
// secret during a rotation so receivers holding either one accept it.
func Headers(h http.Header, msgID string, ts time.Time, body []byte, secrets ...string) error {
	if msgID == "" {
		return fmt.Errorf("webhook headers: %w: empty message id", ErrMissingHeaders)
	}
	if len(secrets) == 0 {
		return fmt.Errorf("webhook headers %s: %w: no secret", msgID, ErrBadSecret)
	}
	sigs := make([]string, 0, len(secrets))
	for _, s := range secrets {
		sig, err := Sign(s, msgID, ts, body)
		if err != nil {
			return fmt.Errorf("webhook headers %s: %w", msgID, err)
		}
		sigs = append(sigs, sig)
	}
	h.Set(HeaderID, msgID)
	h.Set(HeaderTimestamp, strconv.FormatInt(ts.Unix(), 10))
	h.Set(HeaderSignature, strings.Join(sigs, " "))
	return nil
}
