package audit

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"strconv"
	"strings"
	"time"
)

// Decisions: whether the API let the call through to its handler.
const (
	// DecisionAllowed: the call passed authentication, authorization,
	// rate limits and admission; Status says how the handler answered.
	DecisionAllowed = "allowed"
	// DecisionDenied: the call was refused before its handler ran;
	// Reason says why.
	DecisionDenied = "denied"
)

// Reasons of denied calls. The list is open: the API may add reasons; these
// are the ones the rest of Vitals knows by name.
const (
	ReasonUnauthenticated   = "unauthenticated"    // no, expired, revoked or invalid access token
	ReasonInsufficientScope = "insufficient_scope" // the token lacks a scope the route needs
	ReasonMFARequired       = "mfa_required"       // admin route without a fresh TOTP sign-in
	ReasonIPDenied          = "ip_denied"          // source address outside the client's allow-list
	ReasonRateLimited       = "rate_limited"       // a quota or burst limit of the client's class
	ReasonOverloaded        = "overloaded"         // shed by the admission controller
	ReasonBadSignature      = "bad_signature"      // missing, invalid or replayed RFC 9421 signature
)

// Genesis is the PrevHash of the first record (Seq 1) of every chain.
const Genesis = "0000000000000000000000000000000000000000000000000000000000000000"

// MaxUserAgentBytes is how much of the User-Agent header a record keeps;
// Seal cuts longer ones at a UTF-8 character boundary.
const MaxUserAgentBytes = 256

// canonicalVersion is the first field of the canonical encoding, so a
// future encoding can never produce the same bytes as this one.
const canonicalVersion = "vitals-audit-v1"

// timeLayout is the canonical form of Record.Time: UTC, milliseconds.
const timeLayout = "2006-01-02T15:04:05.000Z"

// Record is one API call in the audit log: topic vitals.audit.v1 (JSON,
// keyed by Instance) and ClickHouse table api_audit. It holds no token,
// secret, query string or body.
//
// Instance, Seq, PrevHash, Hash and Time are set by [Chain.Seal]; ID too
// when empty. The caller fills the rest.
type Record struct {
	ID       string    `json:"id"`        // unique id of the record (UUID)
	Time     time.Time `json:"time"`      // when the call was sealed (its end), UTC, milliseconds
	Instance string    `json:"instance"`  // the chain: one per API process start
	Seq      uint64    `json:"seq"`       // position in the chain, from 1, no gaps
	PrevHash string    `json:"prev_hash"` // Hash of record Seq-1 of the chain; Genesis for Seq 1
	Hash     string    `json:"hash"`      // hex SHA-256 of Canonical()

	RequestID      string   `json:"request_id,omitempty"`
	ClientID       string   `json:"client_id,omitempty"`  // OAuth client, when authenticated
	UserID         string   `json:"user_id,omitempty"`    // person, for user tokens
	SourceIP       string   `json:"source_ip,omitempty"`  // the client address (through trusted proxies)
	UserAgent      string   `json:"user_agent,omitempty"` // at most MaxUserAgentBytes
	Method         string   `json:"method"`
	Route          string   `json:"route"`            // the route template, e.g. /v1/customers/{id}; never the raw URL
	Status         int      `json:"status"`           // HTTP status sent
	LatencyMs      int64    `json:"latency_ms"`       // time from request to response
	Scopes         []string `json:"scopes,omitempty"` // scopes the route required and the token had
	Decision       string   `json:"decision"`         // DecisionAllowed or DecisionDenied
	Reason         string   `json:"reason,omitempty"` // why denied (Reason* constants); empty when allowed
	RateLimitClass string   `json:"rate_limit_class,omitempty"`
	BodySHA256     string   `json:"body_sha256,omitempty"` // hex SHA-256 of the request body; empty without a body
}

// Canonical returns the bytes Hash is the SHA-256 of. It covers every
// field but Hash, as a sequence of netstrings (a netstring of x is the
// decimal byte length of x, ":", x, ","):
//
//	ns("vitals-audit-v1") ns(id) ns(time) ns(instance) ns(seq) ns(prev_hash)
//	ns(request_id) ns(client_id) ns(user_id) ns(source_ip) ns(user_agent)
//	ns(method) ns(route) ns(status) ns(latency_ms)
//	ns(ns(scope 1) ns(scope 2) …) ns(decision) ns(reason)
//	ns(rate_limit_class) ns(body_sha256)
//
// time is UTC in RFC 3339 with exactly three fractional digits
// (2006-01-02T15:04:05.000Z); seq, status and latency_ms are base-10
// integers; strings are their UTF-8 bytes as stored; scopes keep their
// order. Hash is the lowercase hex of SHA-256(Canonical()). In Python:
//
//	ns = lambda b: str(len(b)).encode() + b":" + b + b","
func (r Record) Canonical() []byte {
	var b bytes.Buffer
	b.Grow(512)
	for _, f := range r.fields() {
		netstring(&b, f.value)
	}
	return b.Bytes()
}

// ComputeHash returns the hash r should carry: the lowercase hex SHA-256
// of r.Canonical().
func (r Record) ComputeHash() string { return hashOf(r.Canonical()) }

// hashOf returns the lowercase hex SHA-256 of canon.
func hashOf(canon []byte) string {
	sum := sha256.Sum256(canon)
	return hex.EncodeToString(sum[:])
}

// field is one named value of the canonical encoding.
type field struct{ name, value string }

// fields lists r's hashed fields in canonical order, scopes as one nested
// netstring sequence. Canonical and Scan both read it, so a field added to
// Record but not here is caught by the golden-hash test's field count.
func (r Record) fields() []field {
	var scopes bytes.Buffer
	for _, s := range r.Scopes {
		netstring(&scopes, s)
	}
	return []field{
		{"version", canonicalVersion},
		{"id", r.ID},
		{"time", r.Time.UTC().Format(timeLayout)},
		{"instance", r.Instance},
		{"seq", strconv.FormatUint(r.Seq, 10)},
		{"prev_hash", r.PrevHash},
		{"request_id", r.RequestID},
		{"client_id", r.ClientID},
		{"user_id", r.UserID},
		{"source_ip", r.SourceIP},
		{"user_agent", r.UserAgent},
		{"method", r.Method},
		{"route", r.Route},
		{"status", strconv.Itoa(r.Status)},
		{"latency_ms", strconv.FormatInt(r.LatencyMs, 10)},
		{"scopes", scopes.String()},
		{"decision", r.Decision},
		{"reason", r.Reason},
		{"rate_limit_class", r.RateLimitClass},
		{"body_sha256", r.BodySHA256},
	}
}

func netstring(b *bytes.Buffer, s string) {
	b.WriteString(strconv.Itoa(len(s)))
	b.WriteByte(':')
	b.WriteString(s)
	b.WriteByte(',')
}

// normalize puts r into the form that survives JSON and ClickHouse
// unchanged, so the hash computed at sealing recomputes from the stored
// copy: Time in UTC milliseconds, valid UTF-8 everywhere (JSON would
// replace invalid bytes), the user agent cut to MaxUserAgentBytes, status
// and latency within the stored column ranges (UInt16, UInt64).
func (r *Record) normalize() {
	r.Time = r.Time.UTC().Truncate(time.Millisecond)
	for _, s := range []*string{&r.ID, &r.RequestID, &r.ClientID, &r.UserID, &r.SourceIP,
		&r.UserAgent, &r.Method, &r.Route, &r.Decision, &r.Reason, &r.RateLimitClass, &r.BodySHA256} {
		*s = strings.ToValidUTF8(*s, "\uFFFD")
	}
	r.UserAgent = truncateUTF8(r.UserAgent, MaxUserAgentBytes)
	if len(r.Scopes) > 0 {
		scopes := make([]string, len(r.Scopes))
		for i, s := range r.Scopes {
			scopes[i] = strings.ToValidUTF8(s, "\uFFFD")
		}
		r.Scopes = scopes
	} else {
		r.Scopes = nil
	}
	if r.Status < 0 || r.Status > 65535 {
		r.Status = 0
	}
	r.LatencyMs = max(r.LatencyMs, 0)
}

// truncateUTF8 cuts valid UTF-8 s to at most n bytes without splitting a
// character.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && n < len(s) && s[n]&0xC0 == 0x80 { // s[n] continues a character
		n--
	}
	return s[:n]
}

// BodySHA256 returns the lowercase hex SHA-256 of body, or "" for an
// empty body: the value of Record.BodySHA256.
func BodySHA256(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])
}
