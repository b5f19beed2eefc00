package analytics_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/internal/testenv"
)

func TestMigrateIsIdempotent(t *testing.T) {
	conn, db := testDB(t, testenv.ClickHouse(t))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	for i := range 2 {
		if err := analytics.Migrate(ctx, conn, db); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	v, err := analytics.SchemaVersion(ctx, conn, db)
	if err != nil {
		t.Fatal(err)
	}
	if v != 6 {
		t.Errorf("SchemaVersion = %d, want 6", v)
	}
	var recorded uint64
	if err := conn.QueryRow(ctx, "SELECT count() FROM "+db+".schema_migrations").Scan(&recorded); err != nil {
		t.Fatal(err)
	}
	if recorded != 6 {
		t.Errorf("schema_migrations has %d rows after migrating twice, want 6", recorded)
	}

	rows, err := conn.Query(ctx, "SELECT name, type FROM system.columns WHERE database = ? AND table = 'webhook_attempts'", db)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	got := map[string]string{}
	var order []string
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			t.Fatal(err)
		}
		got[name] = typ
		order = append(order, name)
	}
	want := []struct{ name, typ string }{
		{"attempt_id", "String"}, {"event_id", "String"}, {"event_type", "String"},
		{"customer_id", "String"}, {"endpoint_id", "String"}, {"url_host", "String"},
		{"attempt", "UInt16"}, {"status_code", "UInt16"}, {"outcome", "String"},
		{"error_class", "String"}, {"latency_ms", "UInt32"}, {"timestamp", "DateTime"},
		{"breaker_state", "String"}, {"retry_tier", "String"}, {"response_excerpt", "String"},
	}
	if len(order) != len(want) {
		t.Fatalf("webhook_attempts columns = %v, want %d columns", order, len(want))
	}
	for _, c := range want {
		if got[c.name] != c.typ {
			t.Errorf("column %s has type %q, want %q", c.name, got[c.name], c.typ)
		}
	}
	var engine string
	if err := conn.QueryRow(ctx, "SELECT engine FROM system.tables WHERE database = ? AND name = 'webhook_attempts'", db).Scan(&engine); err != nil {
		t.Fatal(err)
	}
	if engine != "MergeTree" {
		t.Errorf("engine = %q, want MergeTree", engine)
	}
}

func TestBadDatabaseNameIsRefused(t *testing.T) {
	_, err := analytics.NewWriter("127.0.0.1:1", analytics.WithDatabase("vitals; DROP DATABASE x"))
	if !errors.Is(err, analytics.ErrBadDatabaseName) {
		t.Fatalf("NewWriter with bad database name: err = %v, want ErrBadDatabaseName", err)
	}
}
