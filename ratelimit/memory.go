package ratelimit

import (
	"context"
	"errors"
	"hash/maphash"
	"sync"
	"time"
)

// memoryShards is the number of independently locked parts of a
// MemoryStore: enough that 64 busy goroutines rarely share a lock.
const memoryShards = 64

// sweepEvery is how often (in the store's clock) a shard drops states that
// no longer matter.
const sweepEvery = time.Minute

// sweepSlack is how long past its expiry a state is kept: a clock stepped
// back by less than this finds the state it would have found had it not
// been dropped, so a step back cannot hand out a fresh quota.
const sweepSlack = time.Minute

// MemoryStore keeps limit states in this process: right for one API
// instance; several instances need RedisStore to share counts. It is safe
// for concurrent use; keys are spread over sharded mutexes, and idle states
// are dropped a minute after they became indistinguishable from new ones
// (both fixed windows over, bucket full), checked at most once a minute per
// shard during Take, so no goroutine is needed.
type MemoryStore struct {
	seed   maphash.Seed
	shards [memoryShards]memoryShard
}

// memoryShard is one lock's share of the keys.
type memoryShard struct {
	mu        sync.Mutex
	states    map[string]*memoryEntry
	nextSweep int64 // ms; 0 = not yet set
}

// memoryEntry is one key's state and when it stops mattering.
type memoryEntry struct {
	window
	expires int64 // ms
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore {
	s := &MemoryStore{seed: maphash.MakeSeed()}
	for i := range s.shards {
		s.shards[i].states = make(map[string]*memoryEntry)
	}
	return s
}

// Take decides one request for key under l at now and counts it when
// admitted.
func (s *MemoryStore) Take(_ context.Context, key string, l Limit, now time.Time) (Decision, error) {
	if err := l.Validate(); err != nil {
		return Decision{}, err
	}
	ms := now.UnixMilli()
	if ms < 0 {
		return Decision{}, errors.New("rate limit: time before 1970")
	}
	w, q, b := l.Window.Milliseconds(), int64(l.Quota), int64(l.BurstSize())
	sh := &s.shards[maphash.String(s.seed, key)%memoryShards]
	sh.mu.Lock()
	defer sh.mu.Unlock()
	sh.sweep(ms)
	e, ok := sh.states[key]
	if !ok {
		e = &memoryEntry{}
		sh.states[key] = e
	}
	o := e.take(ms, w, q, b)
	e.expires = max(e.expires, ms+ttl(w, q, b))
	return o.decision(l.withBurst()), nil
}

// Len returns how many keys hold state, for tests and metrics.
func (s *MemoryStore) Len() int {
	n := 0
	for i := range s.shards {
		sh := &s.shards[i]
		sh.mu.Lock()
		n += len(sh.states)
		sh.mu.Unlock()
	}
	return n
}

// sweep drops expired states when the shard is due; sh.mu is held.
func (sh *memoryShard) sweep(now int64) {
	if now < sh.nextSweep {
		return
	}
	sh.nextSweep = now + sweepEvery.Milliseconds()
	for k, e := range sh.states {
		if e.expires+sweepSlack.Milliseconds() <= now {
			delete(sh.states, k)
		}
	}
}
