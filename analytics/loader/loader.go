// Package loader copies Kafka topics into a store in batches, at least once:
// a consumer group polls records, decodes them, inserts each batch and
// commits its offsets only after the insert succeeded. A failed insert is
// retried with backoff while the offsets stay uncommitted and the group
// does not rebalance, so nothing is skipped; a record that does not decode
// is logged (topic, partition, offset), counted and skipped.
//
// It is generic over the row type and imports no other Vitals package, so
// any stage can use it: analytics.NewDerivedLoader loads the derived topics
// into ClickHouse derived_events and, through audit.NewLoader, the audit
// topic into api_audit.
package loader

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults and bounds of a Loader's options.
const (
	// DefaultBatchSize is how many records a Loader inserts at most at once.
	DefaultBatchSize = 1000
	// DefaultFlushInterval is how long a Loader waits at most for a batch
	// to fill after its first record.
	DefaultFlushInterval = time.Second
	// DefaultRetryBackoff is the first wait after a failed insert; it
	// doubles up to MaxRetryBackoff.
	DefaultRetryBackoff = 500 * time.Millisecond
	// MaxRetryBackoff bounds the wait between failed inserts.
	MaxRetryBackoff = 30 * time.Second
	// FinalTimeout bounds the last insert and commit after Run's context
	// ended, and leaving the group.
	FinalTimeout = 10 * time.Second
)

// ErrAlreadyRunning reports a second Run of one Loader.
var ErrAlreadyRunning = errors.New("loader: already running")

// Spec says what a Loader reads and where the rows go.
type Spec[T any] struct {
	// Name names the loader in logs and in the "loader" label of its
	// metrics, e.g. "derived".
	Name string
	// Group is the consumer group; Topics the topics it reads.
	Group  string
	Topics []string
	// Decode turns a record into a row; an error skips the record.
	Decode func(*kgo.Record) (T, error)
	// Insert stores rows: all of them, or fails. Storing a row twice must
	// be harmless (the Loader is at least once).
	Insert func(ctx context.Context, rows []T) error
}

// options are a Loader's settings.
type options struct {
	group         string
	topics        []string
	batchSize     int
	flushInterval time.Duration
	retryBackoff  time.Duration
	log           *slog.Logger
	reg           prometheus.Registerer
}

// Option configures a Loader.
type Option func(*options)

// WithGroup replaces the Spec's consumer group (tests sharing a broker).
func WithGroup(name string) Option { return func(o *options) { o.group = name } }

// WithTopics replaces the Spec's topics (tests sharing a broker).
func WithTopics(names ...string) Option {
	return func(o *options) { o.topics = append([]string(nil), names...) }
}

// WithBatchSize sets how many records are inserted at most at once
// (default DefaultBatchSize).
func WithBatchSize(n int) Option { return func(o *options) { o.batchSize = n } }

// WithFlushInterval sets how long a batch waits at most to fill after its
// first record (default DefaultFlushInterval).
func WithFlushInterval(d time.Duration) Option { return func(o *options) { o.flushInterval = d } }

// WithRetryBackoff sets the first wait after a failed insert; it doubles up
// to MaxRetryBackoff (default DefaultRetryBackoff).
func WithRetryBackoff(d time.Duration) Option { return func(o *options) { o.retryBackoff = d } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithMetrics registers the Loader's Prometheus metrics on r while it runs.
func WithMetrics(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// Loader copies records of its topics into a store; see the package doc.
type Loader[T any] struct {
	kopts   []kgo.Opt
	spec    Spec[T]
	o       options
	log     *slog.Logger
	metrics *metrics
	running atomic.Bool
}

// New returns a Loader consuming with a franz-go client built from kopts
// (broker.Options) as spec says.
func New[T any](kopts []kgo.Opt, spec Spec[T], opts ...Option) (*Loader[T], error) {
	o := options{
		group:         spec.Group,
		topics:        spec.Topics,
		batchSize:     DefaultBatchSize,
		flushInterval: DefaultFlushInterval,
		retryBackoff:  DefaultRetryBackoff,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	switch {
	case spec.Name == "" || spec.Decode == nil || spec.Insert == nil:
		return nil, errors.New("loader: spec needs a name, a decoder and an insert")
	case o.group == "" || len(o.topics) == 0:
		return nil, fmt.Errorf("loader %s: needs a consumer group and topics", spec.Name)
	case o.batchSize <= 0 || o.flushInterval <= 0 || o.retryBackoff <= 0:
		return nil, fmt.Errorf("loader %s: batch size, flush interval and retry backoff must be positive", spec.Name)
	}
	m, err := newMetrics(o.reg, spec.Name)
	if err != nil {
		return nil, fmt.Errorf("loader %s: metrics: %w", spec.Name, err)
	}
	log := o.log.With("component", spec.Name+"-loader", "group", o.group)
	return &Loader[T]{kopts: kopts, spec: spec, o: o, log: log, metrics: m}, nil
}

// Run loads records until ctx is cancelled, then inserts and commits the
// batch it holds (bounded by FinalTimeout), leaves the group and returns.
// It owns its Kafka client. Records are read committed: the derived topics
// are written in transactions.
func (l *Loader[T]) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer l.metrics.unregister()
	opts := append(append([]kgo.Opt(nil), l.kopts...),
		kgo.ConsumerGroup(l.o.group),
		kgo.ConsumeTopics(l.o.topics...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		// Polled records are inserted and committed before the partitions
		// may move: a new owner starts after the last commit.
		kgo.BlockRebalanceOnPoll(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("loader %s: kafka client: %w", l.spec.Name, err)
	}
	defer cl.Close()

	for ctx.Err() == nil {
		polled, rows := l.collect(ctx, cl)
		if len(polled) > 0 {
			l.store(ctx, cl, polled, rows)
		}
		cl.AllowRebalance()
	}
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), FinalTimeout)
	defer cancel()
	if err := cl.LeaveGroupContext(final); err != nil {
		l.log.Debug("loader: leave group", "err", err)
	}
	return nil
}

// collect polls until it holds a full batch, or the flush interval passed
// since its first record, or ctx ends. It returns the polled records (to
// commit) and the rows decoded from them.
func (l *Loader[T]) collect(ctx context.Context, cl *kgo.Client) ([]*kgo.Record, []T) {
	var (
		polled   []*kgo.Record
		rows     []T
		deadline time.Time
	)
	for len(polled) < l.o.batchSize {
		pctx, cancel := ctx, context.CancelFunc(func() {})
		if !deadline.IsZero() {
			pctx, cancel = context.WithDeadline(ctx, deadline)
		}
		fetches := cl.PollRecords(pctx, l.o.batchSize-len(polled))
		cancel()
		if fetches.IsClientClosed() {
			return polled, rows
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				l.log.Warn("loader: fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			polled = append(polled, r)
			row, err := l.spec.Decode(r)
			if err != nil {
				l.metrics.undecodable.Inc()
				l.log.Error("loader: record does not decode; skipped", "topic", r.Topic, "partition", r.Partition,
					"offset", r.Offset, "bytes", len(r.Value), "err", err)
				return
			}
			rows = append(rows, row)
		})
		if len(polled) > 0 && deadline.IsZero() {
			deadline = time.Now().Add(l.o.flushInterval)
		}
		if ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			return polled, rows
		}
	}
	return polled, rows
}

// store inserts rows, retrying until it succeeds or ctx ends, then commits
// polled. After ctx ended it makes one last attempt bounded by
// FinalTimeout; rows it could not insert stay uncommitted and are read
// again by the group's next member.
func (l *Loader[T]) store(ctx context.Context, cl *kgo.Client, polled []*kgo.Record, rows []T) {
	backoff := l.o.retryBackoff
	warned := false
	for {
		ictx, cancel := ctx, context.CancelFunc(func() {})
		if ctx.Err() != nil {
			ictx, cancel = context.WithTimeout(context.WithoutCancel(ctx), FinalTimeout)
		}
		var err error
		if len(rows) > 0 {
			err = l.spec.Insert(ictx, rows)
		}
		cancel()
		if err == nil {
			break
		}
		l.metrics.insertFailures.Inc()
		if ctx.Err() != nil {
			l.log.Warn("loader: stopping with a batch not inserted; it is loaded again on the next start",
				"records", len(rows), "err", err)
			return
		}
		if !warned {
			warned = true
			l.log.Warn("loader: insert failed; retrying (offsets stay uncommitted)", "records", len(rows), "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, MaxRetryBackoff)
	}
	if warned {
		l.log.Info("loader: insert succeeded again", "records", len(rows))
	}
	l.metrics.loaded.Add(float64(len(rows)))
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), FinalTimeout)
	defer cancel()
	if err := cl.CommitRecords(cctx, polled...); err != nil {
		l.log.Warn("loader: commit failed; these records will be loaded again (duplicates are harmless)",
			"records", len(polled), "err", err)
	}
}
