package dispatcher_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/dispatcher"
	"github.com/vitalshq/vitals/dispatcher/task"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/topics"
)

// testSchedule is the compressed retry schedule of these tests: 4 attempts.
func testSchedule() []time.Duration {
	return []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}
}

// memDisabler records Disable calls.
type memDisabler struct {
	mu    sync.Mutex
	calls []string // "endpoint: reason"
}

func (m *memDisabler) Disable(_ context.Context, id, reason string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls = append(m.calls, id+": "+reason)
	return nil
}

func (m *memDisabler) got() []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.calls)
}

// read returns the tasks (DLQ) or operational events of topic.
func (e *env) dlq() []task.Task {
	e.t.Helper()
	var out []task.Task
	for _, r := range testenv.ReadAll(e.t, e.brokers, topics.DLQ, false) {
		tk, err := task.Decode(r)
		if err != nil {
			e.t.Fatal(err)
		}
		out = append(out, tk)
	}
	return out
}

func (e *env) operational() []dispatcher.OperationalEvent {
	e.t.Helper()
	var out []dispatcher.OperationalEvent
	for _, r := range testenv.ReadAll(e.t, e.brokers, topics.Operational, false) {
		var op dispatcher.OperationalEvent
		if err := json.Unmarshal(r.Value, &op); err != nil {
			e.t.Fatal(err)
		}
		out = append(out, op)
	}
	return out
}

// TestReceiverMatrix drives one event per receiver behaviour through the
// retry tiers (100ms, 200ms, 300ms; no jitter) and checks the attempt
// sequence, the waits between attempts and the final state.
func TestReceiverMatrix(t *testing.T) {
	flaky := func(n int) int {
		if n == 1 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	}
	closed := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	closedURL := closed.URL
	closed.Close()
	badTLS := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer badTLS.Close()
	target := newReceiver(t, ok) // where the redirect points; must never be reached

	type want struct {
		classes   []string // error class per attempt ("" = delivered)
		minGaps   []time.Duration
		maxGaps   []time.Duration // 0: unchecked
		dlq       bool
		disabled  bool
		lastError string
	}
	cases := []struct {
		name   string
		status func(n int) int
		header http.Header
		hold   bool
		url    string // instead of the receiver
		want   want
	}{
		{name: "500 then success", status: flaky,
			want: want{classes: []string{"http_5xx", ""}, minGaps: []time.Duration{100 * time.Millisecond}}},
		{name: "timeout", hold: true,
			want: want{classes: []string{"timeout", "timeout", "timeout", "timeout"}, dlq: true, lastError: "timeout",
				minGaps: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}}},
		{name: "connection refused", url: closedURL,
			want: want{classes: []string{"connect", "connect", "connect", "connect"}, dlq: true, lastError: "connect"}},
		{name: "429 with Retry-After", status: func(n int) int {
			if n == 1 {
				return http.StatusTooManyRequests
			}
			return http.StatusOK
		}, header: http.Header{"Retry-After": {"1"}},
			// Retry-After 1s, capped by the schedule's maximum (300ms).
			want: want{classes: []string{"http_4xx", ""}, minGaps: []time.Duration{300 * time.Millisecond},
				maxGaps: []time.Duration{900 * time.Millisecond}}},
		{name: "503", status: func(int) int { return http.StatusServiceUnavailable },
			want: want{classes: []string{"http_5xx", "http_5xx", "http_5xx", "http_5xx"}, dlq: true, lastError: "http_5xx",
				minGaps: []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond}}},
		{name: "410 gone", status: func(int) int { return http.StatusGone },
			want: want{classes: []string{"http_4xx"}, dlq: true, disabled: true, lastError: "http_4xx"}},
		{name: "redirect", status: func(int) int { return http.StatusFound }, header: http.Header{"Location": {target.srv.URL}},
			want: want{classes: []string{"redirect", "redirect", "redirect", "redirect"}, dlq: true, lastError: "redirect"}},
		{name: "bad tls", url: badTLS.URL,
			want: want{classes: []string{"tls", "tls", "tls", "tls"}, dlq: true, lastError: "tls"}},
	}
	for i, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			r := newReceiver(t, c.status)
			if c.header != nil {
				h := c.header
				inner := r.srv.Config.Handler
				r.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
					for k, v := range h {
						w.Header()[k] = v
					}
					inner.ServeHTTP(w, req)
				})
			}
			if c.hold {
				r.hold = make(chan struct{})
				defer close(r.hold)
			}
			ep := newEndpoint(t, "ep_m", r, "*")
			if c.url != "" {
				ep.URL = c.url
			}
			ops := newReceiver(t, ok)
			epOps := newEndpoint(t, "ep_ops", ops, endpoint.OpAttemptExhausted, endpoint.OpEndpointDisabled)
			sink, dis := &memSink{}, &memDisabler{}
			e.start(staticEndpoints{ep, epOps}, dispatcher.WithSink(sink), dispatcher.WithDisabler(dis),
				dispatcher.WithDeliveryTimeout(150*time.Millisecond))
			id := "evt_matrix_" + string(rune('a'+i))
			e.produce(churn(id))

			n := len(c.want.classes)
			final := func() bool {
				rows := sink.forEndpoint("ep_m")
				if len(rows) < n {
					return false
				}
				if !c.want.dlq {
					return true
				}
				return len(e.dlq()) == 1
			}
			eventually(t, "final state", final)
			rows := sink.forEndpoint("ep_m")
			if len(rows) != n {
				t.Fatalf("%d attempt rows, want %d: %+v", len(rows), n, rows)
			}
			for k, row := range rows {
				if row.ErrorClass != c.want.classes[k] || int(row.Attempt) != k+1 || row.EventID != id {
					t.Errorf("attempt %d: %+v, want class %q", k+1, row, c.want.classes[k])
				}
				wantOutcome := analytics.OutcomeFailed
				switch {
				case c.want.classes[k] == "":
					wantOutcome = analytics.OutcomeDelivered
				case k == n-1 && c.want.dlq:
					wantOutcome = analytics.OutcomeExhausted
				}
				if row.Outcome != wantOutcome {
					t.Errorf("attempt %d outcome %q, want %q", k+1, row.Outcome, wantOutcome)
				}
			}
			for k, minGap := range c.want.minGaps {
				gap := rows[k+1].Timestamp.Sub(rows[k].Timestamp)
				if gap < minGap {
					t.Errorf("attempt %d came %s after attempt %d, want ≥ %s", k+2, gap, k+1, minGap)
				}
				if k < len(c.want.maxGaps) && gap > c.want.maxGaps[k] {
					t.Errorf("attempt %d came %s after attempt %d, want ≤ %s", k+2, gap, k+1, c.want.maxGaps[k])
				}
			}
			if c.url == "" {
				for _, id2 := range r.ids() {
					if id2 != id {
						t.Errorf("webhook-id %q, want %q on every attempt", id2, id)
					}
				}
			}
			if !c.want.dlq {
				eventually(t, "commit", func() bool { return e.committed(dispatcher.DefaultGroup, topics.Critical) == 1 })
				if d := e.dlq(); len(d) != 0 {
					t.Fatalf("delivered event dead-lettered: %+v", d)
				}
				return
			}
			dl := e.dlq()
			if len(dl) != 1 || dl[0].EventID != id || dl[0].EndpointID != "ep_m" || dl[0].Attempts != n ||
				dl[0].LastError != c.want.lastError || dl[0].FirstAttempt.IsZero() {
				t.Fatalf("dlq %+v", dl)
			}
			eventually(t, "operational event", func() bool { return len(e.operational()) == 1 })
			op := e.operational()[0]
			if c.want.disabled {
				if got := dis.got(); !slices.Equal(got, []string{"ep_m: 410 Gone"}) {
					t.Fatalf("disabler calls %v", got)
				}
				if op.Type != endpoint.OpEndpointDisabled || op.EndpointID != "ep_m" || op.Reason != "410 Gone" {
					t.Fatalf("operational %+v", op)
				}
			} else {
				if op.Type != endpoint.OpAttemptExhausted || op.EventID != id || op.Attempts != n ||
					op.LastError != c.want.lastError || op.EventType != event.ChurnRiskDetected || op.ID == "" {
					t.Fatalf("operational %+v", op)
				}
				if len(dis.got()) != 0 {
					t.Fatalf("disabled without cause: %v", dis.got())
				}
			}
			// The operational event is delivered as a webhook to the
			// endpoint subscribed to it, with its id as webhook-id.
			eventually(t, "operational webhook", func() bool { return len(ops.got()) == 1 })
			if h := ops.got()[0]; h.header.Get("webhook-id") != op.ID || !strings.Contains(string(h.body), `"type":"`+op.Type+`"`) {
				t.Fatalf("operational webhook %s: %s", h.header.Get("webhook-id"), h.body)
			}
			if len(target.got()) != 0 {
				t.Fatal("a redirect was followed")
			}
		})
	}
}

// breakerSchedule is long enough for deliveries to outlive an open breaker.
func breakerSchedule() []time.Duration {
	return []time.Duration{150 * time.Millisecond, 300 * time.Millisecond, 600 * time.Millisecond,
		900 * time.Millisecond, 1200 * time.Millisecond, 1500 * time.Millisecond}
}

// TestBreakerOpensProbesAndRecovers: two failures open the breaker; while
// open the receiver sees nothing; after the open period one probe at a
// time; two successful probes close it; every event is delivered;
// transitions are in the metrics and in ClickHouse.
func TestBreakerOpensProbesAndRecovers(t *testing.T) {
	e := newEnv(t)
	var mu sync.Mutex
	var spans [][2]time.Time // start, end of each request
	var openedAt time.Time
	r := newReceiver(t, func(n int) int {
		if n <= 2 {
			return http.StatusInternalServerError
		}
		return http.StatusOK
	})
	inner := r.srv.Config.Handler
	r.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		start := time.Now()
		time.Sleep(20 * time.Millisecond)
		inner.ServeHTTP(w, req)
		mu.Lock()
		spans = append(spans, [2]time.Time{start, time.Now()})
		mu.Unlock()
	})
	addr := testenv.ClickHouse(t)
	w, err := analytics.NewWriter(addr, analytics.WithDatabase("vitals_breaker_test"), analytics.WithFlushInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	wctx, stopWriter := context.WithCancel(context.Background())
	wdone := make(chan error, 1)
	go func() { wdone <- w.Run(wctx) }()
	defer func() { stopWriter(); <-wdone; w.Close() }()

	ep := newEndpoint(t, "ep_breaker_"+time.Now().Format("150405.000"), r, "*")
	sink := &memSink{}
	reg := prometheus.NewRegistry()
	open := 700 * time.Millisecond
	stop := e.start(staticEndpoints{ep}, dispatcher.WithSink(multiSink{sink, w}), dispatcher.WithStateSink(w),
		dispatcher.WithRegisterer(reg), dispatcher.WithRetrySchedule(breakerSchedule()...),
		dispatcher.WithBreakerSettings(dispatcher.BreakerSettings{ConsecutiveFailures: 2, OpenFor: open, SuccessesToClose: 2}))
	e.produce(churn("evt_br_1"), churn("evt_br_2"))
	eventually(t, "breaker open", func() bool {
		return gauge(t, reg, "vitals_webhook_breakers", "open") == 1 &&
			gauge(t, reg, "vitals_webhook_breaker_state", ep.ID) == 2
	})
	openedAt = time.Now()
	e.produce(churn("evt_br_3"), churn("evt_br_4"), churn("evt_br_5"))
	eventually(t, "circuit_open attempts for the new events", func() bool {
		n := 0
		for _, row := range sink.forEndpoint(ep.ID) {
			if row.ErrorClass == "circuit_open" {
				n++
			}
		}
		return n >= 3
	})
	for _, h := range r.got()[2:] {
		if h.at.Sub(openedAt) < open-100*time.Millisecond {
			t.Fatalf("request %s after the breaker opened, before the open period ended", h.at.Sub(openedAt))
		}
	}
	eventually(t, "all five delivered", func() bool {
		got := map[string]bool{}
		for _, row := range sink.forEndpoint(ep.ID) {
			if row.Outcome == analytics.OutcomeDelivered {
				got[row.EventID] = true
			}
		}
		return len(got) == 5
	})
	if n := len(r.got()); n < 7 {
		t.Fatalf("receiver saw %d requests", n)
	}
	// Requests 3 and 4 are the two probes that close the breaker: one at
	// a time, the first after the open period.
	mu.Lock()
	slices.SortFunc(spans, func(a, b [2]time.Time) int { return a[0].Compare(b[0]) })
	if p1, p2 := spans[2], spans[3]; p2[0].Before(p1[1]) {
		t.Errorf("probes overlap: %v and %v", p1, p2)
	}
	if wait := spans[2][0].Sub(openedAt); wait < open-100*time.Millisecond {
		t.Errorf("first probe %s after opening, open period %s", wait, open)
	}
	mu.Unlock()
	for _, tr := range [][2]string{{"closed", "open"}, {"open", "half-open"}, {"half-open", "closed"}} {
		if n := counter2(t, reg, "vitals_webhook_breaker_transitions_total", tr[0], tr[1]); n < 1 {
			t.Errorf("transition %s→%s counted %v times", tr[0], tr[1], n)
		}
	}
	if g := gauge(t, reg, "vitals_webhook_breakers", "closed"); g != 1 {
		t.Errorf("closed breakers gauge %v", g)
	}
	if g := gauge(t, reg, "vitals_webhook_breaker_state", ep.ID); g != 0 {
		t.Errorf("breaker state of %s: %v, want 0 (closed)", ep.ID, g)
	}
	stop()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	changes, err := w.StateChanges(ctx, ep.ID)
	if err != nil {
		t.Fatal(err)
	}
	seq := chainOrder(changes)
	if len(seq) < 3 || seq[0] != "closed→open" || seq[1] != "open→half-open" || seq[len(seq)-1] != "half-open→closed" {
		t.Fatalf("state changes in ClickHouse: %v", seq)
	}
	eventually(t, "attempt rows in ClickHouse", func() bool {
		n, err := w.CountAttempts(ctx, "evt_br_1")
		return err == nil && n >= 2
	})
}

// chainOrder returns the transitions of changes (as ClickHouse returns
// them: by timestamp, which it keeps to the second) as "from→to", with
// changes of the same second put back in chain order: each starts in the
// state the previous one ended in.
func chainOrder(changes []analytics.EndpointStateChange) []string {
	rest := slices.Clone(changes)
	var seq []string
	state := "closed"
	for len(rest) > 0 {
		i := slices.IndexFunc(rest, func(c analytics.EndpointStateChange) bool {
			return c.From == state && c.Timestamp.Equal(rest[0].Timestamp)
		})
		i = max(i, 0)
		seq = append(seq, rest[i].From+"→"+rest[i].To)
		state = rest[i].To
		rest = slices.Delete(rest, i, i+1)
	}
	return seq
}

// multiSink appends to several sinks.
type multiSink []dispatcher.AttemptSink

func (m multiSink) Append(ctx context.Context, a analytics.WebhookAttempt) error {
	for _, s := range m {
		if err := s.Append(ctx, a); err != nil {
			return err
		}
	}
	return nil
}

func gauge(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == label {
					return m.GetGauge().GetValue()
				}
			}
		}
	}
	return 0
}

func counter2(t *testing.T, reg *prometheus.Registry, name, l1, l2 string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name {
			for _, m := range mf.GetMetric() {
				if m.GetLabel()[0].GetValue() == l1 && m.GetLabel()[1].GetValue() == l2 {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// TestIsolationSlowEndpoint: one endpoint takes 10 s per request; a second
// endpoint subscribed to the same events keeps a low delivery latency.
func TestIsolationSlowEndpoint(t *testing.T) {
	e := newEnv(t)
	slow := newReceiver(t, ok)
	slow.hold = make(chan struct{})
	defer close(slow.hold)
	inner := slow.srv.Config.Handler
	slow.srv.Config.Handler = http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		select {
		case <-time.After(10 * time.Second):
		case <-req.Context().Done():
			return
		}
		inner.ServeHTTP(w, req)
	})
	fast := newReceiver(t, ok)
	epSlow := newEndpoint(t, "ep_slow10", slow, "*")
	epSlow.MaxInFlight = 2
	epFast := newEndpoint(t, "ep_fast", fast, "*")
	e.start(staticEndpoints{epSlow, epFast}, dispatcher.WithDeliveryTimeout(15*time.Second),
		dispatcher.WithRetrySchedule(5*time.Second))
	const n = 200
	sent := make(map[string]time.Time, n)
	for i := range n {
		id := "evt_iso_" + time.Now().Format("150405") + "_" + string(rune('A'+i%26)) + string(rune('a'+i/26))
		sent[id] = time.Now()
		e.produce(churn(id))
	}
	eventually(t, "fast endpoint got every event", func() bool { return len(fast.got()) >= n })
	var lat []time.Duration
	for _, h := range fast.got() {
		lat = append(lat, h.at.Sub(sent[h.header.Get("webhook-id")]))
	}
	sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
	p99 := lat[len(lat)*99/100]
	t.Logf("fast endpoint delivery latency beside a 10 s endpoint: p50 %s, p99 %s, max %s (n=%d)",
		lat[len(lat)/2], p99, lat[len(lat)-1], len(lat))
	if p99 > 200*time.Millisecond {
		t.Fatalf("p99 %s > 200ms", p99)
	}
	if got := len(slow.got()); got > 2 {
		t.Fatalf("slow endpoint saw %d concurrent requests, cap 2", got)
	}
}

var _ = kgo.Record{}
