package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net/http"
	"net/url"
	"time"

	"github.com/google/uuid"
	"github.com/sony/gobreaker/v2"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/webhook"
)

// endpointState is what the dispatcher keeps per endpoint id: its circuit
// breaker and a bound on simultaneous requests.
type endpointState struct {
	breaker *gobreaker.CircuitBreaker[Response]
	slots   chan struct{}
}

func (d *Dispatcher) endpointState(id string) *endpointState {
	d.mu.Lock()
	defer d.mu.Unlock()
	st := d.perEndpoint[id]
	if st == nil {
		failures := d.cfg.breakerFailures
		st = &endpointState{
			slots: make(chan struct{}, d.cfg.endpointConcurrency),
			breaker: gobreaker.NewCircuitBreaker[Response](gobreaker.Settings{
				Name:        id,
				MaxRequests: 1, // one trial request while half-open
				Timeout:     d.cfg.breakerOpen,
				ReadyToTrip: func(c gobreaker.Counts) bool { return c.ConsecutiveFailures >= failures },
				// A cancelled attempt says nothing about the endpoint.
				IsExcluded: func(err error) bool { return errors.Is(err, context.Canceled) },
				OnStateChange: func(name string, from, to gobreaker.State) {
					d.log.Info("circuit breaker", "endpoint_id", name, "from", from.String(), "to", to.String())
				},
			}),
		}
		d.perEndpoint[id] = st
	}
	return st
}

// deliver runs the attempts of one event to one endpoint. It reports
// whether the delivery finished (delivered, or given up after its bounded
// attempts); false means ctx ended it and the record must not be committed.
func (d *Dispatcher) deliver(ctx context.Context, ev event.Derived, body []byte, ep endpoint.Endpoint) bool {
	st := d.endpointState(ep.ID)
	allowed := d.attemptsAllowed()
	log := d.log.With("event_id", ev.EventID, "event", ev.Event, "endpoint_id", ep.ID)
	for n := 1; ; n++ {
		last := n >= allowed
		row, err := d.attempt(ctx, st, ev, body, ep, n)
		if ctx.Err() != nil && err != nil {
			row.Outcome, row.ErrorClass = analytics.OutcomeFailed, ClassCanceled
			d.record(ctx, row, log, err)
			return false
		}
		switch {
		case err == nil:
			row.Outcome = analytics.OutcomeDelivered
		case last || row.ErrorClass == ClassBadSecret:
			row.Outcome = analytics.OutcomeExhausted
		case row.ErrorClass == ClassCircuitOpen:
			row.Outcome = analytics.OutcomeCircuitOpen
		default:
			row.Outcome = analytics.OutcomeFailed
		}
		d.record(ctx, row, log, err)
		if row.Outcome == analytics.OutcomeDelivered || row.Outcome == analytics.OutcomeExhausted {
			d.metrics.deliveries.WithLabelValues(row.Outcome).Inc()
			if row.Outcome == analytics.OutcomeExhausted {
				log.Error("webhook delivery given up", "attempts", n, "error_class", row.ErrorClass, "err", err)
			}
			return true
		}
		wait := time.NewTimer(d.retryWait(n))
		select {
		case <-wait.C:
		case <-ctx.Done():
			wait.Stop()
			return false
		}
	}
}

// attempt signs and sends attempt n through the endpoint's breaker. The
// returned row has everything but the outcome.
func (d *Dispatcher) attempt(ctx context.Context, st *endpointState, ev event.Derived, body []byte, ep endpoint.Endpoint, n int) (analytics.WebhookAttempt, error) {
	row := analytics.WebhookAttempt{
		AttemptID: uuid.NewString(), EventID: ev.EventID, EventType: ev.Event, CustomerID: ev.CustomerID,
		EndpointID: ep.ID, URLHost: urlHost(ep.URL), Attempt: uint16(min(n, 1<<16-1)),
	}
	select {
	case st.slots <- struct{}{}:
	case <-ctx.Done():
		row.Timestamp = time.Now().UTC()
		return row, ctx.Err()
	}
	defer func() { <-st.slots }()

	start := time.Now()
	row.Timestamp = start.UTC()
	h := make(http.Header, 5)
	h.Set("Content-Type", "application/json")
	h.Set("User-Agent", UserAgent)
	if err := webhook.Headers(h, ev.EventID, start, body, ep.Secret); err != nil {
		row.ErrorClass = ClassBadSecret
		return row, fmt.Errorf("dispatch %s to %s: %w", ev.EventID, ep.ID, err)
	}
	req := &Request{EndpointID: ep.ID, URL: ep.URL, Header: h, Body: body}
	resp, err := st.breaker.Execute(func() (Response, error) { return d.sender.Send(ctx, req) })
	if errors.Is(err, gobreaker.ErrOpenState) || errors.Is(err, gobreaker.ErrTooManyRequests) {
		row.ErrorClass = ClassCircuitOpen
		return row, fmt.Errorf("dispatch %s to %s: %w", ev.EventID, ep.ID, ErrCircuitOpen)
	}
	row.LatencyMs = uint32(min(time.Since(start).Milliseconds(), 1<<32-1))
	row.StatusCode = uint16(max(0, min(resp.StatusCode, 1<<16-1)))
	row.ErrorClass = Classify(resp.StatusCode, err)
	if err != nil {
		err = fmt.Errorf("dispatch %s to %s: %w", ev.EventID, ep.ID, err)
	}
	return row, err
}

// record counts, logs and sinks one attempt row.
func (d *Dispatcher) record(ctx context.Context, row analytics.WebhookAttempt, log *slog.Logger, err error) {
	d.metrics.attempts.WithLabelValues(row.Outcome, row.ErrorClass).Inc()
	if row.ErrorClass != ClassCircuitOpen && row.ErrorClass != ClassBadSecret && row.ErrorClass != ClassCanceled {
		d.metrics.latency.WithLabelValues(row.Outcome).Observe(float64(row.LatencyMs) / 1000)
	}
	if err != nil {
		log.Warn("webhook attempt failed", "attempt", row.Attempt, "outcome", row.Outcome,
			"error_class", row.ErrorClass, "status", row.StatusCode, "err", err)
	} else {
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
// (the last one repeated), ± the jitter.
func (d *Dispatcher) retryWait(n int) time.Duration {
	s := d.cfg.schedule
	if len(s) == 0 {
		return 0
	}
	base := s[min(n, len(s))-1]
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
