package analytics

import "time"

// Outcome of one webhook attempt.
const (
	OutcomeDelivered   = "delivered"    // 2xx within the timeout
	OutcomeFailed      = "failed"       // will be retried
	OutcomeExhausted   = "exhausted"    // last attempt failed; dead-lettered
	OutcomeCircuitOpen = "circuit_open" // not sent: the endpoint's breaker is open
)

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
}
