package analytics_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/internal/testenv"
)

func TestWriterWritesRowsWithLatency(t *testing.T) {
	addr := testenv.ClickHouse(t)
	_, db := testDB(t, addr)
	reg := prometheus.NewRegistry()
	w, err := analytics.NewWriter(addr, analytics.WithDatabase(db), analytics.WithFlushInterval(50*time.Millisecond),
		analytics.WithSpoolDir(t.TempDir()), analytics.WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	runWriter(t, w)
	rows := attempts("evt-roundtrip", 7)
	rows[3].Outcome, rows[3].StatusCode, rows[3].ErrorClass = analytics.OutcomeFailed, 503, "http_5xx"
	appendAll(t, w, rows)

	ctx := context.Background()
	// Rows are visible once their part is written, before the insert
	// returns (the rollup view runs in between): wait for the metric too.
	eventually(t, 15*time.Second, "7 attempts in ClickHouse and counted", func() (bool, string) {
		n, err := w.CountAttempts(ctx, "evt-roundtrip")
		written := counterValue(t, reg, "vitals_analytics_rows_written_total")
		return err == nil && n == 7 && written == 7, fmt.Sprintf("n=%d written=%v err=%v", n, written, err)
	})
	got, err := w.Attempts(ctx, "evt-roundtrip")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(rows) {
		t.Fatalf("Attempts returned %d rows, want %d", len(got), len(rows))
	}
	for i := range rows {
		if got[i] != rows[i] {
			t.Errorf("row %d:\n got %+v\nwant %+v", i, got[i], rows[i])
		}
	}
	if v := counterValue(t, reg, "vitals_analytics_rows_written_total"); v != 7 {
		t.Errorf("rows_written_total = %v, want 7", v)
	}
	if v := counterValue(t, reg, "vitals_analytics_rows_spooled_total"); v != 0 {
		t.Errorf("rows_spooled_total = %v, want 0", v)
	}
}

func TestWriterFlushesFullBatchesAndTheRestOnShutdown(t *testing.T) {
	addr := testenv.ClickHouse(t)
	conn, db := testDB(t, addr)
	// The interval is far beyond the test: only a full batch or the
	// shutdown can write rows.
	w, err := analytics.NewWriter(addr, analytics.WithDatabase(db), analytics.WithBatchSize(10),
		analytics.WithFlushInterval(time.Hour))
	if err != nil {
		t.Fatal(err)
	}
	stop := runWriter(t, w)
	appendAll(t, w, attempts("evt-size", 25))

	eventually(t, 15*time.Second, "two full batches in ClickHouse", func() (bool, string) {
		n, _ := rowCounts(t, conn, db, "evt-size")
		return n >= 20, fmt.Sprintf("rows=%d", n)
	})
	if n, _ := rowCounts(t, conn, db, "evt-size"); n != 20 {
		t.Fatalf("rows before shutdown = %d, want 20 (two batches of 10; 5 rows wait for a third)", n)
	}
	if err := stop(); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if n, d := rowCounts(t, conn, db, "evt-size"); n != 25 || d != 25 {
		t.Fatalf("rows after shutdown = %d (%d distinct), want 25", n, d)
	}
	if err := w.Append(context.Background(), attempts("evt-late", 1)[0]); !errors.Is(err, analytics.ErrClosed) {
		t.Errorf("Append after Run returned: err = %v, want ErrClosed", err)
	}
}

func TestWriterFlushesOnInterval(t *testing.T) {
	addr := testenv.ClickHouse(t)
	conn, db := testDB(t, addr)
	w, err := analytics.NewWriter(addr, analytics.WithDatabase(db), analytics.WithBatchSize(1000),
		analytics.WithFlushInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	runWriter(t, w)
	appendAll(t, w, attempts("evt-interval", 3))
	// Far from a full batch: only the interval can write these.
	eventually(t, 10*time.Second, "3 rows written by the flush interval", func() (bool, string) {
		n, _ := rowCounts(t, conn, db, "evt-interval")
		return n == 3, fmt.Sprintf("rows=%d", n)
	})
}

func TestWriterWithoutClickHouseSpoolsAndReplaysLater(t *testing.T) {
	spoolDir := t.TempDir()
	var logs syncBuffer
	w, err := analytics.NewWriter("", analytics.WithSpoolDir(spoolDir), analytics.WithFlushInterval(20*time.Millisecond),
		analytics.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	rows := attempts("evt-nock", 5)
	appendAll(t, w, rows)
	eventually(t, 5*time.Second, "5 rows in the spool", func() (bool, string) {
		ids := spoolContents(t, spoolDir)
		return len(ids) == 5, fmt.Sprintf("spool=%v", ids)
	})
	cancel()
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if !bytes.Contains(logs.Bytes(), []byte("no ClickHouse configured")) {
		t.Errorf("no warning about the missing ClickHouse; log:\n%s", logs.String())
	}
	if _, err := w.CountAttempts(context.Background(), "evt-nock"); !errors.Is(err, analytics.ErrNotConfigured) {
		t.Errorf("CountAttempts without ClickHouse: err = %v, want ErrNotConfigured", err)
	}
	want := make([]string, len(rows))
	for i, r := range rows {
		want[i] = r.AttemptID
	}
	if got := spoolContents(t, spoolDir); !slices.Equal(got, want) {
		t.Fatalf("spool = %v, want %v", got, want)
	}

	// A crash in the middle of a spool append leaves a line without its
	// newline; replay must report it, not choke on it.
	segments, err := filepath.Glob(filepath.Join(spoolDir, "webhook_attempts-*.jsonl"))
	if err != nil || len(segments) == 0 {
		t.Fatalf("spool segments: %v %v", segments, err)
	}
	f, err := os.OpenFile(segments[len(segments)-1], os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(`{"attempt_id":"torn","event_id":"evt-no`); err != nil {
		t.Fatal(err)
	}
	f.Close()

	// A later writer with ClickHouse and the same spool replays it at start.
	addr := testenv.ClickHouse(t)
	conn, db := testDB(t, addr)
	var logs2 syncBuffer
	w2, err := analytics.NewWriter(addr, analytics.WithDatabase(db), analytics.WithSpoolDir(spoolDir),
		analytics.WithLogger(slog.New(slog.NewTextHandler(&logs2, nil))))
	if err != nil {
		t.Fatal(err)
	}
	runWriter(t, w2)
	eventually(t, 15*time.Second, "spooled rows replayed into ClickHouse", func() (bool, string) {
		n, d := rowCounts(t, conn, db, "evt-nock")
		left, _ := filepath.Glob(filepath.Join(spoolDir, "webhook_attempts-*.jsonl"))
		return n == 5 && d == 5 && len(left) == 0, fmt.Sprintf("rows=%d distinct=%d spool files=%v", n, d, left)
	})
	if !bytes.Contains(logs2.Bytes(), []byte("torn line")) {
		t.Errorf("replay did not report the torn line; log:\n%s", logs2.String())
	}
}

func TestWriterAppendBlocksWhenQueueIsFull(t *testing.T) {
	w, err := analytics.NewWriter("", analytics.WithSpoolDir(t.TempDir()), analytics.WithQueueSize(2))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	// Run is not started, so nothing drains the queue.
	appendAll(t, w, attempts("evt-full", 2))
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if err := w.Append(ctx, attempts("evt-full", 3)[2]); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Append to a full queue: err = %v, want context.DeadlineExceeded", err)
	}
}

func TestSpoolDirIsExclusive(t *testing.T) {
	dir := t.TempDir()
	w, err := analytics.NewWriter("", analytics.WithSpoolDir(dir))
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if _, err := analytics.NewWriter("", analytics.WithSpoolDir(dir)); !errors.Is(err, analytics.ErrSpoolLocked) {
		t.Fatalf("second writer on one spool dir: err = %v, want ErrSpoolLocked", err)
	}
	if _, err := analytics.NewWriter(""); !errors.Is(err, analytics.ErrNoSink) {
		t.Fatalf("writer without ClickHouse or spool: err = %v, want ErrNoSink", err)
	}
}

func counterValue(t testing.TB, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			if c := m.GetCounter(); c != nil {
				return c.GetValue()
			}
			if g := m.GetGauge(); g != nil {
				return g.GetValue()
			}
		}
	}
	t.Fatalf("metric %s not registered", name)
	return 0
}

// syncBuffer is a bytes.Buffer safe for the Run goroutine's logger and the
// test goroutine.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) Bytes() []byte {
	b.mu.Lock()
	defer b.mu.Unlock()
	return slices.Clone(b.buf.Bytes())
}

func (b *syncBuffer) String() string { return string(b.Bytes()) }

// TestSpoolLimitHoldsRowsAndSaysSo: a full spool takes no more rows; they
// wait in memory, spool_full_total and spool_age_seconds say so, and a
// shutdown with rows neither written nor spooled fails with ErrUnwritten
// rather than dropping them silently.
func TestSpoolLimitHoldsRowsAndSaysSo(t *testing.T) {
	spoolDir := t.TempDir()
	reg := prometheus.NewRegistry()
	w, err := analytics.NewWriter("", analytics.WithSpoolDir(spoolDir), analytics.WithSpoolLimit(1),
		analytics.WithBatchSize(1), analytics.WithFlushInterval(10*time.Millisecond), analytics.WithMetrics(reg))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	appendAll(t, w, attempts("evt-full", 3))
	metric := func(name string) float64 {
		mfs, _ := reg.Gather()
		for _, mf := range mfs {
			if mf.GetName() == name && len(mf.GetMetric()) == 1 {
				m := mf.GetMetric()[0]
				if m.GetCounter() != nil {
					return m.GetCounter().GetValue()
				}
				return m.GetGauge().GetValue()
			}
		}
		return -1
	}
	eventually(t, 5*time.Second, "the spool refusing batches", func() (bool, string) {
		return metric("vitals_analytics_spool_full_total") > 0, fmt.Sprintf("spool_full=%v", metric("vitals_analytics_spool_full_total"))
	})
	if n := len(spoolContents(t, spoolDir)); n != 1 {
		t.Errorf("%d rows in a spool limited to one batch", n)
	}
	if age := metric("vitals_analytics_spool_age_seconds"); age <= 0 {
		t.Errorf("spool age %v with rows spooled", age)
	}
	cancel()
	if err := <-done; !errors.Is(err, analytics.ErrUnwritten) {
		t.Fatalf("Run after a full spool: %v, want ErrUnwritten", err)
	}
	_ = w.Close()
}
