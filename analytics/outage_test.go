package analytics_test

import (
	"fmt"
	"log/slog"
	"slices"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/internal/testenv"
)

// TestWriterSurvivesClickHouseOutage stops a private ClickHouse mid-stream:
// rows written meanwhile must land in the disk spool, and once ClickHouse is
// back every row must be in it exactly once with the spool empty.
func TestWriterSurvivesClickHouseOutage(t *testing.T) {
	srv := testenv.StartClickHouse(t)
	conn, db := testDB(t, srv.Addr())
	spoolDir := t.TempDir()
	reg := prometheus.NewRegistry()
	var logs syncBuffer
	w, err := analytics.NewWriter(srv.Addr(), analytics.WithDatabase(db), analytics.WithSpoolDir(spoolDir),
		analytics.WithBatchSize(10), analytics.WithFlushInterval(50*time.Millisecond),
		analytics.WithProbeInterval(100*time.Millisecond), analytics.WithWriteTimeout(3*time.Second),
		analytics.WithMetrics(reg), analytics.WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	if err != nil {
		t.Fatal(err)
	}
	runWriter(t, w)
	rows := attempts("evt-outage", 50)
	before, during, after := rows[:20], rows[20:35], rows[35:]

	appendAll(t, w, before)
	eventually(t, 15*time.Second, "rows before the outage in ClickHouse", func() (bool, string) {
		n, _ := rowCounts(t, conn, db, "evt-outage")
		return n == 20, fmt.Sprintf("rows=%d", n)
	})

	t0 := time.Now()
	srv.Stop()
	t.Logf("stop took %v", time.Since(t0))
	appendAll(t, w, during)
	var want []string
	for _, r := range during {
		want = append(want, r.AttemptID)
	}
	eventually(t, 15*time.Second, "rows written during the outage in the spool", func() (bool, string) {
		got := spoolContents(t, spoolDir)
		return slices.Equal(got, want), fmt.Sprintf("spool=%v", got)
	})
	if v := counterValue(t, reg, "vitals_analytics_spool_bytes"); v <= 0 {
		t.Errorf("spool_bytes = %v while rows are spooled, want > 0", v)
	}

	t0 = time.Now()
	srv.Start()
	t.Logf("start took %v", time.Since(t0))
	appendAll(t, w, after)
	// The metrics are updated after the inserts return, which is after
	// the rows are visible: wait for them too.
	eventually(t, 30*time.Second, "every row in ClickHouse exactly once and the spool empty", func() (bool, string) {
		n, d := rowCounts(t, conn, db, "evt-outage")
		left := spoolContents(t, spoolDir)
		replayed := counterValue(t, reg, "vitals_analytics_rows_replayed_total")
		bytes := counterValue(t, reg, "vitals_analytics_spool_bytes")
		return n == 50 && d == 50 && len(left) == 0 && replayed >= 15 && bytes == 0,
			fmt.Sprintf("rows=%d distinct=%d spool=%d rows, replayed=%v, spool_bytes=%v", n, d, len(left), replayed, bytes)
	})
	if v := counterValue(t, reg, "vitals_analytics_rows_replayed_total"); v < 15 {
		t.Errorf("rows_replayed_total = %v, want at least the 15 spooled rows", v)
	}
	if v := counterValue(t, reg, "vitals_analytics_spool_bytes"); v != 0 {
		t.Errorf("spool_bytes = %v after replay, want 0", v)
	}
	got, err := w.Attempts(t.Context(), "evt-outage")
	if err != nil {
		t.Fatal(err)
	}
	for i := range got {
		if got[i] != rows[i] {
			t.Fatalf("row %d after the outage:\n got %+v\nwant %+v", i, got[i], rows[i])
		}
	}
	t.Logf("writer log:\n%s", logs.String())
}
