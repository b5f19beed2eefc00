package dashboard_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"

	"github.com/vitalshq/vitals/dashboard"
)

// cssURL matches a CSS url(…), which could fetch from anywhere.
var cssURL = regexp.MustCompile(`\burl\(`)

func get(t *testing.T, c *http.Client, url string, header ...string) (*http.Response, string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, url, nil)
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	resp, err := c.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, string(b)
}

func TestPageServesItsFilesOnly(t *testing.T) {
	mux := http.NewServeMux()
	mux.Handle("GET /dashboard", dashboard.NewPage())
	mux.Handle("GET /dashboard/", dashboard.NewPage())
	srv := httptest.NewServer(mux)
	defer srv.Close()
	noRedirect := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

	// The OAuth redirect lands on /dashboard/ with the code: /dashboard
	// keeps the query on its way there.
	resp, _ := get(t, noRedirect, srv.URL+"/dashboard?code=abc&state=xyz")
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/dashboard/?code=abc&state=xyz" {
		t.Fatalf("GET /dashboard: %s → %q", resp.Status, resp.Header.Get("Location"))
	}

	resp, body := get(t, srv.Client(), srv.URL+"/dashboard/")
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") {
		t.Fatalf("GET /dashboard/: %s %s", resp.Status, resp.Header.Get("Content-Type"))
	}
	if resp.Header.Get("Content-Security-Policy") != dashboard.ContentSecurityPolicy ||
		!strings.Contains(dashboard.ContentSecurityPolicy, "default-src 'none'") ||
		resp.Header.Get("Referrer-Policy") != "no-referrer" || resp.Header.Get("X-Frame-Options") != "DENY" {
		t.Fatalf("security headers: %v", resp.Header)
	}
	for _, ref := range []string{`src="/dashboard/app.js"`, `href="/dashboard/app.css"`, `href="/dashboard/icon.svg"`, `id="deliveries-total"`} {
		if !strings.Contains(body, ref) {
			t.Errorf("page lacks %s", ref)
		}
	}

	files := map[string]string{"": "text/html", "app.js": "text/javascript", "app.css": "text/css", "icon.svg": "image/svg+xml"}
	for name, ct := range files {
		resp, body := get(t, srv.Client(), srv.URL+"/dashboard/"+name)
		if resp.StatusCode != http.StatusOK || !strings.HasPrefix(resp.Header.Get("Content-Type"), ct) || resp.Header.Get("ETag") == "" {
			t.Fatalf("%s: %s %v", name, resp.Status, resp.Header)
		}
		// Nothing from another origin: no CDN, no font, no analytics.
		rest := strings.ReplaceAll(body, "http://www.w3.org/2000/svg", "")
		if strings.Contains(rest, "http://") || strings.Contains(rest, "https://") || cssURL.MatchString(rest) {
			t.Errorf("%s refers to another origin", name)
		}
		if again, _ := get(t, srv.Client(), srv.URL+"/dashboard/"+name, "If-None-Match", resp.Header.Get("ETag")); again.StatusCode != http.StatusNotModified {
			t.Errorf("%s revalidation: %s", name, again.Status)
		}
	}

	// The script signs in as the registered client and polls the stats
	// route: the constants the server registers must be the script's.
	_, js := get(t, srv.Client(), srv.URL+"/dashboard/app.js")
	for _, s := range []string{`"` + dashboard.ClientID + `"`, `"` + dashboard.StatsPath + `"`, `"` + dashboard.Path + `"`,
		`"analytics:read"`, `code_challenge_method: "S256"`, "sessionStorage"} {
		if !strings.Contains(js, s) {
			t.Errorf("app.js lacks %s", s)
		}
	}
	if strings.Contains(js, "localStorage") {
		t.Error("app.js mentions localStorage: tokens belong in sessionStorage")
	}

	for _, path := range []string{"/dashboard/nope.js", "/dashboard/static/app.js", "/dashboard/../stats_test.go"} {
		if resp, _ := get(t, srv.Client(), srv.URL+path); resp.StatusCode != http.StatusNotFound {
			t.Errorf("%s: %s, want 404", path, resp.Status)
		}
	}
	resp2, err := http.Post(srv.URL+"/dashboard/", "text/plain", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp2.Body.Close()
	if resp2.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST: %s", resp2.Status)
	}
}
