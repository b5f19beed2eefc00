package user_test

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"

	"github.com/vitalshq/vitals/user"
)

// gcmSealer is a minimal AES-256-GCM Sealer: base64(nonce || ciphertext).
type gcmSealer struct{ aead cipher.AEAD }

func newSealer(t testing.TB) *gcmSealer {
	t.Helper()
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		t.Fatal(err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		t.Fatal(err)
	}
	return &gcmSealer{aead: aead}
}

func (s *gcmSealer) Seal(plaintext, aad []byte) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.StdEncoding.EncodeToString(s.aead.Seal(nonce, nonce, plaintext, aad)), nil
}

func (s *gcmSealer) Open(sealed string, aad []byte) ([]byte, error) {
	b, err := base64.StdEncoding.DecodeString(sealed)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	n := s.aead.NonceSize()
	if len(b) < n {
		return nil, errors.New("open: too short")
	}
	pt, err := s.aead.Open(nil, b[:n], b[n:], aad)
	if err != nil {
		return nil, fmt.Errorf("open: %w", err)
	}
	return pt, nil
}

// clock is a settable clock for WithClock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

// t0 is the start of a TOTP time step (1 800 000 000 = 60 000 000 × 30).
var t0 = time.Unix(1_800_000_000, 0)

func newClock() *clock { return &clock{t: t0} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// newService returns a Service over store with cheap password hashing, a
// fresh sealer and clock.
func newService(t testing.TB, store user.Store, sealer user.Sealer, c *clock) *user.Service {
	t.Helper()
	s, err := user.New(store, sealer, user.WithClock(c.Now), user.WithPasswordParams(user.TestParams()))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// code returns the TOTP code of secret at time at.
func code(t testing.TB, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

const goodPassword = "correct horse battery staple"
