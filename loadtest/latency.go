package loadtest

import (
	"math"
	"slices"
	"sync"
	"time"
)

// Recorder collects latencies and reports exact quantiles (nearest rank:
// the q-quantile of n sorted samples is sample ⌈q·n⌉). It keeps every
// sample: at the harness's rates that is a few MiB, and exact quantiles
// need no bucket error to be explained. Safe for concurrent use.
type Recorder struct {
	mu      sync.Mutex
	samples []time.Duration
	missing int
}

// Record adds one latency.
func (r *Recorder) Record(d time.Duration) {
	r.mu.Lock()
	r.samples = append(r.samples, d)
	r.mu.Unlock()
}

// Missing adds n operations that never completed: they rank above every
// recorded latency, so a quantile that reaches them is reported as lost
// rather than computed from the survivors only.
func (r *Recorder) Missing(n int) {
	r.mu.Lock()
	r.missing += n
	r.mu.Unlock()
}

// Summary returns the count and quantiles of what was recorded.
func (r *Recorder) Summary() LatencySummary {
	r.mu.Lock()
	s := slices.Clone(r.samples)
	missing := r.missing
	r.mu.Unlock()
	slices.Sort(s)
	n := len(s) + missing
	q := func(p float64) *float64 {
		if n == 0 {
			return nil
		}
		i := max(0, int(math.Ceil(p*float64(n)))-1)
		if i >= len(s) {
			return nil // a missing operation: lost, not fast
		}
		return millis(s[i])
	}
	sum := LatencySummary{Count: len(s), Missing: missing, P50: q(0.50), P95: q(0.95), P99: q(0.99)}
	if missing == 0 && len(s) > 0 {
		sum.Max = millis(s[len(s)-1])
	}
	return sum
}

// LatencySummary is a latency distribution in milliseconds. A quantile is
// null when it falls on operations that never completed (Missing).
type LatencySummary struct {
	Count   int      `json:"count"`
	Missing int      `json:"missing"`
	P50     *float64 `json:"p50_ms"`
	P95     *float64 `json:"p95_ms"`
	P99     *float64 `json:"p99_ms"`
	Max     *float64 `json:"max_ms"`
}

func millis(d time.Duration) *float64 {
	v := float64(d) / float64(time.Millisecond)
	return &v
}
