package webhook

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"strings"
	"time"
)

// PublicKeyPrefix may start an ed25519 public key, as in the Standard
// Webhooks reference libraries ("whpk_"); Vitals hands out bare base64 and
// accepts both.
const PublicKeyPrefix = "whpk_"

// ErrBadKey means an ed25519 seed or public key is not base64 of the right
// length.
var ErrBadKey = errors.New("webhook: bad ed25519 key")

// NewEd25519Key returns a fresh ed25519 signing key: its 32-byte seed and
// its public key, each standard base64. The seed stays with Vitals (the
// endpoint's SigningKeyEd25519); the public key goes to receivers.
func NewEd25519Key() (seedB64, publicB64 string, err error) {
	seed := make([]byte, ed25519.SeedSize)
	if _, err := rand.Read(seed); err != nil {
		return "", "", fmt.Errorf("new ed25519 key: %w", err)
	}
	pub := ed25519.NewKeyFromSeed(seed).Public().(ed25519.PublicKey)
	return base64.StdEncoding.EncodeToString(seed), base64.StdEncoding.EncodeToString(pub), nil
}

// Ed25519PublicKey returns the base64 public key of a base64 seed.
func Ed25519PublicKey(seedB64 string) (string, error) {
	priv, err := parseSeed(seedB64)
	if err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(priv.Public().(ed25519.PublicKey)), nil
}

// SignEd25519 returns the webhook-signature entry of one message under an
// ed25519 key: "v1a," + base64(ed25519 signature of msgID "." unix seconds
// "." body). seedB64 is the base64 32-byte seed. Add the entry to the
// webhook-signature header, space separated, next to the v1 ones.
func SignEd25519(seedB64, msgID string, ts time.Time, body []byte) (string, error) {
	priv, err := parseSeed(seedB64)
	if err != nil {
		return "", err
	}
	sig := ed25519.Sign(priv, signedContent(msgID, ts.Unix(), body))
	return SignatureVersionEd25519 + "," + base64.StdEncoding.EncodeToString(sig), nil
}

func parseSeed(seedB64 string) (ed25519.PrivateKey, error) {
	seed, err := base64.StdEncoding.DecodeString(seedB64)
	if err != nil || len(seed) != ed25519.SeedSize {
		return nil, fmt.Errorf("%w: seed must be base64 of %d bytes", ErrBadKey, ed25519.SeedSize)
	}
	return ed25519.NewKeyFromSeed(seed), nil
}

// ParsePublicKey reads a base64 ed25519 public key, with or without the
// "whpk_" prefix.
func ParsePublicKey(publicB64 string) (ed25519.PublicKey, error) {
	b, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(publicB64, PublicKeyPrefix))
	if err != nil || len(b) != ed25519.PublicKeySize {
		return nil, fmt.Errorf("%w: public key must be base64 of %d bytes", ErrBadKey, ed25519.PublicKeySize)
	}
	return ed25519.PublicKey(b), nil
}
