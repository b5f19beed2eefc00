package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sony/gobreaker/v2"
	"golang.org/x/time/rate"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/webhook"
)

// endpointState is what one dispatcher process keeps per endpoint id: its
// circuit breaker, its in-flight cap, its rate limiter, the per-customer
// order of an ordered endpoint, and since when all its attempts fail.
type endpointState struct {
	id      string
	breaker *gobreaker.CircuitBreaker[Response]
	probing atomic.Bool  // a half-open probe is in flight
	trip    atomic.Value // string: why the breaker last opened

	timers sync.Pool // of *time.Timer, for admission waits

	mu           sync.Mutex
	slots        chan struct{} // in-flight cap; replaced when MaxInFlight changes
	limiter      *rate.Limiter // nil without a rate limit
	chains       map[string]chan struct{}
	url, urlHost string            // the endpoint's URL and its host, parsed once per URL
	keys         map[string][]byte // parsed HMAC keys by whsec_ secret (at most maxKeys)
	failingSince time.Time         // first failure since the last success; zero when healthy
	lastSuccess  time.Time
	disabled     bool      // disabled by this process …
	disabledAt   time.Time // … at this time
}

// state returns ep's state, creating it, and applies ep's current limits.
func (d *Dispatcher) state(ep endpoint.Endpoint) *endpointState {
	d.mu.RLock()
	st := d.perEndpoint[ep.ID]
	d.mu.RUnlock()
	if st == nil {
		d.mu.Lock()
		if st = d.perEndpoint[ep.ID]; st == nil {
			st = &endpointState{id: ep.ID, chains: map[string]chan struct{}{}}
			st.breaker = gobreaker.NewCircuitBreaker[Response](d.breakerSettings(st))
			d.perEndpoint[ep.ID] = st
			d.metrics.breakers.WithLabelValues(gobreaker.StateClosed.String()).Inc()
			d.metrics.setBreakerState(st.id, gobreaker.StateClosed)
		}
		d.mu.Unlock()
	}

	capacity := ep.MaxInFlight
	if capacity <= 0 {
		capacity = d.cfg.endpointConcurrency
	}
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.disabled && !ep.Disabled && ep.UpdatedAt.After(st.disabledAt) {
		st.disabled = false // enabled again in the registry since
	}
	if st.slots == nil || cap(st.slots) != capacity {
		st.slots = make(chan struct{}, capacity)
	}
	switch {
	case ep.RateLimit <= 0:
		st.limiter = nil
	case st.limiter == nil:
		st.limiter = rate.NewLimiter(rate.Limit(ep.RateLimit), burst(ep.RateLimit))
	case st.limiter.Limit() != rate.Limit(ep.RateLimit):
		st.limiter.SetLimit(rate.Limit(ep.RateLimit))
		st.limiter.SetBurst(burst(ep.RateLimit))
	}
	return st
}

// host returns urlHost(rawURL), parsing it only when the endpoint's URL
// changed since the last call.
func (st *endpointState) host(rawURL string) string {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.url != rawURL || st.urlHost == "" {
		st.url, st.urlHost = rawURL, urlHost(rawURL)
	}
	return st.urlHost
}

// maxKeys bounds the parsed secrets an endpoint state keeps: the current
// and the previous secret, and a few rotations' worth.
const maxKeys = 4

// key returns the parsed HMAC key of secret, parsing it once.
func (st *endpointState) key(secret string) ([]byte, error) {
	st.mu.Lock()
	k, ok := st.keys[secret]
	st.mu.Unlock()
	if ok {
		return k, nil
	}
	k, err := webhook.ParseSecret(secret)
	if err != nil {
		return nil, err
	}
	st.mu.Lock()
	if st.keys == nil || len(st.keys) >= maxKeys {
		st.keys = make(map[string][]byte, 2)
	}
	st.keys[secret] = k
	st.mu.Unlock()
	return k, nil
}

func burst(perSecond float64) int { return max(1, int(math.Ceil(perSecond))) }

// breakerSettings turns the dispatcher's BreakerSettings into gobreaker's
// for st. Half-open admission is one probe at a time (see admit);
// gobreaker's MaxRequests is the number of successful probes that close it.
func (d *Dispatcher) breakerSettings(st *endpointState) gobreaker.Settings {
	b := d.cfg.breaker
	return gobreaker.Settings{
		Name:         st.id,
		MaxRequests:  b.SuccessesToClose,
		Interval:     b.Window,
		BucketPeriod: b.Window / 6, // a rolling window in six buckets
		Timeout:      b.OpenFor,
		ReadyToTrip: func(c gobreaker.Counts) bool {
			switch {
			case c.ConsecutiveFailures >= b.ConsecutiveFailures:
				st.trip.Store(fmt.Sprintf("%d consecutive failures", c.ConsecutiveFailures))
				return true
			case c.Requests >= b.MinRequests && float64(c.TotalFailures) >= b.FailureRatio*float64(c.Requests):
				st.trip.Store(fmt.Sprintf("%d of %d attempts failed", c.TotalFailures, c.Requests))
				return true
			}
			return false
		},
		// A cancelled attempt says nothing about the endpoint.
		IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
		OnStateChange: func(_ string, from, to gobreaker.State) {
			d.breakerChanged(st, from, to)
		},
	}
}

// breakerChanged logs, meters and records one breaker transition. It runs
// under the breaker's lock, so the sink gets a short deadline.
func (d *Dispatcher) breakerChanged(st *endpointState, from, to gobreaker.State) {
	reason := ""
	switch {
	case to == gobreaker.StateOpen && from == gobreaker.StateHalfOpen:
		reason = "probe failed"
	case to == gobreaker.StateOpen:
		reason, _ = st.trip.Load().(string)
	case to == gobreaker.StateHalfOpen:
		reason = "open period over"
	case to == gobreaker.StateClosed:
		reason = "probes succeeded"
	}
	d.log.Info("circuit breaker", "endpoint_id", st.id, "from", from.String(), "to", to.String(), "reason", reason)
	d.metrics.breakers.WithLabelValues(from.String()).Dec()
	d.metrics.breakers.WithLabelValues(to.String()).Inc()
	d.metrics.setBreakerState(st.id, to)
	d.metrics.transitions.WithLabelValues(from.String(), to.String()).Inc()
	d.recordState(st.id, from.String(), to.String(), reason)
}

// recordState writes one state change to the state sink, if any.
func (d *Dispatcher) recordState(id, from, to, reason string) {
	if d.cfg.stateSink == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	err := d.cfg.stateSink.AppendStateChange(ctx, analytics.EndpointStateChange{
		EndpointID: id, From: from, To: to, Reason: reason, Timestamp: time.Now().UTC()})
	if err != nil {
		d.metrics.sinkErrors.Inc()
		d.log.Warn("endpoint state change not recorded", "endpoint_id", id, "to", to, "err", err)
	}
}

// acquireWithin takes one of the endpoint's in-flight slots, waiting at
// most wait; ok is false when none freed up in time. release gives it back.
func (st *endpointState) acquireWithin(ctx context.Context, wait time.Duration) (release func(), ok bool) {
	st.mu.Lock()
	slots := st.slots
	st.mu.Unlock()
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, true
	default:
	}
	t := st.getTimer(wait)
	defer st.putTimer(t)
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, true
	case <-t.C:
		return nil, false
	case <-ctx.Done():
		return nil, false
	}
}

// getTimer returns a timer firing after d from the endpoint's pool: a
// saturated endpoint makes every delivery wait, and a new timer per wait
// is an allocation per delivery. Since Go 1.23 a stopped or reset timer
// delivers no stale value, so timers are safe to reuse.
func (st *endpointState) getTimer(d time.Duration) *time.Timer {
	if t, ok := st.timers.Get().(*time.Timer); ok {
		t.Reset(d)
		return t
	}
	return time.NewTimer(d)
}

func (st *endpointState) putTimer(t *time.Timer) {
	t.Stop()
	st.timers.Put(t)
}

// acquire takes a slot, waiting for one until ctx is done.
func (st *endpointState) acquire(ctx context.Context) (release func(), err error) {
	st.mu.Lock()
	slots := st.slots
	st.mu.Unlock()
	select {
	case slots <- struct{}{}:
		return func() { <-slots }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// reserve takes a rate-limit token, waiting at most maxWait for it; false
// means the token would come later (nothing is consumed then).
func (st *endpointState) reserve(ctx context.Context, maxWait time.Duration) bool {
	st.mu.Lock()
	lim := st.limiter
	st.mu.Unlock()
	if lim == nil {
		return true
	}
	r := lim.Reserve()
	delay := r.Delay()
	if !r.OK() || delay > maxWait {
		r.Cancel()
		return false
	}
	if delay == 0 {
		return true
	}
	t := time.NewTimer(delay)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		r.Cancel()
		return false
	}
}

// ticket queues one delivery of an ordered endpoint behind the previous
// delivery for the same customer: wait is closed when the previous one is
// done (nil when there is none); done must be called once.
func (st *endpointState) ticket(customer string) (wait <-chan struct{}, done func()) {
	st.mu.Lock()
	defer st.mu.Unlock()
	prev := st.chains[customer]
	mine := make(chan struct{})
	st.chains[customer] = mine
	return prev, func() {
		close(mine)
		st.mu.Lock()
		if st.chains[customer] == mine {
			delete(st.chains, customer)
		}
		st.mu.Unlock()
	}
}

// admit reports whether an attempt may be sent: not while the breaker is
// open, and only one probe at a time while it is half-open. probe says the
// caller holds the probe and must call endProbe.
func (st *endpointState) admit() (ok, probe bool) {
	switch st.breaker.State() {
	case gobreaker.StateOpen:
		return false, false
	case gobreaker.StateHalfOpen:
		if !st.probing.CompareAndSwap(false, true) {
			return false, false
		}
		return true, true
	}
	return true, false
}

func (st *endpointState) endProbe() { st.probing.Store(false) }

// succeeded resets the failure clock.
func (st *endpointState) succeeded(now time.Time) {
	st.mu.Lock()
	defer st.mu.Unlock()
	st.failingSince, st.lastSuccess = time.Time{}, now
}

// failed notes a failed attempt (at now) of a delivery first tried at
// first and returns since when all attempts of this endpoint have failed. first comes
// from the task, so a restarted process learns an old failure streak from
// the tasks still in the retry tiers.
func (st *endpointState) failed(first, now time.Time) time.Time {
	st.mu.Lock()
	defer st.mu.Unlock()
	if !first.After(st.lastSuccess) {
		first = now // the task's history predates the last success
	}
	if st.failingSince.IsZero() || first.Before(st.failingSince) {
		st.failingSince = first
	}
	return st.failingSince
}

// markDisabled reports whether this call disabled the endpoint (once per
// process).
func (st *endpointState) markDisabled() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.disabled {
		return false
	}
	st.disabled, st.disabledAt = true, time.Now()
	return true
}

func (st *endpointState) isDisabled() bool {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.disabled
}
