package auth

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// extIssuer is the iss of the test IdP's tokens (a Keycloak realm URL).
const extIssuer = "https://idp.example/realms/vitals"

// idpKey is one signing key of the test IdP.
type idpKey struct {
	kid  string
	alg  jose.SignatureAlgorithm
	priv crypto.Signer
}

func (k idpKey) jwk() jose.JSONWebKey {
	return jose.JSONWebKey{Key: k.priv.Public(), KeyID: k.kid, Algorithm: string(k.alg), Use: "sig"}
}

// testIdP is an identity provider serving its JWKS over real HTTPS and
// counting the fetches.
type testIdP struct {
	srv     *httptest.Server
	fetches atomic.Int32

	mu   sync.Mutex
	keys []jose.JSONWebKey
}

func newTestIdP(t *testing.T, keys ...idpKey) *testIdP {
	t.Helper()
	idp := &testIdP{}
	idp.publish(keys...)
	idp.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/protocol/openid-connect/certs" {
			http.NotFound(w, r)
			return
		}
		idp.fetches.Add(1)
		idp.mu.Lock()
		set := jose.JSONWebKeySet{Keys: idp.keys}
		idp.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(set)
	}))
	t.Cleanup(idp.srv.Close)
	return idp
}

// publish replaces the published keys (key rotation at the IdP).
func (idp *testIdP) publish(keys ...idpKey) {
	idp.mu.Lock()
	defer idp.mu.Unlock()
	idp.keys = nil
	for _, k := range keys {
		idp.keys = append(idp.keys, k.jwk())
	}
}

func (idp *testIdP) jwksURL() string { return idp.srv.URL + "/protocol/openid-connect/certs" }

// issuer returns an ExternalIssuer for the IdP that trusts its test CA.
func (idp *testIdP) issuer(t *testing.T, opts ...ExternalOption) *ExternalIssuer {
	t.Helper()
	x, err := NewExternalIssuer(extIssuer, idp.jwksURL(), append([]ExternalOption{ExternalHTTPClient(idp.srv.Client())}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return x
}

// testRSAKey returns a fresh 2048-bit RSA key.
func testRSAKey(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func newECKey(t *testing.T, kid string) idpKey {
	t.Helper()
	priv, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return idpKey{kid: kid, alg: jose.ES256, priv: priv}
}

// sign makes a JWS of claims with k, alg and header typ ("" for none).
func (k idpKey) sign(t *testing.T, alg jose.SignatureAlgorithm, typ string, claims map[string]any) string {
	t.Helper()
	opts := (&jose.SignerOptions{}).WithHeader("kid", k.kid)
	if typ != "" {
		opts = opts.WithType(jose.ContentType(typ))
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: alg, Key: k.priv}, opts)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// keycloakClaims are the claims of a Keycloak user's access token issued
// at now, with scopes in "scope".
func keycloakClaims(now time.Time) map[string]any {
	return map[string]any{
		"iss": extIssuer, "aud": []string{"vitals-api", "account"}, "sub": "f3c1-user",
		"azp": "vitals-console", "typ": "Bearer", "jti": "kc-" + NewTokenID(),
		"iat": now.Unix(), "exp": now.Add(5 * time.Minute).Unix(),
		"auth_time": now.Add(-time.Minute).Unix(), "amr": []string{"pwd", "otp"},
		"scope": "openid endpoints:read analytics:read",
	}
}

// externalRevoked is a revocation list of token ids.
type externalRevoked map[string]bool

func (r externalRevoked) Revoked(jti string) bool { return r[jti] }

func TestExternalTokensAcceptedBesideOwn(t *testing.T) {
	rsaKey := idpKey{kid: "kc-rsa", alg: jose.RS256, priv: testRSAKey(t)}
	ecKey := newECKey(t, "hydra-ec")
	idp := newTestIdP(t, rsaKey, ecKey)
	e := newEnv(t, AlgES256, WithExternalIssuer(idp.issuer(t)))
	now := e.clock.Now()

	// Keycloak: RS256, typ JWT, scopes in "scope", client in azp; through
	// Require over HTTPS.
	kc := keycloakClaims(now)
	r := e.get("/v1/endpoints", "Bearer "+rsaKey.sign(t, jose.RS256, "JWT", kc))
	if r.status != http.StatusOK {
		t.Fatalf("Keycloak token: %d %s", r.status, r.body)
	}
	var p Principal
	if err := json.Unmarshal(r.body, &p); err != nil {
		t.Fatal(err)
	}
	if p.Issuer != extIssuer || p.Subject != "f3c1-user" || p.ClientID != "vitals-console" || p.TokenID != kc["jti"] ||
		!slices.Equal(p.Scopes, []string{"openid", ScopeEndpointsRead, ScopeAnalyticsRead}) ||
		!slices.Equal(p.AMR, []string{"pwd", "otp"}) || p.AuthTime.Unix() != now.Add(-time.Minute).Unix() {
		t.Fatalf("Keycloak principal %+v", p)
	}
	if !p.IsUser() || !p.HasMFA(now, DefaultMFAMaxAge) {
		t.Errorf("an IdP user who used a one-time code must pass RequireMFA: %+v", p)
	}

	// Hydra: ES256, typ at+jwt, scopes in "scp" (array), client_id, nbf,
	// no jti.
	hydra := map[string]any{
		"iss": extIssuer, "aud": "vitals-api", "sub": "machine-1", "client_id": "machine-1",
		"nbf": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"scp": []string{ScopeEventsWrite, ScopeEndpointsRead},
	}
	p, err := e.srv.VerifyAccessToken(ecKey.sign(t, jose.ES256, "at+jwt", hydra))
	if err != nil {
		t.Fatalf("Hydra token: %v", err)
	}
	if p.ClientID != "machine-1" || p.Subject != "machine-1" || p.IsUser() ||
		!slices.Equal(p.Scopes, []string{ScopeEventsWrite, ScopeEndpointsRead}) || p.TokenID != "" {
		t.Fatalf("Hydra principal %+v", p)
	}

	// PS256 with the RSA key, which the JWKS publishes without alg.
	idp.publish(idpKey{kid: "kc-rsa", priv: rsaKey.priv}, ecKey)
	e.clock.Advance(DefaultJWKSRefresh) // the cache is due for a refresh
	kc = keycloakClaims(e.clock.Now())
	if _, err := e.srv.VerifyAccessToken(rsaKey.sign(t, jose.PS256, "JWT", kc)); err != nil {
		t.Fatalf("PS256 token: %v", err)
	}

	// Our own tokens still verify, with our issuer.
	r = e.get("/v1/endpoints", "Bearer "+e.token(""))
	if r.status != http.StatusOK {
		t.Fatalf("own token: %d %s", r.status, r.body)
	}
	if err := json.Unmarshal(r.body, &p); err != nil || p.Issuer != e.url || p.ClientID != e.id {
		t.Fatalf("own principal %+v %v", p, err)
	}
	if n := idp.fetches.Load(); n != 2 {
		t.Errorf("%d JWKS fetches, want 2 (first use, then the refresh)", n)
	}
}

func TestExternalTokensRefused(t *testing.T) {
	rsaKey := idpKey{kid: "kc-rsa", alg: jose.RS256, priv: testRSAKey(t)}
	ecKey := newECKey(t, "ec")
	idp := newTestIdP(t, rsaKey, ecKey)
	revoked := externalRevoked{"revoked-jti": true}
	e := newEnv(t, AlgES256, WithExternalIssuer(idp.issuer(t)), WithRevocations(revoked))
	now := e.clock.Now()

	with := func(change func(c map[string]any)) map[string]any {
		c := keycloakClaims(now)
		change(c)
		return c
	}
	pubDER, err := x509.MarshalPKIXPublicKey(rsaKey.priv.Public())
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})

	tests := []struct {
		name, token, reason string
		expired             bool
	}{
		{"wrong iss", rsaKey.sign(t, jose.RS256, "JWT", with(func(c map[string]any) { c["iss"] = "https://evil.example/realms/vitals" })),
			`issued by "https://evil.example/realms/vitals", which this server does not trust`, false},
		{"iss of the IdP, signed by the server's key", ownKeyToken(t, e, keycloakClaims(now)),
			"which issuer " + extIssuer + " does not publish", false},
		{"wrong aud", rsaKey.sign(t, jose.RS256, "JWT", with(func(c map[string]any) { c["aud"] = "account" })),
			`not meant for audience "vitals-api"`, false},
		{"no aud", rsaKey.sign(t, jose.RS256, "JWT", with(func(c map[string]any) { delete(c, "aud") })),
			"no aud claim", false},
		{"expired", rsaKey.sign(t, jose.RS256, "JWT", with(func(c map[string]any) {
			c["iat"], c["exp"] = now.Add(-2*time.Hour).Unix(), now.Add(-time.Hour).Unix()
		})), "expired", true},
		{"no exp", rsaKey.sign(t, jose.RS256, "JWT", with(func(c map[string]any) { delete(c, "exp") })),
			"no exp claim", false},
		{"no nbf nor iat", rsaKey.sign(t, jose.RS256, "JWT", with(func(c map[string]any) { delete(c, "iat") })),
			"neither nbf nor iat", false},
		{"not yet valid", rsaKey.sign(t, jose.RS256, "JWT", with(func(c map[string]any) { c["nbf"] = now.Add(time.Hour).Unix() })),
			"not valid before", false},
		{"no sub", rsaKey.sign(t, jose.RS256, "JWT", with(func(c map[string]any) { delete(c, "sub") })),
			"no sub claim", false},
		{"Keycloak ID token", rsaKey.sign(t, jose.RS256, "JWT", with(func(c map[string]any) { c["typ"] = "ID" })),
			`"ID" token`, false},
		{"refresh typ header", rsaKey.sign(t, jose.RS256, "refresh+jwt", keycloakClaims(now)),
			"not an access token", false},
		{"no typ header", rsaKey.sign(t, jose.RS256, "", keycloakClaims(now)), "not an access token", false},
		{"revoked jti", rsaKey.sign(t, jose.RS256, "JWT", with(func(c map[string]any) { c["jti"] = "revoked-jti" })),
			"revoked", false},
		{"alg none", unsignedToken(t, "kc-rsa", keycloakClaims(now)), "not a JWS signed with RS256, PS256, ES256 or EdDSA", false},
		{"HS256 with the RSA public key", hmacToken(t, pubPEM, "kc-rsa", keycloakClaims(now)),
			"not a JWS signed with RS256, PS256, ES256 or EdDSA", false},
		{"alg differs from the key's", rsaKey.sign(t, jose.PS256, "JWT", keycloakClaims(now)),
			"does not match key kc-rsa", false},
		{"EC key named by an RSA kid", idpKey{kid: "kc-rsa", priv: ecKey.priv}.sign(t, jose.ES256, "JWT", keycloakClaims(now)),
			"does not match key kc-rsa", false},
		{"forged signature", idpKey{kid: "ec", priv: newECKey(t, "x").priv}.sign(t, jose.ES256, "JWT", keycloakClaims(now)),
			"signature does not verify", false},
		{"unknown kid", idpKey{kid: "nope", priv: ecKey.priv}.sign(t, jose.ES256, "JWT", keycloakClaims(now)),
			`key "nope", which issuer ` + extIssuer + " does not publish", false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := e.srv.VerifyAccessToken(tc.token)
			var ite *InvalidTokenError
			if !errors.As(err, &ite) || !errors.Is(err, ErrInvalidToken) {
				t.Fatalf("accepted or wrong error type: %v", err)
			}
			if !strings.Contains(ite.Reason, tc.reason) {
				t.Errorf("reason %q, want it to mention %q", ite.Reason, tc.reason)
			}
			if errors.Is(err, ErrTokenExpired) != tc.expired {
				t.Errorf("ErrTokenExpired = %v, want %v", errors.Is(err, ErrTokenExpired), tc.expired)
			}
		})
	}
	// The same refusal over HTTP: 401 invalid_token.
	r := e.get("/v1/endpoints", "Bearer "+tests[0].token)
	if r.status != http.StatusUnauthorized || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
		t.Fatalf("wrong iss over HTTP: %d %v", r.status, r.header)
	}
}

// unsignedToken is a JWT with alg none.
func unsignedToken(t *testing.T, kid string, claims map[string]any) string {
	t.Helper()
	return b64json(t, map[string]any{"alg": "none", "typ": "JWT", "kid": kid}) + "." + b64json(t, claims) + "."
}

// hmacToken is a JWT signed with HS256 keyed by secret: the algorithm
// confusion attack when secret is a public key the verifier knows.
func hmacToken(t *testing.T, secret []byte, kid string, claims map[string]any) string {
	t.Helper()
	in := b64json(t, map[string]any{"alg": "HS256", "typ": "JWT", "kid": kid}) + "." + b64json(t, claims)
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(in))
	return in + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

func TestExternalKeyRotationRefetchesAtMostOncePerMinute(t *testing.T) {
	old := newECKey(t, "old")
	idp := newTestIdP(t, old)
	e := newEnv(t, AlgES256, WithExternalIssuer(idp.issuer(t)))
	verify := func(k idpKey) error {
		t.Helper()
		_, err := e.srv.VerifyAccessToken(k.sign(t, jose.ES256, "JWT", keycloakClaims(e.clock.Now())))
		return err
	}
	fetches := func(want int32) {
		t.Helper()
		if n := idp.fetches.Load(); n != want {
			t.Fatalf("%d JWKS fetches, want %d", n, want)
		}
	}

	if err := verify(old); err != nil {
		t.Fatal(err)
	}
	fetches(1)
	if err := verify(old); err != nil {
		t.Fatal(err)
	}
	fetches(1) // cached

	// The IdP rotates; a token signed with the new key names a kid we have
	// not seen: one refetch, and it verifies.
	e.clock.Advance(2 * JWKSRefetchInterval)
	rotated := newECKey(t, "new")
	idp.publish(old, rotated)
	if err := verify(rotated); err != nil {
		t.Fatalf("token of the rotated key: %v", err)
	}
	fetches(2)

	// Unknown kids within the minute, sequential and concurrent, fetch
	// nothing more.
	if err := verify(newECKey(t, "forged-1")); err == nil {
		t.Fatal("unknown kid accepted")
	}
	forged := make([]string, 20)
	for i := range forged {
		k := newECKey(t, "forged-"+NewTokenID())
		forged[i] = k.sign(t, jose.ES256, "JWT", keycloakClaims(e.clock.Now()))
	}
	var wg sync.WaitGroup
	for _, tok := range forged {
		wg.Go(func() {
			if _, err := e.srv.VerifyAccessToken(tok); err == nil {
				t.Error("unknown kid accepted")
			}
		})
	}
	wg.Wait()
	e.clock.Advance(JWKSRefetchInterval - time.Second)
	if err := verify(newECKey(t, "forged-2")); err == nil {
		t.Fatal("unknown kid accepted")
	}
	fetches(2)

	// Once the minute is over, an unknown kid may fetch again.
	e.clock.Advance(time.Second)
	if err := verify(newECKey(t, "forged-3")); err == nil {
		t.Fatal("unknown kid accepted")
	}
	fetches(3)

	// The IdP retires the old key: after the refresh interval the cache is
	// refreshed and the old key's tokens are refused.
	idp.publish(rotated)
	e.clock.Advance(DefaultJWKSRefresh)
	if err := verify(old); err == nil {
		t.Fatal("token of a retired key accepted after the refresh")
	}
	fetches(4)
	if err := verify(rotated); err != nil {
		t.Fatal(err)
	}
	fetches(4)
}

func TestExternalIdPDownKeepsCachedKeys(t *testing.T) {
	k := newECKey(t, "k")
	idp := newTestIdP(t, k)
	e := newEnv(t, AlgES256, WithExternalIssuer(idp.issuer(t)))
	verify := func() error {
		_, err := e.srv.VerifyAccessToken(k.sign(t, jose.ES256, "JWT", keycloakClaims(e.clock.Now())))
		return err
	}
	if err := verify(); err != nil {
		t.Fatal(err)
	}
	idp.srv.Close()
	e.clock.Advance(DefaultJWKSRefresh)
	if err := verify(); err != nil {
		t.Fatalf("the cached key must keep working while the IdP is down: %v", err)
	}
	if !strings.Contains(e.logs.String(), "fetching external issuer's JWKS failed") {
		t.Errorf("the failed refresh is not logged: %s", e.logs)
	}
}

func TestExternalIssuerSettings(t *testing.T) {
	if _, err := NewExternalIssuer(extIssuer, "http://idp.example/certs"); err == nil {
		t.Error("a plain-http JWKS URL must be refused")
	}
	if _, err := NewExternalIssuer("", "https://idp.example/certs"); err == nil {
		t.Error("an empty issuer must be refused")
	}

	// A custom audience replaces the server's for external tokens only.
	k := newECKey(t, "k")
	idp := newTestIdP(t, k)
	e := newEnv(t, AlgES256, WithExternalIssuer(idp.issuer(t, ExternalAudience("https://api.vitals.example"))))
	c := keycloakClaims(e.clock.Now())
	if _, err := e.srv.VerifyAccessToken(k.sign(t, jose.ES256, "JWT", c)); err == nil {
		t.Error("token for the server's audience accepted despite ExternalAudience")
	}
	c["aud"] = "https://api.vitals.example"
	if _, err := e.srv.VerifyAccessToken(k.sign(t, jose.ES256, "JWT", c)); err != nil {
		t.Errorf("token for the external audience: %v", err)
	}
	if r := e.get("/v1/endpoints", "Bearer "+e.token("")); r.status != http.StatusOK {
		t.Errorf("own token: %d %s", r.status, r.body)
	}
}

// ownKeyToken signs claims with the server's own signing key.
func ownKeyToken(t *testing.T, e *env, claims map[string]any) string {
	t.Helper()
	k, err := e.store.SigningKeys()[0].parse()
	if err != nil {
		t.Fatal(err)
	}
	return idpKey{kid: k.kid, priv: k.priv}.sign(t, k.alg, "JWT", claims)
}
