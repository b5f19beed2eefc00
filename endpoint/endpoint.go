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
	URL         string    `json:"url"`         // absolute http(s) URL
	EventTypes  []string  `json:"event_types"` // derived event names, or "*" for all
	Description string    `json:"description,omitempty"`
	Secret      string    `json:"secret"` // "whsec_…"; signs deliveries
	CreatedAt   time.Time `json:"created_at"`
	Disabled    bool      `json:"disabled,omitempty"`
	// DisabledReason says why deliveries stopped, e.g. "410 Gone".
	DisabledReason string `json:"disabled_reason,omitempty"`
}

// Subscribes reports whether e should receive events of the given type.
func (e Endpoint) Subscribes(eventType string) bool {
	if e.Disabled {
		return false
	}
	return slices.Contains(e.EventTypes, "*") || slices.Contains(e.EventTypes, eventType)
}
