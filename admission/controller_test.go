package admission

import (
	"context"
	"errors"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// waitFor polls cond until it holds or 5 s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(time.Millisecond)
	}
}

// counterValue reads a counter.
func counterValue(t *testing.T, c prometheus.Counter) float64 {
	t.Helper()
	var m dto.Metric
	if err := c.Write(&m); err != nil {
		t.Fatal(err)
	}
	return m.GetCounter().GetValue()
}

func newController(t *testing.T, opts ...Option) *Controller {
	t.Helper()
	c, err := New(append([]Option{WithLogger(slog.New(slog.DiscardHandler))}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func mustAcquire(t *testing.T, c *Controller, p Priority) func() {
	t.Helper()
	release, err := c.Acquire(context.Background(), p)
	if err != nil {
		t.Fatalf("acquire %v: %v", p, err)
	}
	return release
}

// result is the outcome of an Acquire made in its own goroutine.
type result struct {
	name    string
	release func()
	err     error
}

// enqueue starts an Acquire of priority p in a goroutine and waits until it
// is queued, so that the queue order is the call order.
func enqueue(t *testing.T, c *Controller, ctx context.Context, name string, p Priority, out chan<- result) {
	t.Helper()
	before := c.Stats().ByPriority[p]
	go func() {
		release, err := c.Acquire(ctx, p)
		out <- result{name, release, err}
	}()
	waitFor(t, name+" queued", func() bool { return c.Stats().ByPriority[p] == before+1 })
}

func TestHandOffByPriorityFIFOWithin(t *testing.T) {
	c := newController(t, WithMaxInFlight(1), WithMaxQueue(10))
	hold := mustAcquire(t, c, Bulk)
	out := make(chan result, 10)
	enqueue(t, c, t.Context(), "bulk", Bulk, out)
	enqueue(t, c, t.Context(), "standard-1", Standard, out)
	enqueue(t, c, t.Context(), "realtime", Realtime, out)
	enqueue(t, c, t.Context(), "standard-2", Standard, out)
	enqueue(t, c, t.Context(), "admin", Admin, out)
	enqueue(t, c, t.Context(), "critical", Critical, out)
	if s := c.Stats(); s.InFlight != 1 || s.Queued != 6 {
		t.Fatalf("stats %+v, want 1 in flight and 6 queued", s)
	}

	hold()
	want := []string{"critical", "admin", "realtime", "standard-1", "standard-2", "bulk"}
	for _, name := range want {
		r := <-out
		if r.err != nil || r.name != name {
			t.Fatalf("admitted %s (err %v), want %s", r.name, r.err, name)
		}
		if s := c.Stats(); s.InFlight != 1 {
			t.Fatalf("in flight %d while %s runs, want 1", s.InFlight, name)
		}
		r.release()
	}
	if s := c.Stats(); s.InFlight != 0 || s.Queued != 0 {
		t.Fatalf("stats %+v after all released, want empty", s)
	}
}

func TestFullQueueShedsLowestMostRecentFirst(t *testing.T) {
	c := newController(t, WithMaxInFlight(1), WithMaxQueue(3))
	hold := mustAcquire(t, c, Critical)
	out := make(chan result, 10)
	enqueue(t, c, t.Context(), "standard-1", Standard, out)
	enqueue(t, c, t.Context(), "standard-2", Standard, out)
	enqueue(t, c, t.Context(), "admin", Admin, out)

	// A critical arrival evicts the most recent of the lowest priority.
	before := c.Stats().ByPriority[Critical]
	go func() {
		release, err := c.Acquire(t.Context(), Critical)
		out <- result{"critical", release, err}
	}()
	r := <-out
	var shed *ShedError
	if r.name != "standard-2" || !errors.As(r.err, &shed) || shed.Reason != ReasonEvicted || shed.Priority != Standard {
		t.Fatalf("got %s with %v, want standard-2 evicted", r.name, r.err)
	}
	if !errors.Is(r.err, ErrShed) || shed.RetryAfter < MinRetryAfter {
		t.Fatalf("evicted error %v: not ErrShed or Retry-After %v below the minimum", r.err, shed.RetryAfter)
	}
	waitFor(t, "critical queued", func() bool { return c.Stats().ByPriority[Critical] == before+1 })

	// Arrivals of the lowest queued priority or below are shed themselves.
	for _, p := range []Priority{Bulk, Standard} {
		_, err := c.Acquire(t.Context(), p)
		if !errors.As(err, &shed) || shed.Reason != ReasonQueueFull || shed.Priority != p {
			t.Fatalf("%v arrival on a full queue: %v, want queue_full", p, err)
		}
	}
	if s := c.Stats(); s.Queued != 3 || s.ByPriority[Standard] != 1 || s.ByPriority[Admin] != 1 || s.ByPriority[Critical] != 1 {
		t.Fatalf("queue %+v, want standard-1, admin, critical", s)
	}

	hold()
	for _, name := range []string{"critical", "admin", "standard-1"} {
		r := <-out
		if r.err != nil || r.name != name {
			t.Fatalf("admitted %s (err %v), want %s", r.name, r.err, name)
		}
		r.release()
	}
}

func TestCancelledWaiterLeavesQueue(t *testing.T) {
	c := newController(t, WithMaxInFlight(1), WithMaxQueue(4))
	hold := mustAcquire(t, c, Standard)
	out := make(chan result, 2)
	ctx, cancel := context.WithCancel(t.Context())
	enqueue(t, c, ctx, "cancelled", Admin, out)
	enqueue(t, c, t.Context(), "kept", Bulk, out)

	cancel()
	r := <-out
	if r.name != "cancelled" || !errors.Is(r.err, context.Canceled) || errors.Is(r.err, ErrShed) {
		t.Fatalf("got %s with %v, want cancelled with context.Canceled", r.name, r.err)
	}
	if s := c.Stats(); s.Queued != 1 || s.ByPriority[Admin] != 0 {
		t.Fatalf("stats %+v, want only the bulk waiter queued", s)
	}
	// The freed slot goes to the remaining waiter, not to the cancelled one.
	hold()
	r = <-out
	if r.name != "kept" || r.err != nil {
		t.Fatalf("got %s with %v, want kept admitted", r.name, r.err)
	}
	r.release()
	if s := c.Stats(); s.InFlight != 0 || s.Queued != 0 {
		t.Fatalf("stats %+v, want empty", s)
	}
	if got := counterValue(t, c.m.abandoned[Admin]); got != 1 {
		t.Fatalf("abandoned{admin} = %v, want 1", got)
	}
}

func TestWaitTimeoutSheds(t *testing.T) {
	c := newController(t, WithMaxInFlight(1), WithMaxWait(Standard, 20*time.Millisecond))
	hold := mustAcquire(t, c, Standard)
	defer hold()
	start := time.Now()
	_, err := c.Acquire(t.Context(), Standard)
	var shed *ShedError
	if !errors.As(err, &shed) || shed.Reason != ReasonWaitTimeout {
		t.Fatalf("got %v, want wait_timeout", err)
	}
	if waited := time.Since(start); waited < 20*time.Millisecond {
		t.Fatalf("shed after %v, before its max wait", waited)
	}
	if s := c.Stats(); s.Queued != 0 {
		t.Fatalf("queued %d after the timeout, want 0", s.Queued)
	}
}

func TestPriorityLimitPassesOverCappedPriority(t *testing.T) {
	c := newController(t, WithMaxInFlight(3), WithPriorityLimit(Bulk, 1))
	bulk := mustAcquire(t, c, Bulk)
	out := make(chan result, 1)
	enqueue(t, c, t.Context(), "bulk-2", Bulk, out) // slots free, bulk at its cap
	std := mustAcquire(t, c, Standard)              // not held up by the bulk waiter
	defer std()
	bulk()
	r := <-out
	if r.err != nil {
		t.Fatalf("bulk-2: %v", r.err)
	}
	r.release()
}

func TestDefaultBulkLimit(t *testing.T) {
	c := newController(t, WithMaxInFlight(8), WithMaxQueue(0))
	for range 2 {
		defer mustAcquire(t, c, Bulk)()
	}
	if _, err := c.Acquire(t.Context(), Bulk); !errors.Is(err, ErrShed) {
		t.Fatalf("third bulk with 8 slots: %v, want shed (bulk limited to a quarter)", err)
	}
	defer mustAcquire(t, c, Standard)()
}

func TestReleaseTwiceIsHarmless(t *testing.T) {
	c := newController(t, WithMaxInFlight(1))
	release := mustAcquire(t, c, Standard)
	release()
	release()
	if s := c.Stats(); s.InFlight != 0 {
		t.Fatalf("in flight %d after a double release, want 0", s.InFlight)
	}
}

func TestInvalidUse(t *testing.T) {
	for _, opts := range [][]Option{
		{WithMaxInFlight(0)}, {WithMaxQueue(-2)}, {WithMaxWait(Bulk, 0)},
		{WithMaxWait(Priority(9), time.Second)}, {WithPriorityLimit(Admin, 0)},
	} {
		if _, err := New(opts...); err == nil {
			t.Errorf("New accepted invalid options")
		}
	}
	c := newController(t)
	if _, err := c.Acquire(t.Context(), Priority(7)); !errors.Is(err, ErrUnknownPriority) {
		t.Fatalf("unknown priority: %v", err)
	}
	reg := prometheus.NewRegistry()
	if _, err := New(WithRegisterer(reg)); err != nil {
		t.Fatal(err)
	}
	if _, err := New(WithRegisterer(reg)); err == nil {
		t.Fatal("second controller on one registry: want an error")
	}
}

func TestRetryAfterEstimate(t *testing.T) {
	for _, tc := range []struct {
		ahead   int
		service time.Duration
		slots   int
		want    time.Duration
	}{
		{0, 0, 10, MinRetryAfter},                       // nothing measured yet
		{100, 20 * time.Millisecond, 10, MinRetryAfter}, // 0.2 s of work: minimum
		{99, time.Second, 10, 10 * time.Second},         // 100 × 1 s / 10 slots
		{100, time.Second, 10, 11 * time.Second},        // rounded up
		{10000, time.Second, 10, MaxRetryAfter},         // capped
	} {
		if got := retryAfter(tc.ahead, tc.service, tc.slots); got != tc.want {
			t.Errorf("retryAfter(%d, %v, %d) = %v, want %v", tc.ahead, tc.service, tc.slots, got, tc.want)
		}
	}
}

// TestStress hammers a small controller from many goroutines with mixed
// priorities, cancellations and short waits, checking on every admission
// that no more than MaxInFlight (and the bulk limit) run at once, and at the
// end that every request was admitted, shed or abandoned exactly once and
// nothing is left in flight or queued.
func TestStress(t *testing.T) {
	const (
		slots     = 4
		bulkLimit = 2
		workers   = 64
		perWorker = 300
	)
	c := newController(t, WithMaxInFlight(slots), WithMaxQueue(32), WithPriorityLimit(Bulk, bulkLimit),
		WithMaxWait(Standard, time.Millisecond), WithMaxWait(Bulk, 2*time.Millisecond))
	var inFlight, bulkInFlight, admitted, shed, abandoned, violations atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Go(func() {
			rng := rand.New(rand.NewPCG(uint64(w), 1))
			for range perWorker {
				p := Priority(rng.IntN(numPriorities))
				ctx, cancel := context.WithCancel(t.Context())
				if rng.IntN(8) == 0 {
					cancel() // sometimes before, mostly while queued
				} else if rng.IntN(8) == 0 {
					ctx, cancel = context.WithTimeout(t.Context(), time.Duration(rng.IntN(200))*time.Microsecond)
				}
				release, err := c.Acquire(ctx, p)
				switch {
				case err == nil:
					admitted.Add(1)
					if n := inFlight.Add(1); n > slots {
						violations.Add(1)
					}
					if p == Bulk && bulkInFlight.Add(1) > bulkLimit {
						violations.Add(1)
					}
					for range rng.IntN(50) {
						runtime.Gosched()
					}
					if p == Bulk {
						bulkInFlight.Add(-1)
					}
					inFlight.Add(-1)
					release()
				case errors.Is(err, ErrShed):
					shed.Add(1)
				case errors.Is(err, context.Canceled), errors.Is(err, context.DeadlineExceeded):
					abandoned.Add(1)
				default:
					t.Errorf("unexpected error %v", err)
				}
				cancel()
			}
		})
	}
	wg.Wait()
	if v := violations.Load(); v > 0 {
		t.Fatalf("%d admissions over a limit", v)
	}
	if total := admitted.Load() + shed.Load() + abandoned.Load(); total != workers*perWorker {
		t.Fatalf("%d outcomes for %d requests", total, workers*perWorker)
	}
	if s := c.Stats(); s.InFlight != 0 || s.Queued != 0 {
		t.Fatalf("stats %+v after the storm, want empty", s)
	}
	var metricAdmitted, metricShed float64
	var byReason [numReasons]float64
	for p := range numPriorities {
		metricAdmitted += counterValue(t, c.m.admitted[p])
		for r := range numReasons {
			v := counterValue(t, c.m.shed[p][r])
			metricShed += v
			byReason[r] += v
		}
	}
	for r, n := range byReason {
		if n == 0 {
			t.Errorf("no request shed for %v: the stress missed a path", ShedReason(r))
		}
	}
	if metricAdmitted != float64(admitted.Load()) || metricShed != float64(shed.Load()) {
		t.Fatalf("metrics admitted %v shed %v, callers saw %d and %d", metricAdmitted, metricShed, admitted.Load(), shed.Load())
	}
	if admitted.Load() == 0 || shed.Load() == 0 {
		t.Fatalf("admitted %d, shed %d: the stress did not reach overload", admitted.Load(), shed.Load())
	}
	t.Logf("admitted %d, shed %d (by reason %v), abandoned %d", admitted.Load(), shed.Load(), byReason, abandoned.Load())
}
