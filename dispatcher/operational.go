package dispatcher

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"time"

	"github.com/vitalshq/vitals/endpoint"
)

// OperationalEvent is the JSON body of an operational event, written to
// topics.Operational keyed by endpoint id and delivered as a webhook to the
// endpoints subscribed to its Type. ID is the webhook-id: derived from the
// event's content, so writing the same event twice (at-least-once) yields
// one id that receivers de-duplicate.
type OperationalEvent struct {
	ID         string    `json:"id"`
	Type       string    `json:"type"` // endpoint.OpAttemptExhausted, endpoint.OpEndpointDisabled
	EndpointID string    `json:"endpoint_id"`
	EventID    string    `json:"event_id"`
	EventType  string    `json:"event_type"`
	Attempts   int       `json:"attempts"`
	LastError  string    `json:"last_error"`
	LastStatus int       `json:"last_status"`
	Reason     string    `json:"reason,omitempty"` // why an endpoint was disabled
	Timestamp  time.Time `json:"timestamp"`
}

// newOperational fills ID from the fields that identify the occurrence.
func newOperational(e OperationalEvent) OperationalEvent {
	sum := sha256.Sum256([]byte(e.Type + "\x00" + e.EndpointID + "\x00" + e.EventID + "\x00" + e.Reason))
	e.ID = "op_" + hex.EncodeToString(sum[:12])
	e.Timestamp = e.Timestamp.UTC()
	return e
}

// isOperational reports whether an event type names an operational event.
func isOperational(eventType string) bool {
	return endpoint.IsOperational(eventType)
}

// parseOperational reads the id and type of an operational record value.
func parseOperational(value []byte) (OperationalEvent, error) {
	var e OperationalEvent
	err := json.Unmarshal(value, &e)
	return e, err
}
