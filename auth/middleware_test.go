package auth

import (
	"crypto/ecdsa"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/vitalshq/vitals/problem"
)

// signES256 builds a compact JWS over header and claims with the stored
// ES256 key k, with no JOSE library: the forger's tool.
func signES256(t *testing.T, k SigningKey, header, claims map[string]any) string {
	t.Helper()
	raw, err := x509.ParsePKCS8PrivateKey(k.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	priv := raw.(*ecdsa.PrivateKey)
	input := b64json(t, header) + "." + b64json(t, claims)
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, priv, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	sig := make([]byte, 64)
	r.FillBytes(sig[:32])
	s.FillBytes(sig[32:])
	return input + "." + base64.RawURLEncoding.EncodeToString(sig)
}

// assertInvalidToken checks a 401 invalid_token answer in both forms.
func assertInvalidToken(t *testing.T, r response, reason string) {
	t.Helper()
	if r.status != http.StatusUnauthorized {
		t.Fatalf("status %d, want 401: %s", r.status, r.body)
	}
	ch := r.header.Get("WWW-Authenticate")
	if !strings.HasPrefix(ch, `Bearer realm="vitals", error="invalid_token", error_description="`) {
		t.Fatalf("WWW-Authenticate %q", ch)
	}
	if ct := r.header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("Content-Type %q", ct)
	}
	body := r.json(t)
	if body["type"] != problem.TypeBase+"invalid-token" || body["status"] != float64(401) {
		t.Fatalf("problem %v", body)
	}
	detail, _ := body["detail"].(string)
	if !strings.Contains(detail, reason) || !strings.Contains(detail, "scope=endpoints:read") {
		t.Fatalf("detail %q does not say %q and how to get a token", detail, reason)
	}
	if _, ok := body["client_id"]; ok {
		t.Fatal("principal leaked into the refusal")
	}
}

func TestMissingTokenIs401Problem(t *testing.T) {
	e := newEnv(t, AlgES256)
	for _, auth := range []string{"", "Basic " + base64.StdEncoding.EncodeToString([]byte(e.id+":"+e.secret))} {
		r := e.get("/v1/endpoints", auth)
		if r.status != http.StatusUnauthorized {
			t.Fatalf("%q: status %d", auth, r.status)
		}
		// RFC 6750 §3.1: no error code when no credentials were sent.
		if ch := r.header.Get("WWW-Authenticate"); ch != `Bearer realm="vitals"` {
			t.Fatalf("WWW-Authenticate %q", ch)
		}
		if ct := r.header.Get("Content-Type"); ct != problem.ContentType {
			t.Fatalf("Content-Type %q", ct)
		}
		body := r.json(t)
		if body["type"] != problem.TypeBase+"missing-token" || body["instance"] != "/v1/endpoints" ||
			body["required_scope"] != ScopeEndpointsRead {
			t.Fatalf("problem %v", body)
		}
		if d, _ := body["detail"].(string); !strings.Contains(d, "POST /oauth/token") || !strings.Contains(d, "scope=endpoints:read") {
			t.Fatalf("detail not actionable: %q", d)
		}
	}
	assertInvalidToken(t, e.get("/v1/endpoints", "Bearer   "), "empty")
}

func TestWrongScopeIs403(t *testing.T) {
	e := newEnv(t, AlgES256)
	r := e.get("/v1/admin", "Bearer "+e.token(""))
	if r.status != http.StatusForbidden {
		t.Fatalf("status %d: %s", r.status, r.body)
	}
	want := `Bearer realm="vitals", error="insufficient_scope", error_description="this route needs scope admin", scope="admin"`
	if ch := r.header.Get("WWW-Authenticate"); ch != want {
		t.Fatalf("WWW-Authenticate\n got %q\nwant %q", ch, want)
	}
	body := r.json(t)
	if r.header.Get("Content-Type") != problem.ContentType || body["type"] != problem.TypeBase+"insufficient-scope" ||
		body["required_scope"] != "admin" || body["status"] != float64(403) {
		t.Fatalf("problem %v", body)
	}
	if d, _ := body["detail"].(string); !strings.Contains(d, "this route needs scope admin; request a token with scope=admin") {
		t.Fatalf("detail %q", d)
	}
}

func TestForgedAndStaleTokensRefused(t *testing.T) {
	e := newEnv(t, AlgES256)
	key := e.store.SigningKeys()[0]
	good := e.token("")
	header, claims := jwtParts(t, good)
	if r := e.get("/v1/endpoints", "Bearer "+good); r.status != 200 {
		t.Fatalf("control token refused: %d", r.status)
	}
	// The control forged with the same tool is accepted, so each refusal
	// below is caused by the one thing changed.
	if r := e.get("/v1/endpoints", "Bearer "+signES256(t, key, header, claims)); r.status != 200 {
		t.Fatalf("re-signed control token refused: %d %s", r.status, r.body)
	}
	with := func(m map[string]any, k string, v any) map[string]any {
		out := map[string]any{}
		for kk, vv := range m {
			out[kk] = vv
		}
		if v == nil {
			delete(out, k)
		} else {
			out[k] = v
		}
		return out
	}
	parts := strings.Split(good, ".")
	now := e.clock.Now().Unix()

	pubDER, err := x509.MarshalPKIXPublicKey(&mustECDSA(t, key).PublicKey)
	if err != nil {
		t.Fatal(err)
	}
	pubPEM := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pubDER})
	hs256 := func(secret []byte) string {
		input := b64json(t, with(header, "alg", "HS256")) + "." + parts[1]
		m := hmac.New(sha256.New, secret)
		m.Write([]byte(input))
		return input + "." + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}

	cases := []struct {
		name, token, reason string
	}{
		{"tampered payload", parts[0] + "." + b64json(t, with(claims, "scope", "admin endpoints:read")) + "." + parts[2], "signature"},
		{"alg none", b64json(t, with(header, "alg", "none")) + "." + parts[1] + ".", "ES256 or EdDSA"},
		{"alg none with signature", b64json(t, with(header, "alg", "none")) + "." + parts[1] + "." + parts[2], "ES256 or EdDSA"},
		{"HS256 keyed with public key PEM", hs256(pubPEM), "ES256 or EdDSA"},
		{"HS256 keyed with public key DER", hs256(pubDER), "ES256 or EdDSA"},
		{"unknown kid", signES256(t, key, with(header, "kid", "k_0000000000000000"), claims), "unknown key"},
		{"no kid", signES256(t, key, with(header, "kid", nil), claims), "kid"},
		{"not an access token typ", signES256(t, key, with(header, "typ", "JWT"), claims), "typ"},
		{"no typ", signES256(t, key, with(header, "typ", nil), claims), "typ"},
		{"alg mismatch for key", signES256(t, key, with(header, "alg", "EdDSA"), claims), "does not match key"},
		{"nbf in future", signES256(t, key, header, with(claims, "nbf", now+600)), "not valid before"},
		{"iat in future", signES256(t, key, header, with(claims, "iat", now+600)), "future"},
		{"wrong iss", signES256(t, key, header, with(claims, "iss", "https://evil.example")), "issued by"},
		{"wrong aud", signES256(t, key, header, with(claims, "aud", "other-api")), "audience"},
		{"no exp", signES256(t, key, header, with(claims, "exp", nil)), "exp"},
		{"no nbf", signES256(t, key, header, with(claims, "nbf", nil)), "nbf"},
		{"no iss", signES256(t, key, header, with(claims, "iss", nil)), "iss"},
		{"no aud", signES256(t, key, header, with(claims, "aud", nil)), "aud"},
		{"sub differs from client_id without a user authentication context", signES256(t, key, header, with(claims, "sub", "vc_other")), "auth_time and amr"},
		{"unknown client", signES256(t, key, header, with(with(claims, "sub", "vc_ghost"), "client_id", "vc_ghost")), "unknown or disabled"},
		{"garbage", "not-a-jwt", "ES256 or EdDSA"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			assertInvalidToken(t, e.get("/v1/endpoints", "Bearer "+tc.token), tc.reason)
		})
	}
	// Tokens from a server with another issuer or audience, sharing keys.
	for name, other := range map[string]*Server{
		"other issuer":   NewServer("https://other.example", e.store, e.store, WithClock(e.clock.Now)),
		"other audience": NewServer(e.url, e.store, e.store, WithClock(e.clock.Now), WithAudience("billing-api")),
	} {
		t.Run(name, func(t *testing.T) {
			tok, _, err := other.IssueAccessToken(e.id, NonAdminScopes())
			if err != nil {
				t.Fatal(err)
			}
			assertInvalidToken(t, e.get("/v1/endpoints", "Bearer "+tok), map[string]string{
				"other issuer": "issued by", "other audience": "audience"}[name])
		})
	}
	t.Run("nbf in future via clock", func(t *testing.T) {
		ahead := &testClock{t: e.clock.Now().Add(10 * time.Minute)}
		tok, _, err := NewServer(e.url, e.store, e.store, WithClock(ahead.Now)).IssueAccessToken(e.id, NonAdminScopes())
		if err != nil {
			t.Fatal(err)
		}
		assertInvalidToken(t, e.get("/v1/endpoints", "Bearer "+tok), "not valid before")
	})
	t.Run("expired", func(t *testing.T) {
		e.clock.Advance(time.Hour + ClockSkew + time.Second)
		assertInvalidToken(t, e.get("/v1/endpoints", "Bearer "+good), "expired")
	})
}

func TestExpiryHonoursSkewAndTTLOption(t *testing.T) {
	e := newEnv(t, AlgEdDSA, WithTokenTTL(5*time.Minute))
	tok := e.token("")
	if _, c := jwtParts(t, tok); c["exp"].(float64)-c["iat"].(float64) != 300 {
		t.Fatalf("ttl option ignored: %v", c)
	}
	e.clock.Advance(5*time.Minute + ClockSkew - time.Second)
	if r := e.get("/v1/endpoints", "Bearer "+tok); r.status != 200 {
		t.Fatalf("token refused inside the skew window: %d", r.status)
	}
	e.clock.Advance(2 * time.Second)
	assertInvalidToken(t, e.get("/v1/endpoints", "Bearer "+tok), "expired")
}

func mustECDSA(t *testing.T, k SigningKey) *ecdsa.PrivateKey {
	t.Helper()
	raw, err := x509.ParsePKCS8PrivateKey(k.PrivateKey)
	if err != nil {
		t.Fatal(err)
	}
	return raw.(*ecdsa.PrivateKey)
}

func TestAuthorizeErrorClasses(t *testing.T) {
	e := newEnv(t, AlgES256)
	tok := e.token(ScopeEventsWrite)
	req := func(auth string) *http.Request {
		r, _ := http.NewRequest(http.MethodGet, e.url+"/x", nil)
		if auth != "" {
			r.Header.Set("Authorization", auth)
		}
		return r
	}
	if _, err := e.srv.Authorize(req(""), ScopeEventsWrite); !errors.Is(err, ErrMissingToken) {
		t.Errorf("no header: %v", err)
	}
	if _, err := e.srv.Authorize(req("Bearer x.y.z"), ScopeEventsWrite); !errors.Is(err, ErrInvalidToken) || errors.Is(err, ErrTokenExpired) {
		t.Errorf("garbage: %v", err)
	}
	p, err := e.srv.Authorize(req("Bearer "+tok), ScopeAuditRead)
	if !errors.Is(err, ErrInsufficientScope) || p.ClientID != e.id {
		t.Errorf("wrong scope: %v %+v", err, p)
	}
	if p, err := e.srv.Authorize(req("Bearer "+tok), ScopeEventsWrite); err != nil || !p.HasScope(ScopeEventsWrite) {
		t.Errorf("right scope: %v %+v", err, p)
	}
	e.clock.Advance(2 * time.Hour)
	_, err = e.srv.Authorize(req("Bearer "+tok), ScopeEventsWrite)
	var ite *InvalidTokenError
	if !errors.Is(err, ErrTokenExpired) || !errors.Is(err, ErrInvalidToken) || !errors.As(err, &ite) || ite.Reason == "" {
		t.Errorf("expired: %v", err)
	}
}
