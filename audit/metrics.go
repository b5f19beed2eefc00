package audit

import "github.com/prometheus/client_golang/prometheus"

// collectors is a set of Prometheus collectors registered together and
// removed together. They exist without a registerer too, so the code that
// updates them needs no nil checks.
type collectors struct {
	reg prometheus.Registerer
	all []prometheus.Collector
}

// register puts cs on reg (none when reg is nil), undoing a partial
// registration on error.
func register(reg prometheus.Registerer, cs ...prometheus.Collector) (*collectors, error) {
	c := &collectors{reg: reg, all: cs}
	if reg == nil {
		return c, nil
	}
	for i, col := range cs {
		if err := reg.Register(col); err != nil {
			for _, done := range cs[:i] {
				reg.Unregister(done)
			}
			return nil, err
		}
	}
	return c, nil
}

// unregister removes the collectors from their registerer.
func (c *collectors) unregister() {
	if c.reg == nil {
		return
	}
	for _, col := range c.all {
		c.reg.Unregister(col)
	}
}

// writerMetrics are a Writer's metrics, by mode ("sync" or "async").
type writerMetrics struct {
	*collectors
	written *prometheus.CounterVec
	failed  *prometheus.CounterVec
}

func newWriterMetrics(reg prometheus.Registerer) (*writerMetrics, error) {
	m := &writerMetrics{
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vitals", Subsystem: "audit", Name: "records_written_total",
			Help: "Audit records acknowledged by Kafka, by mode (sync: before the response; async: after).",
		}, []string{"mode"}),
		failed: prometheus.NewCounterVec(prometheus.CounterOpts{
			Namespace: "vitals", Subsystem: "audit", Name: "write_failures_total",
			Help: "Audit records Kafka did not take after the client's retries (each logged in full), by mode.",
		}, []string{"mode"}),
	}
	c, err := register(reg, m.written, m.failed)
	m.collectors = c
	return m, err
}
