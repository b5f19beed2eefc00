package admission

import (
	"errors"
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are the controller's Prometheus collectors. The children per
// priority are looked up once: WithLabelValues hashes and locks per call.
type metrics struct {
	admittedVec  *prometheus.CounterVec
	shedVec      *prometheus.CounterVec
	abandonedVec *prometheus.CounterVec
	waitVec      *prometheus.HistogramVec
	bypassed     prometheus.Counter
	inFlight     prometheus.GaugeFunc
	queued       prometheus.GaugeFunc

	admitted  [numPriorities]prometheus.Counter
	abandoned [numPriorities]prometheus.Counter
	wait      [numPriorities]prometheus.Observer
	shed      [numPriorities][numReasons]prometheus.Counter
}

func newMetrics(c *Controller) *metrics {
	m := &metrics{
		admittedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_admission_admitted_total",
			Help: "Requests admitted to a handler, by priority.",
		}, []string{"priority"}),
		shedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_admission_shed_total",
			Help: "Requests shed with 503, by priority and reason (queue_full, evicted, wait_timeout).",
		}, []string{"priority", "reason"}),
		abandonedVec: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_admission_abandoned_total",
			Help: "Requests whose context ended while they waited for admission, by priority.",
		}, []string{"priority"}),
		waitVec: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "vitals_admission_wait_seconds",
			Help:    "Time admitted requests waited for a slot (0 when one was free), by priority.",
			Buckets: []float64{.001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 5, 10},
		}, []string{"priority"}),
		bypassed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitals_admission_bypassed_total",
			Help: "Requests the classifier let past admission (health and metrics endpoints).",
		}),
		inFlight: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vitals_admission_in_flight",
			Help: "Requests holding an admission slot.",
		}, func() float64 { return float64(c.Stats().InFlight) }),
		queued: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "vitals_admission_queue_length",
			Help: "Requests waiting for an admission slot.",
		}, func() float64 { return float64(c.Stats().Queued) }),
	}
	for p := range numPriorities {
		name := Priority(p).String()
		m.admitted[p] = m.admittedVec.WithLabelValues(name)
		m.abandoned[p] = m.abandonedVec.WithLabelValues(name)
		m.wait[p] = m.waitVec.WithLabelValues(name)
		for r := range numReasons {
			m.shed[p][r] = m.shedVec.WithLabelValues(name, ShedReason(r).String())
		}
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	if reg == nil {
		return nil
	}
	for _, c := range []prometheus.Collector{m.admittedVec, m.shedVec, m.abandonedVec, m.waitVec,
		m.bypassed, m.inFlight, m.queued} {
		if err := reg.Register(c); err != nil {
			var are prometheus.AlreadyRegisteredError
			if errors.As(err, &are) {
				return fmt.Errorf("admission metrics: %w (use one registry per controller)", err)
			}
			return fmt.Errorf("admission metrics: %w", err)
		}
	}
	return nil
}
