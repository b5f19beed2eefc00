package processor

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/topics"
)

// restorePoll is how often a restore re-reads the changelog's offsets while
// it waits for an open transaction on a changelog partition to end.
const restorePoll = 50 * time.Millisecond

// table owns the committed state of every customer of one input partition:
// the same partition number of topics.CustomerState is its changelog. Its
// map is only replaced or added to by the poll loop, at restore and when a
// transaction committed; values are never changed in place (a transaction
// works on clones), so a committed State stays as it was committed.
type table struct {
	partition int32
	customers map[string]*model.State
}

// changelogRecord is the record that persists st in the table's changelog
// partition: keyed by customer id, on the same partition number as the
// input record that changed it.
func (t *table) changelogRecord(st *model.State, value []byte) *kgo.Record {
	return &kgo.Record{Topic: topics.CustomerState, Partition: t.partition, Key: []byte(st.CustomerID), Value: value}
}

// tables is the set of tables of the assigned input partitions. The
// rebalance callbacks (franz-go's goroutines) mark partitions assigned,
// revoked or lost; the poll loop restores assigned ones and reads and
// updates tables. Only the map is shared, under mu.
type tables struct {
	mu    sync.Mutex
	parts map[int32]*table
	// pending are assigned partitions not restored yet, each with the
	// assignment generation it was marked in, so a restore that raced a
	// revoke and a new assignment is not installed.
	pending map[int32]uint64
	gen     uint64
}

func newTables() *tables {
	return &tables{parts: make(map[int32]*table), pending: make(map[int32]uint64)}
}

// assigned marks partitions to be restored before their input is
// processed.
func (ts *tables) assigned(partitions []int32) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	ts.gen++
	for _, p := range partitions {
		delete(ts.parts, p)
		ts.pending[p] = ts.gen
	}
}

// dropped forgets revoked or lost partitions.
func (ts *tables) dropped(partitions []int32) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for _, p := range partitions {
		delete(ts.parts, p)
		delete(ts.pending, p)
	}
}

// get returns partition's table, or nil when the partition is not assigned
// or not restored yet.
func (ts *tables) get(partition int32) *table {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	return ts.parts[partition]
}

// toRestore returns the partitions waiting for a restore, with their
// generations.
func (ts *tables) toRestore() map[int32]uint64 {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if len(ts.pending) == 0 {
		return nil
	}
	return maps.Clone(ts.pending)
}

// install makes t the table of its partition, unless the partition was
// revoked or reassigned since the restore began.
func (ts *tables) install(t *table, gen uint64) bool {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	if g, ok := ts.pending[t.partition]; !ok || g != gen {
		return false
	}
	delete(ts.pending, t.partition)
	ts.parts[t.partition] = t
	return true
}

// commit makes the states of a committed transaction the tables' state.
// A partition revoked meanwhile is skipped: its new owner restores it from
// the changelog, which holds the same states.
func (ts *tables) commit(dirty map[int32]map[string]*model.State) {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	for p, states := range dirty {
		t, ok := ts.parts[p]
		if !ok {
			continue
		}
		for id, st := range states {
			t.customers[id] = st
		}
	}
}

// customers counts the customers held in all tables.
func (ts *tables) customers() int {
	ts.mu.Lock()
	defer ts.mu.Unlock()
	n := 0
	for _, t := range ts.parts {
		n += len(t.customers)
	}
	return n
}

// restorer reads changelog partitions back into tables.
type restorer struct {
	base  []kgo.Opt // connection options (seed brokers, TLS, SASL, client id)
	adm   *kadm.Client
	codec StateCodec
}

// restore reads each partition of topics.CustomerState in parts from its
// start to its last stable offset with read_committed and returns the
// tables they hold (latest value per key; an empty value deletes).
//
// It first waits until no transaction is open on those partitions: the
// previous owner's last transaction may be committed (its offsets already
// readable) while its markers have not reached the changelog yet, and
// reading before they did would lose that transaction's states.
func (r *restorer) restore(ctx context.Context, parts []int32) (map[int32]*table, error) {
	ends, err := r.stableEnds(ctx, parts)
	if err != nil {
		return nil, err
	}
	out := make(map[int32]*table, len(parts))
	from := make(map[int32]kgo.Offset)
	for _, p := range parts {
		out[p] = &table{partition: p, customers: make(map[string]*model.State)}
		if ends[p] > 0 {
			from[p] = kgo.NewOffset().AtStart()
		}
	}
	if len(from) == 0 {
		return out, nil
	}
	cl, err := kgo.NewClient(append(slices.Clone(r.base),
		kgo.ConsumePartitions(map[string]map[int32]kgo.Offset{topics.CustomerState: from}),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		// Markers are kept so reading knows it reached the end when the
		// last offsets before it are markers; they are not state.
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return nil, fmt.Errorf("restore: new kafka client: %w", err)
	}
	defer cl.Close()
	for len(from) > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return nil, fmt.Errorf("restore partitions %v: %w", slices.Sorted(maps.Keys(from)), err)
		}
		for _, fe := range fetches.Errors() {
			return nil, fmt.Errorf("restore %s partition %d: %w", fe.Topic, fe.Partition, fe.Err)
		}
		var derr error
		fetches.EachRecord(func(rec *kgo.Record) {
			end, ok := ends[rec.Partition]
			if _, reading := from[rec.Partition]; !ok || !reading || rec.Offset >= end || derr != nil {
				return
			}
			if rec.Offset == end-1 {
				delete(from, rec.Partition)
			}
			if rec.Attrs.IsControl() {
				return
			}
			t := out[rec.Partition]
			if len(rec.Value) == 0 {
				delete(t.customers, string(rec.Key))
				return
			}
			st, err := r.codec.DecodeState(rec.Value)
			if err != nil {
				derr = fmt.Errorf("restore %s partition %d offset %d (customer %s): %w",
					rec.Topic, rec.Partition, rec.Offset, rec.Key, err)
				return
			}
			t.customers[string(rec.Key)] = st
		})
		if derr != nil {
			return nil, derr
		}
	}
	return out, nil
}

// stableEnds waits until the last stable offset of every partition in parts
// reached the high watermark seen at the start (every transaction that had
// written to it has ended), and returns the last stable offsets.
func (r *restorer) stableEnds(ctx context.Context, parts []int32) (map[int32]int64, error) {
	list := func(f func(context.Context, ...string) (kadm.ListedOffsets, error)) (map[int32]int64, error) {
		offs, err := f(ctx, topics.CustomerState)
		if err == nil {
			err = offs.Error()
		}
		if err != nil {
			return nil, err
		}
		out := make(map[int32]int64, len(parts))
		for _, p := range parts {
			o, ok := offs.Lookup(topics.CustomerState, p)
			if !ok {
				return nil, fmt.Errorf("partition %d not listed", p)
			}
			out[p] = o.Offset
		}
		return out, nil
	}
	hw, err := list(r.adm.ListEndOffsets)
	if err != nil {
		return nil, fmt.Errorf("restore: list end offsets of %s: %w", topics.CustomerState, err)
	}
	for {
		lso, err := list(r.adm.ListCommittedOffsets)
		if err != nil {
			return nil, fmt.Errorf("restore: list stable offsets of %s: %w", topics.CustomerState, err)
		}
		open := false
		for p, h := range hw {
			open = open || lso[p] < h
		}
		if !open {
			return lso, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("restore: waiting for open transactions on %s to end: %w", topics.CustomerState, ctx.Err())
		case <-time.After(restorePoll):
		}
	}
}
