// Package analytics is Vitals' ClickHouse model: the schema, the webhook
// attempt writer, the derived-events loader and the analytics queries.
//
// Schema. [Migrate] applies versioned, idempotent migrations recorded in
// schema_migrations: webhook_attempts (one row per delivery attempt, with
// the breaker state, retry tier and a response excerpt of at most 4 KiB),
// endpoint_state_changes, api_audit (package audit's records),
// derived_events (every event the processor emitted, with its explanation)
// and webhook_attempts_1m, a per-minute, per-endpoint rollup that a
// materialized view fills in an AggregatingMergeTree: distinct attempt ids
// by outcome, error class and first-or-retry (uniqExact states) and latency
// quantile states (quantileTiming). Every statement runs on Debian's
// ClickHouse 18.16 and on current ClickHouse; a test runs the migrations and
// every query on both (chDB for the latter).
//
// Writing. A [Writer] takes [WebhookAttempt] rows from the dispatcher
// (through its one-method Append), batches them by size and time, and
// inserts each batch over ClickHouse's native protocol. When ClickHouse is
// down or not configured, batches go to an append-only, fsync'd spool on
// disk and are replayed, in order, once ClickHouse answers again. Delivery
// into ClickHouse is at least once: a crash between a spool write and its
// replay may insert a row twice. [NewDerivedLoader] copies the derived topics
// into derived_events through a [Store] (package analytics/loader: batches,
// offsets committed after each insert).
//
// Reading. A [Store]'s queries take a [Query] (since, optional until, step,
// limit, filters) and return typed rows: [Store.EndpointStats],
// [Store.ErrorClasses], [Store.DeliverySeries], [Store.SlowestEndpoints],
// [Store.DerivedEventCounts], [Store.RecentDerivedEvents],
// [Store.APIUsage], [Store.RateLimitRejections] and [Store.SecurityEvents].
// Duplicates are removed in the queries, which holds at once rather than
// after some merge: by attempt_id (LIMIT 1 BY, or the rollup's sets of
// attempt ids), event_id and the audit chain position. The tables stay
// MergeTree (webhook_attempts) or ReplacingMergeTree (api_audit,
// derived_events, whose merges only save space). Per-endpoint statistics
// read the raw rows and give exact quantiles; series, error classes and
// the slowest endpoints read the rollup, in whole minutes.
//
// This package must never drop a row silently, never block the caller
// without a context to cancel it, and never import a pipeline stage
// (dispatcher, processor, api): they depend on it, not the other way round.
package analytics
