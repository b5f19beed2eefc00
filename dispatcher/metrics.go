package dispatcher

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/sony/gobreaker/v2"

	"github.com/vitalshq/vitals/analytics"
)

// metrics are the dispatcher's Prometheus collectors.
type metrics struct {
	attempts     *prometheus.CounterVec   // by outcome, error_class
	deliveries   *prometheus.CounterVec   // by final outcome
	latency      *prometheus.HistogramVec // by outcome and endpoint
	retries      *prometheus.CounterVec   // tasks written to a retry tier, by tier
	deferred     *prometheus.CounterVec   // deliveries handed on without an attempt, by reason
	dropped      *prometheus.CounterVec   // tasks dropped, by reason
	disabled     *prometheus.CounterVec   // endpoints disabled, by cause
	breakers     *prometheus.GaugeVec     // endpoints per breaker state
	breakerState *prometheus.GaugeVec     // per endpoint id: 0 closed, 1 half-open, 2 open
	transitions  *prometheus.CounterVec   // breaker transitions, by from, to
	decodeErrors prometheus.Counter
	sinkErrors   prometheus.Counter

	// The children of the success path, looked up once: WithLabelValues
	// hashes the labels and takes a lock on every call.
	attemptsDelivered prometheus.Counter // attempts{delivered, ""}
	delivered         prometheus.Counter // deliveries{delivered}
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		attempts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_webhook_attempts_total",
			Help: "Webhook delivery attempts by outcome and error class.",
		}, []string{"outcome", "error_class"}),
		deliveries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_webhook_deliveries_total",
			Help: "Finished webhook deliveries (event x endpoint) by final outcome: delivered or exhausted.",
		}, []string{"outcome"}),
		latency: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vitals_webhook_attempt_duration_seconds",
			Help:    "Latency of webhook attempts that were sent, by outcome and endpoint.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30},
		}, []string{"outcome", "endpoint_id"}),
		retries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_webhook_retries_scheduled_total",
			Help: "Deliveries written to a retry tier, by tier topic.",
		}, []string{"tier"}),
		deferred: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_webhook_deferred_total",
			Help: "Deliveries handed to the first retry tier without an attempt, by reason (in_flight, rate_limit).",
		}, []string{"reason"}),
		dropped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_webhook_tasks_dropped_total",
			Help: "Retry tasks dropped, by reason (malformed, endpoint_deleted, unsubscribed, undecodable).",
		}, []string{"reason"}),
		disabled: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_webhook_endpoints_disabled_total",
			Help: "Endpoints disabled by the dispatcher, by cause (gone, failing).",
		}, []string{"cause"}),
		breakers: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vitals_webhook_breakers",
			Help: "Endpoints known to this dispatcher, by circuit breaker state.",
		}, []string{"state"}),
		breakerState: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vitals_webhook_breaker_state",
			Help: "Circuit breaker state of each endpoint known to this dispatcher: 0 closed, 1 half-open, 2 open.",
		}, []string{"endpoint_id"}),
		transitions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_webhook_breaker_transitions_total",
			Help: "Circuit breaker state transitions, by from and to state.",
		}, []string{"from", "to"}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitals_dispatcher_decode_errors_total",
			Help: "Derived-event records that could not be decoded and were skipped.",
		}),
		sinkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitals_dispatcher_sink_errors_total",
			Help: "Attempt rows or state changes the analytics sinks refused.",
		}),
	}
	m.attemptsDelivered = m.attempts.WithLabelValues(analytics.OutcomeDelivered, "")
	m.delivered = m.deliveries.WithLabelValues(analytics.OutcomeDelivered)
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.attempts, m.deliveries, m.latency, m.retries, m.deferred,
		m.dropped, m.disabled, m.breakers, m.breakerState, m.transitions, m.decodeErrors, m.sinkErrors} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return nil, fmt.Errorf("dispatcher metrics: %w (use one registry per dispatcher)", err)
			}
			return nil, fmt.Errorf("dispatcher metrics: %w", err)
		}
	}
	return m, nil
}

// Values of vitals_webhook_breaker_state.
const (
	breakerClosed   = 0
	breakerHalfOpen = 1
	breakerOpen     = 2
)

// setBreakerState records the breaker state of endpoint id, so an alert
// can tell how long one endpoint's breaker has not been closed.
func (m *metrics) setBreakerState(id string, s gobreaker.State) {
	v := breakerClosed
	switch s {
	case gobreaker.StateHalfOpen:
		v = breakerHalfOpen
	case gobreaker.StateOpen:
		v = breakerOpen
	}
	m.breakerState.WithLabelValues(id).Set(float64(v))
}
