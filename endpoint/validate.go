package endpoint

import (
	"errors"
	"fmt"
	"math"
	"net/url"
	"slices"
	"strings"

	"github.com/vitalshq/vitals/event"
)

// Limits on endpoint fields, so that one endpoint cannot bloat the registry
// every instance holds in memory.
const (
	MaxURLLength     = 2048
	MaxDescription   = 512
	MaxCustomerIDs   = 1000
	MaxCustomerID    = 128
	MaxHeaders       = 20
	MaxHeaderValue   = 1024
	MaxRateLimit     = 10000 // deliveries per second
	MaxInFlightLimit = 1000
	MaxReason        = 256
)

// ErrInvalid is wrapped by every FieldError.
var ErrInvalid = errors.New("invalid endpoint")

// FieldError names the field of an endpoint that is invalid and says how
// to fix it.
type FieldError struct {
	Field  string // JSON name, e.g. "event_types[2]" or "headers.Host"
	Detail string
}

func (e *FieldError) Error() string { return e.Field + ": " + e.Detail }

// Unwrap makes errors.Is(err, ErrInvalid) hold.
func (e *FieldError) Unwrap() error { return ErrInvalid }

// reservedHeaders are set by the dispatcher or by HTTP itself; an endpoint's
// custom headers may not override them. Names beginning "webhook-" (the
// Standard Webhooks headers) and "proxy-" are reserved too.
//
// Authorization is NOT reserved: receivers behind API gateways often need a
// static credential, and it cannot forge the webhook signature. Its value is
// redacted wherever the API shows an endpoint (see SensitiveHeader).
var reservedHeaders = []string{
	"connection", "content-encoding", "content-length", "content-type", "cookie", "date", "expect",
	"host", "keep-alive", "te", "trailer", "transfer-encoding", "upgrade", "user-agent", "via",
	"forwarded", "x-forwarded-for", "x-forwarded-host", "x-forwarded-proto",
}

// ReservedHeader reports whether name may not be a custom header.
func ReservedHeader(name string) bool {
	n := strings.ToLower(name)
	return strings.HasPrefix(n, "webhook-") || strings.HasPrefix(n, "proxy-") || slices.Contains(reservedHeaders, n)
}

// SensitiveHeader reports whether a custom header's value is a credential
// that reads must redact.
func SensitiveHeader(name string) bool {
	n := strings.ToLower(name)
	return n == "authorization" || strings.Contains(n, "token") || strings.Contains(n, "secret") ||
		strings.Contains(n, "api-key") || strings.Contains(n, "apikey")
}

// ValidEventType reports whether name may appear in EventTypes: a derived
// event name, "*", or an operational event name.
func ValidEventType(name string) bool {
	return name == "*" || IsOperational(name) || slices.Contains(event.DerivedTypes(), name)
}

// Validate checks the user-settable fields of e and normalizes EventTypes
// and CustomerIDs (sorted, duplicates removed). allowHTTP permits plain
// http URLs (--allow-insecure-endpoints). It does not resolve the URL's
// host: address policy is package ssrf's. The error is a *FieldError.
func (e *Endpoint) Validate(allowHTTP bool) error {
	bad := func(field, format string, args ...any) error {
		return &FieldError{Field: field, Detail: fmt.Sprintf(format, args...)}
	}
	if e.URL == "" {
		return bad("url", "url is required: the absolute https URL that receives the webhooks")
	}
	if len(e.URL) > MaxURLLength {
		return bad("url", "url must be at most %d characters", MaxURLLength)
	}
	u, err := url.Parse(e.URL)
	if err != nil || u.Host == "" || u.Hostname() == "" {
		return bad("url", "url must be an absolute URL with a host, e.g. https://hooks.example.com/vitals")
	}
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && allowHTTP:
	case u.Scheme == "http":
		return bad("url", "url must use https (plain http only when the server runs with --allow-insecure-endpoints)")
	default:
		return bad("url", "url scheme %q is not supported; use https", u.Scheme)
	}
	if u.User != nil {
		return bad("url", "url must not carry credentials; use a custom Authorization header instead")
	}
	if len(e.EventTypes) == 0 {
		return bad("event_types", "event_types is required: a list of %s, %s, or [\"*\"] for all derived events",
			strings.Join(event.DerivedTypes(), ", "), strings.Join(OperationalTypes(), ", "))
	}
	for i, t := range e.EventTypes {
		if !ValidEventType(t) {
			return bad(fmt.Sprintf("event_types[%d]", i), "%q is not an event type; use %s, %s or \"*\"",
				t, strings.Join(event.DerivedTypes(), ", "), strings.Join(OperationalTypes(), ", "))
		}
	}
	e.EventTypes = sortedUnique(e.EventTypes)
	if len(e.Description) > MaxDescription {
		return bad("description", "description must be at most %d characters", MaxDescription)
	}
	if len(e.CustomerIDs) > MaxCustomerIDs {
		return bad("customer_ids", "at most %d customer ids; leave customer_ids empty to receive every customer", MaxCustomerIDs)
	}
	for i, c := range e.CustomerIDs {
		if c == "" || len(c) > MaxCustomerID {
			return bad(fmt.Sprintf("customer_ids[%d]", i), "a customer id is 1 to %d characters", MaxCustomerID)
		}
	}
	e.CustomerIDs = sortedUnique(e.CustomerIDs)
	if len(e.Headers) > MaxHeaders {
		return bad("headers", "at most %d custom headers", MaxHeaders)
	}
	names := make([]string, 0, len(e.Headers))
	for n := range e.Headers {
		names = append(names, n)
	}
	slices.Sort(names)
	seen := make(map[string]string, len(names)) // lower-case name → name
	for _, n := range names {
		v := e.Headers[n]
		switch {
		case !validHeaderName(n):
			return bad("headers."+n, "%q is not a valid HTTP header name", n)
		case ReservedHeader(n):
			return bad("headers."+n, "%s is reserved (set by Vitals or by HTTP); webhook-*, proxy-*, %s cannot be custom headers", n, strings.Join(reservedHeaders, ", "))
		case seen[strings.ToLower(n)] != "":
			// Deliveries set headers by canonical name: one would
			// overwrite the other, which one depending on map order.
			return bad("headers."+n, "%s repeats header %s (header names are case-insensitive)", n, seen[strings.ToLower(n)])
		case len(v) > MaxHeaderValue:
			return bad("headers."+n, "a header value is at most %d characters", MaxHeaderValue)
		case !validHeaderValue(v):
			return bad("headers."+n, "a header value must not contain control characters (CR, LF, NUL, …) other than tab")
		}
		seen[strings.ToLower(n)] = n
	}
	if math.IsNaN(e.RateLimit) || e.RateLimit < 0 || e.RateLimit > MaxRateLimit {
		return bad("rate_limit", "rate_limit is deliveries per second, 0 (no limit) to %d", MaxRateLimit)
	}
	if e.MaxInFlight < 0 || e.MaxInFlight > MaxInFlightLimit {
		return bad("max_in_flight", "max_in_flight is 0 (the dispatcher's default) to %d concurrent requests", MaxInFlightLimit)
	}
	if len(e.DisabledReason) > MaxReason {
		return bad("disabled_reason", "disabled_reason must be at most %d characters", MaxReason)
	}
	if e.DisabledReason != "" && !e.Disabled {
		return bad("disabled_reason", "disabled_reason is only meaningful with \"disabled\": true")
	}
	return nil
}

func sortedUnique(s []string) []string {
	out := slices.Clone(s)
	slices.Sort(out)
	return slices.Compact(out)
}

// validHeaderValue reports whether v is an RFC 9110 field value: no control
// character but tab. net/http refuses to send any other, so every delivery
// of an endpoint with one would fail.
func validHeaderValue(v string) bool {
	for _, c := range []byte(v) {
		if (c < ' ' && c != '\t') || c == 0x7f {
			return false
		}
	}
	return true
}

// validHeaderName reports whether n is an RFC 9110 token.
func validHeaderName(n string) bool {
	if n == "" || len(n) > 128 {
		return false
	}
	for _, c := range []byte(n) {
		switch {
		case c >= 'a' && c <= 'z', c >= 'A' && c <= 'Z', c >= '0' && c <= '9':
		case strings.IndexByte("!#$%&'*+-.^_`|~", c) >= 0:
		default:
			return false
		}
	}
	return true
}
