package analytics

import (
	"context"
	"fmt"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
)

// executor runs SQL on one ClickHouse engine. The migrations, the queries
// and the derived-event inserts go through it, so the same code runs on a
// server over the native protocol (nativeExec) and, in tests, on chDB, the
// current ClickHouse engine in a Python process.
//
// SQL passed to query may hold positional ? placeholders; args are plain
// strings and integers (times travel as Unix seconds, wrapped in
// toDateTime(?) by the SQL), so every executor binds them the same way.
type executor interface {
	exec(ctx context.Context, sql string) error
	query(ctx context.Context, sql string, args ...any) (resultRows, error)
	// insert writes rows into table, each row's values in the order of
	// columns (a comma-separated list). Values are strings, integers,
	// []string and time.Time (stored in whole seconds).
	insert(ctx context.Context, table, columns string, rows [][]any) error
}

// resultRows is what a query returns: the subset of driver.Rows the
// package uses.
type resultRows interface {
	Next() bool
	Scan(dest ...any) error
	Err() error
	Close() error
}

// nativeExec is an executor over clickhouse-go's native protocol.
type nativeExec struct{ conn driver.Conn }

func (n nativeExec) exec(ctx context.Context, sql string) error { return n.conn.Exec(ctx, sql) }

func (n nativeExec) query(ctx context.Context, sql string, args ...any) (resultRows, error) {
	return n.conn.Query(ctx, sql, args...)
}

// insert sends rows as one native batch: ClickHouse 18.16 leaves an
// INSERT … VALUES sent through Exec waiting for a data block.
func (n nativeExec) insert(ctx context.Context, table, columns string, rows [][]any) error {
	b, err := n.conn.PrepareBatch(ctx, "INSERT INTO "+table+" ("+columns+")")
	if err != nil {
		return err
	}
	defer b.Close() // no-op once sent; releases the connection on error
	for i, r := range rows {
		if err := b.Append(r...); err != nil {
			return fmt.Errorf("row %d: %w", i, err)
		}
	}
	return b.Send()
}
