package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestClientCredentialsTokenIssuedAndAccepted(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, alg)
			r := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, e.id, e.secret)
			if r.status != http.StatusOK {
				t.Fatalf("status %d: %s", r.status, r.body)
			}
			if cc := r.header.Get("Cache-Control"); cc != "no-store" {
				t.Errorf("Cache-Control %q, want no-store", cc)
			}
			body := r.json(t)
			if body["token_type"] != "Bearer" || body["expires_in"] != float64(3600) {
				t.Errorf("token_type/expires_in: %v", body)
			}
			if body["scope"] != FormatScope(NonAdminScopes()) {
				t.Errorf("scope %q, want all client scopes", body["scope"])
			}
			tok := body["access_token"].(string)

			h, c := jwtParts(t, tok)
			if h["alg"] != alg || h["typ"] != "at+jwt" || h["kid"] != e.store.SigningKeys()[0].KID {
				t.Errorf("header %v", h)
			}
			now := e.clock.Now().Unix()
			want := map[string]any{
				"iss": e.url, "aud": "vitals-api", "sub": e.id, "client_id": e.id,
				"scope": FormatScope(NonAdminScopes()),
				"iat":   float64(now), "nbf": float64(now), "exp": float64(now + 3600),
			}
			for k, v := range want {
				if c[k] != v {
					t.Errorf("claim %s = %v, want %v", k, c[k], v)
				}
			}
			if jti, _ := c["jti"].(string); len(jti) < 16 {
				t.Errorf("jti %q", c["jti"])
			}

			r = e.get("/v1/endpoints", "Bearer "+tok)
			if r.status != http.StatusOK {
				t.Fatalf("using token: %d %s", r.status, r.body)
			}
			var p Principal
			if err := json.Unmarshal(r.body, &p); err != nil {
				t.Fatal(err)
			}
			if p.ClientID != e.id || p.Subject != e.id || !slices.Equal(p.Scopes, NonAdminScopes()) || p.TokenID != c["jti"] {
				t.Errorf("principal %+v", p)
			}
			// The scheme name is case-insensitive (RFC 7235 §2.1).
			if r := e.get("/v1/endpoints", "bearer "+tok); r.status != http.StatusOK {
				t.Errorf("lower-case scheme: %d", r.status)
			}
		})
	}
}

func TestClientSecretPostAndNarrowedScope(t *testing.T) {
	e := newEnv(t, AlgES256)
	r := e.tokenRequest(url.Values{
		"grant_type":    {"client_credentials"},
		"client_id":     {e.id},
		"client_secret": {e.secret},
		"scope":         {"events:write   endpoints:read events:write"},
	}, "", "")
	if r.status != http.StatusOK {
		t.Fatalf("client_secret_post: %d %s", r.status, r.body)
	}
	body := r.json(t)
	if body["scope"] != "events:write endpoints:read" {
		t.Fatalf("scope %q", body["scope"])
	}
	tok := body["access_token"].(string)
	if r := e.get("/v1/endpoints", "Bearer "+tok); r.status != http.StatusOK {
		t.Fatalf("narrowed token on endpoints:read route: %d %s", r.status, r.body)
	}

	// A token narrowed to events:write cannot read endpoints.
	only := e.token(ScopeEventsWrite)
	r = e.get("/v1/endpoints", "Bearer "+only)
	if r.status != http.StatusForbidden {
		t.Fatalf("events:write token on endpoints:read route: %d", r.status)
	}
}

func TestTokenEndpointRefusesBadClients(t *testing.T) {
	e := newEnv(t, AlgES256)
	grant := url.Values{"grant_type": {"client_credentials"}}
	cases := []struct {
		name       string
		form       url.Values
		id, secret string
		status     int
		code       string
	}{
		{"wrong secret basic", grant, e.id, e.secret + "x", 401, "invalid_client"},
		{"unknown client basic", grant, NewClientID(), e.secret, 401, "invalid_client"},
		{"wrong secret post", url.Values{"grant_type": {"client_credentials"}, "client_id": {e.id}, "client_secret": {"nope"}}, "", "", 401, "invalid_client"},
		{"no credentials", grant, "", "", 401, "invalid_client"},
		{"two methods", url.Values{"grant_type": {"client_credentials"}, "client_secret": {e.secret}}, e.id, e.secret, 400, "invalid_request"},
		{"unknown grant", url.Values{"grant_type": {"password"}, "username": {"a"}, "password": {"b"}}, e.id, e.secret, 400, "unsupported_grant_type"},
		{"missing grant", url.Values{}, e.id, e.secret, 400, "invalid_request"},
		{"repeated parameter", url.Values{"grant_type": {"client_credentials", "client_credentials"}}, e.id, e.secret, 400, "invalid_request"},
		{"scope escalation", url.Values{"grant_type": {"client_credentials"}, "scope": {"endpoints:read admin"}}, e.id, e.secret, 400, "invalid_scope"},
		{"unknown scope", url.Values{"grant_type": {"client_credentials"}, "scope": {"everything"}}, e.id, e.secret, 400, "invalid_scope"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := e.tokenRequest(tc.form, tc.id, tc.secret)
			if r.status != tc.status {
				t.Fatalf("status %d, want %d: %s", r.status, tc.status, r.body)
			}
			body := r.json(t)
			if body["error"] != tc.code {
				t.Fatalf("error %v, want %s", body["error"], tc.code)
			}
			if d, _ := body["error_description"].(string); d == "" {
				t.Error("no error_description")
			}
			if _, ok := body["access_token"]; ok {
				t.Error("error response carries an access_token")
			}
			if r.header.Get("Cache-Control") != "no-store" {
				t.Error("error response is cacheable")
			}
			if tc.status == 401 && !strings.HasPrefix(r.header.Get("WWW-Authenticate"), `Basic realm="vitals"`) {
				t.Errorf("WWW-Authenticate %q", r.header.Get("WWW-Authenticate"))
			}
		})
	}
	if strings.Contains(e.logs.String(), e.secret) {
		t.Fatal("client secret appears in the logs")
	}

	t.Run("disabled client", func(t *testing.T) {
		c, _ := e.store.Client(e.id)
		tok := e.token("")
		c.Disabled = true
		if err := e.store.PutClient(context.Background(), c); err != nil {
			t.Fatal(err)
		}
		if r := e.tokenRequest(grant, e.id, e.secret); r.status != 401 {
			t.Fatalf("disabled client got a token: %d", r.status)
		}
		r := e.get("/v1/endpoints", "Bearer "+tok)
		if r.status != 401 || !strings.Contains(r.header.Get("WWW-Authenticate"), `error="invalid_token"`) {
			t.Fatalf("token of a disabled client accepted: %d", r.status)
		}
	})
}

func TestTokenEndpointRequestShape(t *testing.T) {
	e := newEnv(t, AlgES256)
	// GET is not a token request.
	r := e.get(TokenPath+"?grant_type=client_credentials", "")
	if r.status != http.StatusMethodNotAllowed || r.header.Get("Allow") != "POST" {
		t.Fatalf("GET: %d Allow=%q", r.status, r.header.Get("Allow"))
	}
	// JSON bodies are not form-encoded.
	req, _ := http.NewRequest(http.MethodPost, e.url+TokenPath, strings.NewReader(`{"grant_type":"client_credentials"}`))
	req.Header.Set("Content-Type", "application/json")
	req.SetBasicAuth(e.id, e.secret)
	if r := e.do(req); r.status != 400 || r.json(t)["error"] != "invalid_request" {
		t.Fatalf("JSON body: %d %s", r.status, r.body)
	}
	// A secret in the URL is refused even when otherwise valid.
	req, _ = http.NewRequest(http.MethodPost, e.url+TokenPath+"?client_secret="+url.QueryEscape(e.secret),
		strings.NewReader("grant_type=client_credentials&client_id="+e.id))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if r := e.do(req); r.status != 400 || r.json(t)["error"] != "invalid_request" {
		t.Fatalf("secret in URL: %d %s", r.status, r.body)
	}
}

func TestNoSigningKeyIsServerError(t *testing.T) {
	e := newEnv(t, "")
	r := e.tokenRequest(url.Values{"grant_type": {"client_credentials"}}, e.id, e.secret)
	if r.status != http.StatusInternalServerError || r.json(t)["error"] != "server_error" {
		t.Fatalf("without key: %d %s", r.status, r.body)
	}
	if _, _, err := e.srv.IssueAccessToken(e.id, NonAdminScopes()); !errors.Is(err, ErrNoSigningKey) {
		t.Fatalf("IssueAccessToken without key: %v", err)
	}

	created, err := e.srv.EnsureSigningKey(context.Background())
	if err != nil || !created {
		t.Fatalf("EnsureSigningKey: %v %v", created, err)
	}
	created, err = e.srv.EnsureSigningKey(context.Background())
	if err != nil || created {
		t.Fatalf("second EnsureSigningKey: %v %v", created, err)
	}
	if n := len(e.store.SigningKeys()); n != 1 {
		t.Fatalf("%d keys after two EnsureSigningKey calls", n)
	}
	if r := e.get("/v1/endpoints", "Bearer "+e.token("")); r.status != 200 {
		t.Fatalf("token after EnsureSigningKey: %d", r.status)
	}
}

func TestKeyRotationKeepsOldTokensValid(t *testing.T) {
	e := newEnv(t, AlgES256)
	old := e.token("")
	oldKID := e.store.SigningKeys()[0].KID

	e.clock.Advance(time.Minute)
	k, err := NewSigningKeyFor(AlgEdDSA)
	if err != nil {
		t.Fatal(err)
	}
	k.CreatedAt = e.clock.Now()
	if err := e.store.PutSigningKey(context.Background(), k); err != nil {
		t.Fatal(err)
	}
	fresh := e.token("")
	if h, _ := jwtParts(t, fresh); h["kid"] != k.KID || h["alg"] != AlgEdDSA {
		t.Fatalf("new token not signed by the newest key: %v", h)
	}
	for name, tok := range map[string]string{"old": old, "new": fresh} {
		if r := e.get("/v1/endpoints", "Bearer "+tok); r.status != 200 {
			t.Errorf("%s token after rotation: %d", name, r.status)
		}
	}
	var kids []string
	for _, j := range e.srv.JWKS().Keys {
		kids = append(kids, j.KeyID)
	}
	if !slices.Contains(kids, oldKID) || !slices.Contains(kids, k.KID) {
		t.Fatalf("JWKS kids %v", kids)
	}
}

func TestStoredTypesRoundTripJSON(t *testing.T) {
	k, err := NewSigningKey()
	if err != nil {
		t.Fatal(err)
	}
	c, secret := NewClient("crm sync", []string{ScopeEventsWrite}, time.Now())
	b, err := json.Marshal(struct {
		K SigningKey
		C Client
	}{k, c})
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(b), secret) {
		t.Fatal("serialized client carries its secret")
	}
	var back struct {
		K SigningKey
		C Client
	}
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !back.C.VerifySecret(secret) || back.C.VerifySecret(secret+"x") || back.C.ID != c.ID {
		t.Fatalf("client after round trip: %+v", back.C)
	}
	// The key still signs tokens the original verifies.
	store := NewMemoryStore()
	_ = store.PutSigningKey(context.Background(), back.K)
	_ = store.PutClient(context.Background(), back.C)
	s := NewServer("https://issuer.test", store, store)
	tok, _, err := s.IssueAccessToken(c.ID, c.Scopes)
	if err != nil {
		t.Fatal(err)
	}
	jwk, err := k.PublicJWK()
	if err != nil {
		t.Fatal(err)
	}
	if !jwk.IsPublic() || jwk.KeyID != k.KID {
		t.Fatalf("PublicJWK %+v", jwk)
	}
	if _, err := s.VerifyAccessToken(tok); err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(c.ID, "vc_") || !strings.HasPrefix(secret, "vcs_") || len(secret) != 4+43 {
		t.Fatalf("id %q secret length %d", c.ID, len(secret))
	}
}
