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

// migration is one schema version: statements run in order, each safe to run
// again (IF NOT EXISTS), so a crash between a statement and the version record
// only repeats harmless work. {db} is replaced by the database name.
type migration struct {
	version uint32
	stmts   []string
}

// migrations returns the schema history. Append new versions; never edit
// one that has shipped. Keep to SQL that ClickHouse 18.16 understands: no
// DateTime64, Map, JSON, LowCardinality or TTL.
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
	}
}

// attemptColumns lists webhook_attempts' columns in insert order. Inserts name
// them explicitly: ClickHouse 18.16 needs the list for native batches.
const attemptColumns = "attempt_id, event_id, event_type, customer_id, endpoint_id, url_host, " +
	"attempt, status_code, outcome, error_class, latency_ms, timestamp"

// Migrate creates database if missing and applies every schema version not
// yet recorded in its schema_migrations table. Applying it again is a no-op.
// Two processes migrating at once both succeed: every statement is
// idempotent and a version recorded twice counts once.
func Migrate(ctx context.Context, conn driver.Conn, database string) error {
	if !identifier.MatchString(database) {
		return fmt.Errorf("%w: %q", ErrBadDatabaseName, database)
	}
	if err := conn.Exec(ctx, "CREATE DATABASE IF NOT EXISTS "+database); err != nil {
		return fmt.Errorf("migrate %s: create database: %w", database, err)
	}
	if err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS "+database+".schema_migrations "+
		"(version UInt32, applied_at DateTime) ENGINE = MergeTree() ORDER BY version"); err != nil {
		return fmt.Errorf("migrate %s: create schema_migrations: %w", database, err)
	}
	applied, err := appliedVersions(ctx, conn, database)
	if err != nil {
		return err
	}
	for _, m := range migrations() {
		if applied[m.version] {
			continue
		}
		for _, stmt := range m.stmts {
			if err := conn.Exec(ctx, strings.ReplaceAll(stmt, "{db}", database)); err != nil {
				return fmt.Errorf("migrate %s to version %d: %w", database, m.version, err)
			}
		}
		if err := recordVersion(ctx, conn, database, m.version); err != nil {
			return fmt.Errorf("migrate %s: record version %d: %w", database, m.version, err)
		}
	}
	return nil
}

// recordVersion inserts one schema_migrations row. It goes through a native
// batch, not INSERT … VALUES in Exec, which ClickHouse 18.16 leaves waiting
// for a data block.
func recordVersion(ctx context.Context, conn driver.Conn, database string, version uint32) error {
	b, err := conn.PrepareBatch(ctx, "INSERT INTO "+database+".schema_migrations (version, applied_at)")
	if err != nil {
		return err
	}
	defer b.Close()
	if err := b.Append(version, time.Now().UTC()); err != nil {
		return err
	}
	return b.Send()
}

// SchemaVersion returns the highest schema version applied to database, 0
// when none is.
func SchemaVersion(ctx context.Context, conn driver.Conn, database string) (uint32, error) {
	applied, err := appliedVersions(ctx, conn, database)
	if err != nil {
		return 0, err
	}
	var v uint32
	for version := range applied {
		v = max(v, version)
	}
	return v, nil
}

func appliedVersions(ctx context.Context, conn driver.Conn, database string) (map[uint32]bool, error) {
	if !identifier.MatchString(database) {
		return nil, fmt.Errorf("%w: %q", ErrBadDatabaseName, database)
	}
	rows, err := conn.Query(ctx, "SELECT version FROM "+database+".schema_migrations")
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
