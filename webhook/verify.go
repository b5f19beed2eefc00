package webhook

import (
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
	tolerance time.Duration
	now       func() time.Time
}

// VerifierOption configures a Verifier.
type VerifierOption func(*verifierConfig)

type verifierConfig struct {
	extra     []string
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

// NewVerifier returns a Verifier for secret (with or without the "whsec_"
// prefix). It fails with ErrBadSecret when a secret does not parse.
func NewVerifier(secret string, opts ...VerifierOption) (*Verifier, error) {
	c := verifierConfig{tolerance: DefaultTolerance, now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	v := &Verifier{tolerance: c.tolerance, now: c.now}
	for _, s := range append([]string{secret}, c.extra...) {
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
// in webhook-signature matches under one of the verifier's secrets.
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
