// Package topics declares every Kafka topic Vitals uses and which stage
// reads and writes it: the topology in one place (see docs/ARCHITECTURE.md).
// No other package spells a topic name.
package topics

import (
	"time"

	"github.com/vitalshq/vitals/event"
)

// Topic names. The ".v1" suffix is the contract version of the record
// format; a breaking change gets a new topic, never a rewrite of this one.
const (
	// CustomerEvents holds accepted customer activity, Avro CustomerEvent,
	// keyed by customer_id. Written by the API (producer), read by the
	// processor.
	CustomerEvents = "vitals.customer-events.v1"
	// CustomerEventsDLQ holds customer-events records the processor could not
	// decode, unchanged, with the reason in headers. Written by the processor.
	CustomerEventsDLQ = "vitals.customer-events.dlq.v1"
	// CustomerState is the processor's changelog: the latest state of each
	// customer (Avro), compacted, keyed by customer_id and co-partitioned
	// with CustomerEvents (same key, same partition count). Written by the
	// processor in its transactions; read by the processor on assignment
	// and by the API's read model.
	CustomerState = "vitals.customer-state.v1"
	// HealthChanges, Expansion and Critical hold derived events (Avro), keyed
	// by customer_id. Written by the processor, read by the dispatcher.
	HealthChanges = "vitals.health-changes.v1"
	Expansion     = "vitals.expansion.v1"
	Critical      = "vitals.critical.v1"
	// Endpoints is the compacted webhook endpoint registry, keyed by endpoint
	// id (JSON; a nil value deletes). Written by the API, materialized by
	// every API and dispatcher instance.
	Endpoints = "vitals.endpoints.v1"
	// DLQ holds deliveries that exhausted their retries: the derived event's
	// record value unchanged, the endpoint and attempt history in headers
	// (see package dispatcher/task). Written by the dispatcher; read by
	// replays of failed deliveries.
	DLQ = "vitals.dlq.v1"
	// Operational holds Vitals' own operational events (JSON, keyed by
	// endpoint id): message.attempt.exhausted, endpoint.disabled, … Written
	// by the dispatcher; delivered as webhooks to endpoints subscribed to
	// them.
	Operational = "vitals.operational.v1"
	// Replays is the compacted registry of replay jobs, keyed by replay id
	// (JSON). Written by the API (request) and the dispatcher (progress).
	Replays = "vitals.replays.v1"
	// Clients is the compacted OAuth client registry, keyed by client id.
	// Written and materialized by the API.
	Clients = "vitals.clients.v1"
	// SigningKeys is the compacted registry of JWT signing keys, keyed by kid.
	// Written and materialized by the API.
	SigningKeys = "vitals.signing-keys.v1"
	// Users is the compacted registry of people who sign in through the
	// authorization code flow (admins), keyed by user id: password hashes,
	// sealed TOTP seeds, hashed recovery codes. Written and materialized by
	// the API.
	Users = "vitals.users.v1"
	// Keyring is the compacted registry of data-encryption keys, keyed by
	// key id, each wrapped by the master key (package keyring). Written by
	// the API and `vitals keys rotate`; materialized by every instance that
	// seals or opens secrets.
	Keyring = "vitals.keyring.v1"
	// OAuthTokens is the compacted store of the authorization server's
	// grants: authorization codes, PKCE requests, refresh-token families and
	// revoked access-token ids, keyed by kind and signature. Written and
	// materialized by the API; a revocation reaches every instance as soon
	// as it reads the record.
	OAuthTokens = "vitals.oauth-tokens.v1"
	// Audit holds one record per API call (JSON, keyed by the API
	// instance's chain id so each chain stays ordered in one partition).
	// Written by the API; loaded into ClickHouse api_audit by analytics.
	Audit = "vitals.audit.v1"
)

// ForDerived returns the topic a derived event type is written to, or ""
// for an unknown type.
func ForDerived(eventType string) string {
	switch eventType {
	case event.HealthScoreChange:
		return HealthChanges
	case event.ExpansionReady:
		return Expansion
	case event.ChurnRiskDetected:
		return Critical
	}
	return ""
}

// Derived lists the three derived-event topics.
func Derived() []string { return []string{HealthChanges, Expansion, Critical} }

// Retry returns the name of the retry tier holding deliveries that wait
// delay before their next attempt, e.g. "vitals.retry.5m0s.v1". Each delay
// of the configured retry schedule has its tier.
func Retry(delay time.Duration) string {
	return "vitals.retry." + delay.String() + ".v1"
}

// RetryTiers returns the retry tier specs of a schedule (duplicates once).
func RetryTiers(schedule []time.Duration, partitions int32) []Spec {
	var out []Spec
	seen := map[time.Duration]bool{}
	for _, d := range schedule {
		if !seen[d] {
			seen[d] = true
			out = append(out, Spec{Name: Retry(d), Partitions: partitions})
		}
	}
	return out
}

// Spec describes how a topic is created.
type Spec struct {
	Name       string
	Partitions int32
	Compacted  bool
}

// DefaultPartitions is the partition count of data topics created by Vitals.
// Partitions are the unit of parallelism: run up to this many instances of a
// stage usefully.
const DefaultPartitions = 6

// All returns the spec of every topic Vitals creates at start.
func All(partitions int32) []Spec {
	if partitions <= 0 {
		partitions = DefaultPartitions
	}
	return []Spec{
		{Name: CustomerEvents, Partitions: partitions},
		{Name: CustomerEventsDLQ, Partitions: partitions},
		{Name: CustomerState, Partitions: partitions, Compacted: true},
		{Name: HealthChanges, Partitions: partitions},
		{Name: Expansion, Partitions: partitions},
		{Name: Critical, Partitions: partitions},
		{Name: DLQ, Partitions: partitions},
		{Name: Operational, Partitions: partitions},
		{Name: Replays, Partitions: 1, Compacted: true},
		{Name: Endpoints, Partitions: 1, Compacted: true},
		{Name: Clients, Partitions: 1, Compacted: true},
		{Name: SigningKeys, Partitions: 1, Compacted: true},
		{Name: Users, Partitions: 1, Compacted: true},
		{Name: Keyring, Partitions: 1, Compacted: true},
		{Name: OAuthTokens, Partitions: 1, Compacted: true},
		{Name: Audit, Partitions: partitions},
	}
}
