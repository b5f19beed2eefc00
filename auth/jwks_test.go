package auth

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"math/big"
	"net/http"
	"strings"
	"testing"

	"github.com/go-jose/go-jose/v4"
)

// verifyWithJWK checks a compact JWS against one JWK given as raw JSON
// members, using only the standard library.
func verifyWithJWK(t *testing.T, jwk map[string]string, token string) bool {
	t.Helper()
	parts := strings.Split(token, ".")
	input := []byte(parts[0] + "." + parts[1])
	sig, err := base64.RawURLEncoding.DecodeString(parts[2])
	if err != nil {
		t.Fatal(err)
	}
	b64 := func(s string) []byte {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatalf("JWK member %q: %v", s, err)
		}
		return b
	}
	switch {
	case jwk["kty"] == "EC" && jwk["crv"] == "P-256" && jwk["alg"] == "ES256":
		pub := &ecdsa.PublicKey{Curve: elliptic.P256(),
			X: new(big.Int).SetBytes(b64(jwk["x"])), Y: new(big.Int).SetBytes(b64(jwk["y"]))}
		if len(sig) != 64 {
			return false
		}
		sum := sha256.Sum256(input)
		return ecdsa.Verify(pub, sum[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:]))
	case jwk["kty"] == "OKP" && jwk["crv"] == "Ed25519" && jwk["alg"] == "EdDSA":
		return ed25519.Verify(ed25519.PublicKey(b64(jwk["x"])), input, sig)
	}
	t.Fatalf("unexpected JWK %v", jwk)
	return false
}

func TestJWKSVerifiesTokensIndependently(t *testing.T) {
	e := newEnv(t, AlgES256)
	ed, err := NewSigningKeyFor(AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	esToken := e.token("")
	ed.CreatedAt = e.clock.Now().Add(1) // newest: signs from now on (newEnv's key is at clock.Now)
	if err := e.store.PutSigningKey(context.Background(), ed); err != nil {
		t.Fatal(err)
	}
	edToken := e.token("")
	if h, _ := jwtParts(t, edToken); h["alg"] != AlgEdDSA || h["kid"] != ed.KID {
		t.Fatalf("newest key did not sign: %v", h)
	}

	r := e.get(JWKSPath, "")
	if r.status != http.StatusOK {
		t.Fatalf("JWKS: %d %s", r.status, r.body)
	}
	if ct := r.header.Get("Content-Type"); ct != "application/jwk-set+json" {
		t.Errorf("Content-Type %q", ct)
	}
	var set struct {
		Keys []map[string]string `json:"keys"`
	}
	if err := json.Unmarshal(r.body, &set); err != nil {
		t.Fatal(err)
	}
	if len(set.Keys) != 2 {
		t.Fatalf("%d keys, want 2: %s", len(set.Keys), r.body)
	}
	byKID := map[string]map[string]string{}
	for _, k := range set.Keys {
		if _, private := k["d"]; private {
			t.Fatalf("JWKS publishes a private key: %v", k)
		}
		if k["use"] != "sig" || k["kid"] == "" || k["alg"] == "" {
			t.Fatalf("JWK lacks use/kid/alg: %v", k)
		}
		byKID[k["kid"]] = k
	}

	for name, tok := range map[string]string{"ES256": esToken, "EdDSA": edToken} {
		h, _ := jwtParts(t, tok)
		jwk, ok := byKID[h["kid"].(string)]
		if !ok {
			t.Fatalf("%s token kid %v not in JWKS", name, h["kid"])
		}
		if jwk["alg"] != h["alg"] {
			t.Fatalf("%s: JWK alg %s, token alg %v", name, jwk["alg"], h["alg"])
		}
		if !verifyWithJWK(t, jwk, tok) {
			t.Fatalf("%s token does not verify with its JWK", name)
		}
		// The same check refuses a tampered token, so it is a real check.
		parts := strings.Split(tok, ".")
		forged := parts[0] + "." + b64json(t, map[string]any{"sub": "vc_evil", "scope": "admin"}) + "." + parts[2]
		if verifyWithJWK(t, jwk, forged) {
			t.Fatalf("%s: tampered token verified", name)
		}
	}

	// go-jose reads the same document as a key set and verifies too.
	var jset jose.JSONWebKeySet
	if err := json.Unmarshal(r.body, &jset); err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{esToken, edToken} {
		jws, err := jose.ParseSigned(tok, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA})
		if err != nil {
			t.Fatal(err)
		}
		keys := jset.Key(jws.Signatures[0].Header.KeyID)
		if len(keys) != 1 || !keys[0].IsPublic() {
			t.Fatalf("go-jose key lookup: %+v", keys)
		}
		if _, err := jws.Verify(keys[0]); err != nil {
			t.Fatalf("go-jose verify: %v", err)
		}
	}
}
