package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/audit"
	"github.com/vitalshq/vitals/internal/testenv"
)

// TestAuditVerifyCommand runs `vitals audit verify` against ClickHouse:
// exit 0 on an intact log, 1 with the chain and seq after a record is
// removed.
func TestAuditVerifyCommand(t *testing.T) {
	addr := testenv.ClickHouse(t)
	var b [6]byte
	rand.Read(b[:])
	db := "vitals_test_" + hex.EncodeToString(b[:])
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	t.Cleanup(func() {
		conn.Exec(context.Background(), "DROP DATABASE IF EXISTS "+db)
		conn.Close()
	})
	store, err := analytics.NewAuditStore(addr, analytics.WithDatabase(db))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	c := audit.NewChain()
	var recs []audit.Record
	for range 12 {
		recs = append(recs, c.Seal(audit.Record{Method: "GET", Route: "/v1/audit", Status: 200, Decision: audit.DecisionAllowed}))
	}
	if err := store.InsertAudit(ctx, recs); err != nil {
		t.Fatal(err)
	}

	run := func(args ...string) (int, string) {
		var out, errOut bytes.Buffer
		code := Main(ctx, append([]string{"audit", "verify", "--clickhouse-addr", addr, "--clickhouse-database", db}, args...), &out, &errOut)
		return code, out.String() + errOut.String()
	}
	if code, out := run(); code != 0 || !strings.Contains(out, "OK: 1 chains, 12 records") || !strings.Contains(out, c.Instance()) {
		t.Fatalf("intact log: exit %d\n%s", code, out)
	}
	if code, out := run("--since", "1h"); code != 0 || !strings.Contains(out, "OK: 1 chains, 12 records") {
		t.Fatalf("--since 1h: exit %d\n%s", code, out)
	}

	if err := conn.Exec(ctx, "ALTER TABLE "+db+".api_audit DELETE WHERE seq = 5"); err != nil {
		t.Fatal(err)
	}
	for {
		var pending uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND is_done = 0", db).Scan(&pending); err != nil {
			t.Fatal(err)
		}
		if pending == 0 {
			break
		}
		if ctx.Err() != nil {
			t.Fatal("mutation not done in time")
		}
		time.Sleep(20 * time.Millisecond)
	}
	code, out := run()
	named := slices.ContainsFunc(strings.Split(out, "\n"), func(line string) bool {
		f := strings.Fields(line)
		return len(f) >= 3 && f[0] == c.Instance() && f[1] == "5" && f[2] == string(audit.ProblemGap)
	})
	if code != 1 || !named || !strings.Contains(out, "FAILED") {
		t.Fatalf("after removing seq 5: exit %d, want 1 naming the chain and seq 5\n%s", code, out)
	}
	t.Logf("vitals audit verify:\n%s", out)

	if code, out := run("--since", "yesterday"); code != 2 {
		t.Errorf("--since yesterday: exit %d, want 2 (usage)\n%s", code, out)
	}
}

func TestParseSince(t *testing.T) {
	now := time.Date(2025, 12, 5, 12, 0, 0, 0, time.UTC)
	for in, want := range map[string]time.Time{
		"":                     {},
		"24h":                  now.Add(-24 * time.Hour),
		"2025-12-01T00:00:00Z": time.Date(2025, 12, 1, 0, 0, 0, 0, time.UTC),
	} {
		got, err := parseSince(in, now)
		if err != nil || !got.Equal(want) {
			t.Errorf("parseSince(%q) = %v, %v; want %v", in, got, err, want)
		}
	}
	for _, bad := range []string{"-1h", "0s", "tomorrow"} {
		if _, err := parseSince(bad, now); err == nil {
			t.Errorf("parseSince(%q): no error", bad)
		}
	}
}
