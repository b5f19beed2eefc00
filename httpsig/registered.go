package httpsig

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// RegisteredKey is a public key registered for an owner (an API client or
// a person) to sign its high-value requests, in its stored form (JSON).
// Its ID, the keyid of signatures, is "<owner id>/<random>", so a verifier
// finds the owner without a global index.
type RegisteredKey struct {
	ID     string `json:"id"`
	Alg    string `json:"alg"`                  // AlgEd25519 or AlgHMACSHA256
	Public []byte `json:"public_key,omitempty"` // ed25519, 32 bytes (base64 in JSON)
	// SealedSecret is an hmac-sha256 secret sealed at rest (package
	// keyring's envelope; AAD SecretAAD(ID)); never the secret itself.
	SealedSecret string    `json:"sealed_secret,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

// SecretAAD binds a sealed hmac-sha256 secret to its key id.
func SecretAAD(keyID string) []byte { return []byte("request-key-secret:" + keyID) }

// NewRegisteredSecret names a fresh hmac-sha256 key for owner and returns
// it with its secret (to be shown once); seal stores the secret (AAD
// SecretAAD of the key id).
func NewRegisteredSecret(owner string, now time.Time, seal func(secret, aad []byte) (string, error)) (RegisteredKey, []byte, error) {
	secret := make([]byte, 32)
	_, _ = rand.Read(secret)
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	k := RegisteredKey{ID: owner + "/k_" + hex.EncodeToString(b), Alg: AlgHMACSHA256, CreatedAt: now.UTC()}
	sealed, err := seal(secret, SecretAAD(k.ID))
	if err != nil {
		return RegisteredKey{}, nil, fmt.Errorf("seal request key %s: %w", k.ID, err)
	}
	k.SealedSecret = sealed
	return k, secret, nil
}

// NewRegisteredKey checks an ed25519 public key and names it for owner.
func NewRegisteredKey(owner string, public []byte, now time.Time) (RegisteredKey, error) {
	if len(public) != ed25519.PublicKeySize {
		return RegisteredKey{}, fmt.Errorf("an ed25519 public key is %d bytes, got %d", ed25519.PublicKeySize, len(public))
	}
	b := make([]byte, 8)
	_, _ = rand.Read(b)
	return RegisteredKey{ID: owner + "/k_" + hex.EncodeToString(b), Alg: AlgEd25519, Public: public, CreatedAt: now.UTC()}, nil
}

// Owner is the owner id named in a keyid ("" when it names none).
func Owner(keyID string) string {
	owner, _, ok := strings.Cut(keyID, "/")
	if !ok {
		return ""
	}
	return owner
}

// Key is k as a verification key; ClientID is the owner. open unseals an
// hmac-sha256 secret (nil for ed25519-only callers).
func (k RegisteredKey) Key(open func(sealed string, aad []byte) ([]byte, error)) (Key, error) {
	out := Key{ID: k.ID, ClientID: Owner(k.ID), Alg: k.Alg}
	switch k.Alg {
	case AlgEd25519:
		out.Ed25519Public = ed25519.PublicKey(k.Public)
	case AlgHMACSHA256:
		if open == nil {
			return Key{}, fmt.Errorf("request key %s: no keyring to open its secret", k.ID)
		}
		secret, err := open(k.SealedSecret, SecretAAD(k.ID))
		if err != nil {
			return Key{}, fmt.Errorf("request key %s: %w", k.ID, err)
		}
		out.HMAC = secret
	default:
		return Key{}, fmt.Errorf("request key %s: unknown algorithm %q", k.ID, k.Alg)
	}
	return out, nil
}
