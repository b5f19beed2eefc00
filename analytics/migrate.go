package analytics

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// DefaultDatabase is the ClickHouse database the Writer uses unless
// WithDatabase says otherwise.
const DefaultDatabase = "vitals"

// ErrBadDatabaseName reports a database name that is not a plain identifier.
// Names are spliced into SQL, so only [A-Za-z_][A-Za-z0-9_]* is accepted.
var ErrBadDatabaseName = errors.New("analytics: bad database name")

var identifier = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*$`)

// migration is one schema version: columns added where missing, then
// statements run in order, each safe to run again (IF NOT EXISTS), so a
// crash between a step and the version record only repeats harmless work.
// {db} is replaced by the database name.
type migration struct {
	version uint32
	// addColumns are added first, each only when its table lacks it:
	// ALTER TABLE … ADD COLUMN IF NOT EXISTS is newer than ClickHouse 18.16.
	addColumns []column
	stmts      []string
}

// column is one column a migration adds to an existing table.
type column struct{ table, name, typ string }

// migrations returns the schema history. Append new versions; never edit
// one that has shipped. Keep to SQL that ClickHouse 18.16 understands: no
// DateTime64, Map, JSON, LowCardinality, TTL, toStartOfInterval or ADD
// COLUMN IF NOT EXISTS (use addColumns); the chDB test runs every version
// on current ClickHouse as well.
func migrations() []migration {
	return []migration{
		{version: 1, stmts: []string{`
CREATE TABLE IF NOT EXISTS {db}.webhook_attempts (
    attempt_id  String,
    event_id    String,
    event_type  String,
    customer_id String,
    endpoint_id String,
    url_host    String,
    attempt     UInt16,
    status_code UInt16,
    outcome     String,
    error_class String,
    latency_ms  UInt32,
    timestamp   DateTime
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (endpoint_id, timestamp, attempt_id)`}},
		{version: 2, stmts: []string{`
CREATE TABLE IF NOT EXISTS {db}.endpoint_state_changes (
    endpoint_id String,
    from_state  String,
    to_state    String,
    reason      String,
    timestamp   DateTime
) ENGINE = MergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (endpoint_id, timestamp)`}},
		// api_audit: one row per audit.Record (package audit), loaded from
		// vitals.audit.v1 at least once. ReplacingMergeTree on the chain
		// position folds the identical copies a reload leaves, in merges;
		// readers must not rely on that (see AuditStore). time is the
		// record time in seconds, for partitions and people; time_ms is
		// the exact one the hash covers.
		{version: 3, stmts: []string{`
CREATE TABLE IF NOT EXISTS {db}.api_audit (
    id               String,
    time             DateTime,
    time_ms          UInt64,
    instance         String,
    seq              UInt64,
    prev_hash        String,
    hash             String,
    request_id       String,
    client_id        String,
    user_id          String,
    source_ip        String,
    user_agent       String,
    method           String,
    route            String,
    status           UInt16,
    latency_ms       UInt64,
    scopes           Array(String),
    decision         String,
    reason           String,
    rate_limit_class String,
    body_sha256      String
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(time)
ORDER BY (instance, seq)`}},
		// webhook_attempts stays a MergeTree: readers deduplicate by
		// attempt_id in their queries (LIMIT 1 BY attempt_id, or
		// uniqExact(attempt_id) states in the rollup), which holds at once
		// rather than after some merge. The new columns are empty in rows
		// written before version 4.
		{version: 4, addColumns: []column{
			{"webhook_attempts", "breaker_state", "String"},
			{"webhook_attempts", "retry_tier", "String"},
			{"webhook_attempts", "response_excerpt", "String"},
		}},
		// derived_events: one row per event the processor emitted, loaded
		// from the derived topics at least once. Event ids are
		// deterministic, so a reload repeats the row exactly;
		// ReplacingMergeTree folds the copies in merges and readers
		// deduplicate by event_id meanwhile. detail and explanation are
		// JSON text ("" when the event carries no explanation).
		{version: 5, stmts: []string{`
CREATE TABLE IF NOT EXISTS {db}.derived_events (
    event_id    String,
    event_type  String,
    customer_id String,
    reason      String,
    summary     String,
    detail      String,
    explanation String,
    timestamp   DateTime
) ENGINE = ReplacingMergeTree()
PARTITION BY toYYYYMM(timestamp)
ORDER BY (event_type, timestamp, event_id)`}},
		// webhook_attempts_1m: the per-minute, per-endpoint rollup, filled
		// by a materialized view on every insert. attempts is a set of
		// attempt ids (uniqExact state), so counts merged from it are exact
		// and free of the duplicates an at-least-once replay inserts; latency
		// is a quantileTiming state (exact below 1024 ms or 5670 values,
		// 16 ms steps above, 30 s at most). The last statement backfills the
		// rows written before the view existed; rows inserted while it runs
		// (or all of them, after a crash before the version is recorded or
		// when two processes migrate at once) reach the rollup twice, which
		// leaves counts exact and weighs those latencies double.
		{version: 6, stmts: []string{`
CREATE TABLE IF NOT EXISTS {db}.webhook_attempts_1m (
    minute      DateTime,
    endpoint_id String,
    outcome     String,
    error_class String,
    retry       UInt8,
    attempts    AggregateFunction(uniqExact, String),
    latency     AggregateFunction(quantilesTiming(0.5, 0.95, 0.99), UInt32)
) ENGINE = AggregatingMergeTree()
PARTITION BY toYYYYMM(minute)
ORDER BY (endpoint_id, minute, outcome, error_class, retry)`, `
CREATE MATERIALIZED VIEW IF NOT EXISTS {db}.webhook_attempts_1m_mv TO {db}.webhook_attempts_1m AS
` + rollupSelect, `
INSERT INTO {db}.webhook_attempts_1m ` + rollupSelect}},
	}
}

// rollupSelect turns webhook_attempts rows into webhook_attempts_1m rows.
const rollupSelect = `SELECT toStartOfMinute(timestamp) AS minute, endpoint_id, outcome, error_class,
    toUInt8(attempt > 1) AS retry, uniqExactState(attempt_id) AS attempts,
    quantilesTimingState(0.5, 0.95, 0.99)(latency_ms) AS latency
FROM {db}.webhook_attempts
GROUP BY minute, endpoint_id, outcome, error_class, retry`

// Migrate creates database if missing and applies every schema version not
// yet recorded in its schema_migrations table. Applying it again is a no-op.
// Two processes migrating at once both succeed: every step is idempotent
// and a version recorded twice counts once.
func Migrate(ctx context.Context, conn driver.Conn, database string) error {
	return migrate(ctx, nativeExec{conn}, database)
}

func migrate(ctx context.Context, ex executor, database string) error {
	return migrateTo(ctx, ex, database, migrations())
}

// migrateTo applies the versions of history not yet applied (tests pass a
// prefix of migrations() to build an older schema).
func migrateTo(ctx context.Context, ex executor, database string, history []migration) error {
	if !identifier.MatchString(database) {
		return fmt.Errorf("%w: %q", ErrBadDatabaseName, database)
	}
	if err := ex.exec(ctx, "CREATE DATABASE IF NOT EXISTS "+database); err != nil {
		return fmt.Errorf("migrate %s: create database: %w", database, err)
	}
	if err := ex.exec(ctx, "CREATE TABLE IF NOT EXISTS "+database+".schema_migrations "+
		"(version UInt32, applied_at DateTime) ENGINE = MergeTree() ORDER BY version"); err != nil {
		return fmt.Errorf("migrate %s: create schema_migrations: %w", database, err)
	}
	applied, err := appliedVersions(ctx, ex, database)
	if err != nil {
		return err
	}
	for _, m := range history {
		if applied[m.version] {
			continue
		}
		for _, c := range m.addColumns {
			if err := addColumn(ctx, ex, database, c); err != nil {
				return fmt.Errorf("migrate %s to version %d: %w", database, m.version, err)
			}
		}
		for _, stmt := range m.stmts {
			if err := ex.exec(ctx, strings.ReplaceAll(stmt, "{db}", database)); err != nil {
				return fmt.Errorf("migrate %s to version %d: %w", database, m.version, err)
			}
		}
		err := ex.insert(ctx, database+".schema_migrations", "version, applied_at",
			[][]any{{m.version, time.Now().UTC()}})
		if err != nil {
			return fmt.Errorf("migrate %s: record version %d: %w", database, m.version, err)
		}
	}
	return nil
}

// addColumn adds c to its table unless the table has a column of that name.
func addColumn(ctx context.Context, ex executor, database string, c column) error {
	rows, err := ex.query(ctx, "SELECT count() FROM system.columns WHERE database = ? AND table = ? AND name = ?",
		database, c.table, c.name)
	if err != nil {
		return fmt.Errorf("look up column %s.%s: %w", c.table, c.name, err)
	}
	defer rows.Close()
	var n uint64
	if rows.Next() {
		err = rows.Scan(&n)
	}
	if err = errors.Join(err, rows.Err()); err != nil {
		return fmt.Errorf("look up column %s.%s: %w", c.table, c.name, err)
	}
	if n > 0 {
		return nil
	}
	if err := ex.exec(ctx, "ALTER TABLE "+database+"."+c.table+" ADD COLUMN "+c.name+" "+c.typ); err != nil {
		return fmt.Errorf("add column %s.%s: %w", c.table, c.name, err)
	}
	return nil
}

// SchemaVersion returns the highest schema version applied to database, 0
// when none is.
func SchemaVersion(ctx context.Context, conn driver.Conn, database string) (uint32, error) {
	applied, err := appliedVersions(ctx, nativeExec{conn}, database)
	if err != nil {
		return 0, err
	}
	var v uint32
	for version := range applied {
		v = max(v, version)
	}
	return v, nil
}

func appliedVersions(ctx context.Context, ex executor, database string) (map[uint32]bool, error) {
	if !identifier.MatchString(database) {
		return nil, fmt.Errorf("%w: %q", ErrBadDatabaseName, database)
	}
	rows, err := ex.query(ctx, "SELECT version FROM "+database+".schema_migrations")
	if err != nil {
		return nil, fmt.Errorf("read %s.schema_migrations: %w", database, err)
	}
	defer rows.Close()
	applied := make(map[uint32]bool)
	for rows.Next() {
		var v uint32
		if err := rows.Scan(&v); err != nil {
			return nil, fmt.Errorf("read %s.schema_migrations: %w", database, err)
		}
		applied[v] = true
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("read %s.schema_migrations: %w", database, err)
	}
	return applied, nil
}
