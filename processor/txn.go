package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/topics"
)

// Causes of an aborted transaction, the label of
// vitals_processor_transactions_aborted_total.
const (
	abortRebalance = "rebalance"     // End aborted: the group rebalanced or the commit was refused
	abortProduce   = "produce_error" // a record of the transaction failed to produce
	abortShutdown  = "shutdown"      // Run's context was cancelled
	abortError     = "error"         // processing failed; Run returns the error
)

// loop is the state of one Run: the session, the tables and the restorer.
// Only Run's goroutine uses it (the rebalance callbacks reach the tables).
type loop struct {
	p   *Processor
	s   *kgo.GroupTransactSession
	ts  *tables
	rs  *restorer
	log *slog.Logger
	// produceAborts counts transactions in a row aborted by a failed
	// produce.
	produceAborts int
}

// txn is the work of one transaction, applied to the tables and the
// metrics only if it commits.
type txn struct {
	// dirty holds, per input partition, the states the transaction changed:
	// clones of the committed states (copy on write).
	dirty   map[int32]map[string]*model.State
	records int
	// doomed is set when the transaction cannot commit (a partition it
	// wrote to was reassigned within it); it is aborted at once.
	doomed bool

	events  map[string]int // by outcome
	derived map[string]int // by event type
	skipped map[string]int // by reason
	dlq     map[string]int // by reason
	encode  int

	mu         sync.Mutex
	produceErr error
}

func newTxn() *txn {
	return &txn{dirty: map[int32]map[string]*model.State{}, events: map[string]int{}, derived: map[string]int{},
		skipped: map[string]int{}, dlq: map[string]int{}}
}

// promise records the first produce error of the transaction.
func (tx *txn) promise(_ *kgo.Record, err error) {
	if err == nil {
		return
	}
	tx.mu.Lock()
	defer tx.mu.Unlock()
	if tx.produceErr == nil {
		tx.produceErr = err
	}
}

func (tx *txn) failed() error {
	tx.mu.Lock()
	defer tx.mu.Unlock()
	return tx.produceErr
}

// state returns the transaction's copy of customer's state in t, cloning
// the committed one on first use.
func (tx *txn) state(t *table, customer string) *model.State {
	d := tx.dirty[t.partition]
	if d == nil {
		d = map[string]*model.State{}
		tx.dirty[t.partition] = d
	}
	st, ok := d[customer]
	if !ok {
		if committed, ok := t.customers[customer]; ok {
			st = cloneState(committed)
		} else {
			st = &model.State{CustomerID: customer}
		}
		d[customer] = st
	}
	return st
}

// transaction runs one transaction: poll and process until it holds the
// configured number of records or its interval is over, then write the
// changed states to the changelog and end it. It returns an error only for
// failures Run cannot continue after.
func (l *loop) transaction(ctx context.Context) error {
	o := l.p.o
	if err := l.restorePending(ctx, newTxn()); err != nil {
		return err
	}
	if err := l.s.Begin(); err != nil {
		return fmt.Errorf("%w: begin: %w", ErrTransaction, err)
	}
	tx := newTxn()
	deadline := time.Now().Add(o.txnInterval)
	for tx.records < o.txnRecords && !tx.doomed && tx.failed() == nil {
		pctx, cancel := context.WithDeadline(ctx, deadline)
		fetches := l.s.PollRecords(pctx, o.txnRecords-tx.records)
		cancel()
		if ctx.Err() != nil || fetches.IsClientClosed() {
			l.end(ctx, tx, false, abortShutdown)
			return ctx.Err()
		}
		for _, fe := range fetches.Errors() {
			if !errors.Is(fe.Err, context.DeadlineExceeded) {
				l.log.Warn("fetch failed", "topic", fe.Topic, "partition", fe.Partition, "err", fe.Err)
			}
		}
		if err := l.process(ctx, tx, fetches); err != nil {
			l.end(ctx, tx, false, abortError)
			return err
		}
		if !time.Now().Before(deadline) {
			break
		}
	}
	if tx.records == 0 && len(tx.dirty) == 0 {
		// Nothing was polled: the session has nothing to commit.
		_, err := l.s.End(ctx, kgo.TryAbort)
		if err != nil && ctx.Err() == nil {
			return fmt.Errorf("%w: end empty transaction: %w", ErrTransaction, err)
		}
		return nil
	}
	if err := l.writeChangelog(ctx, tx); err != nil {
		l.end(ctx, tx, false, abortError)
		return err
	}
	committed, err := l.end(ctx, tx, !tx.doomed, abortRebalance)
	if err != nil {
		return err
	}
	if committed {
		l.produceAborts = 0
	} else if perr := tx.failed(); perr != nil {
		l.produceAborts++
		if l.produceAborts >= maxProduceAborts {
			return fmt.Errorf("%w: %d transactions in a row failed to produce: %w", ErrTransaction, l.produceAborts, perr)
		}
	}
	return nil
}

// writeChangelog produces the latest state of every customer the
// transaction changed to its table's changelog partition.
func (l *loop) writeChangelog(ctx context.Context, tx *txn) error {
	for p, states := range tx.dirty {
		t := &table{partition: p}
		for _, id := range slices.Sorted(maps.Keys(states)) {
			b, err := l.p.o.stateCodec.EncodeState(states[id])
			if err != nil {
				return fmt.Errorf("processor: changelog of partition %d: %w", p, err)
			}
			l.s.Produce(ctx, t.changelogRecord(states[id], b), tx.promise)
		}
	}
	return nil
}

// end ends the transaction, committing when commit is true and nothing
// failed, and applies it to the tables and metrics if it committed. cause
// labels the abort. When ctx is done, it aborts with a fresh bounded
// context so the broker does not wait for the transaction timeout.
func (l *loop) end(ctx context.Context, tx *txn, commit bool, cause string) (bool, error) {
	m := l.p.metrics
	if ctx.Err() != nil {
		commit, cause = false, abortShutdown
	}
	// Ending runs to completion even when Run is cancelled meanwhile: a
	// transaction left open would keep its partitions unreadable for
	// read_committed consumers (and the next owner's restore) until the
	// broker's transaction timeout.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), endTimeout)
	defer cancel()
	if commit {
		// Flush first so every produce result is in before deciding:
		// a transaction with a failed record must not commit.
		if err := l.s.Client().Flush(ctx); err != nil {
			commit = false
		}
	}
	if perr := tx.failed(); perr != nil && commit {
		commit, cause = false, abortProduce
		l.log.Warn("aborting transaction: a record failed to produce; its input is processed again", "err", perr)
	}
	began := time.Now()
	committed, err := l.s.End(ctx, kgo.TransactionEndTry(commit))
	if err != nil {
		if cause == abortShutdown || cause == abortError {
			l.log.Info("could not abort the open transaction; the broker aborts it after the transaction timeout", "err", err)
			return false, nil
		}
		return false, fmt.Errorf("%w: end: %w", ErrTransaction, err)
	}
	if !committed {
		if tx.records == 0 && len(tx.dirty) == 0 {
			return false, nil
		}
		m.aborts.WithLabelValues(cause).Inc()
		l.log.Info("transaction aborted; its input is processed again by the partitions' owner",
			"cause", cause, "records", tx.records, "customers", dirtyCount(tx))
		return false, nil
	}
	m.commitTime.Observe(time.Since(began).Seconds())
	m.commits.Inc()
	m.txnRecords.Observe(float64(tx.records))
	l.ts.commit(tx.dirty)
	for k, n := range tx.events {
		m.events.WithLabelValues(k).Add(float64(n))
	}
	for k, n := range tx.derived {
		m.derived.WithLabelValues(k).Add(float64(n))
	}
	for k, n := range tx.skipped {
		m.skipped.WithLabelValues(k).Add(float64(n))
	}
	for k, n := range tx.dlq {
		m.dlq.WithLabelValues(k).Add(float64(n))
	}
	m.encodeErrors.Add(float64(tx.encode))
	m.customers.Set(float64(l.ts.customers()))
	return true, nil
}

func dirtyCount(tx *txn) int {
	n := 0
	for _, d := range tx.dirty {
		n += len(d)
	}
	return n
}

// process restores newly assigned partitions, then applies one poll's
// records to the transaction.
func (l *loop) process(ctx context.Context, tx *txn, fetches kgo.Fetches) error {
	if err := l.restorePending(ctx, tx); err != nil {
		return err
	}
	if tx.doomed {
		return nil
	}
	fetches.EachPartition(func(ftp kgo.FetchTopicPartition) {
		if ftp.Topic != topics.CustomerEvents || len(ftp.Records) == 0 {
			return
		}
		last := ftp.Records[len(ftp.Records)-1]
		l.p.metrics.setLag(ftp.Partition, ftp.HighWatermark, last.Offset+1)
		tx.records += len(ftp.Records)
		t := l.ts.get(ftp.Partition)
		if t == nil {
			// Revoked while polled: the session aborts this transaction
			// and the partition's new owner processes these records.
			tx.doomed = true
			return
		}
		for _, r := range ftp.Records {
			l.apply(ctx, tx, t, r)
		}
	})
	return nil
}

// apply processes one input record within tx.
func (l *loop) apply(ctx context.Context, tx *txn, t *table, r *kgo.Record) {
	ev, err := l.p.codec.DecodeCustomerEvent(r.Value)
	if err == nil && ev.CustomerID == "" {
		err = ErrNoCustomer
	}
	if err != nil {
		reason := PoisonReason(err)
		tx.events[outcomeDLQ]++
		tx.dlq[reason]++
		l.log.Warn("sending poison customer event to the dead-letter topic", "reason", reason,
			"partition", r.Partition, "offset", r.Offset, "err", err)
		l.s.Produce(ctx, dlqRecord(r, reason, err), tx.promise)
		return
	}
	res := l.p.model.Apply(tx.state(t, ev.CustomerID), ev)
	if res.Skipped != "" {
		tx.events[outcomeSkipped]++
		tx.skipped[res.Skipped]++
		level := slog.LevelDebug
		if res.Skipped == model.SkippedLate {
			level = slog.LevelInfo
		}
		l.log.Log(ctx, level, "customer event skipped by the model", "reason", res.Skipped,
			"customer_id", ev.CustomerID, "event_id", ev.EventID, "occurred_at", ev.OccurredAt,
			"partition", r.Partition, "offset", r.Offset)
		return
	}
	tx.events[outcomeApplied]++
	for _, d := range res.Derived {
		b, err := l.p.codec.EncodeDerived(d)
		if err != nil {
			tx.encode++
			l.log.Error("dropping derived event that does not encode", "event", d.Event,
				"event_id", d.EventID, "customer_id", d.CustomerID, "err", err)
			continue
		}
		tx.derived[d.Event]++
		l.s.Produce(ctx, &kgo.Record{Topic: topics.ForDerived(d.Event), Key: []byte(d.CustomerID), Value: b}, tx.promise)
	}
}

// restorePending restores every assigned partition that has no table yet.
func (l *loop) restorePending(ctx context.Context, tx *txn) error {
	pending := l.ts.toRestore()
	if len(pending) == 0 {
		return nil
	}
	if tx.records > 0 || len(tx.dirty) > 0 {
		// Restore only at the start of a transaction, before it produced:
		// the restore may wait for the previous owner's open transaction
		// to end (up to the transaction timeout when it crashed), and ours
		// must not time out meanwhile. Nor may it wait for itself, when a
		// partition it wrote to was revoked and reassigned within it. The
		// transaction is aborted and its input polled again.
		tx.doomed = true
		return nil
	}
	parts := slices.Sorted(maps.Keys(pending))
	began := time.Now()
	restored, err := l.rs.restore(ctx, parts)
	if err != nil {
		return err
	}
	took := time.Since(began)
	n := 0
	for p, t := range restored {
		if l.ts.install(t, pending[p]) {
			n += len(t.customers)
		}
	}
	l.p.metrics.restoreTime.Observe(took.Seconds())
	l.p.metrics.restored.Add(float64(n))
	l.p.metrics.customers.Set(float64(l.ts.customers()))
	l.log.Info("restored state from the changelog", "partitions", parts, "customers", n, "took", took)
	if l.p.restored != nil {
		l.p.restored(restored, took)
	}
	return nil
}
