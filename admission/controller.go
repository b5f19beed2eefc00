package admission

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"sync/atomic"
	"time"
)

// ErrShed is what every ShedError matches with errors.Is: the request was
// refused because the server is overloaded.
var ErrShed = errors.New("admission: shed")

// ErrUnknownPriority is returned by Acquire for a priority outside
// Critical..Bulk, a bug in the caller's classification.
var ErrUnknownPriority = errors.New("admission: unknown priority")

// ShedReason says why a request was shed.
type ShedReason int

// Reasons a request is shed, the reason label of vitals_admission_shed_total.
const (
	// ReasonQueueFull: no slot was free and the queue was full of requests
	// of the same or a higher priority.
	ReasonQueueFull ShedReason = iota
	// ReasonEvicted: the request was waiting and a request of a higher
	// priority took its place in the full queue.
	ReasonEvicted
	// ReasonWaitTimeout: the request waited its priority's MaxWait.
	ReasonWaitTimeout

	numReasons = int(ReasonWaitTimeout) + 1
)

// String returns the reason's snake_case name.
func (r ShedReason) String() string {
	switch r {
	case ReasonQueueFull:
		return "queue_full"
	case ReasonEvicted:
		return "evicted"
	case ReasonWaitTimeout:
		return "wait_timeout"
	}
	return fmt.Sprintf("reason(%d)", int(r))
}

// text is the reason in words, for problem details.
func (r ShedReason) text() string {
	switch r {
	case ReasonQueueFull:
		return "no capacity and the wait queue is full of requests of equal or higher priority"
	case ReasonEvicted:
		return "its place in the wait queue went to a higher-priority request"
	case ReasonWaitTimeout:
		return "it waited the longest time allowed for its priority"
	}
	return r.String()
}

// ShedError is the error of a shed request: which priority, why, and when
// the caller should retry. RetryAfter estimates how long the work queued at
// or above the request's priority needs to drain — (queued ahead + 1) ×
// mean service time / MaxInFlight — rounded up to whole seconds and kept
// within MinRetryAfter..MaxRetryAfter. It is a hint, not a promise: new
// higher-priority work may keep arriving.
type ShedError struct {
	Priority   Priority
	Reason     ShedReason
	RetryAfter time.Duration
}

// Error describes the shed request.
func (e *ShedError) Error() string {
	return fmt.Sprintf("admission: %v request shed (%v); retry after %v", e.Priority, e.Reason, e.RetryAfter)
}

// Is makes errors.Is(err, ErrShed) true.
func (e *ShedError) Is(target error) bool { return target == ErrShed }

// Stats is a snapshot of a controller's occupancy.
type Stats struct {
	InFlight   int           // requests holding a slot
	Queued     int           // requests waiting for one
	ByPriority [Bulk + 1]int // waiting requests by priority
}

// Controller admits requests by priority. Build it with New; it is safe for
// concurrent use and starts no goroutines, so it needs no Close.
type Controller struct {
	cfg config
	m   *metrics

	mu         sync.Mutex
	inFlight   int
	inPrio     [numPriorities]int // in flight, by priority
	queue      [numPriorities]waitQueue
	queued     int
	avgService time.Duration // EWMA of slot hold times, for Retry-After

	lastWarn      atomic.Int64 // unix nanos of the last "shedding" warning
	shedSinceWarn atomic.Int64
}

// New returns a controller configured by opts (defaults: DefaultMaxInFlight
// slots, a queue of twice that, the Default…MaxWait waits, Bulk limited to a
// quarter of the slots). It fails on invalid options and when the metrics
// cannot be registered.
func New(opts ...Option) (*Controller, error) {
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	if err := cfg.resolve(); err != nil {
		return nil, err
	}
	c := &Controller{cfg: cfg}
	c.m = newMetrics(c)
	if err := c.m.register(cfg.reg); err != nil {
		return nil, err
	}
	return c, nil
}

// Stats returns the current occupancy.
func (c *Controller) Stats() Stats {
	c.mu.Lock()
	defer c.mu.Unlock()
	s := Stats{InFlight: c.inFlight, Queued: c.queued}
	for p := range c.queue {
		s.ByPriority[p] = c.queue[p].n
	}
	return s
}

// Acquire admits a request of priority p. It returns at once when a slot is
// free; otherwise it waits in the queue until a slot is handed to it, its
// priority's MaxWait passes, a higher-priority arrival evicts it, or ctx
// ends. On success the caller must call release exactly once when the work
// is done (further calls do nothing). A shed request gets a *ShedError
// (errors.Is ErrShed); an ended context its error.
func (c *Controller) Acquire(ctx context.Context, p Priority) (release func(), err error) {
	if !p.valid() {
		return nil, fmt.Errorf("acquire: %w %d", ErrUnknownPriority, int(p))
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("admission: %v request: %w", p, err)
	}

	c.mu.Lock()
	if c.admissibleLocked(p) {
		c.takeLocked(p)
		c.mu.Unlock()
		return c.grant(p, 0), nil
	}
	if c.queued >= c.cfg.maxQueue {
		low := c.lowestQueuedLocked()
		if low <= p { // nothing queued below p: p itself is the lowest
			e := c.shedErrorLocked(p, ReasonQueueFull)
			c.mu.Unlock()
			c.noteShed(e)
			return nil, e
		}
		victim := c.queue[low].popBack()
		c.queued--
		victim.queued = false
		victim.err = c.shedErrorLocked(low, ReasonEvicted)
		close(victim.ready) // the victim records its own metrics
	}
	w := &waiter{p: p, ready: make(chan struct{}), queued: true}
	c.queue[p].pushBack(w)
	c.queued++
	c.mu.Unlock()

	start := time.Now()
	timer := time.NewTimer(c.cfg.maxWait[p])
	defer timer.Stop()
	timedOut := false
	select {
	case <-w.ready:
	case <-ctx.Done():
	case <-timer.C:
		timedOut = true
	}

	c.mu.Lock()
	if w.queued { // still waiting: this goroutine decides
		c.queue[p].remove(w)
		c.queued--
		w.queued = false
		if !timedOut || ctx.Err() != nil {
			c.mu.Unlock()
			c.m.abandoned[p].Inc()
			return nil, fmt.Errorf("admission: %v request left the queue: %w", p, ctx.Err())
		}
		w.err = c.shedErrorLocked(p, ReasonWaitTimeout)
	}
	c.mu.Unlock()

	// Decided: granted or shed (set under mu before ready was closed or
	// just above).
	if w.err != nil {
		c.noteShed(w.err)
		return nil, w.err
	}
	if ctx.Err() != nil { // granted as the caller gave up: pass the slot on
		c.release(p, 0)
		c.m.abandoned[p].Inc()
		return nil, fmt.Errorf("admission: %v request left the queue: %w", p, ctx.Err())
	}
	return c.grant(p, time.Since(start)), nil
}

// admissibleLocked reports whether a request of priority p may take a slot
// now.
func (c *Controller) admissibleLocked(p Priority) bool {
	return c.inFlight < c.cfg.maxInFlight && c.inPrio[p] < c.cfg.limit[p]
}

func (c *Controller) takeLocked(p Priority) {
	c.inFlight++
	c.inPrio[p]++
}

// lowestQueuedLocked returns the lowest priority (highest value) that has a
// waiter, or -1 when the queue is empty.
func (c *Controller) lowestQueuedLocked() Priority {
	for p := Bulk; p >= Critical; p-- {
		if c.queue[p].n > 0 {
			return p
		}
	}
	return -1
}

// grant counts an admission and returns its release function.
func (c *Controller) grant(p Priority, wait time.Duration) func() {
	c.m.admitted[p].Inc()
	c.m.wait[p].Observe(wait.Seconds())
	start := time.Now()
	var done atomic.Bool
	return func() {
		if done.CompareAndSwap(false, true) {
			c.release(p, time.Since(start))
		}
	}
}

// release frees a slot of priority p held for d (0: the slot was not used,
// do not count it in the service time) and hands free slots to the
// highest-priority waiters.
func (c *Controller) release(p Priority, d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.inFlight--
	c.inPrio[p]--
	switch {
	case d == 0:
	case c.avgService == 0:
		c.avgService = d
	default:
		c.avgService += (d - c.avgService) / 16
	}
	for c.inFlight < c.cfg.maxInFlight {
		w := c.nextLocked()
		if w == nil {
			return
		}
		c.queue[w.p].remove(w)
		c.queued--
		w.queued = false
		c.takeLocked(w.p)
		close(w.ready)
	}
}

// nextLocked returns the oldest waiter of the highest priority that is
// below its priority's limit, or nil.
func (c *Controller) nextLocked() *waiter {
	for p := Critical; p <= Bulk; p++ {
		if c.queue[p].head != nil && c.inPrio[p] < c.cfg.limit[p] {
			return c.queue[p].head
		}
	}
	return nil
}

// shedErrorLocked builds the error of a request of priority p shed for r,
// with the Retry-After estimate described at ShedError. Call it after the
// request left the queue, so it does not count itself.
func (c *Controller) shedErrorLocked(p Priority, r ShedReason) *ShedError {
	ahead := 0
	for q := Critical; q <= p; q++ {
		ahead += c.queue[q].n
	}
	return &ShedError{Priority: p, Reason: r, RetryAfter: retryAfter(ahead, c.avgService, c.cfg.maxInFlight)}
}

// retryAfter estimates when ahead queued requests and one more have drained
// through slots slots at mean service time service, in whole seconds within
// MinRetryAfter..MaxRetryAfter.
func retryAfter(ahead int, service time.Duration, slots int) time.Duration {
	est := float64(ahead+1) * service.Seconds() / float64(slots)
	secs := time.Duration(math.Ceil(est)) * time.Second
	return min(max(secs, MinRetryAfter), MaxRetryAfter)
}

// warnEvery spaces the "shedding" warnings: one line per overload episode
// (and every 10 s while it lasts) instead of one per request.
const warnEvery = 10 * time.Second

// noteShed counts a shed request and logs a warning at most every
// warnEvery.
func (c *Controller) noteShed(e *ShedError) {
	c.m.shed[e.Priority][e.Reason].Inc()
	n := c.shedSinceWarn.Add(1)
	now := time.Now().UnixNano()
	last := c.lastWarn.Load()
	if now-last < int64(warnEvery) || !c.lastWarn.CompareAndSwap(last, now) {
		return
	}
	c.shedSinceWarn.Add(-n)
	s := c.Stats()
	c.cfg.log.Warn("admission: overloaded, shedding requests",
		"shed", n, "priority", e.Priority.String(), "reason", e.Reason.String(),
		"in_flight", s.InFlight, "queued", s.Queued, "retry_after", e.RetryAfter)
}

// waiter is a request waiting for a slot. All fields but ready are guarded
// by the controller's mu; ready is closed, under mu, once the request is
// granted a slot (queued false, err nil) or shed (err set).
type waiter struct {
	p          Priority
	ready      chan struct{}
	queued     bool
	err        *ShedError
	prev, next *waiter
}

// waitQueue is a FIFO of waiters of one priority: an intrusive doubly
// linked list, so that hand-off (front), eviction (back) and cancellation
// (anywhere) are O(1) without allocating.
type waitQueue struct {
	head, tail *waiter
	n          int
}

func (q *waitQueue) pushBack(w *waiter) {
	w.prev, w.next = q.tail, nil
	if q.tail != nil {
		q.tail.next = w
	} else {
		q.head = w
	}
	q.tail = w
	q.n++
}

func (q *waitQueue) popBack() *waiter {
	w := q.tail
	q.remove(w)
	return w
}

func (q *waitQueue) remove(w *waiter) {
	if w.prev != nil {
		w.prev.next = w.next
	} else {
		q.head = w.next
	}
	if w.next != nil {
		w.next.prev = w.prev
	} else {
		q.tail = w.prev
	}
	w.prev, w.next = nil, nil
	q.n--
}
