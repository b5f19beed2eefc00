package audit

import (
	"sync"
	"time"

	"github.com/google/uuid"
)

// Chain links the records of one API process: it numbers them 1, 2, 3, …
// in the order they are sealed and makes each carry the hash of the one
// before. Make one per process start (NewChain); never resume a chain, a
// restarted process starts a new one. Safe for concurrent use.
type Chain struct {
	instance string
	now      func() time.Time

	mu       sync.Mutex
	seq      uint64    // Seq of the last sealed record
	last     string    // Hash of the last sealed record
	lastTime time.Time // Time of the last sealed record
}

// NewChain returns a chain with a new random instance id (a UUIDv7, so
// instance ids sort by process start).
func NewChain() *Chain {
	return &Chain{instance: uuid.Must(uuid.NewV7()).String(), now: time.Now, last: Genesis}
}

// Instance returns the chain's id: Record.Instance of its records, and
// their Kafka key.
func (c *Chain) Instance() string { return c.instance }

// Seal makes r the chain's next record and returns it: it sets Instance,
// Seq, PrevHash and Time (now, in UTC milliseconds, never earlier than the
// previous record's, so a chain's times are ordered like its sequence
// numbers even when the wall clock steps back), an ID when r has none,
// normalizes the fields (see MaxUserAgentBytes) and sets Hash.
//
// Records are numbered in the order Seal is called: the Writer seals and
// enqueues under one lock, so Kafka gets them in that order too.
func (c *Chain) Seal(r Record) Record {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sealLocked(r)
}

// sealLocked is Seal with c.mu held.
func (c *Chain) sealLocked(r Record) Record {
	if r.ID == "" {
		r.ID = uuid.Must(uuid.NewV7()).String()
	}
	r.Time = c.now()
	r.normalize()
	if r.Time.Before(c.lastTime) {
		r.Time = c.lastTime
	}
	c.seq++
	r.Instance, r.Seq, r.PrevHash = c.instance, c.seq, c.last
	r.Hash = r.ComputeHash()
	c.last, c.lastTime = r.Hash, r.Time
	return r
}
