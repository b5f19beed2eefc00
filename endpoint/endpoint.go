// Package endpoint defines webhook endpoints, the subscriptions the
// dispatcher delivers to, and their registry: a compacted Kafka topic
// materialized in every API and dispatcher instance.
package endpoint

import (
	"slices"
	"time"
)

// Endpoint is one subscriber URL and what it receives.
type Endpoint struct {
	ID          string    `json:"id"`          // "ep_…"
	URL         string    `json:"url"`         // absolute https URL (http only with --allow-insecure-endpoints)
	EventTypes  []string  `json:"event_types"` // derived or operational event names, or "*" for all derived events
	Description string    `json:"description,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
	UpdatedAt   time.Time `json:"updated_at,omitzero"`

	// CustomerIDs, when set, limits deliveries to these customers.
	CustomerIDs []string `json:"customer_ids,omitempty"`
	// Headers are sent with every delivery; reserved names are refused.
	Headers map[string]string `json:"headers,omitempty"`
	// RateLimit caps deliveries per second to this endpoint (0: no cap).
	RateLimit float64 `json:"rate_limit,omitempty"`
	// MaxInFlight caps concurrent requests to this endpoint (0: default).
	MaxInFlight int `json:"max_in_flight,omitempty"`
	// Ordered delivers each customer's events one at a time, in order.
	Ordered bool `json:"ordered,omitempty"`

	// Secret signs deliveries ("whsec_…"). During a rotation the previous
	// secret keeps signing too (a second signature) until PreviousUntil.
	// The three secret fields are held in the clear here and sealed in
	// the topic by a Registry with a Sealer.
	Secret         string    `json:"secret"`
	PreviousSecret string    `json:"previous_secret,omitempty"`
	PreviousUntil  time.Time `json:"previous_until,omitzero"`
	// SigningKeyEd25519, when set, adds a "v1a," asymmetric signature: the
	// base64 ed25519 private key seed; receivers verify with the public key.
	SigningKeyEd25519 string `json:"signing_key_ed25519,omitempty"`

	Disabled bool `json:"disabled,omitempty"`
	// DisabledReason says why deliveries stopped, e.g. "410 Gone".
	DisabledReason string    `json:"disabled_reason,omitempty"`
	DisabledAt     time.Time `json:"disabled_at,omitzero"`
}

// Operational event names an endpoint can subscribe to (never matched by "*").
const (
	OpAttemptExhausted = "message.attempt.exhausted"
	OpEndpointDisabled = "endpoint.disabled"
	// OpAlertFiring and OpAlertResolved are Vitals' own alerts (package
	// alerting): a monitored condition started or stopped holding.
	OpAlertFiring   = "alert.firing"
	OpAlertResolved = "alert.resolved"
)

// OperationalTypes lists the operational event names, in a stable order.
func OperationalTypes() []string {
	return []string{OpAttemptExhausted, OpEndpointDisabled, OpAlertFiring, OpAlertResolved}
}

// IsOperational reports whether name is an operational event name.
func IsOperational(name string) bool {
	switch name {
	case OpAttemptExhausted, OpEndpointDisabled, OpAlertFiring, OpAlertResolved:
		return true
	}
	return false
}

// Subscribes reports whether e should receive events of the given type.
// "*" matches every derived event, not operational ones, which are only
// delivered to endpoints that name them.
func (e Endpoint) Subscribes(eventType string) bool {
	if e.Disabled {
		return false
	}
	if slices.Contains(e.EventTypes, eventType) {
		return true
	}
	return slices.Contains(e.EventTypes, "*") && !IsOperational(eventType)
}

// WantsCustomer reports whether e receives events of the given customer.
func (e Endpoint) WantsCustomer(customerID string) bool {
	return len(e.CustomerIDs) == 0 || slices.Contains(e.CustomerIDs, customerID)
}

// Secrets returns the secrets that sign a delivery at time now: the
// current one, and the previous one while its overlap lasts.
func (e Endpoint) Secrets(now time.Time) []string {
	if e.PreviousSecret != "" && now.Before(e.PreviousUntil) {
		return []string{e.Secret, e.PreviousSecret}
	}
	return []string{e.Secret}
}
