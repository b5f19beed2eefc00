// Package audit is the tamper-evident log of every API call.
//
// Each call, allowed or denied, becomes one [Record]: who called (client,
// user, source IP, user agent), what (method, route template, status,
// latency, scopes used, the SHA-256 of the body), and the access decision
// with its reason. A record never holds a token, a secret, a query string
// or a body; [Scan] lets tests prove it.
//
// Every API process start opens a new [Chain], named by a random instance
// id. The chain numbers its records 1, 2, 3, … and each record carries the
// hash of the one before it (PrevHash) and its own hash over a documented
// canonical encoding (see [Record.Canonical]), so removing, altering or
// reordering a stored record breaks the chain where it happened.
//
// A [Writer] seals records into its chain and produces them to
// vitals.audit.v1, keyed by the instance id so one chain stays ordered in
// one partition. A synchronous write (mutating requests) returns only when
// Kafka acknowledged the record (acks=all); an asynchronous one is sent
// within the linger time (10 ms by default, at most 1 s). The loader ([NewLoader], package analytics/loader) reads
// the topic in a consumer group and inserts batches through a [Sink]
// (analytics.AuditStore writes ClickHouse api_audit), committing offsets
// only after the insert: at least once, duplicates are harmless. [Verify]
// reads the stored records back through a [Source] and reports every gap,
// altered record, broken link or conflicting copy, per chain and sequence
// number.
//
// What the chain cannot show: the loss of a chain's last records (nothing
// follows them to break), or of a whole chain. Records are lost, and show
// as gaps, when the process dies holding records Kafka has not acknowledged
// (asynchronous ones in the linger buffer; synchronous ones whose request
// was already answered 503) or when Kafka rejects a record for good; the
// Writer logs every record it could not write, in full, at error level.
//
// This package must never put a credential, a query string or a request
// body into a record, and never import a pipeline stage (api, dispatcher,
// processor) or ClickHouse: the analytics package holds the SQL.
package audit
