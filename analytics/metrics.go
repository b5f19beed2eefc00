package analytics

import "github.com/prometheus/client_golang/prometheus"

// metrics are a Writer's Prometheus metrics. They exist even without a
// registerer, so the code that updates them needs no nil checks.
type metrics struct {
	reg        prometheus.Registerer
	written    prometheus.Counter
	spooled    prometheus.Counter
	replayed   prometheus.Counter
	spoolBytes prometheus.Gauge
	spoolFull  prometheus.Counter
	spoolAge   prometheus.GaugeFunc
}

func newMetrics(reg prometheus.Registerer, age func() float64) (*metrics, error) {
	m := &metrics{
		reg: reg,
		written: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "vitals", Subsystem: "analytics", Name: "rows_written_total",
			Help: "Webhook attempt rows inserted into ClickHouse straight from memory.",
		}),
		spooled: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "vitals", Subsystem: "analytics", Name: "rows_spooled_total",
			Help: "Webhook attempt rows written to the disk spool because ClickHouse was down or not configured.",
		}),
		replayed: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "vitals", Subsystem: "analytics", Name: "rows_replayed_total",
			Help: "Webhook attempt rows inserted into ClickHouse from the disk spool.",
		}),
		spoolBytes: prometheus.NewGauge(prometheus.GaugeOpts{
			Namespace: "vitals", Subsystem: "analytics", Name: "spool_bytes",
			Help: "Size of the disk spool waiting for ClickHouse.",
		}),
		spoolFull: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "vitals", Subsystem: "analytics", Name: "spool_full_total",
			Help: "Batches the disk spool refused because it reached its limit (the rows wait in memory).",
		}),
		spoolAge: prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Namespace: "vitals", Subsystem: "analytics", Name: "spool_age_seconds",
			Help: "How long the disk spool has held rows waiting for ClickHouse (0 when empty).",
		}, age),
	}
	if reg == nil {
		return m, nil
	}
	for i, c := range m.collectors() {
		if err := reg.Register(c); err != nil {
			for _, done := range m.collectors()[:i] {
				reg.Unregister(done)
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.written, m.spooled, m.replayed, m.spoolBytes, m.spoolFull, m.spoolAge}
}

// unregister removes the metrics from the registerer they were put on.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors() {
		m.reg.Unregister(c)
	}
}
