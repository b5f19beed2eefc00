package ratelimit

import "time"

// window is the state of one limit: the two fixed windows behind the sliding
// window and the token bucket. All times are milliseconds since the Unix
// epoch; the same arithmetic runs in redis.go's Lua script, which must stay
// in step with take (the store contract tests run both).
//
// The sliding window is Cloudflare's two-window approximation: the count is
// prev×(w−e)/w + curr, where e is the time elapsed in the current fixed
// window. It keeps O(1) state per key (one small Redis hash, no sorted set of
// up to Quota timestamps) and is exact while the previous window is empty,
// which covers every burst inside one window, so "exactly the quota is
// admitted" holds; across a window boundary it assumes the previous window's
// requests were spread evenly. The comparison is done in integers
// (×w) so there is no rounding.
//
// The bucket holds tokens×w units: one request costs w units and the bucket
// gains Quota units per millisecond, i.e. it refills at Quota per Window.
type window struct {
	w      int64 // window length; the state is reset when the limit's window changes
	start  int64 // start of the current fixed window (a multiple of w)
	curr   int64 // requests admitted in the current fixed window
	prev   int64 // requests admitted in the previous fixed window
	tokens int64 // bucket level, in 1/w tokens
	last   int64 // when tokens was last brought up to date
}

// outcome is the result of one take; durations are milliseconds.
type outcome struct {
	allowed        bool
	remaining      int64 // requests the sliding window would still admit now
	reset          int64 // until the sliding window is empty again
	burstRemaining int64 // whole tokens left in the bucket
	burstReset     int64 // until the bucket is full again
	retryAfter     int64 // until a request would be admitted (refused requests only)
}

// take decides one request at now for quota q per window w with bucket
// capacity b, and counts it when admitted. A refused request is not counted.
//
// Clocks of several API instances may disagree a little (they should run
// NTP): a now earlier than the state's window stays in that window, and a now
// earlier than the bucket's last refill refills nothing.
func (s *window) take(now, w, q, b int64) outcome {
	capacity := b * w
	start := now - now%w
	if s.w != w {
		*s = window{w: w, start: start, tokens: capacity, last: now}
	}
	switch {
	case s.start == start:
	case s.start == start-w:
		s.prev, s.curr = s.curr, 0
	case s.start > start:
		start = s.start
	default:
		s.prev, s.curr = 0, 0
	}
	s.start = start
	s.tokens = min(s.tokens, capacity)
	if now > s.last {
		if elapsed := now - s.last; elapsed >= ceilDiv(capacity-s.tokens, q) {
			s.tokens = capacity
		} else {
			s.tokens += elapsed * q
		}
		s.last = now
	}
	e := max(now-start, 0)

	windowOK := s.prev*(w-e)+(s.curr+1)*w <= q*w
	bucketOK := s.tokens >= w
	o := outcome{allowed: windowOK && bucketOK}
	if o.allowed {
		s.curr++
		s.tokens -= w
	}

	if used := s.prev*(w-e) + s.curr*w; used < q*w {
		o.remaining = (q*w - used) / w
	}
	switch {
	case s.curr > 0:
		o.reset = 2*w - e
	case s.prev > 0:
		o.reset = w - e
	}
	o.burstRemaining = s.tokens / w
	o.burstReset = ceilDiv(capacity-s.tokens, q)
	if !o.allowed {
		var windowWait, bucketWait int64
		switch {
		case windowOK:
		case s.curr+1 > q:
			// Full in this window: wait into the next one, where this
			// window's count weighs less as time goes on.
			windowWait = (w - e) + w - (q-1)*w/s.curr
		default:
			// The previous window still weighs too much.
			windowWait = w - (q-s.curr-1)*w/s.prev - e
		}
		if !bucketOK {
			bucketWait = ceilDiv(w-s.tokens, q)
		}
		o.retryAfter = max(windowWait, bucketWait)
	}
	return o
}

// ttl returns how long the state of a limit matters after its last update:
// past it the fixed windows are both over and the bucket is full, so a
// missing state means the same as the stored one.
func ttl(w, q, b int64) int64 {
	return max(2*w, ceilDiv(b*w, q))
}

// ceilDiv returns ⌈a/b⌉ for a ≥ 0, b > 0.
func ceilDiv(a, b int64) int64 {
	return (a + b - 1) / b
}

// decision converts an outcome for limit l into a Decision (Class is left to
// the Limiter).
func (o outcome) decision(l Limit) Decision {
	return Decision{
		Allowed:        o.allowed,
		Limit:          l,
		Remaining:      int(o.remaining),
		Reset:          time.Duration(o.reset) * time.Millisecond,
		BurstRemaining: int(o.burstRemaining),
		BurstReset:     time.Duration(o.burstReset) * time.Millisecond,
		RetryAfter:     time.Duration(o.retryAfter) * time.Millisecond,
	}
}
