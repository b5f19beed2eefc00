package api

import (
	"time"

	"github.com/vitalshq/vitals/clientip"
)

// DefaultSecretOverlap is how long a rotated-out signing secret keeps
// signing (a second signature) after POST /v1/endpoints/{id}/secret/rotate.
const DefaultSecretOverlap = 24 * time.Hour

// Option configures a Server.
type Option func(*options)

type options struct {
	allowInsecureEndpoints bool
	secretOverlap          time.Duration
	clientIP               *clientip.Resolver
}

func defaultOptions() options {
	return options{secretOverlap: DefaultSecretOverlap}
}

// AllowInsecureEndpoints, when true, accepts plain http endpoint URLs
// (flag --allow-insecure-endpoints). Off by default: https is required.
func AllowInsecureEndpoints(allow bool) Option {
	return func(o *options) { o.allowInsecureEndpoints = allow }
}

// SecretOverlap sets how long the previous secret keeps signing after a
// rotation (default DefaultSecretOverlap). Zero or less keeps the default.
func SecretOverlap(d time.Duration) Option {
	return func(o *options) {
		if d > 0 {
			o.secretOverlap = d
		}
	}
}

// ClientIP sets how the client address of a request is found (IP
// allow-lists, logs): the socket peer, or X-Forwarded-For from the
// resolver's trusted proxies. Default: the socket peer.
func ClientIP(r *clientip.Resolver) Option { return func(o *options) { o.clientIP = r } }
