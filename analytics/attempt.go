package analytics

import (
	"strings"
	"time"
	"unicode/utf8"
)

// Outcome of one webhook attempt.
const (
	OutcomeDelivered   = "delivered"    // 2xx within the timeout
	OutcomeFailed      = "failed"       // will be retried
	OutcomeExhausted   = "exhausted"    // last attempt failed; dead-lettered
	OutcomeCircuitOpen = "circuit_open" // not sent: the endpoint's breaker is open
)

// MaxResponseExcerpt is how many bytes of a response body a row keeps.
const MaxResponseExcerpt = 4 << 10

// WebhookAttempt is one row of the ClickHouse table webhook_attempts: one
// HTTP delivery attempt of one derived event to one endpoint.
type WebhookAttempt struct {
	AttemptID  string    `json:"attempt_id"` // unique per attempt; dedup key
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type"`
	CustomerID string    `json:"customer_id"`
	EndpointID string    `json:"endpoint_id"`
	URLHost    string    `json:"url_host"` // host[:port] only, never path or query
	Attempt    uint16    `json:"attempt"`  // 1 for the first try
	StatusCode uint16    `json:"status_code"`
	Outcome    string    `json:"outcome"`
	ErrorClass string    `json:"error_class"` // "" on success; "timeout", "connect", "http_5xx", …
	LatencyMs  uint32    `json:"latency_ms"`
	Timestamp  time.Time `json:"timestamp"` // when the attempt started, UTC
	// BreakerState is the endpoint's circuit breaker state when the attempt
	// was admitted: "closed", "half-open" or "open" (refused).
	BreakerState string `json:"breaker_state,omitempty"`
	// RetryTier is the retry tier topic the delivery waited in before this
	// attempt (topics.Retry, e.g. "vitals.retry.5m0s.v1"); "" for a first
	// attempt read from a derived topic.
	RetryTier string `json:"retry_tier,omitempty"`
	// ResponseExcerpt is the start of the response body, at most
	// MaxResponseExcerpt bytes of valid UTF-8 (see Excerpt).
	ResponseExcerpt string `json:"response_excerpt,omitempty"`
}

// Excerpt returns the start of a response body as a ResponseExcerpt: at
// most MaxResponseExcerpt bytes, cut at a character boundary, with bytes
// that are not UTF-8 replaced (U+FFFD), so the row survives the spool's
// JSON unchanged.
func Excerpt(body []byte) string {
	if len(body) == 0 {
		return ""
	}
	s := string(body)
	if !utf8.ValidString(s) {
		s = strings.ToValidUTF8(s, "\uFFFD")
	}
	if len(s) <= MaxResponseExcerpt {
		return s
	}
	cut := MaxResponseExcerpt
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// attemptColumns lists webhook_attempts' columns in insert and select order
// (attemptValues, scanAttempt). Inserts name them explicitly: ClickHouse
// 18.16 needs the list for native batches.
const attemptColumns = "attempt_id, event_id, event_type, customer_id, endpoint_id, url_host, " +
	"attempt, status_code, outcome, error_class, latency_ms, timestamp, " +
	"breaker_state, retry_tier, response_excerpt"

// attemptValues returns a's values in attemptColumns order. The excerpt is
// bounded here too, whatever the caller put in it.
func attemptValues(a *WebhookAttempt) []any {
	excerpt := a.ResponseExcerpt
	if len(excerpt) > MaxResponseExcerpt {
		excerpt = Excerpt([]byte(excerpt))
	}
	return []any{a.AttemptID, a.EventID, a.EventType, a.CustomerID, a.EndpointID, a.URLHost,
		a.Attempt, a.StatusCode, a.Outcome, a.ErrorClass, a.LatencyMs, a.Timestamp.UTC(),
		a.BreakerState, a.RetryTier, excerpt}
}

// scanAttempt reads one row selected with attemptColumns.
func scanAttempt(rows resultRows) (WebhookAttempt, error) {
	var a WebhookAttempt
	var ts time.Time
	if err := rows.Scan(&a.AttemptID, &a.EventID, &a.EventType, &a.CustomerID, &a.EndpointID, &a.URLHost,
		&a.Attempt, &a.StatusCode, &a.Outcome, &a.ErrorClass, &a.LatencyMs, &ts,
		&a.BreakerState, &a.RetryTier, &a.ResponseExcerpt); err != nil {
		return WebhookAttempt{}, err
	}
	a.Timestamp = ts.UTC()
	return a, nil
}
