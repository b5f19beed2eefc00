package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
)

// Signing algorithms Vitals signs and accepts access tokens with. The
// allow-list is fixed: "none" and HMAC algorithms are never accepted.
const (
	AlgES256 = string(jose.ES256) // ECDSA P-256 with SHA-256
	AlgEdDSA = string(jose.EdDSA) // Ed25519
)

// acceptedAlgs is the verification allow-list handed to the JWS parser.
func acceptedAlgs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA}
}

// ErrUnsupportedAlgorithm is returned for a signing key whose algorithm is
// not AlgES256 or AlgEdDSA, or whose private key does not match it.
var ErrUnsupportedAlgorithm = errors.New("auth: unsupported signing algorithm")

// SigningKey is a private key that signs access tokens. It is stored as JSON
// in the compacted signing-keys topic, keyed by KID. Every stored key is
// published in the JWKS and accepted for verification; the newest one signs,
// so rotation is: put a new key, and delete the old one once every token it
// signed has expired.
type SigningKey struct {
	KID       string `json:"kid"`
	Algorithm string `json:"alg"` // AlgES256 or AlgEdDSA
	// PrivateKey is the PKCS #8 DER encoding (base64 in JSON).
	PrivateKey []byte    `json:"private_key"`
	CreatedAt  time.Time `json:"created_at"`
}

// NewSigningKey returns a fresh ES256 (ECDSA P-256) signing key, the
// algorithm every JOSE library verifies.
func NewSigningKey() (SigningKey, error) { return NewSigningKeyFor(AlgES256) }

// NewSigningKeyFor returns a fresh signing key for alg, AlgES256 or
// AlgEdDSA.
func NewSigningKeyFor(alg string) (SigningKey, error) {
	var (
		priv crypto.Signer
		err  error
	)
	switch alg {
	case AlgES256:
		priv, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case AlgEdDSA:
		_, priv, err = ed25519.GenerateKey(rand.Reader)
	default:
		return SigningKey{}, fmt.Errorf("new signing key %q: %w", alg, ErrUnsupportedAlgorithm)
	}
	if err != nil {
		return SigningKey{}, fmt.Errorf("new signing key %s: %w", alg, err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(priv)
	if err != nil {
		return SigningKey{}, fmt.Errorf("new signing key %s: %w", alg, err)
	}
	kid := make([]byte, 8)
	_, _ = rand.Read(kid) // never fails
	return SigningKey{
		KID:        "k_" + hex.EncodeToString(kid),
		Algorithm:  alg,
		PrivateKey: der,
		CreatedAt:  time.Now().UTC(),
	}, nil
}

// parsedKey is a SigningKey decoded once: its signer and public key.
type parsedKey struct {
	kid    string
	alg    jose.SignatureAlgorithm
	priv   crypto.Signer
	public crypto.PublicKey
}

// parse decodes k and checks the key type matches its algorithm, so the
// algorithm named in a token header can never select another kind of key.
func (k SigningKey) parse() (parsedKey, error) {
	raw, err := x509.ParsePKCS8PrivateKey(k.PrivateKey)
	if err != nil {
		return parsedKey{}, fmt.Errorf("signing key %s: %w", k.KID, err)
	}
	p := parsedKey{kid: k.KID, alg: jose.SignatureAlgorithm(k.Algorithm)}
	switch key := raw.(type) {
	case *ecdsa.PrivateKey:
		if k.Algorithm != AlgES256 || key.Curve != elliptic.P256() {
			return parsedKey{}, fmt.Errorf("signing key %s: ECDSA key for %q: %w", k.KID, k.Algorithm, ErrUnsupportedAlgorithm)
		}
		p.priv, p.public = key, &key.PublicKey
	case ed25519.PrivateKey:
		if k.Algorithm != AlgEdDSA {
			return parsedKey{}, fmt.Errorf("signing key %s: Ed25519 key for %q: %w", k.KID, k.Algorithm, ErrUnsupportedAlgorithm)
		}
		p.priv, p.public = key, key.Public()
	default:
		return parsedKey{}, fmt.Errorf("signing key %s: key type %T: %w", k.KID, raw, ErrUnsupportedAlgorithm)
	}
	return p, nil
}

// PublicJWK returns the public half of k as a JWK with kid, alg and
// use "sig".
func (k SigningKey) PublicJWK() (jose.JSONWebKey, error) {
	p, err := k.parse()
	if err != nil {
		return jose.JSONWebKey{}, err
	}
	return p.jwk(), nil
}

func (p parsedKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: p.public, KeyID: p.kid, Algorithm: string(p.alg), Use: "sig"}
}
