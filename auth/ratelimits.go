package auth

import "github.com/vitalshq/vitals/ratelimit"

// RateLimitOverrides answers the rate limiter from the overrides stored on
// each client (Client.RateLimits), so an administrator's change applies to
// every API instance as soon as it reads the client record.
type RateLimitOverrides struct{ Clients ClientStore }

var _ ratelimit.Overrides = RateLimitOverrides{}

// Limit implements ratelimit.Overrides: the override of client for exactly
// (class, route); route "" is the class-wide one.
func (o RateLimitOverrides) Limit(clientID string, class ratelimit.Class, route string) (ratelimit.Limit, bool) {
	c, ok := o.Clients.Client(clientID)
	if !ok {
		return ratelimit.Limit{}, false
	}
	for _, ov := range c.RateLimits {
		if ov.Class == class && ov.Route == route {
			return ov.Limit, true
		}
	}
	return ratelimit.Limit{}, false
}
