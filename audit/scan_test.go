package audit_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"

	"github.com/vitalshq/vitals/audit"
)

func TestScanFindsSecretsInAnyField(t *testing.T) {
	const token, secret = "eyJhbGciOiJFUzI1NiJ9.payload.sig", "whsec_c2VjcmV0LXNlY3JldA"
	c := audit.NewChain()
	clean := c.Seal(audit.Record{ClientID: "client_a", Method: "GET", Route: "/v1/audit", Scopes: []string{"audit:read"}})
	leaky := c.Seal(audit.Record{ClientID: "client_a", UserAgent: "curl/8 " + token, Method: "POST",
		Route: "/v1/endpoints", Scopes: []string{"a", secret}})
	got := audit.Scan([]audit.Record{clean, leaky}, token, "", secret, "not-there")
	var fields []string
	for _, f := range got {
		fields = append(fields, f.Field)
		if f.Seq != 2 || f.Instance != c.Instance() {
			t.Errorf("finding %v: want seq 2", f)
		}
		if strings.Contains(f.String(), token) || strings.Contains(f.String(), secret) {
			t.Errorf("finding %q prints the secret", f)
		}
	}
	if !slices.Equal(fields, []string{"user_agent", "scopes[1]"}) || got[0].Secret != 0 || got[1].Secret != 2 {
		t.Fatalf("findings %v: want token in user_agent and secret in scopes[1]", got)
	}
	if got := audit.Scan([]audit.Record{clean}, token, secret); len(got) != 0 {
		t.Errorf("clean record: findings %v", got)
	}
}

func TestRouteAndBodyHash(t *testing.T) {
	var route, sum string
	mux := http.NewServeMux()
	mux.HandleFunc("POST /v1/endpoints/{id}/replay", func(w http.ResponseWriter, r *http.Request) {
		b, _ := io.ReadAll(r.Body)
		w.Write(b)
	})
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := audit.HashBody(r.Body)
		r.Body = h
		mux.ServeHTTP(w, r)
		route, sum = audit.Route(r), h.Sum()
	})
	srv := httptest.NewServer(handler)
	defer srv.Close()

	resp, err := http.Post(srv.URL+"/v1/endpoints/ep_1/replay?token=abc", "text/plain", strings.NewReader("test"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if route != "/v1/endpoints/{id}/replay" {
		t.Errorf("Route = %q, want the template without method, id or query", route)
	}
	if want := audit.BodySHA256([]byte("test")); sum != want {
		t.Errorf("body hash %q, want %q", sum, want)
	}

	resp, err = http.Get(srv.URL + "/nowhere")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if route != audit.UnmatchedRoute || sum != "" {
		t.Errorf("unmatched GET: route %q sum %q, want %q and no body hash", route, sum, audit.UnmatchedRoute)
	}
}
