package dispatcher

import (
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"
)

// tracker knows, per assigned partition, which fetched records still have
// deliveries running, and which record is the highest one below which
// everything has finished: the offset that may be committed.
type tracker struct {
	mu    sync.Mutex
	parts map[tp]*partTrack
	ready map[tp]*kgo.Record
	kick  chan struct{} // signals the commit loop; capacity 1
	hook  func(map[string][]int32)
}

// setRevokeHook sets a function called with partitions revoked or lost.
func (t *tracker) setRevokeHook(f func(map[string][]int32)) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.hook = f
}

// onRevoke calls the revoke hook, if any.
func (t *tracker) onRevoke(revoked map[string][]int32) {
	t.mu.Lock()
	f := t.hook
	t.mu.Unlock()
	if f != nil {
		f(revoked)
	}
}

type tp struct {
	topic     string
	partition int32
}

type partTrack struct {
	pending []*recTrack // in offset order
}

type recTrack struct {
	part      *partTrack
	key       tp
	rec       *kgo.Record
	remaining int
}

func newTracker() *tracker {
	return &tracker{parts: map[tp]*partTrack{}, ready: map[tp]*kgo.Record{}, kick: make(chan struct{}, 1)}
}

// assign starts tracking newly assigned partitions.
func (t *tracker) assign(assigned map[string][]int32) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for topic, ps := range assigned {
		for _, p := range ps {
			t.parts[tp{topic, p}] = &partTrack{}
		}
	}
}

// revoke stops tracking partitions and returns their committable records.
// Deliveries still running for them finish without effect.
func (t *tracker) revoke(revoked map[string][]int32) []*kgo.Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out []*kgo.Record
	for topic, ps := range revoked {
		for _, p := range ps {
			k := tp{topic, p}
			delete(t.parts, k)
			if r := t.ready[k]; r != nil {
				out = append(out, r)
				delete(t.ready, k)
			}
		}
	}
	return out
}

// add tracks rec with n deliveries, or returns nil when its partition is
// not assigned to us.
func (t *tracker) add(rec *kgo.Record, n int) *recTrack {
	t.mu.Lock()
	defer t.mu.Unlock()
	k := tp{rec.Topic, rec.Partition}
	pt := t.parts[k]
	if pt == nil {
		return nil
	}
	rt := &recTrack{part: pt, key: k, rec: rec, remaining: n}
	pt.pending = append(pt.pending, rt)
	return rt
}

// finish marks one delivery of rt finished and advances its partition's
// committable record.
func (t *tracker) finish(rt *recTrack) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if rt.remaining > 0 {
		rt.remaining--
	}
	if t.parts[rt.key] != rt.part { // revoked (and maybe reassigned) since
		return
	}
	pt := rt.part
	advanced := false
	for len(pt.pending) > 0 && pt.pending[0].remaining == 0 {
		t.ready[rt.key] = pt.pending[0].rec
		pt.pending[0] = nil
		pt.pending = pt.pending[1:]
		advanced = true
	}
	if advanced {
		select {
		case t.kick <- struct{}{}:
		default:
		}
	}
}

// take returns and clears the committable records.
func (t *tracker) take() []*kgo.Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]*kgo.Record, 0, len(t.ready))
	for k, r := range t.ready {
		out = append(out, r)
		delete(t.ready, k)
	}
	return out
}

// putBack returns records whose commit failed, unless a later record of
// the same partition became committable meanwhile or it was revoked.
func (t *tracker) putBack(recs []*kgo.Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for _, r := range recs {
		k := tp{r.Topic, r.Partition}
		if t.parts[k] == nil {
			continue
		}
		if cur := t.ready[k]; cur == nil || cur.Offset < r.Offset {
			t.ready[k] = r
		}
	}
}
