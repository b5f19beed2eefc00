package alerting

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/topics"
)

// DefaultInterval is how often an Evaluator reads the metrics: the scrape
// interval Prometheus is usually given, so both see the same figures.
const DefaultInterval = 15 * time.Second

// ErrAlreadyRunning is returned by Run when the Evaluator is running or has
// run: its alert state belongs to one loop.
var ErrAlreadyRunning = errors.New("alerting: Run called twice")

// writeTimeout bounds one write of alert events to Kafka.
const writeTimeout = 10 * time.Second

// Event is the JSON body of an alert's operational event on
// topics.Operational (record key: Key). ID is the webhook-id: derived from
// Type, Key and ActiveSince, so the same transition written twice has one
// id and receivers de-duplicate it.
type Event struct {
	ID          string            `json:"id"`
	Type        string            `json:"type"` // endpoint.OpAlertFiring or endpoint.OpAlertResolved
	Alert       string            `json:"alert"`
	Key         string            `json:"key"` // the alert and its series' labels: one firing and one resolved per episode
	Severity    string            `json:"severity"`
	Summary     string            `json:"summary"`
	Labels      map[string]string `json:"labels,omitempty"`
	EndpointID  string            `json:"endpoint_id,omitempty"` // the endpoint_id label, for endpoint alerts
	Value       float64           `json:"value"`                 // the metric's value (Above) or its growth (Growth)
	Threshold   float64           `json:"threshold"`
	ActiveSince time.Time         `json:"active_since"` // when the condition began to hold
	Timestamp   time.Time         `json:"timestamp"`
}

// Option configures an Evaluator.
type Option func(*config)

type config struct {
	rules    []Rule
	interval time.Duration
	log      *slog.Logger
	reg      prometheus.Registerer
}

// WithRules sets the rules (default DefaultRules()).
func WithRules(rules ...Rule) Option { return func(c *config) { c.rules = slices.Clone(rules) } }

// WithInterval sets how often the metrics are read (default
// DefaultInterval). A rule's For and Window are measured in wall time, not
// in intervals.
func WithInterval(d time.Duration) Option { return func(c *config) { c.interval = d } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithRegisterer registers the Evaluator's own metrics (alerts firing,
// events written, failed writes) with reg.
func WithRegisterer(reg prometheus.Registerer) Option { return func(c *config) { c.reg = reg } }

// sample is one reading of a series.
type sample struct {
	at    time.Time
	value float64
}

// series is what the Evaluator knows of one alert (rule x series).
type series struct {
	rule    *Rule
	key     string
	labels  map[string]string
	history []sample  // Growth: readings covering the window
	value   float64   // the last reading's value, as reported
	since   time.Time // the condition holds since; zero while it does not
	fired   time.Time // ActiveSince of the announced firing; zero when none is announced
	seen    bool      // read in the current evaluation
}

// Evaluator checks Rules against a Gatherer and writes an event per alert
// transition to topics.Operational.
type Evaluator struct {
	kafkaOpts []kgo.Opt
	gatherer  prometheus.Gatherer
	cfg       config
	log       *slog.Logger
	series    map[string]*series // owned by Run's goroutine
	started   atomic.Bool

	firing       *prometheus.GaugeVec
	evaluations  prometheus.Counter
	events       *prometheus.CounterVec
	writeErrors  prometheus.Counter
	gatherErrors prometheus.Counter
}

// New returns an Evaluator of the metrics g gathers (the process's
// registry) that writes to the cluster reached with kafkaOpts (see
// broker.Options).
func New(kafkaOpts []kgo.Opt, g prometheus.Gatherer, opts ...Option) (*Evaluator, error) {
	if len(kafkaOpts) == 0 {
		return nil, errors.New("alerting: no Kafka client options (seed brokers)")
	}
	if g == nil {
		return nil, errors.New("alerting: no metrics Gatherer")
	}
	cfg := config{rules: DefaultRules(), interval: DefaultInterval, log: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.interval <= 0 {
		return nil, fmt.Errorf("alerting: interval %v: want a positive duration", cfg.interval)
	}
	names := map[string]bool{}
	for _, r := range cfg.rules {
		if err := r.Validate(); err != nil {
			return nil, fmt.Errorf("alerting: %w", err)
		}
		if names[r.Name] {
			return nil, fmt.Errorf("alerting: two rules named %s", r.Name)
		}
		names[r.Name] = true
	}
	e := &Evaluator{
		kafkaOpts: slices.Clone(kafkaOpts), gatherer: g, cfg: cfg,
		log:    cfg.log.With("component", "alerting"),
		series: map[string]*series{},
		firing: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vitals_alerts_firing",
			Help: "Alerts of this process's evaluator announced as firing and not yet resolved, by alert.",
		}, []string{"alert"}),
		evaluations: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitals_alert_evaluations_total",
			Help: "Evaluations of the alert rules (one per interval while the evaluator runs).",
		}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_alert_events_total",
			Help: "Alert events written to the operational topic, by type (alert.firing, alert.resolved).",
		}, []string{"type"}),
		writeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitals_alert_write_errors_total",
			Help: "Writes of alert events Kafka did not acknowledge (retried at the next evaluation).",
		}),
		gatherErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitals_alert_gather_errors_total",
			Help: "Evaluations whose metrics could not all be gathered (the gathered part was evaluated).",
		}),
	}
	for _, r := range cfg.rules {
		e.firing.WithLabelValues(r.Name)
	}
	for _, typ := range []string{endpoint.OpAlertFiring, endpoint.OpAlertResolved} {
		e.events.WithLabelValues(typ)
	}
	if cfg.reg != nil {
		for _, c := range []prometheus.Collector{e.firing, e.evaluations, e.events, e.writeErrors, e.gatherErrors} {
			if err := cfg.reg.Register(c); err != nil {
				return nil, fmt.Errorf("alerting: register metrics: %w", err)
			}
		}
	}
	return e, nil
}

// Run evaluates the rules at once and then every interval until ctx is
// done, writing each transition's event. It owns its Kafka producer and
// returns nil on cancellation. An event Kafka did not acknowledge is
// written again at the next evaluation, with the same id. Alert state
// lives in memory: after a restart a condition still holding must hold
// for its rule's For again, and fires with a new id.
func (e *Evaluator) Run(ctx context.Context) error {
	if !e.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	opts := append(slices.Clone(e.kafkaOpts), kgo.RequiredAcks(kgo.AllISRAcks()), kgo.ProducerLinger(0))
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("alerting: kafka producer: %w", err)
	}
	defer cl.Close()
	t := time.NewTicker(e.cfg.interval)
	defer t.Stop()
	for {
		events := e.evaluate(time.Now())
		if len(events) > 0 {
			e.write(ctx, cl, events)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// pending is an event waiting for Kafka's acknowledgement, and what its
// acknowledgement changes.
type pending struct {
	ev  Event
	ack func()
}

// evaluate reads the metrics at now, updates every alert's state and
// returns the events of the transitions not yet announced.
func (e *Evaluator) evaluate(now time.Time) []pending {
	mfs, err := e.gatherer.Gather()
	if err != nil {
		e.gatherErrors.Inc()
		e.log.Warn("metrics not all gathered; evaluating the rest", "err", err)
	}
	byName := make(map[string]*dto.MetricFamily, len(mfs))
	for _, mf := range mfs {
		byName[mf.GetName()] = mf
	}
	for i := range e.cfg.rules {
		r := &e.cfg.rules[i]
		mf := byName[r.Metric]
		for _, m := range mf.GetMetric() {
			labels := make(map[string]string, len(m.GetLabel()))
			for _, l := range m.GetLabel() {
				labels[l.GetName()] = l.GetValue()
			}
			if !r.selects(labels) {
				continue
			}
			v, ok := valueOf(m)
			if !ok {
				continue
			}
			key := seriesKey(r.Name, labels)
			s := e.series[key]
			if s == nil {
				s = &series{rule: r, key: key, labels: labels}
				e.series[key] = s
			}
			s.seen = true
			if s.observe(now, v) {
				if s.since.IsZero() {
					s.since = now
				}
			} else {
				s.since = time.Time{}
			}
		}
	}

	var out []pending
	for _, key := range slices.Sorted(maps.Keys(e.series)) {
		s := e.series[key]
		if !s.seen {
			s.since, s.history = time.Time{}, nil // the series is gone: the condition no longer holds
		}
		switch {
		case !s.since.IsZero() && s.fired.IsZero() && now.Sub(s.since) >= s.rule.For:
			since := s.since
			out = append(out, pending{ev: s.event(endpoint.OpAlertFiring, since, now), ack: func() {
				s.fired = since
				e.firing.WithLabelValues(s.rule.Name).Inc()
			}})
		case s.since.IsZero() && !s.fired.IsZero():
			out = append(out, pending{ev: s.event(endpoint.OpAlertResolved, s.fired, now), ack: func() {
				s.fired = time.Time{}
				e.firing.WithLabelValues(s.rule.Name).Dec()
			}})
		case !s.seen && s.fired.IsZero():
			delete(e.series, key)
		}
		s.seen = false
	}
	e.evaluations.Inc()
	return out
}

// observe records a reading and reports whether the rule's condition
// holds; it sets the value an event reports.
func (s *series) observe(now time.Time, v float64) bool {
	r := s.rule
	if r.Kind == Above {
		s.value = v
		return v > r.Threshold
	}
	from := now.Add(-r.Window)
	i := 0
	for i < len(s.history) && s.history[i].at.Before(from) {
		i++
	}
	s.history = append(s.history[i:], sample{now, v})
	low := v
	for _, h := range s.history {
		low = min(low, h.value)
	}
	s.value = v - low
	return s.value > r.Threshold
}

// event builds the event of a transition of s.
func (s *series) event(typ string, since, now time.Time) Event {
	sum := sha256.Sum256([]byte(typ + "\x00" + s.key + "\x00" + strconv.FormatInt(since.UnixNano(), 10)))
	return Event{
		ID:          "op_" + hex.EncodeToString(sum[:12]),
		Type:        typ,
		Alert:       s.rule.Name,
		Key:         s.key,
		Severity:    s.rule.Severity,
		Summary:     s.rule.Summary,
		Labels:      maps.Clone(s.labels),
		EndpointID:  s.labels["endpoint_id"],
		Value:       s.value,
		Threshold:   s.rule.Threshold,
		ActiveSince: since.UTC(),
		Timestamp:   now.UTC(),
	}
}

// write produces the events and applies the transitions Kafka
// acknowledged; the others are produced again at the next evaluation.
func (e *Evaluator) write(ctx context.Context, cl *kgo.Client, events []pending) {
	recs := make([]*kgo.Record, len(events))
	of := make(map[*kgo.Record]pending, len(events))
	for i, p := range events {
		b, err := json.Marshal(p.ev)
		if err != nil { // plain fields: only a NaN or infinite value fails
			p.ev.Value = 0
			b, _ = json.Marshal(p.ev)
		}
		recs[i] = &kgo.Record{Topic: topics.Operational, Key: []byte(p.ev.Key), Value: b}
		of[recs[i]] = p
	}
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	for _, res := range cl.ProduceSync(wctx, recs...) {
		p := of[res.Record]
		if res.Err != nil {
			e.writeErrors.Inc()
			e.log.Error("alert event not written; retrying at the next evaluation",
				"alert", p.ev.Alert, "type", p.ev.Type, "key", p.ev.Key, "err", res.Err)
			continue
		}
		p.ack()
		e.events.WithLabelValues(p.ev.Type).Inc()
		lvl := slog.LevelWarn
		if p.ev.Type == endpoint.OpAlertResolved {
			lvl = slog.LevelInfo
		}
		e.log.Log(ctx, lvl, "alert", "type", p.ev.Type, "alert", p.ev.Alert, "key", p.ev.Key,
			"value", p.ev.Value, "threshold", p.ev.Threshold, "active_since", p.ev.ActiveSince, "id", p.ev.ID)
	}
}

// valueOf returns the value of a gauge, counter or untyped sample.
func valueOf(m *dto.Metric) (float64, bool) {
	switch {
	case m.Gauge != nil:
		return m.GetGauge().GetValue(), true
	case m.Counter != nil:
		return m.GetCounter().GetValue(), true
	case m.Untyped != nil:
		return m.GetUntyped().GetValue(), true
	}
	return 0, false
}

// seriesKey names one alert: the rule and the series' labels, sorted, in
// the Prometheus text form, e.g. VitalsWebhookBreakerOpen{endpoint_id="ep_1"}.
func seriesKey(rule string, labels map[string]string) string {
	if len(labels) == 0 {
		return rule
	}
	var b strings.Builder
	b.WriteString(rule)
	b.WriteByte('{')
	for i, k := range slices.Sorted(maps.Keys(labels)) {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k)
		b.WriteString("=")
		b.WriteString(strconv.Quote(labels[k]))
	}
	b.WriteByte('}')
	return b.String()
}
