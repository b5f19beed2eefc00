package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync/atomic"

	"github.com/twmb/franz-go/pkg/kgo"
)

var (
	// ErrClosed reports a Write after Close.
	ErrClosed = errors.New("audit: writer closed")
	// ErrNotAcked reports a synchronous Write whose context ended before
	// Kafka acknowledged the record. The record is not withdrawn: the
	// client keeps retrying it, and it may still be stored.
	ErrNotAcked = errors.New("audit: record not acknowledged by Kafka")
)

// Writer seals audit records into a chain and produces them to the audit
// topic (acks=all, idempotent), keyed by the chain's instance id so the
// chain stays ordered in one partition. Safe for concurrent use; Close it
// when the API has stopped serving.
//
// Delivery: the franz-go client retries a record until Kafka takes it
// (no record timeout, unbounded retries), so a Kafka outage delays records
// rather than dropping them. A record Kafka refuses for good (too large,
// topic missing) is logged at error level with its every field and counted
// in vitals_audit_write_failures_total. On a crash, records not yet
// acknowledged are lost: asynchronous ones (non-mutating calls, at most the
// linger time plus a produce round trip old, more while Kafka is down) and
// synchronous ones whose Write had already given up (ErrNotAcked).
// Acknowledged records are durable. Every lost record shows as a gap in
// Verify.
type Writer struct {
	cl      *kgo.Client
	chain   *Chain
	topic   string
	log     *slog.Logger
	metrics *writerMetrics
	slots   chan struct{} // one per record not yet acknowledged or failed
	closed  atomic.Bool
}

// NewWriter returns a Writer producing with a franz-go client built from
// kopts (seed brokers, client id, security: broker.Options) plus its own
// producer settings: acks=all, the linger of WithLinger, default
// partitioning by key. Options: WithChain, WithTopic, WithLinger,
// WithMaxBuffered, WithLogger, WithMetrics.
func NewWriter(kopts []kgo.Opt, opts ...Option) (*Writer, error) {
	o := newOptions(opts)
	if o.linger <= 0 || o.linger > MaxLinger {
		return nil, fmt.Errorf("audit: linger %v: must be in (0, %v]", o.linger, MaxLinger)
	}
	if o.maxBuffered <= 0 {
		return nil, fmt.Errorf("audit: max buffered %d: must be positive", o.maxBuffered)
	}
	if o.chain == nil {
		o.chain = NewChain()
	}
	m, err := newWriterMetrics(o.reg)
	if err != nil {
		return nil, fmt.Errorf("audit: writer metrics: %w", err)
	}
	all := append(append([]kgo.Opt(nil), kopts...),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(o.linger),
		// Twice the Writer's own bound: a record's slot is released in
		// its promise, a moment before the client forgets it, so
		// TryProduce never meets a full client buffer.
		kgo.MaxBufferedRecords(2*o.maxBuffered),
	)
	cl, err := kgo.NewClient(all...)
	if err != nil {
		m.unregister()
		return nil, fmt.Errorf("audit: kafka client: %w", err)
	}
	return &Writer{
		cl: cl, chain: o.chain, topic: o.topic, log: o.log, metrics: m,
		slots: make(chan struct{}, o.maxBuffered),
	}, nil
}

// Instance returns the id of the Writer's chain.
func (w *Writer) Instance() string { return w.chain.Instance() }

// Write seals rec into the chain (see Chain.Seal), queues it for Kafka and
// returns the sealed record.
//
// With sync (mutating calls), Write returns once Kafka acknowledged the
// record (acks=all), or with its error: the caller must then not send the
// call's response as if it were audited. If ctx ends first Write returns
// an error wrapping ErrNotAcked; the record stays queued and may still be
// stored. Without sync, Write returns once the record is queued; it is
// sent within the linger time and a failure is logged and counted, not
// returned.
//
// Write waits, until ctx ends, only while WithMaxBuffered records are
// unacknowledged (Kafka slow or down); it then fails without sealing.
func (w *Writer) Write(ctx context.Context, rec Record, sync bool) (Record, error) {
	if w.closed.Load() {
		return Record{}, ErrClosed
	}
	select {
	case w.slots <- struct{}{}:
	case <-ctx.Done():
		return Record{}, fmt.Errorf("audit: write: waiting while %d records are unacknowledged: %w", cap(w.slots), ctx.Err())
	}
	mode := "async"
	var acked chan error
	if sync {
		mode, acked = "sync", make(chan error, 1)
	}

	// Seal and enqueue under the chain's lock, so the partition holds the
	// chain in sequence order.
	w.chain.mu.Lock()
	sealed := w.chain.sealLocked(rec)
	value, err := json.Marshal(sealed)
	if err != nil { // a Record always marshals; keep the chain honest anyway
		w.chain.mu.Unlock()
		<-w.slots
		w.failed(sealed, mode, err)
		return sealed, fmt.Errorf("audit: encode record %s/%d: %w", sealed.Instance, sealed.Seq, err)
	}
	// The record's own context is never cancelled: franz-go fails every
	// buffered record of a partition with a cancelled one. Write's ctx
	// bounds only the caller's wait.
	w.cl.TryProduce(context.Background(), &kgo.Record{Topic: w.topic, Key: []byte(sealed.Instance), Value: value},
		func(_ *kgo.Record, err error) {
			<-w.slots
			if err != nil {
				w.failed(sealed, mode, err)
			} else {
				w.metrics.written.WithLabelValues(mode).Inc()
			}
			if acked != nil {
				acked <- err
			}
		})
	w.chain.mu.Unlock()

	if !sync {
		return sealed, nil
	}
	select {
	case err := <-acked:
		if err != nil {
			return sealed, fmt.Errorf("audit: write record %s/%d: %w", sealed.Instance, sealed.Seq, err)
		}
		return sealed, nil
	case <-ctx.Done():
		return sealed, fmt.Errorf("audit: write record %s/%d: %w: %w", sealed.Instance, sealed.Seq, ErrNotAcked, ctx.Err())
	}
}

// failed logs a record Kafka did not take, in full (it holds no secret), so
// it can be recovered from the logs, and counts it.
func (w *Writer) failed(r Record, mode string, err error) {
	w.metrics.failed.WithLabelValues(mode).Inc()
	w.log.Error("audit: record not written to Kafka; the chain has a gap here",
		"mode", mode, "instance", r.Instance, "seq", r.Seq, "record", r, "err", err)
}

// Close waits until every queued record is acknowledged or failed, or ctx
// ends, then closes the Kafka client (failing what is still queued, each
// logged). Writes after Close fail with ErrClosed.
func (w *Writer) Close(ctx context.Context) error {
	w.closed.Store(true)
	err := w.cl.Flush(ctx)
	w.cl.Close()
	w.metrics.unregister()
	if err != nil {
		return fmt.Errorf("audit: flush on close: %w", err)
	}
	return nil
}
