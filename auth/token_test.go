package auth

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestIssuedTokenClaimsAndAcceptance(t *testing.T) {
	for _, alg := range []string{AlgES256, AlgEdDSA} {
		t.Run(alg, func(t *testing.T) {
			e := newEnv(t, alg)
			tok := e.token("")

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

			r := e.get("/v1/endpoints", "Bearer "+tok)
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

func TestNoSigningKeyThenEnsure(t *testing.T) {
	e := newEnv(t, "")
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
