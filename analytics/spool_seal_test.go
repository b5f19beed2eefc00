package analytics_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/keyring"
)

// TestSealedSpoolKeepsRowsUnreadableOnDisk: rows written while ClickHouse is
// unreachable are spooled sealed — no byte of the spool shows them — and a
// writer with the same keyring replays every one into ClickHouse.
func TestSealedSpoolKeepsRowsUnreadableOnDisk(t *testing.T) {
	const secret = "cust_SEALED-SPOOL-MARKER-41c9"
	master := make([]byte, keyring.MasterKeySize)
	if _, err := rand.Read(master); err != nil {
		t.Fatal(err)
	}
	wrapper, err := keyring.NewLocalWrapper(master)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(t.Context(), wrapper, &keyring.MemoryStore{})
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.EnsureKey(t.Context()); err != nil {
		t.Fatal(err)
	}
	rows := attempts("evt-sealed", 25)
	for i := range rows {
		rows[i].CustomerID = secret
	}

	// ClickHouse unreachable: a port nothing listens on.
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	down := l.Addr().String()
	l.Close()
	spoolDir := t.TempDir()
	reg := prometheus.NewRegistry()
	w, err := analytics.NewWriter(down, analytics.WithSpoolDir(spoolDir), analytics.WithSpoolSealer(kr),
		analytics.WithBatchSize(10), analytics.WithFlushInterval(20*time.Millisecond),
		analytics.WithWriteTimeout(time.Second), analytics.WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	appendAll(t, w, rows)
	eventually(t, 10*time.Second, "every row spooled", func() (bool, string) {
		v := counterValue(t, reg, "vitals_analytics_rows_spooled_total")
		return int(v) == len(rows), fmt.Sprintf("rows_spooled_total=%v", v)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}

	entries, err := os.ReadDir(spoolDir)
	if err != nil {
		t.Fatal(err)
	}
	var raw []byte
	for _, e := range entries {
		if e.Name() == ".lock" {
			continue
		}
		if !strings.HasSuffix(e.Name(), ".sealed") {
			t.Errorf("spool file %s is not a sealed segment", e.Name())
		}
		b, err := os.ReadFile(filepath.Join(spoolDir, e.Name()))
		if err != nil {
			t.Fatal(err)
		}
		raw = append(raw, b...)
	}
	if len(raw) == 0 {
		t.Fatal("spool is empty")
	}
	for _, clear := range []string{secret, rows[0].AttemptID, "evt-sealed", rows[0].URLHost} {
		if bytes.Contains(raw, []byte(clear)) {
			t.Fatalf("raw spool bytes contain %q", clear)
		}
	}

	// ClickHouse is there for the next writer: it replays everything.
	addr := testenv.ClickHouse(t)
	conn, db := testDB(t, addr)
	w2, err := analytics.NewWriter(addr, analytics.WithDatabase(db), analytics.WithSpoolDir(spoolDir),
		analytics.WithSpoolSealer(kr), analytics.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))))
	if err != nil {
		t.Fatal(err)
	}
	runWriter(t, w2)
	eventually(t, 15*time.Second, "spooled rows replayed into ClickHouse", func() (bool, string) {
		n, d := rowCounts(t, conn, db, "evt-sealed")
		left, _ := filepath.Glob(filepath.Join(spoolDir, "webhook_attempts-*"))
		return n == uint64(len(rows)) && d == n && len(left) == 0, fmt.Sprintf("rows=%d distinct=%d spool files=%v", n, d, left)
	})
	qctx, qcancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer qcancel()
	got, err := w2.Attempts(qctx, "evt-sealed")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Fatalf("Attempts returned %d rows, want %d", len(got), len(rows))
	}
	for i := range got {
		if got[i] != rows[i] {
			t.Fatalf("row %d after replay:\n got %+v\nwant %+v", i, got[i], rows[i])
		}
	}
}
