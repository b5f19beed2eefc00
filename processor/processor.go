package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/topics"
)

// DefaultGroup is the consumer group of the processor unless WithGroup says
// otherwise.
const DefaultGroup = "vitals-processor"

// Transaction defaults. A transaction ends when it holds
// DefaultTransactionRecords input records or DefaultTransactionInterval
// after it began, whichever comes first.
//
// Measured with BenchmarkProcessorEOS (kfake over TCP in the same process,
// 2 cores, JSON state of ~1.5 KB, 40 000 events of 2000 customers
// interleaved like live traffic, 6 partitions) beside BenchmarkRawProduce
// (a plain idempotent franz-go producer: ~1.4 M records/s in the same run):
//
//	max records   events/s   commit (mean)   allocs/event (whole process)
//	        500   ~100 000      0.19 ms          48
//	       2000   ~220 000      0.20 ms          33
//	       5000   ~295 000      0.22 ms          30
//	      10000   ~335 000      0.32 ms          29
//
// Past 5000 records the rate grows ~13 % for twice the records, while
// every abort (rebalance, crash) redoes twice the work; 5000 it is. While
// catching up a transaction fills up in ~20 ms, so the interval only ends
// transactions of a quiet stream: 100 ms (Kafka Streams' EOS commit
// interval) bounds how long a derived event waits to become visible to
// read_committed readers.
const (
	DefaultTransactionRecords  = 5000
	DefaultTransactionInterval = 100 * time.Millisecond
)

// endTimeout bounds ending one transaction (flush, offset commit, EndTxn).
const endTimeout = 30 * time.Second

// maxProduceAborts is how many transactions in a row may abort because a
// produce failed before Run gives up and returns the error.
const maxProduceAborts = 5

// Errors of Run, for errors.Is.
var (
	// ErrNoBrokers is returned by New when neither WithBrokers nor
	// WithClientOptions says how to reach Kafka.
	ErrNoBrokers = errors.New("processor: no Kafka brokers configured")
	// ErrTopics is returned by Run when a topic it needs is missing or the
	// changelog is not co-partitioned with the input.
	ErrTopics = errors.New("processor: topics not usable")
	// ErrTransaction is returned by Run when a transaction could not be
	// ended (the transactional id was fenced by another instance using it,
	// or the broker failed it for good) or kept failing to produce.
	ErrTransaction = errors.New("processor: transaction failed")
)

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
	brokers     []string
	kopts       []kgo.Opt
	group       string
	txnID       string
	txnRecords  int
	txnInterval time.Duration
	logger      *slog.Logger
	model       model.Config
	stateCodec  StateCodec
	reg         prometheus.Registerer
}

// WithBrokers sets the Kafka seed brokers ("host:port").
func WithBrokers(brokers ...string) Option {
	return func(o *options) { o.brokers = append(o.brokers, brokers...) }
}

// WithClientOptions adds franz-go client options shared by every Vitals
// stage (TLS, SASL, seed brokers, logging). The processor's own consumer
// group, topic, isolation, transaction and partitioner settings are applied
// after them and win.
func WithClientOptions(opts ...kgo.Opt) Option {
	return func(o *options) { o.kopts = append(o.kopts, opts...) }
}

// WithGroup sets the consumer group id (default DefaultGroup).
func WithGroup(id string) Option { return func(o *options) { o.group = id } }

// WithTransactionalID sets the Kafka transactional id of this instance
// (default: the group id, "-" and the host name).
//
// Every instance running at the same time needs its own id: an instance
// that starts with an id in use fences the other one (its next transaction
// fails with ErrTransaction). A restarted instance should reuse the id it
// had: starting fences its dead predecessor and aborts the transaction that
// predecessor left open at once, instead of the broker aborting it after
// the transaction timeout while the partitions it wrote to stay unreadable
// for read_committed consumers (and for the restore of the next owner).
// A StatefulSet's pod name or a fixed per-host name is a good id; a random
// one is safe but makes every crash cost a transaction timeout.
func WithTransactionalID(id string) Option { return func(o *options) { o.txnID = id } }

// WithTransactionRecords sets how many input records one transaction holds
// at most (default DefaultTransactionRecords).
func WithTransactionRecords(n int) Option { return func(o *options) { o.txnRecords = n } }

// WithTransactionInterval sets how long a transaction stays open at most
// after it began (default DefaultTransactionInterval).
func WithTransactionInterval(d time.Duration) Option { return func(o *options) { o.txnInterval = d } }

// WithStateCodec sets how customer states are written to the changelog
// (default JSONStateCodec). Changing it on a running deployment needs a
// codec that still reads what the old one wrote.
func WithStateCodec(c StateCodec) Option { return func(o *options) { o.stateCodec = c } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.logger = l } }

// WithModelConfig sets the health model's configuration (default
// model.DefaultConfig()).
func WithModelConfig(cfg model.Config) Option { return func(o *options) { o.model = cfg } }

// WithRegisterer registers the processor's metrics on r (default: metrics
// are kept but not registered anywhere).
func WithRegisterer(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// Processor is the exactly-once Kafka loop around the health model.
//
// It consumes topics.CustomerEvents as a member of a consumer group with
// read_committed isolation and, in one Kafka transaction per batch,
// applies each event to its customer's model.State, produces the derived
// events keyed by customer id to topics.ForDerived(type), poison records to
// topics.CustomerEventsDLQ, one changelog record per changed customer to
// topics.CustomerState (on the input record's partition number), and
// commits the input offsets. Either all of that becomes visible to
// read_committed readers or none of it does.
//
// States changed in a transaction are clones of the committed ones; they
// replace them only when the transaction committed. An aborted transaction
// (a rebalance during it, a failed produce, shutdown) leaves the tables as
// they were and its input is processed again by the partition's owner.
//
// On assignment, a partition's table is restored from its changelog
// partition before any of its input is processed; on revoke or loss it is
// dropped.
//
// Metrics (all vitals_processor_*): events_total{outcome},
// derived_total{event}, skipped_total{reason}, dlq_total{reason},
// encode_errors_total, transactions_committed_total,
// transactions_aborted_total{cause}, transaction_commit_seconds,
// transaction_records, restore_seconds, restored_customers_total,
// customers, consumer_lag{partition}.
type Processor struct {
	codec   Codec
	model   *model.Model
	o       options
	metrics metrics

	// restored, when set (by tests in this package), is called after each
	// restore with the restored tables and how long it took.
	restored func(map[int32]*table, time.Duration)
}

// New returns a Processor that decodes and encodes records with codec.
func New(codec Codec, opts ...Option) (*Processor, error) {
	if codec == nil {
		return nil, errors.New("processor: nil codec")
	}
	o := options{
		group:       DefaultGroup,
		txnRecords:  DefaultTransactionRecords,
		txnInterval: DefaultTransactionInterval,
		logger:      slog.Default(),
		model:       model.DefaultConfig(),
		stateCodec:  JSONStateCodec{},
	}
	for _, opt := range opts {
		opt(&o)
	}
	if len(o.brokers) == 0 && len(o.kopts) == 0 {
		return nil, ErrNoBrokers
	}
	if o.txnRecords <= 0 || o.txnInterval <= 0 {
		return nil, fmt.Errorf("new processor: transaction records (%d) and interval (%v) must be positive",
			o.txnRecords, o.txnInterval)
	}
	if o.stateCodec == nil {
		return nil, errors.New("new processor: nil state codec")
	}
	if o.txnID == "" {
		host, err := os.Hostname()
		if err != nil {
			return nil, fmt.Errorf("new processor: no transactional id given and no host name to derive it: %w", err)
		}
		o.txnID = o.group + "-" + host
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

// TransactionalID returns the Kafka transactional id the processor uses.
func (p *Processor) TransactionalID() string { return p.o.txnID }

// baseOpts are the connection options every client of the processor
// starts from.
func (p *Processor) baseOpts() []kgo.Opt {
	opts := slices.Clone(p.o.kopts)
	if len(p.o.brokers) > 0 {
		opts = append(opts, kgo.SeedBrokers(p.o.brokers...))
	}
	return opts
}

// Run consumes and processes until ctx is cancelled, then aborts the open
// transaction, leaves the group and returns nil once its Kafka clients have
// closed. It returns an error wrapping ErrTopics when the topics are not
// usable, ErrTransaction when transactions cannot be ended, or an error
// restoring state; whatever was not committed is processed again by the
// next owner of the partitions.
func (p *Processor) Run(ctx context.Context) error {
	admCl, err := kgo.NewClient(p.baseOpts()...)
	if err != nil {
		return fmt.Errorf("processor: new kafka client: %w", err)
	}
	defer admCl.Close()
	adm := kadm.NewClient(admCl)
	if err := checkTopics(ctx, adm); err != nil {
		return err
	}

	ts := newTables()
	drop := func(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
		ts.dropped(parts[topics.CustomerEvents])
		p.metrics.customers.Set(float64(ts.customers()))
	}
	opts := append(p.baseOpts(),
		kgo.ConsumerGroup(p.o.group),
		kgo.ConsumeTopics(topics.CustomerEvents),
		kgo.TransactionalID(p.o.txnID),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.RequireStableFetchOffsets(),
		kgo.RecordPartitioner(copartitioner{byKey: kgo.StickyKeyPartitioner(nil)}),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, parts map[string][]int32) {
			ts.assigned(parts[topics.CustomerEvents])
		}),
		kgo.OnPartitionsRevoked(drop),
		kgo.OnPartitionsLost(drop),
	)
	s, err := kgo.NewGroupTransactSession(opts...)
	if err != nil {
		return fmt.Errorf("processor: new transact session: %w", err)
	}
	defer s.Close()

	log := p.o.logger.With("group", p.o.group, "transactional_id", p.o.txnID)
	// Loading the producer id fences an earlier instance with the same
	// transactional id and aborts the transaction it left open.
	if _, _, err := s.Client().ProducerID(ctx); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("%w: init producer id of %s: %w", ErrTransaction, p.o.txnID, err)
	}
	log.Info("processor started", "topic", topics.CustomerEvents)

	l := loop{p: p, s: s, ts: ts, log: log, rs: &restorer{base: p.baseOpts(), adm: adm, codec: p.o.stateCodec}}
	for ctx.Err() == nil {
		if err := l.transaction(ctx); err != nil {
			if ctx.Err() != nil {
				break
			}
			return err
		}
	}
	log.Info("processor stopped")
	return nil
}

// checkTopics verifies the input, changelog and output topics exist and
// that the changelog has as many partitions as the input.
func checkTopics(ctx context.Context, adm *kadm.Client) error {
	names := append([]string{topics.CustomerEvents, topics.CustomerState, topics.CustomerEventsDLQ}, topics.Derived()...)
	md, err := adm.Metadata(ctx, names...)
	if err != nil {
		return fmt.Errorf("processor: topic metadata: %w", err)
	}
	for _, n := range names {
		td, ok := md.Topics[n]
		if !ok || td.Err != nil {
			return fmt.Errorf("%w: topic %s does not exist (%v); create it (vitals creates every topic at start)", ErrTopics, n, td.Err)
		}
	}
	in, st := len(md.Topics[topics.CustomerEvents].Partitions), len(md.Topics[topics.CustomerState].Partitions)
	if in != st {
		return fmt.Errorf("%w: %s has %d partitions but its changelog %s has %d: state must be co-partitioned with its input; "+
			"recreate %s with %d partitions (its state is rebuilt by reprocessing, or copied partition by partition), "+
			"or add partitions to the smaller one only while both are empty",
			ErrTopics, topics.CustomerEvents, in, topics.CustomerState, st, topics.CustomerState, in)
	}
	return nil
}

// copartitioner sends changelog records to the partition set on the record
// (the input record's partition number) and every other record by its key.
type copartitioner struct{ byKey kgo.Partitioner }

func (c copartitioner) ForTopic(topic string) kgo.TopicPartitioner {
	if topic == topics.CustomerState {
		return kgo.ManualPartitioner().ForTopic(topic)
	}
	return c.byKey.ForTopic(topic)
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
