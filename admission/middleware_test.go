package admission

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"testing"

	"github.com/vitalshq/vitals/problem"
)

// testClassify reads the priority from the X-Priority header (a number);
// /healthz and /metrics bypass admission.
func testClassify(r *http.Request) (Priority, bool) {
	if r.URL.Path == "/healthz" || r.URL.Path == "/metrics" {
		return 0, true
	}
	n, err := strconv.Atoi(r.Header.Get("X-Priority"))
	if err != nil {
		return Standard, false
	}
	return Priority(n), false
}

// blockingServer serves /slow by blocking until unblock is closed, and
// everything else at once with 200.
func blockingServer(t *testing.T, c *Controller) (srv *httptest.Server, unblock chan struct{}) {
	t.Helper()
	unblock = make(chan struct{})
	mux := http.NewServeMux()
	mux.HandleFunc("/slow", func(w http.ResponseWriter, r *http.Request) {
		select {
		case <-unblock:
		case <-r.Context().Done():
		}
	})
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) { _, _ = io.WriteString(w, "ok") })
	srv = httptest.NewServer(c.Middleware(testClassify, mux))
	t.Cleanup(srv.Close)
	return srv, unblock
}

func get(t *testing.T, srv *httptest.Server, path string, p Priority) *http.Response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+path, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("X-Priority", strconv.Itoa(int(p)))
	resp, err := srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp
}

// saturate starts a /slow request of priority p and waits until it holds a
// slot.
func saturate(t *testing.T, c *Controller, srv *httptest.Server, p Priority) <-chan *http.Response {
	t.Helper()
	done := make(chan *http.Response, 1)
	before := c.Stats().InFlight
	go func() {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/slow", nil)
		req.Header.Set("X-Priority", strconv.Itoa(int(p)))
		resp, err := srv.Client().Do(req)
		if err != nil {
			done <- nil
			return
		}
		resp.Body.Close()
		done <- resp
	}()
	waitFor(t, "slow request in flight", func() bool { return c.Stats().InFlight == before+1 })
	return done
}

func TestMiddlewareShedResponse(t *testing.T) {
	c := newController(t, WithMaxInFlight(1), WithMaxQueue(0))
	srv, unblock := blockingServer(t, c)
	slow := saturate(t, c, srv, Admin)

	resp := get(t, srv, "/v1/events/batch", Bulk)
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("status %d, want 503; body %s", resp.StatusCode, body)
	}
	if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("Content-Type %q, want %q", ct, problem.ContentType)
	}
	ra, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || ra < 1 || ra > int(MaxRetryAfter.Seconds()) {
		t.Fatalf("Retry-After %q, want whole seconds in 1..30", resp.Header.Get("Retry-After"))
	}
	var p struct {
		Type, Title, Detail, Instance, Priority, Reason string
		Status                                          int
		RetryAfter                                      int `json:"retry_after_seconds"`
	}
	if err := json.Unmarshal(body, &p); err != nil {
		t.Fatalf("body %s: %v", body, err)
	}
	if p.Type != problem.TypeBase+ProblemType || p.Status != 503 || p.Instance != "/v1/events/batch" ||
		p.Priority != "bulk" || p.Reason != "queue_full" || p.RetryAfter != ra {
		t.Fatalf("problem %+v", p)
	}
	for _, want := range []string{"overloaded", "bulk", "Retry after " + strconv.Itoa(ra) + " s"} {
		if !strings.Contains(p.Detail, want) {
			t.Errorf("detail %q does not mention %q", p.Detail, want)
		}
	}

	close(unblock)
	if r := <-slow; r == nil || r.StatusCode != http.StatusOK {
		t.Fatalf("the admitted request: %v", r)
	}
	// With the slot free again, the same request is served.
	resp = get(t, srv, "/v1/events/batch", Bulk)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("after the overload: status %d", resp.StatusCode)
	}
}

func TestMiddlewareBypassNeverQueued(t *testing.T) {
	c := newController(t, WithMaxInFlight(1), WithMaxQueue(1))
	srv, unblock := blockingServer(t, c)
	slow := saturate(t, c, srv, Critical)
	// Fill the queue as well.
	queued := make(chan int, 1)
	go func() {
		req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, srv.URL+"/v1/x", nil)
		req.Header.Set("X-Priority", strconv.Itoa(int(Critical)))
		resp, err := srv.Client().Do(req)
		if err != nil {
			queued <- 0
			return
		}
		resp.Body.Close()
		queued <- resp.StatusCode
	}()
	waitFor(t, "a request queued", func() bool { return c.Stats().Queued == 1 })

	for _, path := range []string{"/healthz", "/metrics"} {
		resp := get(t, srv, path, Bulk)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s while saturated: status %d, want 200", path, resp.StatusCode)
		}
	}
	resp := get(t, srv, "/v1/y", Standard)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("a classified request while saturated: status %d, want 503", resp.StatusCode)
	}
	if got := counterValue(t, c.m.bypassed); got != 2 {
		t.Fatalf("bypassed = %v, want 2", got)
	}

	close(unblock)
	<-slow
	if code := <-queued; code != http.StatusOK {
		t.Fatalf("queued critical request: status %d, want 200", code)
	}
}
