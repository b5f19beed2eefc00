package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"slices"
	"time"

	"github.com/google/uuid"
	"github.com/sony/gobreaker/v2"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/dispatcher/task"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/topics"
)

// ErrEndpointGone means the endpoint answered 410 Gone: it is disabled.
var ErrEndpointGone = errors.New("dispatcher: endpoint gone (410)")

// job is one delivery to make now: a task, the endpoint it is bound for and
// the webhook body.
type job struct {
	t    task.Task
	ep   *endpoint.Endpoint // read only: it points into Endpoints.Subscribed's result
	body []byte
	// wait and done order an ordered endpoint's deliveries per customer
	// (endpointState.ticket); nil otherwise.
	wait <-chan struct{}
	done func()
}

// writeTimeout bounds producing a task, a dead letter or an operational
// event; it runs past the dispatcher's cancellation so an attempt made is
// not repeated needlessly.
const writeTimeout = 10 * time.Second

// run makes one attempt of j, or hands it on without one, and reports
// whether j is settled: delivered, or its next step (retry tier, dead
// letter) durably written. false means the caller must not commit: the
// delivery is made again by whoever reads the record next.
func (d *Dispatcher) run(ctx context.Context, j *job) bool {
	if j.done != nil {
		defer j.done()
	}
	if j.wait != nil {
		select {
		case <-j.wait:
		case <-ctx.Done():
			return false
		}
	}
	st := d.state(*j.ep)
	log := &jobLog{base: d.log, eventID: j.t.EventID, eventType: j.t.EventType, endpointID: j.ep.ID}
	if j.ep.Disabled || st.isDisabled() {
		// The endpoint was disabled since the task was written: keep the
		// delivery for a replay once it is enabled again.
		return d.deadLetter(ctx, j.t, log, false)
	}
	// Admission: a delivery waits at most the admission wait for a slot
	// and a rate token of its endpoint; a saturated endpoint does not hold
	// the partition longer: the delivery moves to the first retry tier
	// without using an attempt.
	var release func()
	if len(d.cfg.schedule) == 0 {
		var err error
		if release, err = st.acquire(ctx); err != nil {
			return false
		}
	} else {
		var ok bool
		if release, ok = st.acquireWithin(ctx, d.cfg.rateWait); !ok {
			if ctx.Err() != nil {
				return false
			}
			return d.deferTask(ctx, j.t, "in_flight", log)
		}
	}
	defer release()
	if !st.reserve(ctx, d.cfg.rateWait) {
		if ctx.Err() != nil {
			return false
		}
		if len(d.cfg.schedule) > 0 {
			return d.deferTask(ctx, j.t, "rate_limit", log)
		}
	}

	start := time.Now()
	row, resp, err := d.attempt(ctx, st, j, start)
	if err != nil && ctx.Err() != nil {
		row.Outcome, row.ErrorClass = analytics.OutcomeFailed, ClassCanceled
		d.record(ctx, row, resp, log, err)
		return false
	}
	n := j.t.Attempts + 1
	first := j.t.FirstAttempt
	if first.IsZero() {
		first = start
	}
	if err == nil {
		row.Outcome = analytics.OutcomeDelivered
		d.record(ctx, row, resp, log, nil)
		st.succeeded(start)
		d.metrics.delivered.Inc()
		return true
	}

	if row.ErrorClass == ClassCircuitOpen {
		return d.breakerRefused(ctx, j.t, row, start, log, err)
	}
	next := j.t
	next.Attempts, next.FirstAttempt = n, first
	next.LastError, next.LastStatus = row.ErrorClass, resp.StatusCode
	switch {
	case resp.StatusCode == http.StatusGone:
		row.Outcome = analytics.OutcomeExhausted
		d.record(ctx, row, resp, log, err)
		d.disable(ctx, st, *j.ep, "410 Gone", "gone", log)
		return d.deadLetter(ctx, next, log, false)
	case n >= d.cfg.maxAttempts || row.ErrorClass == ClassBadSecret:
		row.Outcome = analytics.OutcomeExhausted
		d.record(ctx, row, resp, log, err)
		log.Error("webhook delivery given up", "attempts", n, "error_class", row.ErrorClass, "err", err)
		return d.deadLetter(ctx, next, log, !isOperational(j.t.EventType))
	default:
		row.Outcome = analytics.OutcomeFailed
	}
	d.record(ctx, row, resp, log, err)
	if since := st.failed(first, start); d.cfg.autoDisableAfter > 0 && start.Sub(since) >= d.cfg.autoDisableAfter {
		d.disable(ctx, st, *j.ep, fmt.Sprintf("all attempts failed for %s", start.Sub(since).Round(time.Second)), "failing", log)
		return d.deadLetter(ctx, next, log, false)
	}
	wait := d.retryWait(n, resp, start)
	next.DueAt = start.Add(wait)
	tier := topics.Retry(d.cfg.schedule[min(n, len(d.cfg.schedule))-1])
	if err := d.produce(ctx, next.Record(tier)); err != nil {
		log.Error("retry not scheduled; the delivery will be made again", "tier", tier, "err", err)
		return false
	}
	d.metrics.retries.WithLabelValues(tier).Inc()
	return true
}

// breakerRefused handles a delivery the endpoint's breaker refused (open,
// or half-open with its probe in flight). No request reached the endpoint,
// so no attempt is used: the delivery waits in the tier of its current step
// and comes back. The breaker alone therefore never exhausts a delivery —
// a burst into a recovering endpoint is not dead-lettered by its own
// breaker; an endpoint that stays dead is bounded by its failing probes and
// auto-disable.
func (d *Dispatcher) breakerRefused(ctx context.Context, t task.Task, row analytics.WebhookAttempt, start time.Time, log *jobLog, err error) bool {
	row.Outcome = analytics.OutcomeCircuitOpen
	d.record(ctx, row, Response{}, log, err)
	step := min(max(t.Attempts, 1), len(d.cfg.schedule)) - 1
	t.DueAt = start.Add(d.jittered(d.cfg.schedule[step]))
	t.LastError = ClassCircuitOpen
	tier := topics.Retry(d.cfg.schedule[step])
	if err := d.produce(ctx, t.Record(tier)); err != nil {
		log.Error("retry not scheduled; the delivery will be made again", "tier", tier, "err", err)
		return false
	}
	d.metrics.deferred.WithLabelValues("circuit_open").Inc()
	return true
}

// deferTask writes t unchanged (no attempt used) to the first retry tier.
func (d *Dispatcher) deferTask(ctx context.Context, t task.Task, reason string, log *jobLog) bool {
	wait := d.jittered(d.cfg.schedule[0])
	t.DueAt = time.Now().Add(wait)
	tier := topics.Retry(d.cfg.schedule[0])
	if err := d.produce(ctx, t.Record(tier)); err != nil {
		log.Error("deferral not written; the delivery will be made again", "tier", tier, "err", err)
		return false
	}
	d.metrics.deferred.WithLabelValues(reason).Inc()
	log.Debug("delivery deferred to the first retry tier", "reason", reason, "wait", wait)
	return true
}

// deadLetter writes t to the dead-letter topic and, when exhausted, the
// message.attempt.exhausted operational event.
func (d *Dispatcher) deadLetter(ctx context.Context, t task.Task, log *jobLog, exhausted bool) bool {
	recs := []*kgo.Record{t.Record(topics.DLQ)}
	if exhausted {
		op := newOperational(OperationalEvent{Type: endpoint.OpAttemptExhausted, EndpointID: t.EndpointID,
			EventID: t.EventID, EventType: t.EventType, Attempts: t.Attempts, LastError: t.LastError,
			LastStatus: t.LastStatus, Timestamp: time.Now()})
		recs = append(recs, d.operationalRecord(op))
	}
	if err := d.produce(ctx, recs...); err != nil {
		log.Error("dead letter not written; the delivery will be made again", "err", err)
		return false
	}
	d.metrics.deliveries.WithLabelValues(analytics.OutcomeExhausted).Inc()
	return true
}

// disable disables ep through the Disabler and emits endpoint.disabled,
// once per process.
func (d *Dispatcher) disable(ctx context.Context, st *endpointState, ep endpoint.Endpoint, reason, cause string, log *jobLog) {
	if !st.markDisabled() {
		return
	}
	d.metrics.disabled.WithLabelValues(cause).Inc()
	log.Warn("disabling endpoint", "reason", reason)
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	if d.cfg.disabler != nil {
		if err := d.cfg.disabler.Disable(wctx, ep.ID, reason); err != nil {
			log.Error("endpoint not disabled in the registry", "reason", reason, "err", err)
		}
	} else {
		log.Warn("no Disabler configured: the endpoint stays enabled in the registry")
	}
	d.recordState(ep.ID, "enabled", "disabled", reason)
	op := newOperational(OperationalEvent{Type: endpoint.OpEndpointDisabled, EndpointID: ep.ID, Reason: reason,
		Timestamp: time.Now()})
	if err := d.produce(ctx, d.operationalRecord(op)); err != nil {
		log.Error("endpoint.disabled event not written", "err", err)
	}
}

// operationalRecord is op as a record of topics.Operational.
func (d *Dispatcher) operationalRecord(op OperationalEvent) *kgo.Record {
	b, _ := json.Marshal(op) // plain fields: cannot fail
	return &kgo.Record{Topic: topics.Operational, Key: []byte(op.EndpointID), Value: b}
}

// produce writes recs and waits for the acks, past ctx's cancellation
// within writeTimeout.
func (d *Dispatcher) produce(ctx context.Context, recs ...*kgo.Record) error {
	wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), writeTimeout)
	defer cancel()
	return d.producer().ProduceSync(wctx, recs...).FirstErr()
}

// attempt signs and sends one attempt through the endpoint's breaker. The
// returned row has everything but the outcome.
func (d *Dispatcher) attempt(ctx context.Context, st *endpointState, j *job, now time.Time) (analytics.WebhookAttempt, Response, error) {
	row := analytics.WebhookAttempt{
		AttemptID: uuid.NewString(), EventID: j.t.EventID, EventType: j.t.EventType, CustomerID: j.t.CustomerID,
		EndpointID: j.ep.ID, URLHost: st.host(j.ep.URL), Attempt: uint16(min(j.t.Attempts+1, 1<<16-1)),
		Timestamp: now.UTC(), BreakerState: st.breaker.State().String(), RetryTier: d.retryTier(j.t.Attempts),
	}
	ok, probe := st.admit()
	if !ok {
		row.ErrorClass = ClassCircuitOpen
		return row, Response{}, fmt.Errorf("dispatch %s to %s: %w", j.t.EventID, j.ep.ID, ErrCircuitOpen)
	}
	if probe {
		defer st.endProbe()
	}
	h, err := requestHeader(*j.ep, j.t.EventID, now, j.body, st.key)
	if err != nil {
		row.ErrorClass = ClassBadSecret
		return row, Response{}, fmt.Errorf("dispatch %s to %s: %w", j.t.EventID, j.ep.ID, err)
	}
	req := &Request{EndpointID: j.ep.ID, URL: j.ep.URL, Header: h, Body: j.body}
	resp, err := st.breaker.Execute(func() (Response, error) {
		resp, err := d.sender.Send(ctx, req)
		if err != nil {
			// gobreaker returns a zero Response with an error; keep ours.
			return resp, &sendError{resp: resp, err: err}
		}
		return resp, nil
	})
	var se *sendError
	if errors.As(err, &se) {
		resp, err = se.resp, se.err
	}
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		row.ErrorClass = ClassCircuitOpen
		return row, Response{}, fmt.Errorf("dispatch %s to %s: %w", j.t.EventID, j.ep.ID, ErrCircuitOpen)
	}
	row.LatencyMs = uint32(min(time.Since(now).Milliseconds(), 1<<32-1))
	row.StatusCode = uint16(max(0, min(resp.StatusCode, 1<<16-1)))
	row.ResponseExcerpt = analytics.Excerpt(resp.Body)
	row.ErrorClass = Classify(resp.StatusCode, err)
	if err != nil {
		if resp.StatusCode == http.StatusGone {
			err = fmt.Errorf("%w: %w", ErrEndpointGone, err)
		}
		err = fmt.Errorf("dispatch %s to %s: %w", j.t.EventID, j.ep.ID, err)
	}
	return row, resp, err
}

// retryTier names the retry tier a task that has made attempts waited in:
// topics.Retry of the schedule's wait after its last attempt (run and
// breakerRefused pick the tier so); "" before the first attempt. A delivery
// deferred without using an attempt is named by its count all the same.
func (d *Dispatcher) retryTier(attempts int) string {
	s := d.cfg.schedule
	if attempts <= 0 || len(s) == 0 {
		return ""
	}
	return topics.Retry(s[min(attempts, len(s))-1])
}

// sendError carries a failed attempt's response through the breaker.
type sendError struct {
	resp Response
	err  error
}

func (e *sendError) Error() string { return e.err.Error() }
func (e *sendError) Unwrap() error { return e.err }

// record counts, logs and sinks one attempt row.
func (d *Dispatcher) record(ctx context.Context, row analytics.WebhookAttempt, resp Response, log *jobLog, err error) {
	if row.Outcome == analytics.OutcomeDelivered {
		d.metrics.attemptsDelivered.Inc()
		d.metrics.latency.WithLabelValues(row.Outcome, row.EndpointID).Observe(float64(row.LatencyMs) / 1000)
	} else {
		d.metrics.attempts.WithLabelValues(row.Outcome, row.ErrorClass).Inc()
		if row.ErrorClass != ClassCircuitOpen && row.ErrorClass != ClassBadSecret && row.ErrorClass != ClassCanceled {
			d.metrics.latency.WithLabelValues(row.Outcome, row.EndpointID).Observe(float64(row.LatencyMs) / 1000)
		}
	}
	switch {
	case err != nil:
		log.Warn("webhook attempt failed", "attempt", row.Attempt, "outcome", row.Outcome,
			"error_class", row.ErrorClass, "status", row.StatusCode, "response_excerpt", string(resp.Body), "err", err)
	case log.debug(ctx):
		log.Debug("webhook delivered", "attempt", row.Attempt, "status", row.StatusCode, "latency_ms", row.LatencyMs)
	}
	if d.cfg.sink == nil {
		return
	}
	// The row is written even when ctx is ending: the attempt happened.
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if serr := d.cfg.sink.Append(sctx, row); serr != nil {
		d.metrics.sinkErrors.Inc()
		log.Warn("attempt row not recorded", "attempt_id", row.AttemptID, "err", serr)
	}
}

// retryWait is the wait after failed attempt n: the schedule's n-th entry
// (the last one repeated), ± the jitter; a Retry-After on 429 or 503 makes
// it no shorter than asked, up to the schedule's longest wait.
func (d *Dispatcher) retryWait(n int, resp Response, now time.Time) time.Duration {
	s := d.cfg.schedule
	wait := d.jittered(s[min(n, len(s))-1])
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode == http.StatusServiceUnavailable {
		if ra, ok := retryAfter(resp.Header, now); ok {
			wait = max(wait, min(ra, slices.Max(s)))
		}
	}
	return wait
}

// jittered is base ± the jitter.
func (d *Dispatcher) jittered(base time.Duration) time.Duration {
	if d.cfg.jitter == 0 || base == 0 {
		return base
	}
	f := 1 + d.cfg.jitter*(2*rand.Float64()-1)
	return time.Duration(float64(base) * f)
}

// urlHost returns host[:port] of an endpoint URL, never path or query.
func urlHost(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return ""
	}
	return u.Host
}

// jobLog is the logger of one delivery, with its event and endpoint as
// attributes. It is built on first use: most deliveries log nothing, and
// slog.Logger.With copies the handler's attributes every time.
type jobLog struct {
	base                           *slog.Logger
	eventID, eventType, endpointID string
	l                              *slog.Logger
}

func (jl *jobLog) logger() *slog.Logger {
	if jl.l == nil {
		jl.l = jl.base.With("event_id", jl.eventID, "event", jl.eventType, "endpoint_id", jl.endpointID)
	}
	return jl.l
}

// debug reports whether debug records are logged, so callers build their
// attributes only then.
func (jl *jobLog) debug(ctx context.Context) bool { return jl.base.Enabled(ctx, slog.LevelDebug) }

func (jl *jobLog) Debug(msg string, args ...any) {
	if jl.debug(context.Background()) {
		jl.logger().Debug(msg, args...)
	}
}
func (jl *jobLog) Warn(msg string, args ...any)  { jl.logger().Warn(msg, args...) }
func (jl *jobLog) Error(msg string, args ...any) { jl.logger().Error(msg, args...) }
