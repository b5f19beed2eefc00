package auth

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vitalshq/vitals/tlsconfig"
)

// testClock is a settable time source.
type testClock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// env is a Server behind a real HTTPS (TLS 1.3) listener with one client.
type env struct {
	t      *testing.T
	store  *MemoryStore
	srv    *Server
	clock  *testClock
	url    string
	http   *http.Client
	id     string // client holding NonAdminScopes
	secret string
	logs   *syncBuffer
}

// syncBuffer collects log output from handler goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// newEnv starts the server; alg selects the signing key ("" for none).
func newEnv(t *testing.T, alg string, opts ...Option) *env {
	t.Helper()
	e := &env{t: t, store: NewMemoryStore(), clock: &testClock{t: time.Now()}, logs: &syncBuffer{}}
	mux := http.NewServeMux()
	hs := httptest.NewUnstartedServer(mux)
	e.url = "https://" + hs.Listener.Addr().String()

	opts = append([]Option{
		WithClock(e.clock.Now),
		WithLogger(slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))),
	}, opts...)
	e.srv = NewServer(e.url, e.store, e.store, opts...)
	if alg != "" {
		k, err := NewSigningKeyFor(alg)
		if err != nil {
			t.Fatal(err)
		}
		k.CreatedAt = e.clock.Now()
		if err := e.store.PutSigningKey(context.Background(), k); err != nil {
			t.Fatal(err)
		}
	}
	c, secret := NewClient("test", NonAdminScopes(), e.clock.Now())
	if err := e.store.PutClient(context.Background(), c); err != nil {
		t.Fatal(err)
	}
	e.id, e.secret = c.ID, secret

	mux.Handle(JWKSPath, e.srv.JWKSHandler())
	echo := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, ok := PrincipalFrom(r.Context())
		if !ok {
			http.Error(w, "no principal", http.StatusInternalServerError)
			return
		}
		_ = json.NewEncoder(w).Encode(p)
	})
	mux.Handle("/v1/endpoints", e.srv.Require(ScopeEndpointsRead, echo))
	mux.Handle("/v1/admin", e.srv.RequireScope(ScopeAdmin)(echo))

	dataDir := t.TempDir()
	tcfg, err := tlsconfig.Server("", "", dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	hs.TLS = tcfg
	hs.StartTLS()
	t.Cleanup(hs.Close)
	ccfg, err := tlsconfig.Client(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	e.http = &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: ccfg}}
	t.Cleanup(e.http.CloseIdleConnections)
	return e
}

// response is a finished HTTP exchange.
type response struct {
	status int
	header http.Header
	body   []byte
}

func (r response) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal(r.body, &m); err != nil {
		t.Fatalf("body %q is not JSON: %v", r.body, err)
	}
	return m
}

func (e *env) do(req *http.Request) response {
	e.t.Helper()
	resp, err := e.http.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.TLS == nil || resp.TLS.Version != 0x0304 {
		e.t.Fatalf("not TLS 1.3: %+v", resp.TLS)
	}
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		e.t.Fatal(err)
	}
	return response{resp.StatusCode, resp.Header, b}
}

// token issues an access token for the env's client with scope ("" for
// all of its scopes); package oauth's tests cover the token endpoint.
func (e *env) token(scope string) string {
	e.t.Helper()
	scopes := NonAdminScopes()
	if scope != "" {
		scopes = ParseScope(scope)
	}
	tok, _, err := e.srv.IssueAccessToken(e.id, scopes)
	if err != nil {
		e.t.Fatalf("issue token: %v", err)
	}
	return tok
}

// get calls path with the Authorization header value auth ("" for none).
func (e *env) get(path, auth string) response {
	e.t.Helper()
	req, err := http.NewRequest(http.MethodGet, e.url+path, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	if auth != "" {
		req.Header.Set("Authorization", auth)
	}
	return e.do(req)
}

// jwtParts decodes the header and claims of a compact JWT without
// verifying it.
func jwtParts(t *testing.T, tok string) (header, claims map[string]any) {
	t.Helper()
	parts := strings.Split(tok, ".")
	if len(parts) != 3 {
		t.Fatalf("token has %d parts", len(parts))
	}
	dec := func(s string) map[string]any {
		b, err := base64.RawURLEncoding.DecodeString(s)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		return m
	}
	return dec(parts[0]), dec(parts[1])
}

func b64json(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}
