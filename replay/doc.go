// Package replay re-delivers past events to an endpoint: one message by its
// event id, everything in a time range, or only what was dead-lettered in a
// time range. A replay is a job (Job) stored in the compacted topic
// topics.Replays, created by the API and executed by a Runner, which finds
// the records by Kafka timestamp offsets and queues each as a delivery task
// (package dispatcher/task) with Attempts 0 in the first retry tier, where
// the dispatcher's retry consumer delivers it at once.
//
// Ownership across instances: every Runner joins one consumer group on
// topics.Replays, which has a single partition, so exactly one Runner in the
// cluster executes jobs at a time; if it dies, the group hands the
// partition, and any job it left pending or running, to another instance,
// which runs that job again from the start (re-queued tasks are duplicates
// the receiver de-duplicates by webhook-id, as with any at-least-once
// delivery).
//
// This package must never deliver webhooks itself or touch retry state:
// it only reads history and queues tasks.
package replay
