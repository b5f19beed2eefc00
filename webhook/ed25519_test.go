package webhook_test

import (
	"encoding/base64"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vitalshq/vitals/webhook"
)

// An ed25519 vector over the official message: seed 00 01 … 1f; the
// signature was computed independently with Python's cryptography package.
const (
	vecSeed   = "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8="
	vecPublic = "A6EHv/POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="
	vecSigA   = "v1a,yoUrgEkc12aGqm0n4Sydmdz55xJfTz4AsAgieHFjmkR7LJtqVCZOQYzvvHjI5kAey+r4iaBGxTFRrl2iBQxtDQ=="
)

func TestSignEd25519Vector(t *testing.T) {
	got, err := webhook.SignEd25519(vecSeed, vecID, time.Unix(vecTS, 0), []byte(vecBody))
	if err != nil || got != vecSigA {
		t.Fatalf("SignEd25519 = %q, %v; want %q", got, err, vecSigA)
	}
	pub, err := webhook.Ed25519PublicKey(vecSeed)
	if err != nil || pub != vecPublic {
		t.Fatalf("Ed25519PublicKey = %q, %v", pub, err)
	}
	if _, err := webhook.SignEd25519("AAEC", vecID, time.Now(), nil); !errors.Is(err, webhook.ErrBadKey) {
		t.Fatalf("short seed: %v", err)
	}
}

func TestVerifyEd25519(t *testing.T) {
	ts := strconv.Itoa(vecTS)
	for _, pub := range []string{vecPublic, webhook.PublicKeyPrefix + vecPublic} {
		v, err := webhook.NewVerifier("", webhook.AcceptEd25519(pub), webhook.Clock(vecClock))
		if err != nil {
			t.Fatal(err)
		}
		if err := v.VerifyValues(vecID, ts, vecSigA, []byte(vecBody)); err != nil {
			t.Fatalf("v1a vector with %q: %v", pub, err)
		}
		// Next to v1 signatures it cannot check, in any order.
		if err := v.VerifyValues(vecID, ts, vecSig+" "+vecSigA, []byte(vecBody)); err != nil {
			t.Fatalf("v1 then v1a: %v", err)
		}
		if err := v.VerifyValues(vecID, ts, vecSigA, []byte(`{"test": 2432232315}`)); !errors.Is(err, webhook.ErrNoMatchingSignature) {
			t.Fatalf("tampered body: %v", err)
		}
		if err := v.VerifyValues(vecID, ts, vecSig, []byte(vecBody)); !errors.Is(err, webhook.ErrNoMatchingSignature) {
			t.Fatalf("v1 only, no secret: %v", err)
		}
	}
	// Another key's signature does not verify.
	seed, pub, err := webhook.NewEd25519Key()
	if err != nil {
		t.Fatal(err)
	}
	v, _ := webhook.NewVerifier("", webhook.AcceptEd25519(pub), webhook.Clock(vecClock))
	if err := v.VerifyValues(vecID, ts, vecSigA, []byte(vecBody)); !errors.Is(err, webhook.ErrNoMatchingSignature) {
		t.Fatalf("other key: %v", err)
	}
	own, _ := webhook.SignEd25519(seed, vecID, time.Unix(vecTS, 0), []byte(vecBody))
	if err := v.VerifyValues(vecID, ts, "v1a,!!! "+own, []byte(vecBody)); err != nil {
		t.Fatalf("own key after garbage: %v", err)
	}
	// A v1 verifier ignores v1a entries; both together accept either.
	v, _ = webhook.NewVerifier(vecSecret, webhook.Clock(vecClock))
	if err := v.VerifyValues(vecID, ts, vecSigA, []byte(vecBody)); !errors.Is(err, webhook.ErrNoMatchingSignature) {
		t.Fatalf("v1 verifier accepted v1a: %v", err)
	}
	if _, err := webhook.NewVerifier("", webhook.AcceptEd25519("nope")); !errors.Is(err, webhook.ErrBadKey) {
		t.Fatalf("bad public key: %v", err)
	}
}

func TestSecretLength(t *testing.T) {
	for n, ok := range map[int]bool{0: false, 16: false, 23: false, 24: true, 32: true, 64: true, 65: false} {
		s := "whsec_" + base64.StdEncoding.EncodeToString([]byte(strings.Repeat("k", n)))
		if _, err := webhook.ParseSecret(s); (err == nil) != ok || (!ok && !errors.Is(err, webhook.ErrBadSecret)) {
			t.Errorf("%d-byte secret: %v, want ok=%v", n, err, ok)
		}
	}
}
