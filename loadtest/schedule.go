package loadtest

import (
	"context"
	"sync"
	"time"
)

// Schedule is an open-loop send plan: operation k is due at Start + k/Rate,
// whatever happened to the operations before it.
type Schedule struct {
	Start time.Time
	Rate  float64 // operations per second; > 0
}

// At returns when operation k is due.
func (s Schedule) At(k int) time.Time {
	return s.Start.Add(time.Duration(float64(k) / s.Rate * float64(time.Second)))
}

// Count returns how many operations are due in the first d of the schedule.
func (s Schedule) Count(d time.Duration) int {
	return int(d.Seconds() * s.Rate)
}

// OpenLoopStats says how well the sender kept to a schedule.
type OpenLoopStats struct {
	Sent int // operations started
	// Late is how many started more than a millisecond after they were
	// due: the sender's own queueing (MaxInFlight reached, or this
	// process out of CPU). Their latency still counts from the due time.
	Late        int
	MaxStartLag time.Duration // the largest start − due
}

// RunOpenLoop starts send(ctx, k, due) for k = 0 … n-1 at s.At(k), each in
// its own goroutine, without waiting for earlier sends to finish: at most
// maxInFlight run at once (0: no bound), and an operation that finds them
// all busy starts late rather than being skipped. It returns when every
// started send has returned, or, once ctx is done, without starting more.
func RunOpenLoop(ctx context.Context, s Schedule, n, maxInFlight int, send func(ctx context.Context, k int, due time.Time)) OpenLoopStats {
	var st OpenLoopStats
	var wg sync.WaitGroup
	defer wg.Wait()
	var slots chan struct{}
	if maxInFlight > 0 {
		slots = make(chan struct{}, maxInFlight)
	}
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	for k := range n {
		due := s.At(k)
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case <-ctx.Done():
				return st
			}
		}
		if slots != nil {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return st
			}
		}
		if ctx.Err() != nil {
			return st
		}
		if lag := time.Since(due); lag > time.Millisecond {
			st.Late++
			st.MaxStartLag = max(st.MaxStartLag, lag)
		}
		st.Sent++
		wg.Go(func() {
			if slots != nil {
				defer func() { <-slots }()
			}
			send(ctx, k, due)
		})
	}
	return st
}
