package dispatcher

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the dispatcher's Prometheus collectors.
type metrics struct {
	attempts     *prometheus.CounterVec   // by outcome, error_class
	deliveries   *prometheus.CounterVec   // by final outcome
	latency      *prometheus.HistogramVec // by outcome
	decodeErrors prometheus.Counter
	sinkErrors   prometheus.Counter
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
			Help:    "Latency of webhook attempts that were sent, by outcome.",
			Buckets: []float64{.005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10, 15, 30},
		}, []string{"outcome"}),
		decodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitals_dispatcher_decode_errors_total",
			Help: "Derived-event records that could not be decoded and were skipped.",
		}),
		sinkErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitals_dispatcher_sink_errors_total",
			Help: "Attempt rows the analytics sink refused.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{m.attempts, m.deliveries, m.latency, m.decodeErrors, m.sinkErrors} {
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
