package api_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
)

// TestOpenAPIDocumentMatchesRoutes reads /openapi.json and checks that
// every documented operation is served (not 404/405), that the routes the
// tests know carry their rate-limit class, scope and signing, and that
// the document is OpenAPI 3.1.
func TestOpenAPIDocumentMatchesRoutes(t *testing.T) {
	f := newFixture(t)
	resp, err := http.Get(f.srv.URL + "/openapi.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var doc struct {
		OpenAPI string                               `json:"openapi"`
		Paths   map[string]map[string]map[string]any `json:"paths"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.1.0" || len(doc.Paths) < 10 {
		t.Fatalf("document: openapi %q, %d paths", doc.OpenAPI, len(doc.Paths))
	}
	for path, ops := range doc.Paths {
		for method := range ops {
			url := f.srv.URL + strings.NewReplacer("{id}", "x").Replace(path)
			req, _ := http.NewRequest(strings.ToUpper(method), url, nil)
			r, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			r.Body.Close()
			if r.StatusCode == http.StatusMethodNotAllowed || (r.StatusCode == http.StatusNotFound && r.Header.Get("WWW-Authenticate") == "" && !strings.Contains(path, "{")) {
				t.Errorf("documented %s %s is not served: %d", method, path, r.StatusCode)
			}
		}
	}
	for _, want := range []struct {
		method, path, class string
		signed              bool
		scope               string
	}{
		{"post", "/v1/events", "standard", false, "events:write"},
		{"post", "/v1/events/batch", "bulk", true, "events:write"},
		{"post", "/v1/endpoints/{id}/test", "realtime", false, "endpoints:write"},
		{"delete", "/v1/endpoints/{id}", "standard", true, "endpoints:write"},
		{"post", "/v1/endpoints/{id}/replay", "bulk", true, "endpoints:write"},
	} {
		op := doc.Paths[want.path][want.method]
		if op == nil {
			t.Errorf("%s %s not documented", want.method, want.path)
			continue
		}
		signed, _ := op["x-signed"].(bool)
		sec, _ := json.Marshal(op["security"])
		if op["x-rate-limit-class"] != want.class || signed != want.signed || !strings.Contains(string(sec), want.scope) {
			t.Errorf("%s %s: class %v signed %v security %s", want.method, want.path, op["x-rate-limit-class"], signed, sec)
		}
	}
}
