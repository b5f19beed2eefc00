package admission

import (
	"fmt"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// DefaultMaxInFlight is how many requests may run at once. The API's
// handlers are I/O-bound (Kafka produce acks, table lookups): by Little's
// law a healthy instance serving a few thousand requests per second at
// 20–50 ms needs 100–250 slots, so 256 never throttles it, while it bounds
// the goroutines, buffers and downstream calls an overload can pile up.
// Queues form only when handlers slow down, which is when shedding should
// start.
const DefaultMaxInFlight = 256

// DefaultBulkShare is the share of MaxInFlight that Bulk requests may use
// unless WithPriorityLimit says otherwise. Bulk requests are the large and
// slow ones (10 MiB batches, replays, exports); a slot they hold is not
// preempted, so without a cap a wave of them could leave a revocation
// waiting behind them. A quarter keeps three quarters of the slots for
// everything else and bounds the batch bodies read at once.
const DefaultBulkShare = 4

// Default waits in the queue, per priority, before a request is shed with
// ReasonWaitTimeout. All stay well below the API server's 60 s write
// timeout and common client timeouts, so a waiter that is finally admitted
// still has a caller. Security operations may wait longest: failing a
// revocation leaves a compromised credential live. Realtime callers want an
// answer fast or none at all (they can fall back), so they wait least.
const (
	DefaultCriticalMaxWait = 10 * time.Second
	DefaultAdminMaxWait    = 5 * time.Second
	DefaultRealtimeMaxWait = time.Second
	DefaultStandardMaxWait = 2 * time.Second
	DefaultBulkMaxWait     = 2 * time.Second
)

// Bounds of the Retry-After a shed request is given. One second is HTTP's
// granularity and spreads retries out; a longer hint comes only from the
// estimate of how long the work queued ahead needs (see ShedError), and is
// capped because an estimate made in a burst goes stale quickly.
const (
	MinRetryAfter = time.Second
	MaxRetryAfter = 30 * time.Second
)

// Option configures a Controller.
type Option func(*config)

type config struct {
	maxInFlight int
	maxQueue    int // -1: 2 × maxInFlight
	maxWait     [numPriorities]time.Duration
	limit       [numPriorities]int // 0: default
	reg         prometheus.Registerer
	log         *slog.Logger
	err         error
}

func defaultConfig() config {
	return config{
		maxInFlight: DefaultMaxInFlight,
		maxQueue:    -1,
		maxWait: [numPriorities]time.Duration{DefaultCriticalMaxWait, DefaultAdminMaxWait,
			DefaultRealtimeMaxWait, DefaultStandardMaxWait, DefaultBulkMaxWait},
		log: slog.Default(),
	}
}

// WithMaxInFlight sets how many requests may run at once (default
// DefaultMaxInFlight); n must be at least 1.
func WithMaxInFlight(n int) Option { return func(c *config) { c.maxInFlight = n } }

// WithMaxQueue sets how many requests may wait for a slot (default twice
// MaxInFlight: a burst of about two service times is absorbed, a longer
// queue would only add latency to requests that are shed in the end).
// Zero disables waiting: a request that finds no slot is shed.
func WithMaxQueue(n int) Option { return func(c *config) { c.maxQueue = n } }

// WithMaxWait sets how long a request of priority p may wait in the queue
// before it is shed (defaults: DefaultCriticalMaxWait and siblings).
func WithMaxWait(p Priority, d time.Duration) Option {
	return func(c *config) {
		if !p.valid() || d <= 0 {
			c.err = fmt.Errorf("admission: max wait %v for %v: need a known priority and a positive wait", d, p)
			return
		}
		c.maxWait[p] = d
	}
}

// WithPriorityLimit caps how many requests of priority p may be in flight at
// once, within MaxInFlight (default: Bulk gets MaxInFlight/DefaultBulkShare,
// at least 1; the others are capped by MaxInFlight only). A waiter whose
// priority is at its cap is passed over for lower priorities until one of
// its own finishes.
func WithPriorityLimit(p Priority, n int) Option {
	return func(c *config) {
		if !p.valid() || n < 1 {
			c.err = fmt.Errorf("admission: limit %d for %v: need a known priority and at least 1", n, p)
			return
		}
		c.limit[p] = n
	}
}

// WithRegisterer registers the controller's metrics on r (default: metrics
// are kept but not registered anywhere).
func WithRegisterer(r prometheus.Registerer) Option { return func(c *config) { c.reg = r } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// resolve applies the derived defaults and validates c.
func (c *config) resolve() error {
	if c.err != nil {
		return c.err
	}
	if c.maxInFlight < 1 {
		return fmt.Errorf("admission: max in flight %d: need at least 1", c.maxInFlight)
	}
	if c.maxQueue == -1 {
		c.maxQueue = 2 * c.maxInFlight
	}
	if c.maxQueue < 0 {
		return fmt.Errorf("admission: max queue %d: need 0 or more", c.maxQueue)
	}
	for p := range c.limit {
		switch {
		case c.limit[p] == 0 && Priority(p) == Bulk:
			c.limit[p] = max(1, c.maxInFlight/DefaultBulkShare)
		case c.limit[p] == 0 || c.limit[p] > c.maxInFlight:
			c.limit[p] = c.maxInFlight
		}
	}
	if c.log == nil {
		c.log = slog.Default()
	}
	return nil
}
