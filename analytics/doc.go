// Package analytics writes the webhook attempt log to ClickHouse.
//
// A [Writer] takes [WebhookAttempt] rows from the dispatcher (through its
// one-method Append), batches them by size and time, and inserts each batch
// over ClickHouse's native protocol. When ClickHouse is down or not
// configured, batches go to an append-only, fsync'd spool on disk and are
// replayed, in order, once ClickHouse answers again. Delivery into ClickHouse
// is at least once: a crash between a spool write and its replay may insert a
// row twice, so readers deduplicate by attempt_id.
//
// [Migrate] applies the versioned schema (tables schema_migrations and
// webhook_attempts). The SQL runs on ClickHouse 18.16 (Debian, used in
// tests) and on current ClickHouse.
//
// This package must never drop a row silently, never block the caller
// without a context to cancel it, and never import a pipeline stage
// (dispatcher, processor, api): they depend on it, not the other way round.
package analytics
