package auth

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// fuzzNow is the clock of FuzzVerifyAccessToken: every token it issues is
// valid at this instant, and stays so in the corpus.
var fuzzNow = time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)

// fuzzIssuer and fuzzExtIssuer are the iss of the server's own tokens and
// of the external IdP's.
const (
	fuzzIssuer    = "https://vitals.example"
	fuzzExtIssuer = "https://idp.example/realms/fuzz"
)

// fuzzSigner is a fixed key, so tokens in the corpus stay verifiable.
type fuzzSigner struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

// fuzzKeys returns the server's ES256 and EdDSA keys and the IdP's ES256
// and EdDSA keys, each derived from a fixed seed.
func fuzzKeys(tb testing.TB) (own, ext []fuzzSigner) {
	tb.Helper()
	ec := func(seed byte) *ecdsa.PrivateKey {
		scalar := make([]byte, 32)
		for i := range scalar {
			scalar[i] = seed + byte(i)
		}
		k, err := ecdsa.ParseRawPrivateKey(elliptic.P256(), scalar)
		if err != nil {
			tb.Fatal(err)
		}
		return k
	}
	ed := func(seed byte) ed25519.PrivateKey {
		return ed25519.NewKeyFromSeed([]byte(strings.Repeat(string(rune('a'+seed)), 32)))
	}
	own = []fuzzSigner{{"k_own_es", jose.ES256, ec(1)}, {"k_own_ed", jose.EdDSA, ed(1)}}
	ext = []fuzzSigner{{"idp-es", jose.ES256, ec(2)}, {"idp-ed", jose.EdDSA, ed(2)}}
	return own, ext
}

// sign makes a compact JWS of claims with header typ.
func (k fuzzSigner) sign(tb testing.TB, typ string, claims any) string {
	tb.Helper()
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: k.alg, Key: k.priv},
		(&jose.SignerOptions{}).WithHeader("kid", k.kid).WithType(jose.ContentType(typ)))
	if err != nil {
		tb.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		tb.Fatal(err)
	}
	return tok
}

// fuzzSegment is the base64url JSON of v, a JWS header or payload.
func fuzzSegment(tb testing.TB, v any) string {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// FuzzVerifyAccessToken feeds arbitrary strings to VerifyAccessToken on a
// server with two keys of its own and an external IdP with two more. It
// must never panic, and it may accept only a token whose signing input
// (header and payload) is exactly one the test signed: no other string was
// signed by any key it trusts. The seeds are genuine tokens of each kind
// and the classic forgeries: alg none, HMAC keyed with a public key, a
// signature moved to another payload, a kid naming another key, the IdP's
// iss on the server's key.
func FuzzVerifyAccessToken(f *testing.F) {
	own, ext := fuzzKeys(f)
	store := NewMemoryStore()
	for _, k := range own {
		der, err := x509.MarshalPKCS8PrivateKey(k.priv)
		if err != nil {
			f.Fatal(err)
		}
		if err := store.PutSigningKey(context.Background(), SigningKey{KID: k.kid, Algorithm: string(k.alg), PrivateKey: der, CreatedAt: fuzzNow}); err != nil {
			f.Fatal(err)
		}
	}
	client, _ := NewClient("fuzz", NonAdminScopes(), fuzzNow)
	client.ID = "vc_fuzz"
	if err := store.PutClient(context.Background(), client); err != nil {
		f.Fatal(err)
	}

	var jwks jose.JSONWebKeySet
	for _, k := range ext {
		jwks.Keys = append(jwks.Keys, jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"})
	}
	idp := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(jwks)
	}))
	f.Cleanup(idp.Close)
	x, err := NewExternalIssuer(fuzzExtIssuer, idp.URL+"/certs", ExternalHTTPClient(idp.Client()))
	if err != nil {
		f.Fatal(err)
	}
	srv := NewServer(fuzzIssuer, store, store, WithClock(func() time.Time { return fuzzNow }),
		WithExternalIssuer(x), WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))

	// The genuine tokens; their signing inputs are the only ones accepted.
	signed := map[string]bool{}
	var genuine []string
	keep := func(tok string) {
		genuine = append(genuine, tok)
		signed[signingInput(tok)] = true
	}
	for _, k := range own {
		only := NewMemoryStore() // Issue signs with the newest key: make k the only one
		der, _ := x509.MarshalPKCS8PrivateKey(k.priv)
		_ = only.PutSigningKey(context.Background(), SigningKey{KID: k.kid, Algorithm: string(k.alg), PrivateKey: der, CreatedAt: fuzzNow})
		issuer := NewServer(fuzzIssuer, store, only, WithClock(func() time.Time { return fuzzNow }))
		for _, g := range []Grant{
			{ClientID: client.ID, Scopes: []string{ScopeEventsWrite}, JTI: "jti-machine-" + k.kid},
			{Subject: "usr_1", ClientID: client.ID, Scopes: NonAdminScopes(), AuthTime: fuzzNow.Add(-time.Minute),
				AMR: []string{AMRPassword, AMROTP}, JTI: "jti-user-" + k.kid},
		} {
			iss, err := issuer.Issue(g)
			if err != nil {
				f.Fatal(err)
			}
			keep(iss.Token)
		}
	}
	extClaims := map[string]any{
		"iss": fuzzExtIssuer, "aud": []string{DefaultAudience}, "sub": "kc-user", "azp": "vitals-cli",
		"exp": fuzzNow.Add(time.Hour).Unix(), "iat": fuzzNow.Unix(), "jti": "ext-1",
		"scope": "openid events:write", "typ": "Bearer",
	}
	for _, k := range ext {
		keep(k.sign(f, "JWT", extClaims))
	}
	for _, tok := range genuine {
		if _, err := srv.VerifyAccessToken(tok); err != nil {
			f.Fatalf("genuine token refused: %v", err)
		}
	}

	for _, tok := range genuine {
		f.Add(tok)
	}
	ownClaims := func(jti string) map[string]any {
		return map[string]any{
			"iss": fuzzIssuer, "aud": []string{DefaultAudience}, "sub": client.ID, "client_id": client.ID,
			"exp": fuzzNow.Add(time.Hour).Unix(), "nbf": fuzzNow.Unix(), "iat": fuzzNow.Unix(), "jti": jti,
			"scope": "admin",
		}
	}
	parts := strings.Split(genuine[0], ".")
	edParts := strings.Split(genuine[2], ".")
	pubDER, _ := x509.MarshalPKIXPublicKey(own[0].priv.Public())
	hmacTok := func(secret []byte, header map[string]any) string {
		in := fuzzSegment(f, header) + "." + fuzzSegment(f, ownClaims("hmac"))
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(in))
		return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}
	for _, forged := range []string{
		fuzzSegment(f, map[string]any{"alg": "none", "typ": "at+jwt", "kid": own[0].kid}) + "." + fuzzSegment(f, ownClaims("none")) + ".",
		hmacTok(pubDER, map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": own[0].kid}),
		hmacTok([]byte(own[1].kid), map[string]any{"alg": "HS256", "typ": "at+jwt", "kid": own[1].kid}),
		parts[0] + "." + fuzzSegment(f, ownClaims("moved")) + "." + parts[2],
		edParts[0] + "." + parts[1] + "." + edParts[2],
		fuzzSegment(f, map[string]any{"alg": "ES256", "typ": "at+jwt", "kid": own[1].kid}) + "." + parts[1] + "." + parts[2],
		own[0].sign(f, "at+jwt", map[string]any{"iss": fuzzExtIssuer, "aud": DefaultAudience, "sub": "x", "exp": fuzzNow.Add(time.Hour).Unix(), "iat": fuzzNow.Unix()}),
		ext[0].sign(f, "at+jwt", ownClaims("ext-key-own-iss")),
		parts[0] + "." + parts[1],
		genuine[0] + "." + parts[2],
		genuine[0] + "=",
		" " + genuine[0],
		"Bearer " + genuine[0],
		`{"protected":"` + parts[0] + `","payload":"` + parts[1] + `","signature":"` + parts[2] + `"}`,
		"..", "", "e30.e30.", strings.Repeat("A", maxTokenLen+1),
	} {
		f.Add(forged)
	}

	f.Fuzz(func(t *testing.T, raw string) {
		p, err := srv.VerifyAccessToken(raw)
		if err != nil {
			return
		}
		if !signed[signingInput(raw)] {
			t.Fatalf("accepted a token no trusted key signed: %q -> %+v", raw, p)
		}
		if p.TokenID == "" || p.Subject == "" || p.ExpiresAt.IsZero() {
			t.Fatalf("accepted %q with an incomplete principal %+v", raw, p)
		}
	})
}

// signingInput is what a JWS signature covers: the header and payload
// segments of a compact token.
func signingInput(tok string) string {
	i := strings.LastIndexByte(tok, '.')
	if i < 0 {
		return ""
	}
	return tok[:i]
}
