package receiver_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vitalshq/vitals/problem"
	"github.com/vitalshq/vitals/receiver"
	"github.com/vitalshq/vitals/webhook"
)

// syncBuffer is an io.Writer safe to read while the server writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type fixture struct {
	secret string
	srv    *httptest.Server
	out    *syncBuffer
	mu     sync.Mutex
	events []receiver.Event
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	f := &fixture{out: &syncBuffer{}}
	var err error
	if f.secret, err = webhook.NewSecret(); err != nil {
		t.Fatal(err)
	}
	h, err := receiver.New(f.secret, receiver.Output(f.out), receiver.OnEvent(func(e receiver.Event) {
		f.mu.Lock()
		f.events = append(f.events, e)
		f.mu.Unlock()
	}))
	if err != nil {
		t.Fatal(err)
	}
	f.srv = httptest.NewServer(h)
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fixture) post(t *testing.T, id string, body string, secret string, ts time.Time) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL+"/webhooks/critical-events", strings.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	if secret != "" {
		if err := webhook.Headers(req.Header, id, ts, []byte(body), secret); err != nil {
			t.Fatal(err)
		}
	}
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = resp.Body.Close() })
	return resp
}

func (f *fixture) got() []receiver.Event {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]receiver.Event(nil), f.events...)
}

const churnBody = `{"event":"churn_risk_detected","event_id":"evt_1","customer_id":"cust_12345","risk_level":"high"}`

func TestVerifiedEventIsPrintedAndAcknowledged(t *testing.T) {
	f := newFixture(t)
	resp := f.post(t, "evt_1", churnBody, f.secret, time.Now())
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	evs := f.got()
	if len(evs) != 1 || evs[0].ID != "evt_1" || evs[0].Type != "churn_risk_detected" || evs[0].Duplicate {
		t.Fatalf("events: %+v", evs)
	}
	out := f.out.String()
	for _, want := range []string{"churn_risk_detected", "evt_1", "signature verified", "\n  \"customer_id\": \"cust_12345\""} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
}

func TestBadSignaturesGet401ProblemJSON(t *testing.T) {
	f := newFixture(t)
	other, _ := webhook.NewSecret()
	cases := map[string]func() *http.Response{
		"missing headers": func() *http.Response { return f.post(t, "evt_1", churnBody, "", time.Now()) },
		"wrong secret":    func() *http.Response { return f.post(t, "evt_1", churnBody, other, time.Now()) },
		"stale timestamp": func() *http.Response { return f.post(t, "evt_1", churnBody, f.secret, time.Now().Add(-time.Hour)) },
	}
	reasons := map[string]string{"missing headers": "missing_headers", "wrong secret": "no_matching_signature", "stale timestamp": "timestamp_too_old"}
	for name, do := range cases {
		resp := do()
		if resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("%s: status %d", name, resp.StatusCode)
			continue
		}
		if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
			t.Errorf("%s: content-type %q", name, ct)
		}
		var p map[string]any
		if err := json.NewDecoder(resp.Body).Decode(&p); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if p["status"] != float64(401) || p["reason"] != reasons[name] || p["detail"] == "" {
			t.Errorf("%s: problem %v", name, p)
		}
	}
	// A body altered after signing is refused too.
	req, _ := http.NewRequest(http.MethodPost, f.srv.URL, strings.NewReader(churnBody+" "))
	_ = webhook.Headers(req.Header, "evt_2", time.Now(), []byte(churnBody), f.secret)
	resp, err := f.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("tampered body: status %d", resp.StatusCode)
	}
	if evs := f.got(); len(evs) != 0 {
		t.Fatalf("unverified requests reached the callback: %+v", evs)
	}
	if out := f.out.String(); out != "" {
		t.Fatalf("unverified requests were printed: %q", out)
	}
}

func TestDuplicatesAreReported(t *testing.T) {
	f := newFixture(t)
	for range 2 {
		if resp := f.post(t, "evt_dup", churnBody, f.secret, time.Now()); resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d", resp.StatusCode)
		}
	}
	if resp := f.post(t, "evt_other", churnBody, f.secret, time.Now()); resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	evs := f.got()
	if len(evs) != 3 || evs[0].Duplicate || !evs[1].Duplicate || evs[2].Duplicate {
		t.Fatalf("duplicate flags: %+v", evs)
	}
	if !strings.Contains(f.out.String(), "DUPLICATE churn_risk_detected  evt_dup") {
		t.Fatalf("duplicate not reported:\n%s", f.out.String())
	}
}

func TestRememberIsBounded(t *testing.T) {
	secret, _ := webhook.NewSecret()
	var dups []bool
	h, _ := receiver.New(secret, receiver.Remember(2), receiver.OnEvent(func(e receiver.Event) { dups = append(dups, e.Duplicate) }))
	srv := httptest.NewServer(h)
	defer srv.Close()
	for _, id := range []string{"a", "b", "c", "a"} { // "a" was forgotten when "c" came
		req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader("{}"))
		_ = webhook.Headers(req.Header, id, time.Now(), []byte("{}"), secret)
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		_ = resp.Body.Close()
	}
	if want := []bool{false, false, false, false}; !slices.Equal(dups, want) {
		t.Fatalf("dups %v, want %v", dups, want)
	}
}

func TestMethodAndSize(t *testing.T) {
	secret, _ := webhook.NewSecret()
	h, _ := receiver.New(secret, receiver.MaxBodyBytes(16))
	srv := httptest.NewServer(h)
	defer srv.Close()
	resp, err := srv.Client().Get(srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("GET: %d", resp.StatusCode)
	}
	body := strings.Repeat("x", 64)
	req, _ := http.NewRequest(http.MethodPost, srv.URL, strings.NewReader(body))
	_ = webhook.Headers(req.Header, "big", time.Now(), []byte(body), secret)
	resp, err = srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Fatalf("big body: %d", resp.StatusCode)
	}
}
