package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// ErrAlreadyRunning reports a second Run of one Loader.
var ErrAlreadyRunning = errors.New("audit: loader already running")

// maxRetryBackoff bounds the Loader's wait between failed inserts.
const maxRetryBackoff = 30 * time.Second

// finalInsertTimeout bounds the insert of the last batch after Run's
// context ended.
const finalInsertTimeout = 10 * time.Second

// Sink stores audit records: analytics.AuditStore (ClickHouse api_audit).
// InsertAudit must store all of recs or fail; storing a record twice must
// be harmless (the Loader is at least once).
type Sink interface {
	InsertAudit(ctx context.Context, recs []Record) error
}

// Loader reads the audit topic in a consumer group and inserts the records
// into a Sink in batches, committing offsets only after the insert: at
// least once. A failed insert is retried (backoff up to 30 s) until it
// succeeds or Run ends; meanwhile offsets stay uncommitted and the group
// does not rebalance, so nothing is skipped. A record that is not an audit
// record is logged (partition, offset) and counted, then skipped.
type Loader struct {
	kopts   []kgo.Opt
	sink    Sink
	o       options
	metrics *loaderMetrics
	running atomic.Bool
}

// NewLoader returns a Loader consuming with a franz-go client built from
// kopts (broker.Options) and inserting into sink. Options: WithGroup,
// WithTopic, WithBatchSize, WithFlushInterval, WithRetryBackoff,
// WithLogger, WithMetrics.
func NewLoader(kopts []kgo.Opt, sink Sink, opts ...Option) (*Loader, error) {
	o := newOptions(opts)
	if sink == nil {
		return nil, errors.New("audit: loader needs a sink")
	}
	if o.batchSize <= 0 || o.flushInterval <= 0 || o.retryBackoff <= 0 {
		return nil, errors.New("audit: loader batch size, flush interval and retry backoff must be positive")
	}
	m, err := newLoaderMetrics(o.reg)
	if err != nil {
		return nil, fmt.Errorf("audit: loader metrics: %w", err)
	}
	return &Loader{kopts: kopts, sink: sink, o: o, metrics: m}, nil
}

// Run loads records until ctx is cancelled, then inserts and commits the
// batch it holds (bounded by 10 s), leaves the group and returns. It owns
// its Kafka client.
func (l *Loader) Run(ctx context.Context) error {
	if !l.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	defer l.metrics.unregister()
	log := l.o.log.With("component", "audit-loader", "group", l.o.group)
	opts := append(append([]kgo.Opt(nil), l.kopts...),
		kgo.ConsumerGroup(l.o.group),
		kgo.ConsumeTopics(l.o.topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.DisableAutoCommit(),
		// Polled records are inserted and committed before the partitions
		// may move: a new owner starts after the last commit.
		kgo.BlockRebalanceOnPoll(),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("audit: loader kafka client: %w", err)
	}
	defer cl.Close()

	for ctx.Err() == nil {
		polled, recs := l.collect(ctx, cl, log)
		if len(polled) > 0 {
			l.store(ctx, cl, log, polled, recs)
		}
		cl.AllowRebalance()
	}
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalInsertTimeout)
	defer cancel()
	if err := cl.LeaveGroupContext(final); err != nil {
		log.Debug("audit: leave group", "err", err)
	}
	return nil
}

// collect polls until it holds a full batch, or the flush interval passed
// since its first record, or ctx ends. It returns the polled Kafka records
// (to commit) and the audit records decoded from them.
func (l *Loader) collect(ctx context.Context, cl *kgo.Client, log *slog.Logger) ([]*kgo.Record, []Record) {
	var (
		polled   []*kgo.Record
		recs     []Record
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
			return polled, recs
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				log.Warn("audit: fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		fetches.EachRecord(func(r *kgo.Record) {
			polled = append(polled, r)
			var rec Record
			if err := json.Unmarshal(r.Value, &rec); err != nil || rec.Instance == "" || rec.Seq == 0 {
				l.metrics.undecodable.Inc()
				log.Error("audit: not an audit record; skipped", "topic", r.Topic, "partition", r.Partition,
					"offset", r.Offset, "bytes", len(r.Value), "err", err)
				return
			}
			recs = append(recs, rec)
		})
		if len(polled) > 0 && deadline.IsZero() {
			deadline = time.Now().Add(l.o.flushInterval)
		}
		if ctx.Err() != nil || (!deadline.IsZero() && !time.Now().Before(deadline)) {
			return polled, recs
		}
	}
	return polled, recs
}

// store inserts recs, retrying until it succeeds or ctx ends, then commits
// polled. After ctx ended it makes one last attempt bounded by
// finalInsertTimeout; records it could not insert stay uncommitted and are
// read again by the group's next member.
func (l *Loader) store(ctx context.Context, cl *kgo.Client, log *slog.Logger, polled []*kgo.Record, recs []Record) {
	backoff := l.o.retryBackoff
	warned := false
	for {
		ictx, cancel := ctx, context.CancelFunc(func() {})
		if ctx.Err() != nil {
			ictx, cancel = context.WithTimeout(context.WithoutCancel(ctx), finalInsertTimeout)
		}
		var err error
		if len(recs) > 0 {
			err = l.sink.InsertAudit(ictx, recs)
		}
		cancel()
		if err == nil {
			break
		}
		l.metrics.insertFailure.Inc()
		if ctx.Err() != nil {
			log.Warn("audit: stopping with a batch not inserted; it is loaded again on the next start", "records", len(recs), "err", err)
			return
		}
		if !warned {
			warned = true
			log.Warn("audit: insert failed; retrying (offsets stay uncommitted)", "records", len(recs), "err", err)
		}
		select {
		case <-ctx.Done():
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, maxRetryBackoff)
	}
	if warned {
		log.Info("audit: insert succeeded again", "records", len(recs))
	}
	l.metrics.loaded.Add(float64(len(recs)))
	cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), finalInsertTimeout)
	defer cancel()
	if err := cl.CommitRecords(cctx, polled...); err != nil {
		log.Warn("audit: commit failed; these records will be loaded again (duplicates are harmless)", "records", len(polled), "err", err)
	}
}
