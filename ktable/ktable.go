// Package ktable materializes a compacted Kafka topic as an in-memory table,
// the way goka's views and Kafka Streams' global tables do. Every instance of
// every stage reads the whole topic from the start (no consumer group), so
// all of them converge on the same state; writes go through Kafka and are
// visible to the writer as soon as Put returns (read-your-writes).
//
// It is for small control-plane data (endpoints, OAuth clients, keys), not
// for per-customer state, which is partitioned. It must never hold business
// logic: values are opaque to it beyond their Codec.
package ktable

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"sync"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Codec turns values into record values and back. The seam for encryption
// at rest: a sealing codec wraps the JSON one.
type Codec[V any] interface {
	Marshal(V) ([]byte, error)
	Unmarshal([]byte) (V, error)
}

// JSON is the default Codec: encoding/json.
type JSON[V any] struct{}

// Marshal implements Codec.
func (JSON[V]) Marshal(v V) ([]byte, error) { return json.Marshal(v) }

// Unmarshal implements Codec.
func (JSON[V]) Unmarshal(b []byte) (V, error) {
	var v V
	err := json.Unmarshal(b, &v)
	return v, err
}

// Table is a materialized compacted topic. Create it with New, start Run in
// a goroutine the caller owns, and wait for Ready before serving reads.
type Table[V any] struct {
	topic  string
	codec  Codec[V]
	logger *slog.Logger
	cl     *kgo.Client

	mu      sync.RWMutex
	rows    map[string]V
	applied map[int32]int64 // partition → next offset to apply
	changed chan struct{}   // closed and replaced on every applied batch
	ready   chan struct{}   // closed once the start-up end offsets are applied
	start   map[int32]int64 // end offsets observed at start
	onApply []func(key string, v V, deleted bool)
}

// Option configures a Table.
type Option[V any] func(*Table[V])

// WithCodec sets the value codec (default JSON).
func WithCodec[V any](c Codec[V]) Option[V] { return func(t *Table[V]) { t.codec = c } }

// WithLogger sets the logger.
func WithLogger[V any](l *slog.Logger) Option[V] { return func(t *Table[V]) { t.logger = l } }

// OnApply registers fn to be called, under no lock, after each record is
// applied (also during the initial catch-up). It must not block.
func OnApply[V any](fn func(key string, v V, deleted bool)) Option[V] {
	return func(t *Table[V]) { t.onApply = append(t.onApply, fn) }
}

// New returns a table over topic using a client built from clientOpts (seed
// brokers and the like). The topic must exist.
func New[V any](topic string, clientOpts []kgo.Opt, opts ...Option[V]) (*Table[V], error) {
	t := &Table[V]{
		topic:   topic,
		codec:   JSON[V]{},
		logger:  slog.Default(),
		rows:    map[string]V{},
		applied: map[int32]int64{},
		changed: make(chan struct{}),
		ready:   make(chan struct{}),
	}
	for _, o := range opts {
		o(t)
	}
	cl, err := kgo.NewClient(append(slices.Clone(clientOpts),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// Transactional writers (the processor's changelog) must only be
		// seen once committed. Control records are kept so that reaching
		// the end is visible when the last offsets are transaction markers.
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)...)
	if err != nil {
		return nil, fmt.Errorf("ktable %s: %w", topic, err)
	}
	t.cl = cl
	return t, nil
}

// Run consumes the topic until ctx is done, then closes the client.
func (t *Table[V]) Run(ctx context.Context) error {
	defer t.cl.Close()
	// The last stable offset: with read_committed nothing beyond it is
	// readable yet, and without open transactions it is the end.
	ends, err := kadm.NewClient(t.cl).ListCommittedOffsets(ctx, t.topic)
	if err != nil {
		return fmt.Errorf("ktable %s: end offsets: %w", t.topic, err)
	}
	if err := ends.Error(); err != nil {
		return fmt.Errorf("ktable %s: end offsets: %w", t.topic, err)
	}
	t.mu.Lock()
	t.start = map[int32]int64{}
	ends.Each(func(o kadm.ListedOffset) { t.start[o.Partition] = o.Offset })
	t.maybeReadyLocked()
	t.mu.Unlock()

	for {
		fs := t.cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(topic string, p int32, err error) {
			t.logger.Warn("ktable fetch error", "topic", topic, "partition", p, "err", err)
		})
		var applied []func()
		t.mu.Lock()
		fs.EachRecord(func(r *kgo.Record) {
			key := string(r.Key)
			t.applied[r.Partition] = r.Offset + 1
			if r.Attrs.IsControl() {
				return
			}
			if r.Value == nil {
				old, had := t.rows[key]
				delete(t.rows, key)
				if had {
					applied = append(applied, t.notify(key, old, true))
				}
				return
			}
			v, err := t.codec.Unmarshal(r.Value)
			if err != nil {
				t.logger.Error("ktable: undecodable record skipped", "topic", t.topic, "partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			t.rows[key] = v
			applied = append(applied, t.notify(key, v, false))
		})
		t.maybeReadyLocked()
		close(t.changed)
		t.changed = make(chan struct{})
		t.mu.Unlock()
		for _, fn := range applied {
			fn()
		}
	}
}

func (t *Table[V]) notify(key string, v V, deleted bool) func() {
	return func() {
		for _, fn := range t.onApply {
			fn(key, v, deleted)
		}
	}
}

func (t *Table[V]) maybeReadyLocked() {
	if t.start == nil {
		return
	}
	select {
	case <-t.ready:
		return
	default:
	}
	for p, end := range t.start {
		if t.applied[p] < end {
			return
		}
	}
	close(t.ready)
}

// Ready returns a channel closed once the table holds everything the topic
// held (committed) when Run started. It is reached by seeing the record just
// before that end offset. (Compaction never cleans the active segment, but a
// cleaned-up transaction marker at the very end of a rolled segment would
// leave that offset unseen; the caller's readiness deadline reports it.)
func (t *Table[V]) Ready() <-chan struct{} { return t.ready }

// WaitReady blocks until Ready or ctx is done.
func (t *Table[V]) WaitReady(ctx context.Context) error {
	select {
	case <-t.ready:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("ktable %s: not ready: %w", t.topic, ctx.Err())
	}
}

// Get returns the value stored under key.
func (t *Table[V]) Get(key string) (V, bool) {
	t.mu.RLock()
	defer t.mu.RUnlock()
	v, ok := t.rows[key]
	return v, ok
}

// Len returns the number of rows.
func (t *Table[V]) Len() int {
	t.mu.RLock()
	defer t.mu.RUnlock()
	return len(t.rows)
}

// Keys returns every key, unordered.
func (t *Table[V]) Keys() []string {
	t.mu.RLock()
	defer t.mu.RUnlock()
	keys := make([]string, 0, len(t.rows))
	for k := range t.rows {
		keys = append(keys, k)
	}
	return keys
}

// All returns every value, ordered by key.
func (t *Table[V]) All() []V {
	t.mu.RLock()
	keys := make([]string, 0, len(t.rows))
	for k := range t.rows {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	out := make([]V, len(keys))
	for i, k := range keys {
		out[i] = t.rows[k]
	}
	t.mu.RUnlock()
	return out
}

// Put writes v under key and returns once Kafka acknowledged it and this
// table applied it, so a Get right after sees it.
func (t *Table[V]) Put(ctx context.Context, key string, v V) error {
	b, err := t.codec.Marshal(v)
	if err != nil {
		return fmt.Errorf("ktable %s: encode %s: %w", t.topic, key, err)
	}
	return t.write(ctx, key, b)
}

// Delete removes key (a tombstone) and returns once applied locally.
func (t *Table[V]) Delete(ctx context.Context, key string) error {
	return t.write(ctx, key, nil)
}

func (t *Table[V]) write(ctx context.Context, key string, value []byte) error {
	rec := &kgo.Record{Topic: t.topic, Key: []byte(key), Value: value}
	if err := t.cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
		return fmt.Errorf("ktable %s: write %s: %w", t.topic, key, err)
	}
	for {
		t.mu.RLock()
		done := t.applied[rec.Partition] > rec.Offset
		ch := t.changed
		t.mu.RUnlock()
		if done {
			return nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return fmt.Errorf("ktable %s: write %s: waiting to apply: %w", t.topic, key, ctx.Err())
		}
	}
}
