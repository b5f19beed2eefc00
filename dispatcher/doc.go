// Package dispatcher delivers derived and operational events to webhook
// endpoints, signed (Standard Webhooks, package webhook; plus "v1a,"
// ed25519 when the endpoint has a key), with a circuit breaker, an
// in-flight cap and a rate limit per endpoint, retries in tiered retry
// topics, a dead-letter topic, and one analytics row per attempt.
//
// Flow. One consumer group (WithGroup) reads the derived topics and
// topics.Operational and makes the first attempt of each (event, endpoint)
// pair. A failed attempt is written as a task (package dispatcher/task) to
// the tier topics.Retry(schedule[n-1]) with its due time (the wait ± the
// jitter; Retry-After on 429/503 makes it no sooner than asked, up to the
// schedule's longest wait). A second group (WithRetryGroup) reads every
// tier: per partition, due records are delivered; at the first record not
// yet due the partition is paused (kgo PauseFetchPartitions), rewound to
// it, and resumed by one timer when it is due: no polling, nothing held
// but the head's due time. The last failed attempt goes to topics.DLQ (the
// task with its history) with a message.attempt.exhausted event on
// topics.Operational. Replay tasks (attempts 0, written to the first tier by
// package replay) are delivered like any due task.
//
// Guarantees. At-least-once: an offset (derived, operational or tier
// record) is committed only after each of its deliveries either succeeded
// or had its next step (tier task, dead letter) acknowledged by Kafka. The
// webhook-id is the event id for derived events and the operational event's
// id (derived from its content) for operational ones, stable across
// retries, replays and redeliveries, so receivers de-duplicate. Success is
// a 2xx within the timeout (connect 5 s, total 15 s by default); a redirect
// is never followed and counts as a failure; 410 Gone disables the endpoint
// through the Disabler and emits endpoint.disabled.
//
// Isolation. Deliveries run in their own goroutines; a delivery waits at
// most WithRateWait for its endpoint's in-flight slot and rate token, then
// moves to the first retry tier without using an attempt, so a slow or dead
// endpoint never holds a partition and never delays other endpoints. While
// an endpoint's breaker is open its deliveries go straight to the next tier
// (the attempt is logged with outcome circuit_open and counts as one);
// half-open admits one probe at a time. Ordered endpoints get per-customer
// FIFO of attempts within one process (see Limitations).
//
// Auto-disable. An endpoint whose attempts all failed for
// WithAutoDisableAfter (5 days) is disabled. The failure clock is in memory
// per process but learns from the tasks' first-attempt times, so a restart
// does not reset a streak that still has tasks in the tiers; a success seen
// by another instance is not known here.
//
// Limitations. Ordering of an ordered endpoint holds for attempts in one
// process: a delivery that moves to a retry tier lets the customer's next
// event go first. Within a tier a record with a later due time (jitter,
// Retry-After) delays the records behind it by at most that difference.
//
// The dispatcher must never send a request to an address the ssrf guard
// refuses, never send while an endpoint's breaker is open, never write the
// endpoint registry itself (it asks the Disabler), and never commit an
// offset before every delivery of the record has settled.
package dispatcher
