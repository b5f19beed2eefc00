package ratelimit

import (
	"context"
	"fmt"
	"math"
	"net/http"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"
)

// FuzzParseLimits feeds arbitrary --rate-limit values (entries separated
// by newlines) to ParseLimits. It must never panic; what it accepts must
// name known classes, pass Validate, read back the same from its canonical
// form, and be enforceable: on a fresh key exactly min(quota, burst)
// requests pass at one instant, the next is refused with a Retry-After no
// shorter than the refill of one token, and the RateLimit headers state
// the limit as configured.
func FuzzParseLimits(f *testing.F) {
	for _, seed := range []string{
		"standard=5000/1h/250",
		" bulk = 10/24h\nrealtime=100/1m",
		"admin=1/1ms/1",
		"standard=1/2562047h",
		"standard=1125899906842624/1ms",
		"standard=1/1000h/312749",
		"standard=1/876000h", "standard=3/876000h/3", "bulk=1000/8760h/100000",
		"realtime=3/1.5s/2",
		"standard=10/1h30m/0",
		"standard=20/1us",
		"standard=0/1h", "standard=-1/1h", "standard=10/-1h/2", "standard=10/1h/-2",
		"standard", "nope=1/1h", "standard=x/1h", "standard=10/forever", "standard=1/2/3/4",
		"standard=9223372036854775807/1ms", "=1/1h", "standard=1/1h=2", "standard=+1/+1h/+1",
	} {
		f.Add(seed)
	}
	t0 := time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)

	f.Fuzz(func(t *testing.T, spec string) {
		limits, err := ParseLimits(strings.Split(spec, "\n"))
		if err != nil {
			return
		}
		canonical := make([]string, 0, len(limits))
		for c, l := range limits {
			if !slices.Contains(Classes(), c) {
				t.Fatalf("%q: accepted unknown class %q", spec, c)
			}
			if err := l.Validate(); err != nil {
				t.Fatalf("%q: accepted %s=%+v, which does not validate: %v", spec, c, l, err)
			}
			canonical = append(canonical, fmt.Sprintf("%s=%d/%s/%d", c, l.Quota, l.Window, l.Burst))
		}
		again, err := ParseLimits(canonical)
		if err != nil || !reflect.DeepEqual(again, limits) {
			t.Fatalf("%q: canonical form %q reads back as %+v, %v; want %+v", spec, canonical, again, err, limits)
		}
		for c, l := range limits {
			checkEnforced(t, c, l, t0)
		}
	})
}

// checkEnforced takes requests for a fresh key under l at one instant and
// checks the decisions and their headers.
func checkEnforced(t *testing.T, c Class, l Limit, now time.Time) {
	t.Helper()
	store := NewMemoryStore()
	admit := min(l.Quota, l.BurstSize())
	const most = 20
	for i := range min(admit, most) + 1 {
		d, err := store.Take(context.Background(), "client", l, now)
		if err != nil {
			t.Fatalf("%s %+v: take %d: %v", c, l, i, err)
		}
		d.Class = c
		switch {
		case i < admit && !d.Allowed:
			t.Fatalf("%s %+v: request %d refused, %d must pass at once: %+v", c, l, i, admit, d)
		case i == admit && d.Allowed:
			t.Fatalf("%s %+v: request %d passed, only %d may pass at once", c, l, i, admit)
		}
		if d.Remaining < 0 || d.Remaining > l.Quota || d.BurstRemaining < 0 || d.BurstRemaining > l.BurstSize() ||
			d.Reset < 0 || d.BurstReset < 0 || d.RetryAfter < 0 {
			t.Fatalf("%s %+v: request %d: counters out of range: %+v", c, l, i, d)
		}
		if !d.Allowed {
			// Either the window or the bucket is empty: no request passes
			// before one token has come back.
			if refill := float64(l.Window) / float64(l.Quota); float64(d.RetryAfter) < refill*(1-1e-9) {
				t.Fatalf("%s %+v: Retry-After %v is shorter than one token's refill %v", c, l, d.RetryAfter, time.Duration(refill))
			}
		}
		checkHeaders(t, d)
	}
}

var (
	policyRE = regexp.MustCompile(`^"([a-z]+)";q=(\d+);w=(\d+), "([a-z]+)-burst";q=(\d+);w=(\d+)$`)
	stateRE  = regexp.MustCompile(`^"([a-z]+)";r=(\d+);t=(\d+), "([a-z]+)-burst";r=(\d+);t=(\d+)$`)
)

// checkHeaders checks the RateLimit fields of d say what d holds, in whole
// seconds rounded up.
func checkHeaders(t *testing.T, d Decision) {
	t.Helper()
	h := http.Header{}
	d.SetHeaders(h)
	l := d.Limit.withBurst()
	secs := func(d time.Duration) int64 { return int64(math.Ceil(d.Seconds())) }
	ceilSecs := func(ns float64) int64 { return int64(math.Ceil(ns / 1e9)) }
	num := func(s string) int64 {
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			t.Fatalf("headers %v: %v", h, err)
		}
		return n
	}
	near := func(got, want int64) bool { return got >= want-1 && got <= want+1 } // float rounding

	p := policyRE.FindStringSubmatch(h.Get(HeaderPolicy))
	if p == nil || p[1] != string(d.Class) || p[4] != string(d.Class) {
		t.Fatalf("%+v: RateLimit-Policy %q", d, h.Get(HeaderPolicy))
	}
	refill := float64(l.Window) * float64(l.Burst) / float64(l.Quota)
	if num(p[2]) != int64(l.Quota) || num(p[3]) != secs(l.Window) || num(p[5]) != int64(l.Burst) || !near(num(p[6]), ceilSecs(refill)) {
		t.Fatalf("%+v: RateLimit-Policy %q, want q=%d;w=%d and burst q=%d;w=%d",
			d, h.Get(HeaderPolicy), l.Quota, secs(l.Window), l.Burst, ceilSecs(refill))
	}
	s := stateRE.FindStringSubmatch(h.Get(HeaderRateLimit))
	if s == nil || num(s[2]) != int64(d.Remaining) || num(s[3]) != secs(d.Reset) ||
		num(s[5]) != int64(d.BurstRemaining) || num(s[6]) != secs(d.BurstReset) {
		t.Fatalf("%+v: RateLimit %q", d, h.Get(HeaderRateLimit))
	}
	ra := h.Get("Retry-After")
	switch {
	case d.Allowed && ra != "":
		t.Fatalf("%+v: admitted with Retry-After %q", d, ra)
	case !d.Allowed && num(ra) != max(1, secs(d.RetryAfter)):
		t.Fatalf("%+v: Retry-After %q, want %d", d, ra, max(1, secs(d.RetryAfter)))
	}
}
