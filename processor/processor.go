package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/topics"
)

// DefaultGroup is the consumer group of the processor unless WithGroup says
// otherwise.
const DefaultGroup = "vitals-processor"

// defaultMaxPollRecords bounds one batch: the records processed, produced and
// committed before a rebalance may run.
const defaultMaxPollRecords = 1000

// ErrNoBrokers is returned by New when neither WithBrokers nor
// WithClientOptions says how to reach Kafka.
var ErrNoBrokers = errors.New("processor: no Kafka brokers configured")

// Codec turns Kafka record values into customer events and derived events
// into record values. Package schemas provides the Avro one; the processor
// only needs these two directions.
type Codec interface {
	DecodeCustomerEvent([]byte) (event.CustomerEvent, error)
	EncodeDerived(event.Derived) ([]byte, error)
}

// Option configures a Processor.
type Option func(*options)

type options struct {
	brokers []string
	kopts   []kgo.Opt
	group   string
	logger  *slog.Logger
	model   model.Config
	reg     prometheus.Registerer
	maxPoll int
}

// WithBrokers sets the Kafka seed brokers ("host:port").
func WithBrokers(brokers ...string) Option {
	return func(o *options) { o.brokers = append(o.brokers, brokers...) }
}

// WithClientOptions adds franz-go client options shared by every Vitals
// stage (TLS, SASL, seed brokers, logging). The processor's own consumer
// group, topic, commit and acks settings are applied after them and win.
func WithClientOptions(opts ...kgo.Opt) Option {
	return func(o *options) { o.kopts = append(o.kopts, opts...) }
}

// WithGroup sets the consumer group id (default DefaultGroup).
func WithGroup(id string) Option { return func(o *options) { o.group = id } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithModelConfig sets the health model's configuration (default
// model.DefaultConfig()).
func WithModelConfig(cfg model.Config) Option { return func(o *options) { o.model = cfg } }

// WithRegisterer registers the processor's metrics on r (default: metrics
// are kept but not registered anywhere).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// Processor is the Kafka loop around the health model. It consumes
// topics.CustomerEvents as a member of a consumer group, applies each event
// to its customer's model.State, produces the derived events keyed by customer id
// to topics.ForDerived(type) with acks=all and idempotence, and commits the
// input offsets once those produces were acknowledged: at-least-once, with
// deterministic derived ids for downstream deduplication.
//
// model.State lives in memory per assigned partition and is dropped when the
// partition is revoked or lost; until the changelog exists, a partition's
// new owner starts its customers from an empty model.State.
//
// Records that do not decode are logged, counted and skipped (their offset
// is committed with the batch).
//
// Metrics: vitals_processor_events_total{outcome="applied"|"undecodable"},
// vitals_processor_derived_total{event}, and
// vitals_processor_encode_errors_total.
type Processor struct {
	codec   Codec
	model   *model.Model
	o       options
	metrics metrics
}

// New returns a Processor that decodes and encodes records with codec.
func New(codec Codec, opts ...Option) (*Processor, error) {
	if codec == nil {
		return nil, errors.New("processor: nil codec")
	}
	o := options{group: DefaultGroup, logger: slog.Default(), model: model.DefaultConfig(), maxPoll: defaultMaxPollRecords}
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.brokers) == 0 && len(o.kopts) == 0 {
		return nil, ErrNoBrokers
	}
	m, err := model.NewModel(o.model)
	if err != nil {
		return nil, fmt.Errorf("new processor: %w", err)
	}
	p := &Processor{codec: codec, model: m, o: o, metrics: newMetrics()}
	if o.reg != nil {
		if err := p.metrics.register(o.reg); err != nil {
			return nil, fmt.Errorf("new processor: register metrics: %w", err)
		}
	}
	return p, nil
}

// Model returns the health model the processor applies.
func (p *Processor) Model() *model.Model { return p.model }

// Run consumes and processes until ctx is cancelled, then leaves the group
// and returns nil once its Kafka client has closed. It returns an error when
// the client cannot be created or a produce or commit fails for a reason
// other than cancellation; offsets of the failed batch are not committed, so
// the next owner of those partitions processes it again.
func (p *Processor) Run(ctx context.Context) error {
	tables := &tables{parts: make(map[int32]*table)}
	drop := func(_ context.Context, _ *kgo.Client, revoked map[string][]int32) {
		tables.drop(revoked[topics.CustomerEvents])
	}
	opts := append([]kgo.Opt{}, p.o.kopts...)
	if len(p.o.brokers) > 0 {
		opts = append(opts, kgo.SeedBrokers(p.o.brokers...))
	}
	opts = append(opts,
		kgo.ConsumerGroup(p.o.group),
		kgo.ConsumeTopics(topics.CustomerEvents),
		kgo.DisableAutoCommit(),
		kgo.BlockRebalanceOnPoll(),
		kgo.OnPartitionsRevoked(drop),
		kgo.OnPartitionsLost(drop),
		kgo.RequiredAcks(kgo.AllISRAcks()), // idempotent producing is franz-go's default and needs acks=all
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("processor: new kafka client: %w", err)
	}
	defer cl.CloseAllowingRebalance()

	log := p.o.logger.With("group", p.o.group)
	log.Info("processor started", "topic", topics.CustomerEvents)
	for {
		fetches := cl.PollRecords(ctx, p.o.maxPoll)
		if fetches.IsClientClosed() || ctx.Err() != nil {
			cl.AllowRebalance()
			log.Info("processor stopped")
			return nil
		}
		fetches.EachError(func(topic string, partition int32, err error) {
			log.Warn("fetch failed", "topic", topic, "partition", partition, "err", err)
		})
		err := p.process(ctx, cl, tables, fetches)
		cl.AllowRebalance()
		if err != nil {
			if ctx.Err() != nil {
				log.Info("processor stopped")
				return nil
			}
			return err
		}
	}
}

// process applies one polled batch, produces its derived events and commits
// its offsets after every produce was acknowledged.
func (p *Processor) process(ctx context.Context, cl *kgo.Client, tables *tables, fetches kgo.Fetches) error {
	var out []*kgo.Record
	fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
		t := tables.get(ftp.Partition)
		for _, r := range ftp.Records {
			ev, err := p.codec.DecodeCustomerEvent(r.Value)
			if err == nil && ev.CustomerID == "" {
				err = errors.New("no customer id")
			}
			if err != nil {
				p.metrics.events.WithLabelValues("undecodable").Inc()
				p.o.logger.Warn("skipping undecodable customer event", "partition", r.Partition,
					"offset", r.Offset, "err", err)
				continue
			}
			p.metrics.events.WithLabelValues("applied").Inc()
			for _, d := range p.model.Apply(t.state(ev.CustomerID), ev).Derived {
				b, err := p.codec.EncodeDerived(d)
				if err != nil {
					p.metrics.encodeErrors.Inc()
					p.o.logger.Error("dropping derived event that does not encode", "event", d.Event,
						"event_id", d.EventID, "customer_id", d.CustomerID, "err", err)
					continue
				}
				out = append(out, &kgo.Record{Topic: topics.ForDerived(d.Event), Key: []byte(d.CustomerID), Value: b})
			}
		}
	})
	if len(out) > 0 {
		if err := cl.ProduceSync(ctx, out...).FirstErr(); err != nil {
			return fmt.Errorf("processor: produce %d derived events: %w", len(out), err)
		}
		for _, r := range out {
			p.metrics.derived.WithLabelValues(typeOfTopic(r.Topic)).Inc()
		}
	}
	if err := cl.CommitUncommittedOffsets(ctx); err != nil {
		return fmt.Errorf("processor: commit offsets: %w", err)
	}
	return nil
}

// typeOfTopic is the derived event type written to topic.
func typeOfTopic(topic string) string {
	for _, typ := range event.DerivedTypes() {
		if topics.ForDerived(typ) == topic {
			return typ
		}
	}
	return "unknown"
}

// tables holds the customer states of each assigned input partition. The
// poll loop reads it; the rebalance callbacks drop partitions from it.
type tables struct {
	mu    sync.Mutex
	parts map[int32]*table
}

// table is the model.State of every customer of one input partition.
type table struct {
	customers map[string]*model.State
}

func (ts *tables) get(partition int32) *table {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	t, ok := ts.parts[partition]
	if !ok {
		t = &table{customers: make(map[string]*model.State)}
		ts.parts[partition] = t
	}
	return t
}

func (ts *tables) drop(partitions []int32) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, p := range partitions {
		delete(ts.parts, p)
	}
}

func (t *table) state(customerID string) *model.State {
	st, ok := t.customers[customerID]
	if !ok {
		st = &model.State{CustomerID: customerID}
		t.customers[customerID] = st
	}
	return st
}

// metrics are the processor's Prometheus collectors.
type metrics struct {
	events       *prometheus.CounterVec
	derived      *prometheus.CounterVec
	encodeErrors prometheus.Counter
}

func newMetrics() metrics {
	m := metrics{
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_processor_events_total",
			Help: "Customer events consumed by the processor, by outcome (applied, undecodable).",
		}, []string{"outcome"}),
		derived: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "vitals_processor_derived_total",
			Help: "Derived events produced and acknowledged, by event type.",
		}, []string{"event"}),
		encodeErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "vitals_processor_encode_errors_total",
			Help: "Derived events dropped because the codec could not encode them.",
		}),
	}
	m.events.WithLabelValues("applied")
	m.events.WithLabelValues("undecodable")
	for _, typ := range event.DerivedTypes() {
		m.derived.WithLabelValues(typ)
	}
	return m
}

func (m metrics) register(r prometheus.Registerer) error {
	for _, c := range []prometheus.Collector{m.events, m.derived, m.encodeErrors} {
		if err := r.Register(c); err != nil {
			return err
		}
	}
	return nil
}
