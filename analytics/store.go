package analytics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// Store is the read side of the analytics tables (webhook_attempts and its
// rollup, derived_events, api_audit) and the write side of derived_events:
// the queries behind GET /v1/analytics/… and `vitals analytics`, and the
// DerivedSink of the derived-events loader. Safe for concurrent use.
type Store struct {
	ex   executor
	conn driver.Conn // nil when ex is not a server connection (tests)
	db   string
	log  *slog.Logger

	mu       sync.Mutex // serializes the first migration
	migrated bool
}

// NewStore returns a Store for the ClickHouse server at addr (native
// protocol, "host:port"). It honours the Options WithDatabase, WithAuth,
// WithTLS, WithWriteTimeout (each query's connect and read timeout) and
// WithLogger, and ignores the others. The connection is made lazily; the
// first call migrates the schema (Migrate).
func NewStore(addr string, opts ...Option) (*Store, error) {
	cfg := config{database: DefaultDatabase, writeTimeout: DefaultWriteTimeout}
	for _, o := range opts {
		o(&cfg)
	}
	if !identifier.MatchString(cfg.database) {
		return nil, fmt.Errorf("%w: %q", ErrBadDatabaseName, cfg.database)
	}
	if addr == "" {
		return nil, fmt.Errorf("analytics: store: %w", ErrNotConfigured)
	}
	if cfg.writeTimeout <= 0 {
		return nil, errors.New("analytics: store: write timeout must be positive")
	}
	conn, err := openConn(addr, cfg)
	if err != nil {
		return nil, err
	}
	s := newStore(nativeExec{conn}, cfg.database, cfg.logger)
	s.conn = conn
	return s, nil
}

// newStore returns a Store over ex (tests use chDB).
func newStore(ex executor, database string, log *slog.Logger) *Store {
	if log == nil {
		log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return &Store{ex: ex, db: database, log: log}
}

// Close releases the connection.
func (s *Store) Close() error {
	if s.conn == nil {
		return nil
	}
	return s.conn.Close()
}

// ready migrates the schema once per Store; a failed migration is tried
// again by the next call.
func (s *Store) ready(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.migrated {
		return nil
	}
	if err := migrate(ctx, s.ex, s.db); err != nil {
		return err
	}
	s.migrated = true
	return nil
}

// openConn opens a lazy native-protocol connection with cfg's settings.
func openConn(addr string, cfg config) (driver.Conn, error) {
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
	return conn, nil
}
