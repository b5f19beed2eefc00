package webhook

import (
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// DefaultTolerance is how far a webhook-timestamp may be from the
// verifier's clock, in either direction, before the message is refused.
const DefaultTolerance = 5 * time.Minute

// Verifier checks Standard Webhooks signatures against one or more secrets.
// It is safe for concurrent use.
type Verifier struct {
	keys      [][]byte
	pubs      []ed25519.PublicKey
	tolerance time.Duration
	now       func() time.Time
}

// VerifierOption configures a Verifier.
type VerifierOption func(*verifierConfig)

type verifierConfig struct {
	extra     []string
	pubs      []string
	tolerance time.Duration
	now       func() time.Time
}

// Tolerance sets how far webhook-timestamp may be from now, in either
// direction (default DefaultTolerance). Zero or less keeps the default.
func Tolerance(d time.Duration) VerifierOption {
	return func(c *verifierConfig) {
		if d > 0 {
			c.tolerance = d
		}
	}
}

// Clock sets the verifier's source of the current time (default time.Now).
func Clock(now func() time.Time) VerifierOption {
	return func(c *verifierConfig) {
		if now != nil {
			c.now = now
		}
	}
}

// AlsoAccept adds a secret whose signatures are accepted as well, for a
// receiver in the middle of a secret rotation.
func AlsoAccept(secret string) VerifierOption {
	return func(c *verifierConfig) { c.extra = append(c.extra, secret) }
}

// AcceptEd25519 makes the verifier accept "v1a," ed25519 signatures made
// with the private key of publicKey (base64, optionally "whpk_"-prefixed).
func AcceptEd25519(publicKey string) VerifierOption {
	return func(c *verifierConfig) { c.pubs = append(c.pubs, publicKey) }
}

// NewVerifier returns a Verifier for secret (with or without the "whsec_"
// prefix). It fails with ErrBadSecret when a secret does not parse, and
// with ErrBadKey when a public key does not. secret may be empty when
// AcceptEd25519 is given: the verifier then checks only v1a signatures.
func NewVerifier(secret string, opts ...VerifierOption) (*Verifier, error) {
	c := verifierConfig{tolerance: DefaultTolerance, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	v := &Verifier{tolerance: c.tolerance, now: c.now}
	for _, p := range c.pubs {
		pub, err := ParsePublicKey(p)
		if err != nil {
			return nil, fmt.Errorf("new verifier: %w", err)
		}
		v.pubs = append(v.pubs, pub)
	}
	secrets := append([]string{secret}, c.extra...)
	if secret == "" && len(v.pubs) > 0 {
		secrets = c.extra
	}
	for _, s := range secrets {
		key, err := ParseSecret(s)
		if err != nil {
			return nil, fmt.Errorf("new verifier: %w", err)
		}
		v.keys = append(v.keys, key)
	}
	return v, nil
}

// Verify checks the Standard Webhooks headers in h against body. It returns
// nil when the timestamp is within tolerance and at least one v1 signature
// in webhook-signature matches under one of the verifier's secrets, or one
// v1a signature under one of its ed25519 public keys (AcceptEd25519).
// Signatures of other versions, and malformed entries, are ignored.
func (v *Verifier) Verify(h http.Header, body []byte) error {
	return v.VerifyValues(h.Get(HeaderID), h.Get(HeaderTimestamp), h.Get(HeaderSignature), body)
}

// VerifyValues is Verify with the three header values given directly.
func (v *Verifier) VerifyValues(msgID, timestamp, signatures string, body []byte) error {
	if msgID == "" || timestamp == "" || signatures == "" {
		return ErrMissingHeaders
	}
	unix, err := parseTimestamp(timestamp)
	if err != nil {
		return err
	}
	now := v.now()
	ts := time.Unix(unix, 0)
	if now.Sub(ts) > v.tolerance {
		return fmt.Errorf("%w: signed %s ago, tolerance %s", ErrTimestampTooOld, now.Sub(ts).Truncate(time.Second), v.tolerance)
	}
	if ts.Sub(now) > v.tolerance {
		return fmt.Errorf("%w: signed %s ahead, tolerance %s", ErrTimestampTooNew, ts.Sub(now).Truncate(time.Second), v.tolerance)
	}

	var macs [][]byte
	for _, key := range v.keys {
		macs = append(macs, computeMAC(key, msgID, unix, body, make([]byte, 0, sha256.Size)))
	}
	var got [sha256.Size]byte
	for entry := range strings.FieldsSeq(signatures) {
		version, sig, ok := strings.Cut(entry, ",")
		if ok && version == SignatureVersionEd25519 && len(v.pubs) > 0 {
			raw, err := base64.StdEncoding.DecodeString(sig)
			if err != nil || len(raw) != ed25519.SignatureSize {
				continue
			}
			content := signedContent(msgID, unix, body)
			for _, pub := range v.pubs {
				if ed25519.Verify(pub, content, raw) {
					return nil
				}
			}
			continue
		}
		if !ok || version != SignatureVersion {
			continue
		}
		if base64.StdEncoding.DecodedLen(len(sig)) < sha256.Size ||
			base64.StdEncoding.DecodedLen(len(sig)) > sha256.Size+2 {
			continue
		}
		var buf [sha256.Size + 2]byte
		n, err := base64.StdEncoding.Decode(buf[:], []byte(sig))
		if err != nil || n != sha256.Size {
			continue
		}
		copy(got[:], buf[:n])
		for _, mac := range macs {
			if hmac.Equal(got[:], mac) {
				return nil
			}
		}
	}
	return ErrNoMatchingSignature
}

// parseTimestamp reads webhook-timestamp: decimal Unix seconds.
func parseTimestamp(s string) (int64, error) {
	unix, err := strconv.ParseInt(s, 10, 64)
	if err != nil || unix < 0 {
		return 0, fmt.Errorf("%w: %q is not Unix seconds", ErrBadTimestamp, truncate(s, 32))
	}
	// Keep time arithmetic in range: far-out values are simply too new.
	if unix > 1<<40 {
		return 0, fmt.Errorf("%w: %q is out of range", ErrBadTimestamp, truncate(s, 32))
	}
	return unix, nil
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
