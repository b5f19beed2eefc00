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
	ID        string    `json:"id"`
	Alg       string    `json:"alg"`        // AlgEd25519
	Public    []byte    `json:"public_key"` // ed25519, 32 bytes (base64 in JSON)
	CreatedAt time.Time `json:"created_at"`
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

// Key is k as a verification key; ClientID is the owner.
func (k RegisteredKey) Key() Key {
	return Key{ID: k.ID, ClientID: Owner(k.ID), Alg: k.Alg, Ed25519Public: ed25519.PublicKey(k.Public)}
}
