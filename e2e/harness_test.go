package e2e

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/vitalshq/vitals/httpsig"
)

var vitalsBin string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "vitals-e2e-bin")
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	vitalsBin = filepath.Join(dir, "vitals")
	build := exec.Command("go", "build", "-o", vitalsBin, "github.com/vitalshq/vitals/cmd/vitals")
	build.Stdout, build.Stderr = os.Stderr, os.Stderr
	if err := build.Run(); err != nil {
		fmt.Fprintln(os.Stderr, "build vitals:", err)
		os.Exit(1)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

// proc is a vitals subprocess whose output is kept for failure reports.
type proc struct {
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
	done chan struct{}
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) Output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

// start runs vitals with args; the process is stopped (SIGTERM, then
// SIGKILL after 20 s) when the test ends, and its output logged on failure.
func start(t *testing.T, args ...string) *proc {
	t.Helper()
	p := &proc{done: make(chan struct{})}
	p.cmd = exec.Command(vitalsBin, args...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	p.cmd.Env = append(os.Environ(), "VITALS_LOG_FORMAT=text")
	if err := p.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() { _ = p.cmd.Wait(); close(p.done) }()
	t.Cleanup(func() {
		_ = p.cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-p.done:
		case <-time.After(20 * time.Second):
			_ = p.cmd.Process.Kill()
			<-p.done
			t.Errorf("vitals %s did not stop within 20s of SIGTERM", args[0])
		}
		if t.Failed() {
			t.Logf("output of vitals %s:\n%s", strings.Join(args, " "), p.Output())
		}
	})
	return p
}

// eventually polls cond every 100 ms until it returns true or d passes.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// pipeline is a running `vitals run` and a client for its API.
type pipeline struct {
	proc    *proc
	dataDir string
	apiURL  string
	creds   struct{ ClientID, ClientSecret, TokenURL, APIURL, RequestKeyID, RequestKey string }
	http    *http.Client
}

func startPipeline(t *testing.T, extra ...string) *pipeline {
	t.Helper()
	pl := &pipeline{dataDir: t.TempDir()}
	args := append([]string{"run", "--data-dir", pl.dataDir, "--listen", "127.0.0.1:0",
		"--allow-private-endpoints", "--allow-insecure-endpoints", "--log-level", "debug"}, extra...)
	if !slices.Contains(extra, "--rate-limit") {
		// Tests send far more than a client's hourly standard quota; the
		// realtime and admin defaults stay, and tests of the limits pass
		// their own.
		args = append(args, "--rate-limit", "standard=1000000/1h/100000,bulk=100000/1h/10000")
	}
	pl.proc = start(t, args...)
	bootstrap := filepath.Join(pl.dataDir, "bootstrap-client.json")
	eventually(t, 90*time.Second, "bootstrap-client.json", func() bool {
		select {
		case <-pl.proc.done:
			t.Fatalf("vitals run exited early:\n%s", pl.proc.Output())
		default:
		}
		b, err := os.ReadFile(bootstrap)
		if err != nil {
			return false
		}
		var c struct {
			ClientID     string `json:"client_id"`
			ClientSecret string `json:"client_secret"`
			TokenURL     string `json:"token_url"`
			APIURL       string `json:"api_url"`
			RequestKeyID string `json:"request_key_id"`
			RequestKey   string `json:"request_key"`
		}
		if json.Unmarshal(b, &c) != nil {
			return false
		}
		pl.creds.ClientID, pl.creds.ClientSecret, pl.creds.TokenURL, pl.creds.APIURL = c.ClientID, c.ClientSecret, c.TokenURL, c.APIURL
		pl.creds.RequestKeyID, pl.creds.RequestKey = c.RequestKeyID, c.RequestKey
		return true
	})
	st, err := os.Stat(bootstrap)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("bootstrap file mode: %v %v", st.Mode(), err)
	}
	pl.apiURL = pl.creds.APIURL
	if !strings.HasPrefix(pl.apiURL, "https://") {
		t.Fatalf("API is not HTTPS by default: %s", pl.apiURL)
	}
	// Trust the self-signed certificate the API generated; TLS 1.3 only.
	pem, err := os.ReadFile(filepath.Join(pl.dataDir, "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	pl.http = &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{
		TLSClientConfig: &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS13}}}
	eventually(t, 60*time.Second, "/readyz", func() bool {
		resp, err := pl.http.Get(pl.apiURL + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	return pl
}

// token obtains an access token by the client-credentials grant.
func (pl *pipeline) token(t *testing.T, scope string) string {
	t.Helper()
	form := url.Values{"grant_type": {"client_credentials"}}
	if scope != "" {
		form.Set("scope", scope)
	}
	req, _ := http.NewRequest(http.MethodPost, pl.creds.TokenURL, strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(pl.creds.ClientID, pl.creds.ClientSecret)
	resp, err := pl.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var tr struct {
		AccessToken string `json:"access_token"`
		TokenType   string `json:"token_type"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&tr); err != nil || resp.StatusCode != 200 || tr.AccessToken == "" {
		t.Fatalf("token: %s %v %+v", resp.Status, err, tr)
	}
	return tr.AccessToken
}

// do sends a request with an optional bearer token and returns status,
// content type and body.
func (pl *pipeline) do(t *testing.T, method, path, token, contentType string, body []byte) (int, string, []byte) {
	t.Helper()
	req, _ := http.NewRequest(method, pl.apiURL+path, bytes.NewReader(body))
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	if method != http.MethodGet {
		pl.sign(t, req, body)
	}
	resp, err := pl.http.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header.Get("Content-Type"), b
}

// sign signs req (RFC 9421) with the bootstrap client's request key, as
// high-value calls (replay, delete, secret rotation, batch ingest) must be.
func (pl *pipeline) sign(t *testing.T, req *http.Request, body []byte) {
	t.Helper()
	seed, err := base64.StdEncoding.DecodeString(pl.creds.RequestKey)
	if err != nil || len(seed) != ed25519.SeedSize {
		t.Fatalf("bootstrap file has no request key: %q", pl.creds.RequestKey)
	}
	key := httpsig.Key{ID: pl.creds.RequestKeyID, Alg: httpsig.AlgEd25519, Ed25519Private: ed25519.NewKeyFromSeed(seed)}
	if err := httpsig.Sign(req, body, key, httpsig.SignParams{}); err != nil {
		t.Fatal(err)
	}
}

// delivery is one webhook a test receiver accepted.
type delivery struct {
	ID, Timestamp, Signature string
	Body                     []byte
	Fields                   map[string]any
}

// receiver is a real HTTP server that verifies Standard Webhooks signatures
// independently of Vitals' own webhook package: HMAC-SHA256 over
// "id.timestamp.body" with the base64-decoded secret after "whsec_".
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	secret string
	got    []delivery
	bad    int
	down   bool // answer 503 to everything, record nothing
	failed int  // requests answered 503 while down
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		d := delivery{ID: req.Header.Get("webhook-id"), Timestamp: req.Header.Get("webhook-timestamp"),
			Signature: req.Header.Get("webhook-signature"), Body: body}
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.down {
			r.failed++
			w.WriteHeader(http.StatusServiceUnavailable)
			return
		}
		if !r.verify(d) || req.Header.Get("Content-Type") != "application/json" {
			r.bad++
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		if err := json.Unmarshal(body, &d.Fields); err != nil {
			r.bad++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		r.got = append(r.got, d)
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) setSecret(s string) {
	r.mu.Lock()
	r.secret = s
	r.mu.Unlock()
}

func (r *receiver) verify(d delivery) bool {
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(r.secret, "whsec_"))
	if err != nil || d.ID == "" || d.Timestamp == "" {
		return false
	}
	mac := hmac.New(sha256.New, key)
	mac.Write([]byte(d.ID + "." + d.Timestamp + "."))
	mac.Write(d.Body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	for _, s := range strings.Fields(d.Signature) {
		if hmac.Equal([]byte(s), []byte(want)) {
			return true
		}
	}
	return false
}

// find returns the deliveries of one event type for one customer.
func (r *receiver) find(eventType, customer string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []delivery
	for _, d := range r.got {
		if d.Fields["event"] == eventType && d.Fields["customer_id"] == customer {
			out = append(out, d)
		}
	}
	return out
}

// setDown makes the receiver answer 503 (down) or work again (up).
func (r *receiver) setDown(down bool) {
	r.mu.Lock()
	r.down = down
	r.mu.Unlock()
}

func (r *receiver) failedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.failed
}

func (r *receiver) badCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.bad
}

// register creates an endpoint for r and gives r its secret.
func (pl *pipeline) register(t *testing.T, r *receiver, types ...string) string {
	t.Helper()
	tok := pl.token(t, "endpoints:write")
	body, _ := json.Marshal(map[string]any{"url": r.srv.URL + "/webhooks/critical-events", "event_types": types, "description": "e2e"})
	status, _, b := pl.do(t, http.MethodPost, "/v1/endpoints", tok, "application/json", body)
	if status != http.StatusCreated {
		t.Fatalf("create endpoint: %d %s", status, b)
	}
	var ep struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(b, &ep); err != nil || !strings.HasPrefix(ep.Secret, "whsec_") || !strings.HasPrefix(ep.ID, "ep_") {
		t.Fatalf("endpoint response %s: %v", b, err)
	}
	r.setSecret(ep.Secret)
	return ep.ID
}

// ctx returns a context cancelled when the test ends.
func ctx(t *testing.T) context.Context {
	c, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	return c
}
