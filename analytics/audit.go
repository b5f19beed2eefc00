package analytics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vitalshq/vitals/audit"
)

// Limits of AuditQuery.Limit.
const (
	DefaultAuditLimit = 100
	MaxAuditLimit     = 1000
)

// ErrBadCursor reports an AuditCursor token that ParseAuditCursor cannot
// read.
var ErrBadCursor = errors.New("analytics: bad audit cursor")

// auditColumns lists api_audit's columns in insert and select order.
const auditColumns = "id, time, time_ms, instance, seq, prev_hash, hash, request_id, client_id, user_id, " +
	"source_ip, user_agent, method, route, status, latency_ms, scopes, decision, reason, rate_limit_class, body_sha256"

// AuditStore is the ClickHouse side of the audit log, table api_audit:
// the Loader's audit.Sink (InsertAudit), Verify's audit.Source
// (ScanAudit), and the query behind GET /v1/audit (QueryAudit).
//
// Rows are loaded at least once, so the table may hold identical copies of
// a record until ClickHouse merges them away: ScanAudit yields them (Verify
// counts them as duplicates) and QueryAudit returns each record once.
type AuditStore struct {
	conn    driver.Conn
	db      string
	timeout time.Duration
	log     *slog.Logger
	ready   atomic.Bool // the schema is migrated
}

// NewAuditStore returns a store for the ClickHouse server at addr (native
// protocol, "host:port"). It honours the Options WithDatabase, WithAuth,
// WithTLS, WithWriteTimeout (each insert and query's connect and read
// timeout) and WithLogger, and ignores the others. The connection is made
// lazily; the first insert creates the schema (Migrate).
func NewAuditStore(addr string, opts ...Option) (*AuditStore, error) {
	cfg := config{database: DefaultDatabase, writeTimeout: DefaultWriteTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	if !identifier.MatchString(cfg.database) {
		return nil, fmt.Errorf("%w: %q", ErrBadDatabaseName, cfg.database)
	}
	if addr == "" {
		return nil, fmt.Errorf("analytics: audit store: %w", ErrNotConfigured)
	}
	if cfg.writeTimeout <= 0 {
		return nil, errors.New("analytics: audit store: write timeout must be positive")
	}
	tlsCfg, err := cfg.tls.config()
	if err != nil {
		return nil, err
	}
	conn, err := clickhouse.Open(&clickhouse.Options{
		Addr:         []string{addr},
		Auth:         clickhouse.Auth{Username: cfg.username, Password: cfg.password},
		TLS:          tlsCfg,
		DialTimeout:  cfg.writeTimeout,
		ReadTimeout:  cfg.writeTimeout,
		MaxOpenConns: 4,
		Compression:  &clickhouse.Compression{Method: clickhouse.CompressionLZ4},
	})
	if err != nil {
		return nil, fmt.Errorf("analytics: open clickhouse %s: %w", addr, err)
	}
	log := cfg.logger
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &AuditStore{conn: conn, db: cfg.database, timeout: cfg.writeTimeout, log: log}, nil
}

// Close releases the connection.
func (s *AuditStore) Close() error { return s.conn.Close() }

// InsertAudit inserts recs as one batch (audit.Sink): all of them or, on
// error, possibly none. Inserting a record again is harmless.
func (s *AuditStore) InsertAudit(ctx context.Context, recs []audit.Record) error {
	if len(recs) == 0 {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, s.timeout)
	defer cancel()
	if !s.ready.Load() {
		if err := Migrate(ctx, s.conn, s.db); err != nil {
			return fmt.Errorf("insert %d audit records: %w", len(recs), err)
		}
		s.ready.Store(true)
	}
	b, err := s.conn.PrepareBatch(ctx, "INSERT INTO "+s.db+".api_audit ("+auditColumns+")")
	if err != nil {
		return fmt.Errorf("insert %d audit records: %w", len(recs), err)
	}
	defer b.Close()
	for _, r := range recs {
		scopes := r.Scopes
		if scopes == nil {
			scopes = []string{}
		}
		if err := b.Append(r.ID, r.Time.UTC(), unixMs(r.Time), r.Instance, r.Seq, r.PrevHash, r.Hash,
			r.RequestID, r.ClientID, r.UserID, r.SourceIP, r.UserAgent, r.Method, r.Route,
			clampUint16(r.Status), uint64(max(r.LatencyMs, 0)), scopes, r.Decision, r.Reason,
			r.RateLimitClass, r.BodySHA256); err != nil {
			return fmt.Errorf("insert audit record %s/%d: %w", r.Instance, r.Seq, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %d audit records: %w", len(recs), err)
	}
	return nil
}

// ScanAudit calls fn for the stored records with Time >= since (all when
// since is zero), ordered by instance and seq, copies included, and, with
// a since, first for each chain the record just before its first one in
// the window (audit.Source). The scan streams: memory does not grow with
// the table.
func (s *AuditStore) ScanAudit(ctx context.Context, since time.Time, fn func(audit.Record) error) error {
	q := "SELECT " + auditColumns + " FROM " + s.db + ".api_audit"
	var args []any
	if !since.IsZero() {
		ms := unixMs(since)
		q += " WHERE time_ms >= ? OR (instance, seq) IN (SELECT instance, toUInt64(min(seq) - 1) FROM " + s.db +
			".api_audit WHERE time >= toDateTime(?) AND time_ms >= ? GROUP BY instance)"
		args = append(args, ms, ms/1000, ms)
	}
	q += " ORDER BY instance, seq"
	rows, err := s.conn.Query(ctx, q, args...)
	if err != nil {
		return fmt.Errorf("scan audit records: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return fmt.Errorf("scan audit records: %w", err)
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("scan audit records: %w", err)
	}
	return nil
}

// AuditQuery selects audit records for GET /v1/audit. Zero fields do not
// filter.
type AuditQuery struct {
	Since, Until time.Time // Time in [Since, Until)
	ClientID     string
	UserID       string
	RequestID    string
	Decision     string // audit.DecisionAllowed or audit.DecisionDenied
	Reason       string
	Route        string // the route template, exactly
	Method       string
	// Before continues a listing: only records after it in newest-first
	// order (AuditCursorOf the last record of the previous page).
	Before *AuditCursor
	Limit  int // default DefaultAuditLimit, at most MaxAuditLimit
}

// QueryAudit returns the records q selects, newest first (by time, then
// chain and sequence, descending), each record once however many copies
// the table holds. A Limit above MaxAuditLimit is lowered to it.
func (s *AuditStore) QueryAudit(ctx context.Context, q AuditQuery) ([]audit.Record, error) {
	var (
		where []string
		args  []any
	)
	if !q.Since.IsZero() {
		ms := unixMs(q.Since)
		where = append(where, "time >= toDateTime(?)", "time_ms >= ?")
		args = append(args, ms/1000, ms)
	}
	if !q.Until.IsZero() {
		ms := unixMs(q.Until)
		where = append(where, "time <= toDateTime(?)", "time_ms < ?")
		args = append(args, ms/1000, ms)
	}
	for _, f := range []struct{ col, val string }{
		{"client_id", q.ClientID}, {"user_id", q.UserID}, {"request_id", q.RequestID},
		{"decision", q.Decision}, {"reason", q.Reason}, {"route", q.Route}, {"method", q.Method},
	} {
		if f.val != "" {
			where = append(where, f.col+" = ?")
			args = append(args, f.val)
		}
	}
	if c := q.Before; c != nil {
		where = append(where, "(time_ms, instance, seq) < (?, ?, ?)")
		args = append(args, unixMs(c.Time), c.Instance, c.Seq)
	}
	limit := q.Limit
	if limit <= 0 {
		limit = DefaultAuditLimit
	}
	limit = min(limit, MaxAuditLimit)
	sql := "SELECT " + auditColumns + " FROM " + s.db + ".api_audit"
	if len(where) > 0 {
		sql += " WHERE " + strings.Join(where, " AND ")
	}
	sql += " ORDER BY time_ms DESC, instance DESC, seq DESC LIMIT 1 BY instance, seq LIMIT " + strconv.Itoa(limit)
	rows, err := s.conn.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("query audit records: %w", err)
	}
	defer rows.Close()
	var out []audit.Record
	for rows.Next() {
		r, err := scanAudit(rows)
		if err != nil {
			return nil, fmt.Errorf("query audit records: %w", err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("query audit records: %w", err)
	}
	return out, nil
}

// AuditCursor is a position in QueryAudit's newest-first order.
type AuditCursor struct {
	Time     time.Time
	Instance string
	Seq      uint64
}

// AuditCursorOf returns the position of r: pass it as AuditQuery.Before
// to list what comes after r.
func AuditCursorOf(r audit.Record) AuditCursor {
	return AuditCursor{Time: r.Time, Instance: r.Instance, Seq: r.Seq}
}

// String returns c as a page token, "<unix ms>.<seq>.<instance>".
func (c AuditCursor) String() string {
	return strconv.FormatUint(unixMs(c.Time), 10) + "." + strconv.FormatUint(c.Seq, 10) + "." + c.Instance
}

// ParseAuditCursor reads a token made by AuditCursor.String.
func ParseAuditCursor(s string) (AuditCursor, error) {
	msPart, rest, ok1 := strings.Cut(s, ".")
	seqPart, instance, ok2 := strings.Cut(rest, ".")
	ms, err1 := strconv.ParseInt(msPart, 10, 64)
	seq, err2 := strconv.ParseUint(seqPart, 10, 64)
	if !ok1 || !ok2 || err1 != nil || err2 != nil || ms < 0 || instance == "" {
		return AuditCursor{}, fmt.Errorf("%w: %q", ErrBadCursor, s)
	}
	return AuditCursor{Time: time.UnixMilli(ms).UTC(), Instance: instance, Seq: seq}, nil
}

// scanAudit reads one row selected with auditColumns.
func scanAudit(rows driver.Rows) (audit.Record, error) {
	var (
		r       audit.Record
		t       time.Time
		ms      uint64
		status  uint16
		latency uint64
	)
	if err := rows.Scan(&r.ID, &t, &ms, &r.Instance, &r.Seq, &r.PrevHash, &r.Hash,
		&r.RequestID, &r.ClientID, &r.UserID, &r.SourceIP, &r.UserAgent, &r.Method, &r.Route,
		&status, &latency, &r.Scopes, &r.Decision, &r.Reason, &r.RateLimitClass, &r.BodySHA256); err != nil {
		return audit.Record{}, err
	}
	r.Time = time.UnixMilli(int64(ms)).UTC()
	r.Status, r.LatencyMs = int(status), int64(latency)
	if len(r.Scopes) == 0 {
		r.Scopes = nil
	}
	return r, nil
}

// unixMs returns t in milliseconds since the Unix epoch, 0 before it.
func unixMs(t time.Time) uint64 { return uint64(max(t.UnixMilli(), 0)) }

func clampUint16(n int) uint16 { return uint16(min(max(n, 0), 65535)) }
