package oauth_test

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"html"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	josejwt "github.com/go-jose/go-jose/v4/jwt"
	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/oauth"
	"github.com/vitalshq/vitals/tlsconfig"
	"github.com/vitalshq/vitals/topics"
	"github.com/vitalshq/vitals/user"
)

// clock is a settable time source shared by the user service (TOTP steps).
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// gcmSealer seals TOTP seeds with AES-256-GCM (the keyring's job in
// production).
type gcmSealer struct{ aead cipher.AEAD }

func (s gcmSealer) Seal(p, aad []byte) (string, error) {
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(s.aead.Seal(nonce, nonce, p, aad)), nil
}

func (s gcmSealer) Open(sealed string, aad []byte) ([]byte, error) {
	b, err := base64.RawURLEncoding.DecodeString(sealed)
	if err != nil || len(b) < s.aead.NonceSize() {
		return nil, errors.New("malformed")
	}
	n := s.aead.NonceSize()
	return s.aead.Open(nil, b[:n], b[n:], aad)
}

// env is the authorization server and a protected API behind real TLS 1.3,
// with its grants in a kfake topic.
type env struct {
	t        *testing.T
	url      string
	http     *http.Client // does not follow redirects
	clients  *auth.MemoryStore
	tokens   *auth.Server
	users    *user.Service
	clock    *clock
	brokers  []string
	secret   []byte
	m2m      auth.Client // client_credentials, all non-admin scopes
	m2mKey   string
	cli      auth.Client // public code-flow client
	redirect string
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, clients: auth.NewMemoryStore(), clock: &clock{t: time.Now()}}
	e.brokers = testenv.Kfake(t, kfake.NumBrokers(1))
	testenv.CreateTopics(t, e.brokers, 1, topics.OAuthTokens)
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	mux := http.NewServeMux()
	hs := httptest.NewUnstartedServer(mux)
	e.url = "https://" + hs.Listener.Addr().String()
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	store, err := oauth.NewStore([]kgo.Opt{kgo.SeedBrokers(e.brokers...)}, e.clients, logger)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = store.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	if err := store.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	e.tokens = auth.NewServer(e.url, e.clients, e.clients, auth.WithRevocations(store), auth.WithLogger(logger))
	if _, err := e.tokens.EnsureSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	key := make([]byte, 32)
	_, _ = rand.Read(key)
	block, _ := aes.NewCipher(key)
	aead, _ := cipher.NewGCM(block)
	e.users, err = user.New(user.NewMemoryStore(), gcmSealer{aead}, user.WithClock(e.clock.Now), user.WithPasswordParams(user.TestParams()))
	if err != nil {
		t.Fatal(err)
	}
	e.secret = make([]byte, 32)
	_, _ = rand.Read(e.secret)
	p, err := oauth.New(e.url, e.tokens, store, e.secret, oauth.WithUsers(e.users), oauth.WithLogger(logger))
	if err != nil {
		t.Fatal(err)
	}
	mux.Handle("POST "+oauth.TokenPath, p.TokenHandler())
	mux.Handle(oauth.AuthorizePath, p.AuthorizeHandler())
	mux.Handle("POST "+oauth.RevokePath, p.RevokeHandler())
	mux.Handle("POST "+oauth.IntrospectPath, p.IntrospectHandler())
	mux.Handle("GET "+oauth.MetadataPath, p.MetadataHandler())
	mux.Handle("GET "+auth.JWKSPath, e.tokens.JWKSHandler())
	ok := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		pr, _ := auth.PrincipalFrom(r.Context())
		_ = json.NewEncoder(w).Encode(pr)
	})
	mux.Handle("GET /v1/endpoints", e.tokens.Require(auth.ScopeEndpointsRead, ok))
	mux.Handle("GET /v1/admin/clients", e.tokens.Require(auth.ScopeAdmin, e.tokens.RequireMFA(auth.DefaultMFAMaxAge, ok)))

	dir := t.TempDir()
	tcfg, err := tlsconfig.Server("", "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs.TLS = tcfg
	hs.StartTLS()
	t.Cleanup(hs.Close)
	ccfg, err := tlsconfig.Client(dir)
	if err != nil {
		t.Fatal(err)
	}
	e.http = &http.Client{
		Transport:     &http.Transport{TLSClientConfig: ccfg},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		Timeout:       10 * time.Second,
	}

	e.m2m, e.m2mKey = auth.NewClient("m2m", auth.NonAdminScopes(), time.Now())
	if err := e.clients.PutClient(ctx, e.m2m); err != nil {
		t.Fatal(err)
	}
	e.redirect = "http://127.0.0.1:49152/callback"
	e.cli = auth.Client{ID: auth.NewClientID(), Name: "vitals CLI", AuthMethod: auth.AuthNone,
		Scopes:       auth.AllScopes(),
		GrantTypes:   []string{auth.GrantAuthorizationCode, auth.GrantRefreshToken},
		RedirectURIs: []string{e.redirect}}
	if err := e.clients.PutClient(ctx, e.cli); err != nil {
		t.Fatal(err)
	}
	return e
}

// post sends a form, with HTTP Basic credentials when id is set.
func (e *env) post(path string, form url.Values, id, secret string) (*http.Response, map[string]any) {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+path, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if id != "" {
		req.SetBasicAuth(url.QueryEscape(id), url.QueryEscape(secret))
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	raw, _ := io.ReadAll(resp.Body)
	_ = json.Unmarshal(raw, &body)
	return resp, body
}

func (e *env) get(path, token string) *http.Response {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	return resp
}

func (e *env) clientToken(scope string) string {
	e.t.Helper()
	resp, body := e.post(oauth.TokenPath, url.Values{"grant_type": {"client_credentials"}, "scope": {scope}}, e.m2m.ID, e.m2mKey)
	if resp.StatusCode != http.StatusOK {
		e.t.Fatalf("client credentials: %d %v", resp.StatusCode, body)
	}
	return body["access_token"].(string)
}

func TestClientCredentials(t *testing.T) {
	e := newEnv(t)
	resp, body := e.post(oauth.TokenPath, url.Values{"grant_type": {"client_credentials"}}, e.m2m.ID, e.m2mKey)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("token: %d %v", resp.StatusCode, body)
	}
	if resp.Header.Get("Cache-Control") != "no-store" {
		t.Errorf("Cache-Control = %q, want no-store", resp.Header.Get("Cache-Control"))
	}
	if exp := body["expires_in"].(float64); exp < 3590 || exp > 3600 || body["refresh_token"] != nil {
		t.Errorf("want a 1 h token and no refresh token: %v", body)
	}
	tok := body["access_token"].(string)
	p, err := e.tokens.VerifyAccessToken(tok)
	if err != nil {
		t.Fatal(err)
	}
	if p.Subject != e.m2m.ID || p.ClientID != e.m2m.ID || len(p.Scopes) != len(auth.NonAdminScopes()) {
		t.Errorf("principal %+v", p)
	}
	if got := e.get("/v1/endpoints", tok); got.StatusCode != http.StatusOK {
		t.Errorf("protected route: %d", got.StatusCode)
	}

	// Wrong secret, unknown client, a scope the client lacks, a refused grant.
	if resp, body := e.post(oauth.TokenPath, url.Values{"grant_type": {"client_credentials"}}, e.m2m.ID, "wrong"); resp.StatusCode != http.StatusUnauthorized || body["error"] != "invalid_client" {
		t.Errorf("wrong secret: %d %v", resp.StatusCode, body)
	}
	if resp, body := e.post(oauth.TokenPath, url.Values{"grant_type": {"client_credentials"}, "scope": {"admin"}}, e.m2m.ID, e.m2mKey); resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_scope" {
		t.Errorf("admin scope: %d %v", resp.StatusCode, body)
	}
	if resp, body := e.post(oauth.TokenPath, url.Values{"grant_type": {"password"}, "username": {"a"}, "password": {"b"}}, e.m2m.ID, e.m2mKey); resp.StatusCode == http.StatusOK {
		t.Errorf("password grant served: %v", body)
	}
}

func TestMetadata(t *testing.T) {
	e := newEnv(t)
	resp, err := e.http.Get(e.url + oauth.MetadataPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m oauth.Metadata
	if err := json.NewDecoder(resp.Body).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if m.Issuer != e.url || m.TokenEndpoint != e.url+oauth.TokenPath || m.JWKSURI != e.url+auth.JWKSPath ||
		m.AuthorizationEndpoint != e.url+oauth.AuthorizePath || len(m.CodeChallengeMethodsSupported) != 1 ||
		m.CodeChallengeMethodsSupported[0] != "S256" {
		t.Errorf("metadata %+v", m)
	}
}

// admin creates an admin user with TOTP and returns its name, password
// and TOTP secret.
func (e *env) admin() (name, pw, secret string) {
	name, pw, secret, _ = e.adminWithRecovery()
	return name, pw, secret
}

// adminWithRecovery is admin, also returning the recovery codes.
func (e *env) adminWithRecovery() (name, pw, secret string, recovery []string) {
	e.t.Helper()
	ctx := context.Background()
	name, pw = "ada", "correct horse battery staple"
	u, err := e.users.Create(ctx, name, pw, auth.AllScopes())
	if err != nil {
		e.t.Fatal(err)
	}
	enr, err := e.users.BeginTOTP(ctx, u.ID, "Vitals")
	if err != nil {
		e.t.Fatal(err)
	}
	recovery, err = e.users.ConfirmTOTP(ctx, u.ID, e.code(enr.Secret))
	if err != nil {
		e.t.Fatal(err)
	}
	e.clock.Advance(30 * time.Second) // the confirming step is used
	return name, pw, enr.Secret, recovery
}

func (e *env) code(secret string) string {
	e.t.Helper()
	c, err := totp.GenerateCodeCustom(secret, e.clock.Now(), totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

var ticketRE = regexp.MustCompile(`name="ticket" value="([^"]+)"`)

// authorize runs the code flow's sign-in and returns the redirect's query
// (code and state, or error), or the failing page's status.
func (e *env) authorize(verifier, name, pw string, otpCode func() string) (url.Values, int) {
	e.t.Helper()
	sum := sha256.Sum256([]byte(verifier))
	q := url.Values{
		"response_type": {"code"}, "client_id": {e.cli.ID}, "redirect_uri": {e.redirect},
		"scope": {"admin endpoints:read"}, "state": {"state-1234567890"},
		"code_challenge": {base64.RawURLEncoding.EncodeToString(sum[:])}, "code_challenge_method": {"S256"},
	}
	if resp := e.get(oauth.AuthorizePath+"?"+q.Encode(), ""); resp.StatusCode != http.StatusOK {
		e.t.Fatalf("login page: %d", resp.StatusCode)
	}
	form := url.Values{}
	for k, v := range q {
		form[k] = v
	}
	form.Set("step", "password")
	form.Set("username", name)
	form.Set("password", pw)
	resp, page := e.postPage(form)
	if resp.StatusCode != http.StatusOK && resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
		return nil, resp.StatusCode
	}
	if otpCode != nil {
		m := ticketRE.FindStringSubmatch(page)
		if m == nil {
			e.t.Fatalf("no code step after the password: %d %s", resp.StatusCode, page)
		}
		form.Del("username")
		form.Del("password")
		form.Set("step", "otp")
		form.Set("ticket", html.UnescapeString(m[1]))
		form.Set("otp", otpCode())
		resp, page = e.postPage(form)
	}
	loc := resp.Header.Get("Location")
	if loc == "" {
		return nil, resp.StatusCode
	}
	u, err := url.Parse(loc)
	if err != nil || !strings.HasPrefix(loc, e.redirect) {
		e.t.Fatalf("redirect to %q", loc)
	}
	return u.Query(), resp.StatusCode
}

func (e *env) postPage(form url.Values) (*http.Response, string) {
	e.t.Helper()
	resp, err := e.http.Post(e.url+oauth.AuthorizePath, "application/x-www-form-urlencoded", strings.NewReader(form.Encode()))
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

func (e *env) exchange(code, verifier string) (*http.Response, map[string]any) {
	return e.post(oauth.TokenPath, url.Values{"grant_type": {"authorization_code"}, "code": {code},
		"redirect_uri": {e.redirect}, "client_id": {e.cli.ID}, "code_verifier": {verifier}}, "", "")
}

func (e *env) refresh(rt string) (*http.Response, map[string]any) {
	return e.post(oauth.TokenPath, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {rt},
		"client_id": {e.cli.ID}}, "", "")
}

const verifier = "a-very-long-code-verifier-of-at-least-43-characters-0123456789"

func TestCodeFlowWithTOTPThenAdminCall(t *testing.T) {
	e := newEnv(t)
	name, pw, secret := e.admin()
	var used string
	q, status := e.authorize(verifier, name, pw, func() string { used = e.code(secret); return used })
	if q.Get("code") == "" || q.Get("state") != "state-1234567890" {
		t.Fatalf("redirect %d %v", status, q)
	}
	// The code needs the verifier.
	if resp, body := e.exchange(q.Get("code"), verifier+"x"); resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Fatalf("wrong verifier: %d %v", resp.StatusCode, body)
	}
	q, _ = e.authorize(verifier, name, pw, func() string { return e.codeAfter(secret, &used) })
	resp, body := e.exchange(q.Get("code"), verifier)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("exchange: %d %v", resp.StatusCode, body)
	}
	at := body["access_token"].(string)
	p, err := e.tokens.VerifyAccessToken(at)
	if err != nil {
		t.Fatal(err)
	}
	if !p.IsUser() || !p.HasMFA(time.Now(), time.Hour) || p.ClientID != e.cli.ID {
		t.Errorf("principal %+v", p)
	}
	if got := e.get("/v1/admin/clients", at); got.StatusCode != http.StatusOK {
		t.Errorf("admin call with MFA: %d", got.StatusCode)
	}
	if body["refresh_token"] == nil {
		t.Errorf("no refresh token: %v", body)
	}
	// The code is single use.
	if resp, _ := e.exchange(q.Get("code"), verifier); resp.StatusCode == http.StatusOK {
		t.Error("authorization code accepted twice")
	}
}

// codeAfter waits for the next TOTP step (the clock is ours) and returns
// its code: a step is accepted once.
func (e *env) codeAfter(secret string, last *string) string {
	e.clock.Advance(30 * time.Second)
	c := e.code(secret)
	*last = c
	return c
}

func TestTOTPReplayAndWrongPassword(t *testing.T) {
	e := newEnv(t)
	name, pw, secret := e.admin()
	code := e.code(secret)
	if q, _ := e.authorize(verifier, name, pw, func() string { return code }); q.Get("code") == "" {
		t.Fatalf("first use of the code refused: %v", q)
	}
	if q, status := e.authorize(verifier, name, pw, func() string { return code }); q != nil || status != http.StatusUnauthorized {
		t.Errorf("replayed TOTP code: %d %v", status, q)
	}
	if q, status := e.authorize(verifier, name, "wrong password 123", nil); q != nil || status != http.StatusUnauthorized {
		t.Errorf("wrong password: %d %v", status, q)
	}
}

func TestAdminRouteNeedsMFA(t *testing.T) {
	e := newEnv(t)
	// A person without TOTP: password only.
	if _, err := e.users.Create(context.Background(), "bob", "correct horse battery staple", auth.AllScopes()); err != nil {
		t.Fatal(err)
	}
	q, _ := e.authorize(verifier, "bob", "correct horse battery staple", nil)
	resp, body := e.exchange(q.Get("code"), verifier)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("exchange: %d %v", resp.StatusCode, body)
	}
	got := e.get("/v1/admin/clients", body["access_token"].(string))
	if got.StatusCode != http.StatusUnauthorized || !strings.Contains(got.Header.Get("WWW-Authenticate"), `error="insufficient_user_authentication"`) {
		t.Errorf("admin route without MFA: %d %q", got.StatusCode, got.Header.Get("WWW-Authenticate"))
	}
}

func TestRefreshRotationAndReuseKillsFamily(t *testing.T) {
	e := newEnv(t)
	name, pw, secret := e.admin()
	q, _ := e.authorize(verifier, name, pw, func() string { return e.code(secret) })
	_, first := e.exchange(q.Get("code"), verifier)
	rt1 := first["refresh_token"].(string)

	resp, second := e.refresh(rt1)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("refresh: %d %v", resp.StatusCode, second)
	}
	rt2, at2 := second["refresh_token"].(string), second["access_token"].(string)
	if rt2 == rt1 {
		t.Fatal("refresh token not rotated")
	}
	if _, err := e.tokens.VerifyAccessToken(first["access_token"].(string)); err == nil {
		t.Error("the access token of the rotated refresh token is still valid")
	}
	if _, err := e.tokens.VerifyAccessToken(at2); err != nil {
		t.Fatalf("new access token: %v", err)
	}
	// Reuse of rt1: refused, and the family (rt2, at2) dies.
	if resp, body := e.refresh(rt1); resp.StatusCode != http.StatusBadRequest || body["error"] != "invalid_grant" {
		t.Errorf("reuse: %d %v", resp.StatusCode, body)
	}
	if resp, body := e.refresh(rt2); resp.StatusCode == http.StatusOK {
		t.Errorf("refresh token of a revoked family accepted: %v", body)
	}
	if got := e.get("/v1/admin/clients", at2); got.StatusCode != http.StatusUnauthorized {
		t.Errorf("access token of a revoked family: %d", got.StatusCode)
	}
}

func TestRevokeAndIntrospect(t *testing.T) {
	e := newEnv(t)
	tok := e.clientToken("endpoints:read")
	introspect := func() map[string]any {
		_, body := e.post(oauth.IntrospectPath, url.Values{"token": {tok}}, e.m2m.ID, e.m2mKey)
		return body
	}
	if body := introspect(); body["active"] != true || body["client_id"] != e.m2m.ID || body["scope"] != "endpoints:read" {
		t.Errorf("introspection of a live token: %v", body)
	}
	resp, _ := e.post(oauth.RevokePath, url.Values{"token": {tok}}, e.m2m.ID, e.m2mKey)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	if got := e.get("/v1/endpoints", tok); got.StatusCode != http.StatusUnauthorized {
		t.Errorf("revoked token accepted: %d", got.StatusCode)
	}
	if body := introspect(); body["active"] != false {
		t.Errorf("introspection of a revoked token: %v", body)
	}
}

func TestRecoveryCodeSignsInOnce(t *testing.T) {
	e := newEnv(t)
	name, pw, _, recovery := e.adminWithRecovery()
	q, _ := e.authorize(verifier, name, pw, func() string { return recovery[0] })
	resp, body := e.exchange(q.Get("code"), verifier)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("sign-in with a recovery code: %d %v", resp.StatusCode, body)
	}
	if p, err := e.tokens.VerifyAccessToken(body["access_token"].(string)); err != nil || !p.HasMFA(time.Now(), time.Hour) {
		t.Errorf("recovery-code sign-in: %+v %v", p, err)
	}
	if q, status := e.authorize(verifier, name, pw, func() string { return recovery[0] }); q != nil || status != http.StatusUnauthorized {
		t.Errorf("a used recovery code signed in again: %d %v", status, q)
	}
}

func TestPrivateKeyJWTClient(t *testing.T) {
	e := newEnv(t)
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	pub := jose.JSONWebKey{Key: &key.PublicKey, KeyID: "c1", Algorithm: "ES256", Use: "sig"}
	jwks, _ := json.Marshal(jose.JSONWebKeySet{Keys: []jose.JSONWebKey{pub}})
	c := auth.Client{ID: auth.NewClientID(), Name: "signed", AuthMethod: auth.AuthPrivateKeyJWT, JWKS: jwks,
		Scopes: []string{auth.ScopeEventsWrite}, CreatedAt: time.Now()}
	if err := e.clients.PutClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.ES256, Key: key}, (&jose.SignerOptions{}).WithHeader("kid", "c1"))
	if err != nil {
		t.Fatal(err)
	}
	assertion := func(aud string) string {
		now := time.Now()
		tok, err := josejwt.Signed(signer).Claims(josejwt.Claims{Issuer: c.ID, Subject: c.ID, Audience: josejwt.Audience{aud},
			ID: auth.NewTokenID(), IssuedAt: josejwt.NewNumericDate(now), Expiry: josejwt.NewNumericDate(now.Add(5 * time.Minute))}).Serialize()
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	form := func(a string) url.Values {
		return url.Values{"grant_type": {"client_credentials"}, "client_id": {c.ID},
			"client_assertion_type": {"urn:ietf:params:oauth:client-assertion-type:jwt-bearer"}, "client_assertion": {a}}
	}
	a := assertion(e.url + oauth.TokenPath)
	resp, body := e.post(oauth.TokenPath, form(a), "", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("private_key_jwt: %d %v", resp.StatusCode, body)
	}
	if p, err := e.tokens.VerifyAccessToken(body["access_token"].(string)); err != nil || p.ClientID != c.ID {
		t.Fatalf("token: %+v %v", p, err)
	}
	if resp, body := e.post(oauth.TokenPath, form(a), "", ""); resp.StatusCode == http.StatusOK {
		t.Errorf("a replayed client assertion was accepted: %v", body)
	}
	if resp, body := e.post(oauth.TokenPath, form(assertion("https://elsewhere.example/token")), "", ""); resp.StatusCode == http.StatusOK {
		t.Errorf("an assertion for another audience was accepted: %v", body)
	}
	// The client's secret-less record cannot be used with a secret.
	if resp, _ := e.post(oauth.TokenPath, url.Values{"grant_type": {"client_credentials"}}, c.ID, "guess"); resp.StatusCode == http.StatusOK {
		t.Error("a private_key_jwt client authenticated with a secret")
	}
}

// TestRevocationReachesOtherInstances revokes through one instance and
// watches a second one, reading the same topic, refuse the token within a
// second.
func TestRevocationReachesOtherInstances(t *testing.T) {
	e := newEnv(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	other, err := oauth.NewStore([]kgo.Opt{kgo.SeedBrokers(e.brokers...)}, e.clients, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = other.Run(ctx) }()
	defer func() { cancel(); <-done }()
	if err := other.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	verifier := auth.NewServer(e.url, e.clients, e.clients, auth.WithRevocations(other))
	tok := e.clientToken("endpoints:read")
	if _, err := verifier.VerifyAccessToken(tok); err != nil {
		t.Fatalf("second instance refuses a live token: %v", err)
	}
	if resp, _ := e.post(oauth.RevokePath, url.Values{"token": {tok}}, e.m2m.ID, e.m2mKey); resp.StatusCode != http.StatusOK {
		t.Fatalf("revoke: %d", resp.StatusCode)
	}
	revoked := time.Now()
	for {
		if _, err := verifier.VerifyAccessToken(tok); err != nil {
			t.Logf("second instance refused the token %s after the revocation", time.Since(revoked).Round(time.Millisecond))
			return
		}
		if time.Since(revoked) > time.Second {
			t.Fatal("the second instance still accepts the revoked token after 1 s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}
