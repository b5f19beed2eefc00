package ratelimit

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/vitalshq/vitals/problem"
)

// Header field names of draft-ietf-httpapi-ratelimit-headers.
const (
	HeaderPolicy    = "RateLimit-Policy"
	HeaderRateLimit = "RateLimit"
)

// unavailableRetryAfter is the Retry-After of requests refused because the
// store could not be reached (fail closed): long enough not to hammer an API
// that cannot decide, short enough to notice recovery.
const unavailableRetryAfter = 5 * time.Second

// Decision is the verdict on one request and the state behind it, for the
// response headers.
type Decision struct {
	// Allowed reports whether the request may proceed.
	Allowed bool
	// Class is the request's route class; it names the policies in the
	// headers.
	Class Class
	// Limit is the limit that applied, Burst filled in.
	Limit Limit
	// Remaining is how many more requests the sliding window admits now.
	Remaining int
	// Reset is how long until the sliding window has forgotten every
	// counted request, if no more come.
	Reset time.Duration
	// BurstRemaining is how many whole tokens are left in the bucket.
	BurstRemaining int
	// BurstReset is how long until the bucket is full again.
	BurstReset time.Duration
	// RetryAfter is, for a refused request, how long until a request would
	// be admitted (both the window and the bucket).
	RetryAfter time.Duration
	// Err is set when the store failed and the class's fail policy made
	// the decision; the counters above are then unknown (zero).
	Err error
}

// SetHeaders writes the rate-limit fields of d into h (replacing any):
//
//	RateLimit-Policy: "standard";q=1000;w=3600, "standard-burst";q=50;w=180
//	RateLimit: "standard";r=993;t=3542, "standard-burst";r=43;t=26
//
// Each field is a structured-field List (RFC 9651) with one String item per
// quota policy, as draft-ietf-httpapi-ratelimit-headers defines: the class's
// sliding window (q requests per w seconds) and its token bucket, named
// "<class>-burst" (q = capacity, w = seconds to refill it from empty, so q/w
// is the refill rate). In RateLimit, r is what remains and t the seconds
// until that policy's quota is fully restored. A refused request also gets
// Retry-After (whole seconds, at least 1). When the store failed (d.Err),
// only RateLimit-Policy (and Retry-After when refused) is written: the
// counters are unknown.
func (d Decision) SetHeaders(h http.Header) {
	l := d.Limit.withBurst()
	name := strconv.Quote(string(d.Class))
	burstName := strconv.Quote(string(d.Class) + "-burst")
	if l.Quota > 0 {
		refill := time.Duration(float64(l.Window) * float64(l.Burst) / float64(l.Quota))
		h.Set(HeaderPolicy, fmt.Sprintf("%s;q=%d;w=%d, %s;q=%d;w=%d",
			name, l.Quota, seconds(l.Window), burstName, l.Burst, seconds(refill)))
	}
	if d.Err == nil {
		h.Set(HeaderRateLimit, fmt.Sprintf("%s;r=%d;t=%d, %s;r=%d;t=%d",
			name, d.Remaining, seconds(d.Reset), burstName, d.BurstRemaining, seconds(d.BurstReset)))
	} else {
		h.Del(HeaderRateLimit)
	}
	if d.Allowed {
		h.Del("Retry-After")
	} else {
		h.Set("Retry-After", strconv.FormatInt(max(1, seconds(d.RetryAfter)), 10))
	}
}

// seconds rounds d up to whole seconds (never negative).
func seconds(d time.Duration) int64 {
	if d <= 0 {
		return 0
	}
	return int64((d + time.Second - 1) / time.Second)
}

// WriteTooMany answers a refused request: d's headers and a problem+json
// body naming the class, the limit and when to retry (retry_after seconds,
// as in Retry-After). Normally that is 429 Too Many Requests (type
// .../rate-limited); when the store failed and the class fails closed (d.Err
// set) it is 503 Service Unavailable (type .../rate-limit-unavailable), as
// the client did nothing wrong.
func WriteTooMany(w http.ResponseWriter, r *http.Request, d Decision) {
	d.Allowed = false // so that Retry-After is written whatever the caller passed
	d.SetHeaders(w.Header())
	retry := max(1, seconds(d.RetryAfter))
	var p *problem.Details
	if d.Err != nil {
		p = problem.New(http.StatusServiceUnavailable, "rate-limit-unavailable",
			fmt.Sprintf("The rate limit for class %q cannot be checked right now; retry in %d s.", d.Class, retry))
	} else {
		l := d.Limit.withBurst()
		p = problem.New(http.StatusTooManyRequests, "rate-limited",
			fmt.Sprintf("Rate limit for class %q exceeded (%d requests per %v, bursts of %d); retry in %d s.",
				d.Class, l.Quota, l.Window, l.Burst, retry)).
			With("limit", l.Quota).
			With("window_seconds", seconds(l.Window)).
			With("burst", l.Burst)
	}
	problem.Write(w, r, p.With("class", string(d.Class)).With("retry_after", retry))
}
