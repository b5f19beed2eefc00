package dashboard_test

import (
	"encoding/json"
	"math"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vitalshq/vitals/dashboard"
	"github.com/vitalshq/vitals/health"
)

// pipelineMetrics are collectors named and labelled as the stages register
// theirs (dispatcher, rate limiter, processor), in a real registry.
type pipelineMetrics struct {
	reg          *prometheus.Registry
	deliveries   *prometheus.CounterVec
	attempts     *prometheus.CounterVec
	latency      *prometheus.HistogramVec
	breakers     *prometheus.GaugeVec
	breakerState *prometheus.GaugeVec
	decisions    *prometheus.CounterVec
	lag          *prometheus.GaugeVec
}

func newPipelineMetrics(t *testing.T) *pipelineMetrics {
	m := &pipelineMetrics{
		reg: prometheus.NewRegistry(),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vitals_webhook_deliveries_total", Help: "h"},
			[]string{"outcome"}),
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vitals_webhook_attempts_total", Help: "h"},
			[]string{"outcome", "error_class"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vitals_webhook_attempt_duration_seconds", Help: "h",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30}}, []string{"outcome", "endpoint_id"}),
		breakers: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vitals_webhook_breakers", Help: "h"}, []string{"state"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vitals_webhook_breaker_state", Help: "h"},
			[]string{"endpoint_id"}),
		decisions: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "vitals_ratelimit_decisions_total", Help: "h"},
			[]string{"class", "decision"}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vitals_processor_consumer_lag", Help: "h"}, []string{"partition"}),
	}
	m.reg.MustRegister(m.deliveries, m.attempts, m.latency, m.breakers, m.breakerState, m.decisions, m.lag)
	return m
}

// attempt records n attempts of one endpoint taking d each.
func (m *pipelineMetrics) attempt(endpoint, outcome string, n int, d time.Duration) {
	for range n {
		m.attempts.WithLabelValues(outcome, "").Inc()
		m.latency.WithLabelValues(outcome, endpoint).Observe(d.Seconds())
	}
}

type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// readModel is a fixed health aggregate.
type readModel struct{}

func (readModel) Bands() map[string]int { return map[string]int{"green": 7, "yellow": 2, "red": 1} }
func (readModel) RecentChurn() []health.ChurnAlert {
	return []health.ChurnAlert{{CustomerID: "cus_1", EventID: "evt_1", RiskLevel: "high", Indicators: []string{"usage_drop"}, Score: 31}}
}

func getSnapshot(t *testing.T, url string) dashboard.Snapshot {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "application/json" || resp.Header.Get("Cache-Control") != "no-store" {
		t.Fatalf("GET stats: %s %v", resp.Status, resp.Header)
	}
	var s dashboard.Snapshot
	if err := json.NewDecoder(resp.Body).Decode(&s); err != nil {
		t.Fatal(err)
	}
	return s
}

func near(a, b float64) bool { return math.Abs(a-b) < 1e-6 }

func TestStatsFromRegistry(t *testing.T) {
	m := newPipelineMetrics(t)
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	srv := httptest.NewServer(dashboard.NewStats(m.reg, readModel{}, dashboard.WithClock(clk.now), dashboard.WithWindow(30*time.Second)))
	defer srv.Close()

	m.deliveries.WithLabelValues("delivered").Add(8)
	m.deliveries.WithLabelValues("exhausted").Add(2)
	m.attempt("ep_fast", "delivered", 100, 20*time.Millisecond)
	m.attempt("ep_slow", "failed", 20, 300*time.Millisecond)
	m.attempts.WithLabelValues("circuit_open", "").Add(50) // not sent: not in the success rate
	m.breakers.WithLabelValues("closed").Set(1)
	m.breakers.WithLabelValues("open").Set(1)
	m.breakerState.WithLabelValues("ep_fast").Set(0)
	m.breakerState.WithLabelValues("ep_slow").Set(2)
	m.decisions.WithLabelValues("standard", "allowed").Add(100)
	m.decisions.WithLabelValues("standard", "limited").Add(3)
	m.decisions.WithLabelValues("bulk", "fail_closed").Add(1)
	m.lag.WithLabelValues("0").Set(5)
	m.lag.WithLabelValues("1").Set(7)

	s := getSnapshot(t, srv.URL)
	if s.Deliveries.PerSecond != nil || s.RateLimit.RejectedPerSecond != nil || len(s.History) != 0 {
		t.Fatalf("first sample has rates: %+v", s)
	}
	if s.Deliveries.Total != 10 || s.Deliveries.Delivered != 8 || s.Deliveries.Exhausted != 2 || s.Deliveries.Attempts != 170 {
		t.Fatalf("totals: %+v", s.Deliveries)
	}
	if s.WindowSeconds != 0 || s.Deliveries.SuccessRate == nil || !near(*s.Deliveries.SuccessRate, 100.0/120) {
		t.Fatalf("success since start: window %v rate %v", s.WindowSeconds, s.Deliveries.SuccessRate)
	}
	// p95 interpolated within the bucket like histogram_quantile: all of
	// ep_fast's attempts are in (0.01, 0.025], ep_slow's in (0.25, 0.5].
	if len(s.Latency) != 2 || s.Latency[0].Endpoint != "ep_slow" || !near(s.Latency[0].P95Seconds, 0.25+0.25*0.95) ||
		s.Latency[1].Endpoint != "ep_fast" || !near(s.Latency[1].P95Seconds, 0.01+0.015*0.95) || s.Latency[1].Attempts != 100 {
		t.Fatalf("latency: %+v", s.Latency)
	}
	if s.Breakers.Closed != 1 || s.Breakers.Open != 1 || len(s.Breakers.NotClosed) != 1 ||
		s.Breakers.NotClosed[0] != (dashboard.EndpointBreaker{Endpoint: "ep_slow", State: "open"}) {
		t.Fatalf("breakers: %+v", s.Breakers)
	}
	if s.RateLimit.RejectedTotal != 4 || s.RateLimit.ByClass["standard"] != 3 || s.RateLimit.ByClass["bulk"] != 1 {
		t.Fatalf("rate limit: %+v", s.RateLimit)
	}
	if len(s.ConsumerLag) != 1 || s.ConsumerLag[0] != (dashboard.GroupLag{Group: "processor", Lag: 12}) {
		t.Fatalf("lag: %+v", s.ConsumerLag)
	}
	if s.HealthBands["green"] != 7 || len(s.ChurnAlerts) != 1 || s.ChurnAlerts[0].CustomerID != "cus_1" {
		t.Fatalf("health: %v %+v", s.HealthBands, s.ChurnAlerts)
	}

	// Two seconds later: rates over the two seconds, success and latency
	// over the new attempts only.
	clk.advance(2 * time.Second)
	m.deliveries.WithLabelValues("delivered").Add(10)
	m.attempt("ep_fast", "delivered", 9, 40*time.Millisecond)
	m.attempt("ep_fast", "failed", 1, 40*time.Millisecond)
	m.decisions.WithLabelValues("realtime", "limited").Add(4)
	s = getSnapshot(t, srv.URL)
	if s.Deliveries.PerSecond == nil || *s.Deliveries.PerSecond != 5 || *s.Deliveries.AttemptsPerSecond != 5 || *s.RateLimit.RejectedPerSecond != 2 {
		t.Fatalf("rates: %+v %+v", s.Deliveries, s.RateLimit)
	}
	if s.WindowSeconds != 2 || !near(*s.Deliveries.SuccessRate, 0.9) {
		t.Fatalf("windowed success: %v %v", s.WindowSeconds, *s.Deliveries.SuccessRate)
	}
	if len(s.Latency) != 1 || s.Latency[0].Endpoint != "ep_fast" || s.Latency[0].Attempts != 10 || !near(s.Latency[0].P95Seconds, 0.025+0.025*0.95) {
		t.Fatalf("windowed latency: %+v", s.Latency)
	}
	if len(s.History) != 1 || s.History[0].DeliveriesPerSecond != 5 || s.History[0].RejectedPerSecond != 2 || s.History[0].Lag != 12 {
		t.Fatalf("history: %+v", s.History)
	}

	// Within a second: the same sample is shared, nothing new in history.
	clk.advance(300 * time.Millisecond)
	if s2 := getSnapshot(t, srv.URL); len(s2.History) != 1 || !s2.At.Equal(s.At) {
		t.Fatalf("resampled within a second: %+v", s2.History)
	}

	// The cluster's view of consumer lag replaces the stages' own.
	cluster := prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "vitals_consumer_lag", Help: "h"}, []string{"group", "topic"})
	m.reg.MustRegister(cluster)
	cluster.WithLabelValues("vitals-processor", "vitals.customer-events.v1").Set(40)
	cluster.WithLabelValues("vitals-dispatcher", "vitals.critical.v1").Set(1)
	cluster.WithLabelValues("vitals-dispatcher", "vitals.expansion.v1").Set(2)
	clk.advance(time.Second)
	s = getSnapshot(t, srv.URL)
	if len(s.ConsumerLag) != 2 || s.ConsumerLag[0] != (dashboard.GroupLag{Group: "vitals-dispatcher", Lag: 3}) ||
		s.ConsumerLag[1] != (dashboard.GroupLag{Group: "vitals-processor", Lag: 40}) {
		t.Fatalf("cluster lag: %+v", s.ConsumerLag)
	}
}

// TestStatsWindowAndHistoryBounds polls for longer than the window and
// the history span: the window slides, the history stays bounded, and a
// quiet spell longer than the history forgets the rates.
func TestStatsWindowAndHistoryBounds(t *testing.T) {
	m := newPipelineMetrics(t)
	clk := &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)}
	st := dashboard.NewStats(m.reg, nil, dashboard.WithClock(clk.now), dashboard.WithWindow(10*time.Second))
	m.attempt("ep_a", "failed", 10, 10*time.Millisecond) // old failures, outside the window later
	var s dashboard.Snapshot
	for range 200 { // 400 s at a poll every 2 s
		clk.advance(2 * time.Second)
		m.attempt("ep_a", "delivered", 1, 10*time.Millisecond)
		m.deliveries.WithLabelValues("delivered").Inc()
		s = st.Snapshot()
	}
	if s.WindowSeconds != 10 || *s.Deliveries.SuccessRate != 1 || s.Latency[0].Attempts != 5 {
		t.Fatalf("window: %v s, success %v, latency %+v", s.WindowSeconds, *s.Deliveries.SuccessRate, s.Latency)
	}
	if *s.Deliveries.PerSecond != 0.5 {
		t.Fatalf("rate %v, want 0.5/s", *s.Deliveries.PerSecond)
	}
	if n := len(s.History); n != 150 { // five minutes of samples 2 s apart
		t.Fatalf("history has %d points", n)
	}
	if len(s.HealthBands) != 0 || s.ChurnAlerts == nil {
		t.Fatalf("no read model: %v %v", s.HealthBands, s.ChurnAlerts)
	}
	clk.advance(10 * time.Minute)
	if s = st.Snapshot(); s.Deliveries.PerSecond != nil || len(s.History) != 0 {
		t.Fatalf("after a quiet spell: rate %v, %d points", s.Deliveries.PerSecond, len(s.History))
	}
}

func TestStatsRejectsOtherMethods(t *testing.T) {
	srv := httptest.NewServer(dashboard.NewStats(prometheus.NewRegistry(), nil))
	defer srv.Close()
	resp, err := http.Post(srv.URL, "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusMethodNotAllowed {
		t.Fatalf("POST: %s", resp.Status)
	}
}

// Attempts slower than the highest bucket are reported at that bound, as
// histogram_quantile does; a histogram without an endpoint label is one
// row for all endpoints.
func TestStatsLatencyBeyondTheBuckets(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "vitals_webhook_attempt_duration_seconds", Help: "h",
		Buckets: []float64{.1, 1, 30}}, []string{"outcome"})
	reg.MustRegister(h)
	for range 10 {
		h.WithLabelValues("failed").Observe(60)
	}
	h.WithLabelValues("delivered").Observe(.05)
	s := dashboard.NewStats(reg, nil).Snapshot()
	if len(s.Latency) != 1 || s.Latency[0].Endpoint != "" || s.Latency[0].P95Seconds != 30 || s.Latency[0].Attempts != 11 {
		t.Fatalf("latency: %+v", s.Latency)
	}
}
