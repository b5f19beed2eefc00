package dashboard

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"io/fs"
	"mime"
	"net/http"
	"path"
	"strings"
	"time"

	"github.com/vitalshq/vitals/problem"
)

// ClientID is the public OAuth client the page signs in with
// (authorization code + PKCE, no secret). It must be registered with the
// redirect URI <public URL> + Path.
const ClientID = "vitals-dashboard"

// Path is where the page lives, and the path of its OAuth redirect URI.
const Path = "/dashboard/"

// StatsPath is the path of the JSON the page polls.
const StatsPath = "/v1/dashboard/stats"

// StatsRoute is the route of StatsPath in the API's route table, as rate
// limit overrides name it.
const StatsRoute = "GET " + StatsPath

// ContentSecurityPolicy is sent with every file of the page: scripts,
// styles, images and requests from this origin only, no frames, no base
// URI changes.
const ContentSecurityPolicy = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; " +
	"connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

//go:embed static
var static embed.FS

// asset is one embedded file, ready to serve.
type asset struct {
	body        []byte
	contentType string
	etag        string
}

// page serves the embedded files.
type page struct {
	assets map[string]asset // by name under static/
}

// NewPage returns the handler of GET /dashboard (redirected to /dashboard/,
// query kept) and GET /dashboard/{file}: the page and its script, style
// sheet and icon, with ContentSecurityPolicy. It needs no authentication:
// the page holds no data, it fetches it with the token it obtains.
func NewPage() http.Handler {
	p := &page{assets: map[string]asset{}}
	err := fs.WalkDir(static, "static", func(name string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := static.ReadFile(name)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := mime.TypeByExtension(path.Ext(name))
		if ct == "" {
			ct = http.DetectContentType(b)
		}
		p.assets[strings.TrimPrefix(name, "static/")] = asset{body: b, contentType: ct,
			etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil { // the files are compiled in: only a broken build gets here
		panic("dashboard: embedded files: " + err.Error())
	}
	return p
}

func (p *page) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	h := w.Header()
	h.Set("Content-Security-Policy", ContentSecurityPolicy)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("X-Frame-Options", "DENY")
	// The redirect back from sign-in carries the authorization code in
	// the query: it must not leak to another site.
	h.Set("Referrer-Policy", "no-referrer")
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		h.Set("Allow", "GET, HEAD")
		problem.Write(w, r, problem.New(http.StatusMethodNotAllowed, "method-not-allowed", "the dashboard is read with GET"))
		return
	}
	if r.URL.Path == strings.TrimSuffix(Path, "/") {
		u := Path
		if r.URL.RawQuery != "" {
			u += "?" + r.URL.RawQuery
		}
		http.Redirect(w, r, u, http.StatusFound)
		return
	}
	name := strings.TrimPrefix(r.URL.Path, Path)
	if name == "" {
		name = "index.html"
	}
	a, ok := p.assets[name]
	if !ok || strings.Contains(name, "/") {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "no such file of the dashboard; open "+Path))
		return
	}
	h.Set("Content-Type", a.contentType)
	h.Set("ETag", a.etag)
	// Revalidate every time: a new binary serves new files at once.
	h.Set("Cache-Control", "no-cache")
	http.ServeContent(w, r, name, time.Time{}, bytes.NewReader(a.body))
}
