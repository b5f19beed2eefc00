package processor

import (
	"strconv"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/model"
)

// Outcomes of a consumed customer event, the label of
// vitals_processor_events_total.
const (
	outcomeApplied = "applied" // folded into the customer's state
	outcomeSkipped = "skipped" // the model skipped it (see skipped_total)
	outcomeDLQ     = "dlq"     // poison: sent to the dead-letter topic
)

// metrics are the processor's Prometheus collectors. Counters of processed
// work (events, derived, skipped, dlq) count committed transactions only, so
// they move exactly once per input record like the output does.
type metrics struct {
	events       *prometheus.CounterVec
	derived      *prometheus.CounterVec
	skipped      *prometheus.CounterVec
	dlq          *prometheus.CounterVec
	encodeErrors prometheus.Counter
	commits      prometheus.Counter
	aborts       *prometheus.CounterVec
	commitTime   prometheus.Histogram
	txnRecords   prometheus.Histogram
	restoreTime  prometheus.Histogram
	restored     prometheus.Counter
	customers    prometheus.Gauge
	lag          *prometheus.GaugeVec
}

func newMetrics() metrics {
	m := metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_processor_events_total",
			Help: "Customer events consumed in committed transactions, by outcome (applied, skipped, dlq).",
		}, []string{"outcome"}),
		derived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_processor_derived_total",
			Help: "Derived events produced in committed transactions, by event type.",
		}, []string{"event"}),
		skipped: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_processor_skipped_total",
			Help: "Customer events the model skipped, by reason (duplicate, late, empty).",
		}, []string{"reason"}),
		dlq: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_processor_dlq_total",
			Help: "Poison customer events sent to the dead-letter topic, by reason.",
		}, []string{"reason"}),
		encodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitals_processor_encode_errors_total",
			Help: "Derived events dropped because the codec could not encode them.",
		}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitals_processor_transactions_committed_total",
			Help: "Kafka transactions committed.",
		}),
		aborts: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_processor_transactions_aborted_total",
			Help: "Kafka transactions aborted, by cause (rebalance, produce_error, shutdown, error).",
		}, []string{"cause"}),
		commitTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vitals_processor_transaction_commit_seconds",
			Help:    "Time to end a transaction (flush, commit offsets, EndTxn).",
			Buckets: prometheus.ExponentialBuckets(0.001, 2, 14),
		}),
		txnRecords: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vitals_processor_transaction_records",
			Help:    "Input records per committed transaction.",
			Buckets: prometheus.ExponentialBuckets(1, 4, 9),
		}),
		restoreTime: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "vitals_processor_restore_seconds",
			Help:    "Time to restore newly assigned partitions' state from the changelog.",
			Buckets: prometheus.ExponentialBuckets(0.01, 2, 14),
		}),
		restored: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitals_processor_restored_customers_total",
			Help: "Customer states restored from the changelog.",
		}),
		customers: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "vitals_processor_customers",
			Help: "Customer states held in memory for the assigned partitions.",
		}),
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "vitals_processor_consumer_lag",
			Help: "Records behind the high watermark of each input partition, as of the latest fetch.",
		}, []string{"partition"}),
	}
	for _, o := range []string{outcomeApplied, outcomeSkipped, outcomeDLQ} {
		m.events.WithLabelValues(o)
	}
	for _, typ := range event.DerivedTypes() {
		m.derived.WithLabelValues(typ)
	}
	for _, r := range []string{model.SkippedDuplicate, model.SkippedLate, model.SkippedEmpty} {
		m.skipped.WithLabelValues(r)
	}
	for _, c := range []string{abortRebalance, abortProduce, abortShutdown, abortError} {
		m.aborts.WithLabelValues(c)
	}
	return m
}

func (m metrics) collectors() []prometheus.Collector {
	return []prometheus.Collector{m.events, m.derived, m.skipped, m.dlq, m.encodeErrors, m.commits, m.aborts,
		m.commitTime, m.txnRecords, m.restoreTime, m.restored, m.customers, m.lag}
}

func (m metrics) register(r prometheus.Registerer) error {
	for _, c := range m.collectors() {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// setLag records partition's lag from a fetch: its high watermark minus the
// position after the fetched records.
func (m metrics) setLag(partition int32, highWatermark, next int64) {
	m.lag.WithLabelValues(strconv.Itoa(int(partition))).Set(float64(max(0, highWatermark-next)))
}

// commitTimeMean is the mean of the commit latencies observed so far, in
// seconds (0 before the first).
func (m metrics) commitTimeMean() float64 {
	var pb dto.Metric
	if err := m.commitTime.Write(&pb); err != nil || pb.GetHistogram().GetSampleCount() == 0 {
		return 0
	}
	return pb.GetHistogram().GetSampleSum() / float64(pb.GetHistogram().GetSampleCount())
}
