package analytics

import (
	"context"
	"strconv"
	"time"

	"github.com/vitalshq/vitals/audit"
)

// APIUsage is the calls of one client to one route that got one status.
type APIUsage struct {
	ClientID string `json:"client_id"` // "" for calls without a valid token
	Method   string `json:"method"`
	Route    string `json:"route"` // the route template, e.g. /v1/endpoints/{id}
	Status   uint16 `json:"status"`
	Calls    uint64 `json:"calls"`
	Denied   uint64 `json:"denied"` // refused before the handler (audit.DecisionDenied)
	// Exact latency quantiles in milliseconds.
	P50Ms float64 `json:"p50_ms"`
	P95Ms float64 `json:"p95_ms"`
}

// APIUsage returns API calls by client, route and status, the most
// frequent first (Query: Since, Until, ClientID, Limit). It reads
// api_audit, each audit record once however many copies the table holds.
func (s *Store) APIUsage(ctx context.Context, q Query) ([]APIUsage, error) {
	f, err := auditFilter(q)
	if err != nil {
		return nil, err
	}
	sql := `SELECT client_id, method, route, status, toUInt64(count()) AS n,
    toUInt64(countIf(decision = '` + audit.DecisionDenied + `')),
    arrayMap(x -> toFloat64(x), quantilesExact(0.5, 0.95)(latency_ms))
FROM (SELECT client_id, method, route, status, decision, latency_ms
    FROM ` + s.db + `.api_audit` + f.sql() + ` LIMIT 1 BY instance, seq)
GROUP BY client_id, method, route, status
ORDER BY n DESC, client_id, route, method, status
LIMIT ` + strconv.Itoa(q.limit())
	var out []APIUsage
	err = s.run(ctx, "api usage", sql, f.args, func(r resultRows) error {
		var u APIUsage
		var lat []float64
		if err := r.Scan(&u.ClientID, &u.Method, &u.Route, &u.Status, &u.Calls, &u.Denied, &lat); err != nil {
			return err
		}
		u.P50Ms, u.P95Ms = at(lat, 0), at(lat, 1)
		out = append(out, u)
		return nil
	})
	return out, err
}

// RateLimitRejections is the calls of one client to one route refused by
// one rate-limit class.
type RateLimitRejections struct {
	ClientID   string    `json:"client_id"`
	Route      string    `json:"route"`
	Class      string    `json:"class"` // the route's rate-limit class
	Rejections uint64    `json:"rejections"`
	First      time.Time `json:"first"` // whole seconds, UTC
	Last       time.Time `json:"last"`
}

// RateLimitRejections returns the calls refused with 429 (audit reason
// rate_limited) by client, route and class, the most frequent first
// (Query: Since, Until, ClientID, Limit). It reads api_audit, each record
// once.
func (s *Store) RateLimitRejections(ctx context.Context, q Query) ([]RateLimitRejections, error) {
	f, err := auditFilter(q)
	if err != nil {
		return nil, err
	}
	f.add("reason = ?", audit.ReasonRateLimited)
	sql := `SELECT client_id, route, rate_limit_class, toUInt64(count()) AS n, toUInt32(min(time)), toUInt32(max(time))
FROM (SELECT client_id, route, rate_limit_class, time
    FROM ` + s.db + `.api_audit` + f.sql() + ` LIMIT 1 BY instance, seq)
GROUP BY client_id, route, rate_limit_class
ORDER BY n DESC, client_id, route, rate_limit_class
LIMIT ` + strconv.Itoa(q.limit())
	var out []RateLimitRejections
	err = s.run(ctx, "rate-limit rejections", sql, f.args, func(r resultRows) error {
		var x RateLimitRejections
		var first, last uint32
		if err := r.Scan(&x.ClientID, &x.Route, &x.Class, &x.Rejections, &first, &last); err != nil {
			return err
		}
		x.First, x.Last = unix(first), unix(last)
		out = append(out, x)
		return nil
	})
	return out, err
}

// Categories of SecurityEvents.
const (
	// SecurityDenial: a call refused for its token, scope, address or
	// account kind (auth.DenyReason: missing_token, invalid_token,
	// insufficient_scope, ip_denied, user_required; audit
	// unauthenticated). Rate limiting and shedding are not security events
	// (see RateLimitRejections).
	SecurityDenial = "denial"
	// SecurityFailedLogin: a refused sign-in. Reason is
	// ReasonSignInRefused (the sign-in page answered 401: wrong password,
	// one-time code, or a disabled account) or ReasonClientAuthFailed (the
	// token endpoint answered 401: wrong client credentials).
	SecurityFailedLogin = "failed_login"
	// SecurityMFAFailure: an admin call without a fresh TOTP sign-in
	// (reason mfa_required).
	SecurityMFAFailure = "mfa_failure"
	// SecuritySignatureFailure: a high-value call whose RFC 9421 signature
	// was missing, invalid or replayed (reason bad_signature).
	SecuritySignatureFailure = "signature_failure"
)

// Reasons SecurityEvents gives failed logins, which the audit log records
// as answered calls (no denial reason) of the OAuth routes.
const (
	ReasonSignInRefused    = "sign_in_refused"
	ReasonClientAuthFailed = "client_authentication_failed"
)

// Routes of the OAuth server whose 401 answers are failed logins.
const (
	authorizeRoute = "/oauth/authorize"
	tokenRoute     = "/oauth/token"
)

// SecurityEvent is the security-relevant calls of one category and reason.
type SecurityEvent struct {
	Category  string    `json:"category"` // SecurityDenial, SecurityFailedLogin, …
	Reason    string    `json:"reason"`
	Events    uint64    `json:"events"`
	Clients   uint64    `json:"clients"`    // distinct client ids (calls with none not counted)
	SourceIPs uint64    `json:"source_ips"` // distinct source addresses
	First     time.Time `json:"first"`      // whole seconds, UTC
	Last      time.Time `json:"last"`
}

// SecurityEvents returns denials by reason, failed logins, MFA failures
// and signature failures, the most frequent first (Query: Since, Until,
// ClientID, Limit). It reads api_audit, each record once.
func (s *Store) SecurityEvents(ctx context.Context, q Query) ([]SecurityEvent, error) {
	f, err := auditFilter(q)
	if err != nil {
		return nil, err
	}
	failedLogin := `(reason = '' AND status = 401 AND ((method = 'POST' AND route = '` + authorizeRoute + `') OR route = '` + tokenRoute + `'))`
	category := `multiIf(reason = '` + audit.ReasonBadSignature + `', '` + SecuritySignatureFailure + `',
        reason = '` + audit.ReasonMFARequired + `', '` + SecurityMFAFailure + `',
        ` + failedLogin + `, '` + SecurityFailedLogin + `',
        decision = '` + audit.DecisionDenied + `' AND reason NOT IN ('` + audit.ReasonRateLimited + `', '` + audit.ReasonOverloaded + `'), '` + SecurityDenial + `',
        '')`
	why := `multiIf(reason != '', reason, route = '` + tokenRoute + `', '` + ReasonClientAuthFailed + `', '` + ReasonSignInRefused + `')`
	sql := `SELECT category, why, toUInt64(count()) AS n, toUInt64(uniqExactIf(client_id, client_id != '')),
    toUInt64(uniqExact(source_ip)), toUInt32(min(time)), toUInt32(max(time))
FROM (SELECT ` + category + ` AS category, ` + why + ` AS why, client_id, source_ip, time
    FROM ` + s.db + `.api_audit` + f.sql() + ` LIMIT 1 BY instance, seq)
WHERE category != ''
GROUP BY category, why
ORDER BY n DESC, category, why
LIMIT ` + strconv.Itoa(q.limit())
	var out []SecurityEvent
	err = s.run(ctx, "security events", sql, f.args, func(r resultRows) error {
		var e SecurityEvent
		var first, last uint32
		if err := r.Scan(&e.Category, &e.Reason, &e.Events, &e.Clients, &e.SourceIPs, &first, &last); err != nil {
			return err
		}
		e.First, e.Last = unix(first), unix(last)
		out = append(out, e)
		return nil
	})
	return out, err
}

// auditFilter is the WHERE of an api_audit query: q's window on time (whole
// seconds) and its client.
func auditFilter(q Query) (filter, error) {
	since, until, err := q.window(time.Second)
	if err != nil {
		return filter{}, err
	}
	var f filter
	f.between("time", since, until)
	f.addIf("client_id", q.ClientID)
	return f, nil
}
