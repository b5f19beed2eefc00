package dashboard

import (
	"cmp"
	"encoding/json"
	"log/slog"
	"math"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vitalshq/vitals/health"
	"github.com/vitalshq/vitals/problem"
)

// Health is the aggregate view of the health read model (package health's
// Reader): customers per band and the latest churn alerts.
type Health interface {
	Bands() map[string]int
	RecentChurn() []health.ChurnAlert
}

// The metrics Stats reads, as the stages register them.
const (
	metricDeliveries   = "vitals_webhook_deliveries_total"         // {outcome}: finished deliveries
	metricAttempts     = "vitals_webhook_attempts_total"           // {outcome, error_class}
	metricLatency      = "vitals_webhook_attempt_duration_seconds" // histogram; per endpoint when labelled so
	metricBreakers     = "vitals_webhook_breakers"                 // {state}: endpoints per breaker state
	metricBreakerState = "vitals_webhook_breaker_state"            // {endpoint_id}: 0 closed, 1 half-open, 2 open
	metricRateLimit    = "vitals_ratelimit_decisions_total"        // {class, decision}
	// metricConsumerLag is the lag of every consumer group as the cluster
	// reports it; without it, each stage's own *_consumer_lag gauges.
	metricConsumerLag = "vitals_consumer_lag" // {group, topic}
	lagSuffix         = "_consumer_lag"

	outcomeDelivered   = "delivered"    // analytics.OutcomeDelivered
	outcomeExhausted   = "exhausted"    // analytics.OutcomeExhausted
	outcomeCircuitOpen = "circuit_open" // analytics.OutcomeCircuitOpen: not sent
)

// Defaults of the sampling spans (see WithWindow).
const (
	// DefaultWindow is the span the success rate and the p95 latencies
	// are computed over.
	DefaultWindow = time.Minute
	// rateSpan is the span rates (per second) are averaged over: long
	// enough to smooth one poll's jitter, short enough to look live.
	rateSpan = 10 * time.Second
	// minGap is the least time between two samples: viewers polling at
	// once share one.
	minGap = time.Second
	// keepSpan is how far back samples are kept: the sparklines' length.
	keepSpan = 5 * time.Minute
	// maxSamples bounds the history whatever the polling rate.
	maxSamples = 300
	// maxLatencyRows bounds the per-endpoint latency table (slowest first).
	maxLatencyRows = 20
)

// Option configures Stats.
type Option func(*Stats)

// WithWindow sets the span of the success rate and p95 latencies (default
// DefaultWindow, at most five minutes).
func WithWindow(d time.Duration) Option {
	return func(s *Stats) {
		if d > 0 {
			s.window = min(d, keepSpan)
		}
	}
}

// WithClock sets the clock samples are timed by (tests).
func WithClock(now func() time.Time) Option { return func(s *Stats) { s.now = now } }

// WithLogger sets the logger for metrics that cannot be gathered.
func WithLogger(l *slog.Logger) Option { return func(s *Stats) { s.log = l } }

// Stats computes the dashboard's figures from a Prometheus registry and the
// health read model, and serves them as JSON (GET /v1/dashboard/stats).
//
// It samples the registry when asked, at most once a second, and keeps the
// samples of the last five minutes to turn counters into rates and
// histograms into windowed quantiles: there is no goroutine, and with no
// viewer nothing is gathered. The first request after a quiet spell has no
// earlier sample, so its rates are null.
type Stats struct {
	gatherer prometheus.Gatherer
	health   Health
	now      func() time.Time
	window   time.Duration
	log      *slog.Logger

	mu      sync.Mutex
	samples []sample // oldest first
}

// NewStats returns Stats over the metrics of g and, when h is not nil, the
// health read model h.
func NewStats(g prometheus.Gatherer, h Health, opts ...Option) *Stats {
	s := &Stats{gatherer: g, health: h, now: time.Now, window: DefaultWindow, log: slog.Default()}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Snapshot is what GET /v1/dashboard/stats answers.
type Snapshot struct {
	At time.Time `json:"at"`
	// WindowSeconds is the span SuccessRate and Latency cover: up to the
	// configured window, less while fewer samples were taken; 0 means
	// since the process started.
	WindowSeconds float64             `json:"window_seconds"`
	Deliveries    Deliveries          `json:"deliveries"`
	Latency       []EndpointLatency   `json:"latency"`
	Breakers      Breakers            `json:"breakers"`
	ConsumerLag   []GroupLag          `json:"consumer_lag"`
	RateLimit     RateLimit           `json:"rate_limit"`
	HealthBands   map[string]int      `json:"health_bands"`
	ChurnAlerts   []health.ChurnAlert `json:"churn_alerts"`
	// History has one point per pair of consecutive samples of the last
	// five minutes, oldest first: the sparklines.
	History []Point `json:"history"`
}

// Deliveries are the webhook figures. Rates are per second over the latest
// ten seconds and null until two samples exist.
type Deliveries struct {
	// PerSecond counts finished deliveries: delivered, or exhausted after
	// the last retry.
	PerSecond         *float64 `json:"per_second"`
	AttemptsPerSecond *float64 `json:"attempts_per_second"`
	// SuccessRate is delivered attempts over attempts sent (not those the
	// breaker refused) in the window; null without attempts.
	SuccessRate *float64 `json:"success_rate"`
	// Totals since the process started.
	Total     float64 `json:"total"`
	Delivered float64 `json:"delivered"`
	Exhausted float64 `json:"exhausted"`
	Attempts  float64 `json:"attempts"`
}

// EndpointLatency is the 95th percentile latency of one endpoint's attempts
// in the window. Endpoint is "" when the latency metric is not labelled by
// endpoint: then it is the p95 of all endpoints.
type EndpointLatency struct {
	Endpoint   string  `json:"endpoint"`
	P95Seconds float64 `json:"p95_seconds"`
	Attempts   float64 `json:"attempts"`
}

// Breakers counts the endpoints of each circuit breaker state and lists
// those not closed.
type Breakers struct {
	Closed    int               `json:"closed"`
	HalfOpen  int               `json:"half_open"`
	Open      int               `json:"open"`
	NotClosed []EndpointBreaker `json:"not_closed"`
}

// EndpointBreaker is the breaker state of one endpoint: "open" or
// "half-open".
type EndpointBreaker struct {
	Endpoint string `json:"endpoint"`
	State    string `json:"state"`
}

// GroupLag is how many records a consumer group is behind, summed over its
// partitions.
type GroupLag struct {
	Group string  `json:"group"`
	Lag   float64 `json:"lag"`
}

// RateLimit counts requests refused by the rate limiter (limited, or
// refused because the store failed and the class fails closed).
type RateLimit struct {
	RejectedPerSecond *float64           `json:"rejected_per_second"`
	RejectedTotal     float64            `json:"rejected_total"`
	ByClass           map[string]float64 `json:"by_class"`
}

// Point is one step of the history.
type Point struct {
	At                  time.Time `json:"at"`
	DeliveriesPerSecond float64   `json:"deliveries_per_second"`
	AttemptsPerSecond   float64   `json:"attempts_per_second"`
	SuccessRate         *float64  `json:"success_rate"`
	RejectedPerSecond   float64   `json:"rejected_per_second"`
	Lag                 float64   `json:"lag"`
}

// ServeHTTP answers GET /v1/dashboard/stats with the current Snapshot.
func (s *Stats) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		problem.Write(w, r, problem.New(http.StatusMethodNotAllowed, "method-not-allowed", "the dashboard stats are read with GET"))
		return
	}
	b, err := json.Marshal(s.Snapshot())
	if err != nil {
		problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal", "the dashboard stats could not be encoded; it was logged"))
		s.log.Error("dashboard: encode stats", "err", err)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_, _ = w.Write(append(b, '\n'))
}

// Snapshot samples the registry (unless a sample was taken within the last
// second) and returns the figures.
func (s *Stats) Snapshot() Snapshot {
	now := s.now()
	s.mu.Lock()
	if n := len(s.samples); n == 0 || now.Sub(s.samples[n-1].at) >= minGap || now.Before(s.samples[n-1].at) {
		s.add(s.gather(now))
	}
	snap := s.compute()
	s.mu.Unlock()

	snap.HealthBands = map[string]int{}
	snap.ChurnAlerts = []health.ChurnAlert{}
	if s.health != nil {
		snap.HealthBands = s.health.Bands()
		if a := s.health.RecentChurn(); a != nil {
			snap.ChurnAlerts = a
		}
	}
	return snap
}

// add appends x and drops the samples that are too old or too many.
func (s *Stats) add(x sample) {
	// A clock going backwards starts the history afresh.
	if n := len(s.samples); n > 0 && x.at.Before(s.samples[n-1].at) {
		s.samples = s.samples[:0]
	}
	s.samples = append(s.samples, x)
	cut := 0
	for cut < len(s.samples)-1 && (x.at.Sub(s.samples[cut].at) > keepSpan || len(s.samples)-cut > maxSamples) {
		cut++
	}
	s.samples = slices.Delete(s.samples, 0, cut)
}

// compute derives the figures from the samples (at least one).
func (s *Stats) compute() Snapshot {
	last := s.samples[len(s.samples)-1]
	snap := Snapshot{
		At: last.at,
		Deliveries: Deliveries{
			Total: sum(last.deliveries), Delivered: last.deliveries[outcomeDelivered],
			Exhausted: last.deliveries[outcomeExhausted], Attempts: sum(last.attempts),
		},
		Breakers: Breakers{
			Closed: int(last.breakers["closed"]), HalfOpen: int(last.breakers["half-open"]),
			Open: int(last.breakers["open"]), NotClosed: []EndpointBreaker{},
		},
		RateLimit: RateLimit{RejectedTotal: sum(last.rejected), ByClass: last.rejected},
	}
	if snap.RateLimit.ByClass == nil {
		snap.RateLimit.ByClass = map[string]float64{}
	}
	// Rates over the latest rateSpan (or what there is of it).
	if base, ok := s.before(rateSpan); ok {
		dt := last.at.Sub(base.at).Seconds()
		snap.Deliveries.PerSecond = ptr(delta(sum(last.deliveries), sum(base.deliveries)) / dt)
		snap.Deliveries.AttemptsPerSecond = ptr(delta(sum(last.attempts), sum(base.attempts)) / dt)
		snap.RateLimit.RejectedPerSecond = ptr(delta(sum(last.rejected), sum(base.rejected)) / dt)
	}
	// Success rate and latency over the window, or since start.
	base, ok := s.before(s.window)
	if ok {
		snap.WindowSeconds = last.at.Sub(base.at).Seconds()
	} else {
		base = sample{}
	}
	snap.Deliveries.SuccessRate = successRate(last, base)
	snap.Latency = latencies(last, base)

	for id, v := range last.breakerOf {
		switch v {
		case 1:
			snap.Breakers.NotClosed = append(snap.Breakers.NotClosed, EndpointBreaker{Endpoint: id, State: "half-open"})
		case 2:
			snap.Breakers.NotClosed = append(snap.Breakers.NotClosed, EndpointBreaker{Endpoint: id, State: "open"})
		}
	}
	slices.SortFunc(snap.Breakers.NotClosed, func(a, b EndpointBreaker) int {
		return cmp.Or(cmp.Compare(b.State, a.State), cmp.Compare(a.Endpoint, b.Endpoint)) // open first
	})
	snap.ConsumerLag = []GroupLag{}
	for g, v := range last.lag {
		snap.ConsumerLag = append(snap.ConsumerLag, GroupLag{Group: g, Lag: v})
	}
	slices.SortFunc(snap.ConsumerLag, func(a, b GroupLag) int { return cmp.Compare(a.Group, b.Group) })

	snap.History = make([]Point, 0, len(s.samples)-1)
	for i := 1; i < len(s.samples); i++ {
		a, b := s.samples[i-1], s.samples[i]
		dt := b.at.Sub(a.at).Seconds()
		snap.History = append(snap.History, Point{
			At:                  b.at,
			DeliveriesPerSecond: delta(sum(b.deliveries), sum(a.deliveries)) / dt,
			AttemptsPerSecond:   delta(sum(b.attempts), sum(a.attempts)) / dt,
			SuccessRate:         successRate(b, a),
			RejectedPerSecond:   delta(sum(b.rejected), sum(a.rejected)) / dt,
			Lag:                 sum(b.lag),
		})
	}
	return snap
}

// before returns the sample to measure a span d back from the latest: the
// newest one at least d older, else the oldest; false when there is only
// the latest.
func (s *Stats) before(d time.Duration) (sample, bool) {
	n := len(s.samples)
	if n < 2 {
		return sample{}, false
	}
	last := s.samples[n-1].at
	for i := n - 2; i >= 0; i-- {
		if last.Sub(s.samples[i].at) >= d {
			return s.samples[i], true
		}
	}
	return s.samples[0], true
}

// successRate is delivered attempts over attempts sent between base and
// last; nil when none was sent.
func successRate(last, base sample) *float64 {
	var sent, ok float64
	for outcome, v := range last.attempts {
		d := delta(v, base.attempts[outcome])
		if outcome == outcomeCircuitOpen {
			continue
		}
		sent += d
		if outcome == outcomeDelivered {
			ok += d
		}
	}
	if sent == 0 {
		return nil
	}
	return ptr(ok / sent)
}

// latencies returns the p95 of each endpoint with attempts between base
// and last, slowest first.
func latencies(last, base sample) []EndpointLatency {
	out := []EndpointLatency{}
	for ep, h := range last.latency {
		d := h.minus(base.latency[ep])
		if d.count <= 0 {
			continue
		}
		out = append(out, EndpointLatency{Endpoint: ep, P95Seconds: d.quantile(0.95), Attempts: d.count})
	}
	slices.SortFunc(out, func(a, b EndpointLatency) int {
		return cmp.Or(cmp.Compare(b.P95Seconds, a.P95Seconds), cmp.Compare(a.Endpoint, b.Endpoint))
	})
	if len(out) > maxLatencyRows {
		out = out[:maxLatencyRows]
	}
	return out
}

// sample is what the registry held at one time.
type sample struct {
	at         time.Time
	deliveries map[string]float64   // by outcome
	attempts   map[string]float64   // by outcome
	latency    map[string]histogram // by endpoint id ("" when not labelled)
	breakers   map[string]float64   // endpoints by state
	breakerOf  map[string]float64   // endpoint id → 0 closed, 1 half-open, 2 open
	lag        map[string]float64   // consumer group → records behind
	rejected   map[string]float64   // rate-limit rejections by class
}

// gather takes a sample of the registry. Families that fail to gather are
// logged and left out: the page shows what there is.
func (s *Stats) gather(now time.Time) sample {
	x := sample{at: now, deliveries: map[string]float64{}, attempts: map[string]float64{},
		latency: map[string]histogram{}, breakers: map[string]float64{}, breakerOf: map[string]float64{},
		lag: map[string]float64{}, rejected: map[string]float64{}}
	families, err := s.gatherer.Gather()
	if err != nil {
		s.log.Warn("dashboard: gathering metrics", "err", err)
	}
	clusterLag := slices.ContainsFunc(families, func(f *dto.MetricFamily) bool {
		return f.GetName() == metricConsumerLag && len(f.GetMetric()) > 0
	})
	for _, f := range families {
		name := f.GetName()
		for _, m := range f.GetMetric() {
			switch {
			case name == metricDeliveries:
				x.deliveries[label(m, "outcome")] += m.GetCounter().GetValue()
			case name == metricAttempts:
				x.attempts[label(m, "outcome")] += m.GetCounter().GetValue()
			case name == metricLatency && m.GetHistogram() != nil:
				ep := cmp.Or(label(m, "endpoint_id"), label(m, "endpoint"))
				x.latency[ep] = x.latency[ep].plus(histogramOf(m.GetHistogram()))
			case name == metricBreakers:
				x.breakers[label(m, "state")] += m.GetGauge().GetValue()
			case name == metricBreakerState:
				x.breakerOf[label(m, "endpoint_id")] = m.GetGauge().GetValue()
			case name == metricRateLimit:
				if d := label(m, "decision"); d == "limited" || d == "fail_closed" {
					x.rejected[label(m, "class")] += m.GetCounter().GetValue()
				}
			case name == metricConsumerLag:
				x.lag[label(m, "group")] += m.GetGauge().GetValue()
			case !clusterLag && strings.HasSuffix(name, lagSuffix):
				// A stage's own view of its lag: vitals_processor_consumer_lag
				// is the processor's group.
				g := label(m, "group")
				if g == "" {
					g = strings.TrimSuffix(strings.TrimPrefix(name, "vitals_"), lagSuffix)
				}
				x.lag[g] += m.GetGauge().GetValue()
			}
		}
	}
	return x
}

func label(m *dto.Metric, name string) string {
	for _, l := range m.GetLabel() {
		if l.GetName() == name {
			return l.GetValue()
		}
	}
	return ""
}

// histogram is a cumulative histogram: counts of observations at or below
// each upper bound (ascending; +Inf implicit, its count is count).
type histogram struct {
	count  float64
	bounds []float64
	cum    []float64
}

func histogramOf(h *dto.Histogram) histogram {
	out := histogram{count: float64(h.GetSampleCount())}
	for _, b := range h.GetBucket() {
		if math.IsInf(b.GetUpperBound(), 1) {
			continue
		}
		out.bounds = append(out.bounds, b.GetUpperBound())
		out.cum = append(out.cum, float64(b.GetCumulativeCount()))
	}
	return out
}

// plus adds o to h; the series of one family share their bounds (o is
// dropped when they do not).
func (h histogram) plus(o histogram) histogram {
	if h.bounds == nil && h.count == 0 {
		return o
	}
	if !slices.Equal(h.bounds, o.bounds) {
		return h
	}
	cum := slices.Clone(h.cum)
	for i := range cum {
		cum[i] += o.cum[i]
	}
	return histogram{count: h.count + o.count, bounds: h.bounds, cum: cum}
}

// minus returns the observations h has that base had not.
func (h histogram) minus(base histogram) histogram {
	if base.count == 0 || !slices.Equal(h.bounds, base.bounds) {
		return h
	}
	cum := slices.Clone(h.cum)
	for i := range cum {
		cum[i] = delta(cum[i], base.cum[i])
	}
	return histogram{count: delta(h.count, base.count), bounds: h.bounds, cum: cum}
}

// quantile estimates the q-quantile as Prometheus' histogram_quantile
// does: linear interpolation within the bucket holding the rank; the
// highest finite bound when the rank falls in the +Inf bucket.
func (h histogram) quantile(q float64) float64 {
	if h.count == 0 || len(h.bounds) == 0 {
		return 0
	}
	rank := q * h.count
	lower, below := 0.0, 0.0
	for i, upper := range h.bounds {
		if h.cum[i] >= rank {
			in := h.cum[i] - below
			if in <= 0 {
				return upper
			}
			return lower + (upper-lower)*(rank-below)/in
		}
		lower, below = upper, h.cum[i]
	}
	return h.bounds[len(h.bounds)-1]
}

// delta is the increase of a counter from base to v; a counter never
// decreases in one process, so a negative difference is a reset and
// counts as v.
func delta(v, base float64) float64 {
	if v < base {
		return v
	}
	return v - base
}

func sum(m map[string]float64) float64 {
	var t float64
	for _, v := range m {
		t += v
	}
	return t
}

func ptr(f float64) *float64 { return &f }
