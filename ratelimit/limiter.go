package ratelimit

import (
	"context"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Store decides requests against shared counters. Take decides one request
// for key under l at now, counts it when admitted, and returns the decision
// (Class unset); an error means no decision could be made.
type Store interface {
	Take(ctx context.Context, key string, l Limit, now time.Time) (Decision, error)
}

// FailPolicy says what a Limiter does with a request when its Store fails.
type FailPolicy int

const (
	// FailOpen admits the request: an outage of the store does not become
	// an outage of the API.
	FailOpen FailPolicy = iota
	// FailClosed refuses the request: for classes where unmetered access
	// is worse than none.
	FailClosed
)

// String returns "open" or "closed".
func (p FailPolicy) String() string {
	if p == FailClosed {
		return "closed"
	}
	return "open"
}

// storeErrorLogEvery limits the store-failure log lines of one Limiter to
// one per this interval; the metric counts every failure.
const storeErrorLogEvery = 10 * time.Second

// Limiter decides whether a client's request may proceed. It is safe for
// concurrent use.
type Limiter struct {
	store     Store
	limits    map[Class]Limit
	overrides Overrides
	fail      map[Class]FailPolicy
	now       func() time.Time
	log       *slog.Logger
	metrics   map[Class]classMetrics

	logMu      sync.Mutex
	lastLog    time.Time // last store-failure log line
	suppressed int       // failures not logged since lastLog
}

// Option configures a Limiter.
type Option func(*limiterOptions)

type limiterOptions struct {
	limits    map[Class]Limit
	overrides Overrides
	fail      map[Class]FailPolicy
	now       func() time.Time
	log       *slog.Logger
	reg       prometheus.Registerer
}

// WithLimits replaces the default limit of the given classes (see
// DefaultLimits); classes not in m keep theirs.
func WithLimits(m map[Class]Limit) Option {
	return func(o *limiterOptions) {
		for c, l := range m {
			o.limits[c] = l
		}
	}
}

// WithOverrides sets where per-client and per-route limits are looked up.
func WithOverrides(ov Overrides) Option {
	return func(o *limiterOptions) { o.overrides = ov }
}

// WithFailPolicy sets what happens to requests of class c when the store
// fails. The defaults: ClassAdmin fails closed, every other class open.
func WithFailPolicy(c Class, p FailPolicy) Option {
	return func(o *limiterOptions) { o.fail[c] = p }
}

// WithClock sets the clock (default time.Now); tests use it to move through
// windows without sleeping.
func WithClock(now func() time.Time) Option {
	return func(o *limiterOptions) { o.now = now }
}

// WithLogger sets the logger for store failures (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(o *limiterOptions) { o.log = l }
}

// WithRegisterer registers the Limiter's metrics with r (default: none).
func WithRegisterer(r prometheus.Registerer) Option {
	return func(o *limiterOptions) { o.reg = r }
}

// New returns a Limiter deciding on store. It fails when a configured limit
// is invalid or the metrics cannot be registered.
func New(store Store, opts ...Option) (*Limiter, error) {
	o := limiterOptions{
		limits: DefaultLimits(),
		fail:   map[Class]FailPolicy{ClassAdmin: FailClosed},
		now:    time.Now,
		log:    slog.Default(),
	}
	for _, opt := range opts {
		opt(&o)
	}
	if store == nil {
		return nil, fmt.Errorf("rate limiter: no store")
	}
	if _, ok := o.limits[ClassStandard]; !ok {
		return nil, fmt.Errorf("rate limiter: no limit for class %q", ClassStandard)
	}
	for c, l := range o.limits {
		if err := l.Validate(); err != nil {
			return nil, fmt.Errorf("rate limiter: class %q: %w", c, err)
		}
		o.limits[c] = l.withBurst()
	}
	m, err := newMetrics(o.reg, o.limits)
	if err != nil {
		return nil, err
	}
	return &Limiter{
		store:     store,
		limits:    o.limits,
		overrides: o.overrides,
		fail:      o.fail,
		now:       o.now,
		log:       o.log,
		metrics:   m,
	}, nil
}

// Allow decides one request of clientID to route (its ServeMux pattern) in
// class, and counts it when admitted. A class without a limit of its own is
// treated as ClassStandard. When the store fails, the class's fail policy
// decides and the decision carries the error (Err) and no counters; the
// failure is counted in vitals_ratelimit_store_errors_total and logged (at
// most once per 10 s).
func (l *Limiter) Allow(ctx context.Context, clientID string, class Class, route string) Decision {
	if _, ok := l.limits[class]; !ok {
		class = ClassStandard
	}
	lim, key := l.limitFor(clientID, class, route)
	m := l.metrics[class]
	d, err := l.store.Take(ctx, key, lim, l.now())
	if err != nil {
		policy := l.fail[class]
		m.storeErrors[policy].Inc()
		l.logStoreError(class, policy, err)
		d = Decision{Allowed: policy == FailOpen, Limit: lim, Err: err}
		if !d.Allowed {
			d.RetryAfter = unavailableRetryAfter
		}
	}
	d.Class = class
	switch {
	case d.Err != nil && d.Allowed:
		m.failOpen.Inc()
	case d.Err != nil:
		m.failClosed.Inc()
	case d.Allowed:
		m.allowed.Inc()
	default:
		m.limited.Inc()
	}
	return d
}

// limitFor returns the limit for the request and the key of its counters:
// a route override has counters of its own; a client override shares the
// class counters.
func (l *Limiter) limitFor(clientID string, class Class, route string) (Limit, string) {
	key := string(class) + ":" + url.QueryEscape(clientID)
	if l.overrides != nil {
		if route != "" {
			if lim, ok := l.overrides.Limit(clientID, class, route); ok && l.usable(lim, clientID, class, route) {
				return lim.withBurst(), key + ":" + url.QueryEscape(route)
			}
		}
		if lim, ok := l.overrides.Limit(clientID, class, ""); ok && l.usable(lim, clientID, class, "") {
			return lim.withBurst(), key
		}
	}
	return l.limits[class], key
}

// usable reports whether an override can be enforced, logging it when not
// (the class limit applies instead).
func (l *Limiter) usable(lim Limit, clientID string, class Class, route string) bool {
	if err := lim.Validate(); err != nil {
		l.log.Warn("rate limit override ignored", "client_id", clientID, "class", class, "route", route, "err", err)
		return false
	}
	return true
}

// logStoreError logs a store failure, at most once per storeErrorLogEvery,
// with the number of failures left unlogged since the last line.
func (l *Limiter) logStoreError(class Class, policy FailPolicy, err error) {
	now := l.now()
	l.logMu.Lock()
	if since := now.Sub(l.lastLog); !l.lastLog.IsZero() && since >= 0 && since < storeErrorLogEvery {
		l.suppressed++
		l.logMu.Unlock()
		return
	}
	suppressed := l.suppressed
	l.lastLog, l.suppressed = now, 0
	l.logMu.Unlock()
	l.log.Error("rate limit store unavailable; applying fail policy",
		"class", class, "policy", "fail_"+policy.String(), "err", err, "unlogged_failures", suppressed)
}

// classMetrics are the counters of one class, looked up once.
type classMetrics struct {
	allowed, limited, failOpen, failClosed prometheus.Counter
	storeErrors                            map[FailPolicy]prometheus.Counter
}

// newMetrics creates the Limiter's collectors, registers them with reg when
// it is not nil, and resolves the children of every class.
func newMetrics(reg prometheus.Registerer, limits map[Class]Limit) (map[Class]classMetrics, error) {
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vitals_ratelimit_decisions_total",
		Help: "Rate limit decisions by class and decision (allowed, limited, fail_open, fail_closed).",
	}, []string{"class", "decision"})
	storeErrors := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "vitals_ratelimit_store_errors_total",
		Help: "Rate limit decisions the store could not make (unreachable, timed out), by class and the fail policy applied (open, closed).",
	}, []string{"class", "policy"})
	if reg != nil {
		for _, c := range []prometheus.Collector{decisions, storeErrors} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("rate limiter: register metrics: %w", err)
			}
		}
	}
	m := make(map[Class]classMetrics, len(limits))
	for c := range limits {
		m[c] = classMetrics{
			allowed:    decisions.WithLabelValues(string(c), "allowed"),
			limited:    decisions.WithLabelValues(string(c), "limited"),
			failOpen:   decisions.WithLabelValues(string(c), "fail_open"),
			failClosed: decisions.WithLabelValues(string(c), "fail_closed"),
			storeErrors: map[FailPolicy]prometheus.Counter{
				FailOpen:   storeErrors.WithLabelValues(string(c), FailOpen.String()),
				FailClosed: storeErrors.WithLabelValues(string(c), FailClosed.String()),
			},
		}
	}
	return m, nil
}
