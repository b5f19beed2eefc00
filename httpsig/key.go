package httpsig

import (
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"log/slog"
)

// Algorithm names, as written in the alg signature parameter (RFC 9421
// §6.2.2).
const (
	// AlgHMACSHA256 is HMAC with SHA-256 over a shared secret.
	AlgHMACSHA256 = "hmac-sha256"
	// AlgEd25519 is EdDSA over edwards25519 (RFC 8032).
	AlgEd25519 = "ed25519"
)

// MinHMACKeyLen is the shortest HMAC secret Validate accepts: 32 bytes, the
// output size of SHA-256 (RFC 2104 §3).
const MinHMACKeyLen = 32

// Key is one client signing key: an HMAC secret or an Ed25519 key pair. The
// verifier needs HMAC or Ed25519Public; the signer needs HMAC or
// Ed25519Private. Key formats itself without its material (fmt and slog), so
// logging a Key is safe.
type Key struct {
	// ID is the keyid parameter that names the key.
	ID string
	// ClientID is the API client the key belongs to; the API checks it
	// against the client the bearer token was issued to.
	ClientID string
	// Alg is AlgHMACSHA256 or AlgEd25519.
	Alg string
	// HMAC is the shared secret of an hmac-sha256 key.
	HMAC []byte
	// Ed25519Public verifies ed25519 signatures.
	Ed25519Public ed25519.PublicKey
	// Ed25519Private signs with ed25519; its public half is used to
	// verify when Ed25519Public is nil.
	Ed25519Private ed25519.PrivateKey
}

// String describes k without its key material.
func (k Key) String() string {
	return fmt.Sprintf("httpsig.Key{ID:%q ClientID:%q Alg:%q}", k.ID, k.ClientID, k.Alg)
}

// GoString keeps %#v from printing key material.
func (k Key) GoString() string { return k.String() }

// LogValue keeps slog from printing key material.
func (k Key) LogValue() slog.Value {
	return slog.GroupValue(slog.String("id", k.ID), slog.String("client_id", k.ClientID), slog.String("alg", k.Alg))
}

// Validate reports whether k can verify signatures: a known algorithm, an
// ID, and key material of the right size. The admin API calls it before
// registering a key.
func (k Key) Validate() error {
	if k.ID == "" {
		return errors.New("key has no id")
	}
	switch k.Alg {
	case AlgHMACSHA256:
		if len(k.HMAC) < MinHMACKeyLen {
			return fmt.Errorf("key %q: hmac-sha256 secret is %d bytes, want at least %d", k.ID, len(k.HMAC), MinHMACKeyLen)
		}
	case AlgEd25519:
		if len(k.publicKey()) != ed25519.PublicKeySize {
			return fmt.Errorf("key %q: ed25519 public key is %d bytes, want %d", k.ID, len(k.publicKey()), ed25519.PublicKeySize)
		}
	default:
		return fmt.Errorf("key %q: unsupported algorithm %q (want %s or %s)", k.ID, k.Alg, AlgHMACSHA256, AlgEd25519)
	}
	return nil
}

func (k Key) publicKey() ed25519.PublicKey {
	if k.Ed25519Public != nil {
		return k.Ed25519Public
	}
	if len(k.Ed25519Private) == ed25519.PrivateKeySize {
		return k.Ed25519Private.Public().(ed25519.PublicKey)
	}
	return nil
}

// sign signs the signature base with k.
func (k Key) sign(base []byte) ([]byte, error) {
	switch k.Alg {
	case AlgHMACSHA256:
		if len(k.HMAC) == 0 {
			return nil, fmt.Errorf("key %q has no hmac secret", k.ID)
		}
		m := hmac.New(sha256.New, k.HMAC)
		m.Write(base)
		return m.Sum(nil), nil
	case AlgEd25519:
		if len(k.Ed25519Private) != ed25519.PrivateKeySize {
			return nil, fmt.Errorf("key %q has no ed25519 private key", k.ID)
		}
		return ed25519.Sign(k.Ed25519Private, base), nil
	default:
		return nil, fmt.Errorf("key %q: unsupported algorithm %q", k.ID, k.Alg)
	}
}

// verify reports whether sig is k's signature of base. An unusable key is
// an error of the server's, not a bad signature.
func (k Key) verify(base, sig []byte) (bool, error) {
	if err := k.Validate(); err != nil {
		return false, err
	}
	switch k.Alg {
	case AlgHMACSHA256:
		m := hmac.New(sha256.New, k.HMAC)
		m.Write(base)
		return hmac.Equal(m.Sum(nil), sig), nil
	default: // AlgEd25519; Validate refused the rest
		return len(sig) == ed25519.SignatureSize && ed25519.Verify(k.publicKey(), base, sig), nil
	}
}

// KeyResolver finds the key a keyid names. It returns an error matching
// ErrUnknownKey when there is none; any other error is treated as the
// server's fault.
type KeyResolver interface {
	Key(ctx context.Context, keyID string) (Key, error)
}

// StaticKeys is a KeyResolver over a fixed set of keys, by ID: for tests,
// the CLI and single-instance setups.
type StaticKeys map[string]Key

// Key returns the key named keyID, or an error matching ErrUnknownKey.
func (s StaticKeys) Key(_ context.Context, keyID string) (Key, error) {
	k, ok := s[keyID]
	if !ok {
		return Key{}, fmt.Errorf("keyid %q: %w", keyID, ErrUnknownKey)
	}
	return k, nil
}
