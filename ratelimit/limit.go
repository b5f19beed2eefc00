package ratelimit

import (
	"errors"
	"fmt"
	"time"
)

// Limit is the allowance of one client in one class (or on one route):
// Quota requests per sliding Window, of which at most Burst at once.
type Limit struct {
	// Quota is how many requests the sliding window admits.
	Quota int `json:"quota"`
	// Window is the length of the sliding window, in whole milliseconds.
	Window time.Duration `json:"window"`
	// Burst is the token bucket's capacity; the bucket refills at
	// Quota/Window. 0 means the default: 5 % of Quota, at least 1.
	Burst int `json:"burst,omitempty"`
}

// maxUnits bounds Quota×Window and Burst×Window (in milliseconds) so that the
// arithmetic stays exact in int64 and in Redis Lua's float64 numbers.
const maxUnits = 1 << 50

// maxWindow bounds Window and the time a burst takes to refill, so every
// duration a Decision reports (up to two windows) fits a time.Duration.
const maxWindow = 100 * 365 * 24 * time.Hour

// BurstSize returns the bucket capacity: Burst, or 5 % of Quota (at least 1)
// when Burst is 0.
func (l Limit) BurstSize() int {
	if l.Burst > 0 {
		return l.Burst
	}
	return max(1, l.Quota*5/100)
}

// Validate reports whether l can be enforced: a positive quota, a window of
// whole milliseconds, a non-negative burst, products small enough for
// exact arithmetic, and a window and burst refill of at most 100 years.
func (l Limit) Validate() error {
	switch {
	case l.Quota < 1:
		return fmt.Errorf("rate limit quota %d: must be at least 1", l.Quota)
	case l.Window < time.Millisecond || l.Window%time.Millisecond != 0:
		return fmt.Errorf("rate limit window %v: must be a positive whole number of milliseconds", l.Window)
	case l.Burst < 0:
		return fmt.Errorf("rate limit burst %d: must not be negative", l.Burst)
	}
	w := l.Window.Milliseconds()
	if int64(l.Quota) > maxUnits/w || int64(l.BurstSize()) > maxUnits/w {
		return fmt.Errorf("rate limit %d (burst %d) per %v: too large", l.Quota, l.BurstSize(), l.Window)
	}
	if l.Window > maxWindow {
		return fmt.Errorf("rate limit window %v: at most %v", l.Window, maxWindow)
	}
	if refill := float64(l.Window) / float64(l.Quota) * float64(l.BurstSize()); refill > float64(maxWindow) {
		return fmt.Errorf("rate limit burst %d: refilling it at %d per %v takes longer than %v", l.BurstSize(), l.Quota, l.Window, maxWindow)
	}
	return nil
}

// withBurst returns l with Burst set to its effective value.
func (l Limit) withBurst() Limit {
	l.Burst = l.BurstSize()
	return l
}

// DefaultLimits returns the default limit of every class: standard 1000
// requests per hour, realtime 100 per hour, bulk 100 per day, admin 500 per
// hour, each with the default burst (5 % of the quota). The map is new on
// every call.
func DefaultLimits() map[Class]Limit {
	return map[Class]Limit{
		ClassStandard: {Quota: 1000, Window: time.Hour},
		ClassRealtime: {Quota: 100, Window: time.Hour},
		ClassBulk:     {Quota: 100, Window: 24 * time.Hour},
		ClassAdmin:    {Quota: 500, Window: time.Hour},
	}
}

// Override replaces the class limit of one client: for the whole class when
// Route is empty, or for one route (a ServeMux pattern such as
// "POST /v1/events/batch") when it is set. A route override has counters of
// its own, so requests to that route do not use up the class quota. The
// admin API stores these.
type Override struct {
	ClientID string `json:"client_id"`
	Class    Class  `json:"class"`
	Route    string `json:"route,omitempty"`
	Limit    Limit  `json:"limit"`
}

// Validate reports whether o names a client and a class and holds a valid
// limit.
func (o Override) Validate() error {
	if o.ClientID == "" {
		return errors.New("rate limit override: client id is empty")
	}
	if o.Class == "" {
		return errors.New("rate limit override: class is empty")
	}
	if err := o.Limit.Validate(); err != nil {
		return fmt.Errorf("rate limit override for %s/%s %s: %w", o.ClientID, o.Class, o.Route, err)
	}
	return nil
}

// Overrides looks up per-client limits. The Limiter asks twice per request:
// first with the request's route (only an override for exactly that route
// may answer), then with route "" (only a class-wide override may answer).
// Implementations must be safe for concurrent use and fast: they are called
// on every request.
type Overrides interface {
	Limit(clientID string, class Class, route string) (Limit, bool)
}

// overrideKey identifies one override.
type overrideKey struct {
	client, route string
	class         Class
}

// StaticOverrides is an immutable set of overrides, for configuration files
// and tests. The zero value has none.
type StaticOverrides struct {
	m map[overrideKey]Limit
}

// NewStaticOverrides validates list and returns it as Overrides. A later
// entry for the same (client, class, route) replaces an earlier one.
func NewStaticOverrides(list ...Override) (*StaticOverrides, error) {
	s := &StaticOverrides{m: make(map[overrideKey]Limit, len(list))}
	for _, o := range list {
		if err := o.Validate(); err != nil {
			return nil, err
		}
		s.m[overrideKey{client: o.ClientID, class: o.Class, route: o.Route}] = o.Limit
	}
	return s, nil
}

// Limit returns the override for exactly (clientID, class, route); route ""
// asks for the class-wide override.
func (s *StaticOverrides) Limit(clientID string, class Class, route string) (Limit, bool) {
	if s == nil {
		return Limit{}, false
	}
	l, ok := s.m[overrideKey{client: clientID, class: class, route: route}]
	return l, ok
}
