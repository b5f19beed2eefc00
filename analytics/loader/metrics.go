package loader

import "github.com/prometheus/client_golang/prometheus"

// metrics are a Loader's Prometheus metrics, labelled with its name. They
// exist without a registerer too, so the code that updates them needs no
// nil checks.
type metrics struct {
	reg            prometheus.Registerer
	loaded         prometheus.Counter
	undecodable    prometheus.Counter
	insertFailures prometheus.Counter
}

func newMetrics(reg prometheus.Registerer, name string) (*metrics, error) {
	labels := prometheus.Labels{"loader": name}
	m := &metrics{
		reg: reg,
		loaded: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "vitals", Subsystem: "loader", Name: "records_loaded_total", ConstLabels: labels,
			Help: "Records inserted into the analytics store, by loader.",
		}),
		undecodable: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "vitals", Subsystem: "loader", Name: "records_undecodable_total", ConstLabels: labels,
			Help: "Records that did not decode (logged with topic, partition and offset, skipped), by loader.",
		}),
		insertFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Namespace: "vitals", Subsystem: "loader", Name: "insert_failures_total", ConstLabels: labels,
			Help: "Failed batch inserts (retried until they succeed), by loader.",
		}),
	}
	if reg == nil {
		return m, nil
	}
	all := m.collectors()
	for i, c := range all {
		if err := reg.Register(c); err != nil {
			for _, done := range all[:i] {
				reg.Unregister(done)
			}
			return nil, err
		}
	}
	return m, nil
}

func (m *metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.loaded, m.undecodable, m.insertFailures}
}

// unregister removes the metrics from their registerer.
func (m *metrics) unregister() {
	if m.reg == nil {
		return
	}
	for _, c := range m.collectors() {
		m.reg.Unregister(c)
	}
}
