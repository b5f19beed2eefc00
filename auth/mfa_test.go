package auth

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

// TestRequireMFA checks the admin guard: a person's token needs amr "otp"
// and an auth_time within the max age; machine clients never pass.
func TestRequireMFA(t *testing.T) {
	e := newEnv(t, AlgES256)
	ok := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { w.WriteHeader(http.StatusNoContent) })
	h := e.srv.Require(ScopeAdmin, e.srv.RequireMFA(DefaultMFAMaxAge, ok))
	// A person's client (code flow) holding admin.
	c, _ := NewClient("cli", AllScopes(), e.clock.Now())
	if err := e.store.PutClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	issue := func(g Grant) string {
		t.Helper()
		g.ClientID, g.Scopes = c.ID, []string{ScopeAdmin}
		iss, err := e.srv.Issue(g)
		if err != nil {
			t.Fatal(err)
		}
		return iss.Token
	}
	now := e.clock.Now()
	cases := []struct {
		name   string
		token  string
		status int
	}{
		{"fresh TOTP sign-in", issue(Grant{Subject: "usr_1", AuthTime: now.Add(-time.Hour), AMR: []string{AMRPassword, AMROTP, AMRMFA}}), http.StatusNoContent},
		{"password only", issue(Grant{Subject: "usr_1", AuthTime: now, AMR: []string{AMRPassword}}), http.StatusUnauthorized},
		{"TOTP sign-in 13 h ago", issue(Grant{Subject: "usr_1", AuthTime: now.Add(-13 * time.Hour), AMR: []string{AMRPassword, AMROTP}}), http.StatusUnauthorized},
		{"machine client", issue(Grant{}), http.StatusUnauthorized},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodGet, "/v1/admin/clients", nil)
			req.Header.Set("Authorization", "Bearer "+tc.token)
			rec := httptest.NewRecorder()
			h.ServeHTTP(rec, req)
			if rec.Code != tc.status {
				t.Fatalf("status %d, want %d: %s", rec.Code, tc.status, rec.Body.String())
			}
			if tc.status == http.StatusUnauthorized {
				if ch := rec.Header().Get("WWW-Authenticate"); !strings.Contains(ch, `error="insufficient_user_authentication"`) {
					t.Errorf("challenge %q", ch)
				}
				if rec.Header().Get("Content-Type") != "application/problem+json" {
					t.Errorf("content type %q", rec.Header().Get("Content-Type"))
				}
			}
		})
	}
}
