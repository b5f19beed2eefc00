// Package dispatcher delivers derived events to webhook endpoints: it
// consumes the three derived-event topics in a consumer group, signs each
// event with every subscribed endpoint's secret (Standard Webhooks, package
// webhook) and POSTs it, with a circuit breaker per endpoint, bounded
// retries, and one analytics row per attempt.
//
// Delivery is at-least-once: a record's offset is committed only after every
// subscribed delivery of it has finished, that is delivered (2xx) or given up
// after its bounded retries (logged, counted, and recorded as an "exhausted"
// attempt). A dispatcher that stops mid-delivery leaves the record
// uncommitted and the next owner of the partition delivers it again; the
// webhook-id (the event_id) lets receivers de-duplicate.
//
// This is the first form of the dispatcher. Retries wait in process, bounded
// by MaxInProcessRetries (default 1, i.e. only the 5 s retry of the brief's
// schedule), because in-process waiting holds a partition's commits back.
// Tiered retry topics, the dead-letter topic, Retry-After, 410 Gone and
// replay come in issue [3/9]; the Options here (RetrySchedule, MaxAttempts)
// already describe the full schedule they will use.
//
// Deliveries to different endpoints run concurrently, each in its own
// goroutine owned by Run, so a slow endpoint does not delay others until
// MaxInFlight records are pending.
//
// The dispatcher must never send a request to an address the ssrf guard
// refuses, never send while an endpoint's breaker is open, and never commit
// an offset before every delivery of the record has finished.
package dispatcher
