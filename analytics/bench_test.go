package analytics_test

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"syscall"
	"testing"
	"time"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/internal/testenv"
)

const benchBatch = 10000

// BenchmarkWriter measures rows/s through Writer.Append into ClickHouse,
// counting until every row is stored. Compare with BenchmarkRawBatchInsert,
// the same rows through clickhouse-go batches with no Writer in between.
func BenchmarkWriter(b *testing.B) {
	addr := testenv.ClickHouse(b)
	conn, db := testDB(b, addr)
	w, err := analytics.NewWriter(addr, analytics.WithDatabase(db), analytics.WithBatchSize(benchBatch),
		analytics.WithFlushInterval(100*time.Millisecond), analytics.WithSpoolDir(b.TempDir()),
		analytics.WithLogger(slog.New(slog.NewTextHandler(os.Stderr, nil))))
	if err != nil {
		b.Fatal(err)
	}
	stop := runWriter(b, w)
	rows := attempts("evt-bench-warmup", 1)
	appendAll(b, w, rows) // connect and migrate before timing
	eventually(b, 15*time.Second, "warm-up row stored", func() (bool, string) {
		n, _ := rowCounts(b, conn, db, "evt-bench-warmup")
		return n == 1, fmt.Sprint(n)
	})

	rows = attempts("evt-bench", b.N)
	ctx := context.Background()
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for i := range rows {
		if err := w.Append(ctx, rows[i]); err != nil {
			b.Fatal(err)
		}
	}
	if err := stop(); err != nil { // flushes what the Writer still holds
		b.Fatal(err)
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	if n, _ := rowCounts(b, conn, db, "evt-bench"); n != uint64(b.N) {
		b.Fatalf("stored %d rows, want %d", n, b.N)
	}
	reportRates(b, elapsed, cpu)
}

// BenchmarkRawBatchInsert is the baseline: clickhouse-go native batches of
// the same size straight into the same table.
func BenchmarkRawBatchInsert(b *testing.B) {
	addr := testenv.ClickHouse(b)
	conn, db := testDB(b, addr)
	ctx := context.Background()
	if err := analytics.Migrate(ctx, conn, db); err != nil {
		b.Fatal(err)
	}
	rows := attempts("evt-raw", b.N)
	b.ResetTimer()
	start, cpu0 := time.Now(), cpuTime()
	for off := 0; off < len(rows); off += benchBatch {
		batch, err := conn.PrepareBatch(ctx, "INSERT INTO "+db+".webhook_attempts (attempt_id, event_id, event_type, "+
			"customer_id, endpoint_id, url_host, attempt, status_code, outcome, error_class, latency_ms, timestamp, "+
			"breaker_state, retry_tier, response_excerpt)")
		if err != nil {
			b.Fatal(err)
		}
		for _, r := range rows[off:min(off+benchBatch, len(rows))] {
			if err := batch.Append(r.AttemptID, r.EventID, r.EventType, r.CustomerID, r.EndpointID, r.URLHost,
				r.Attempt, r.StatusCode, r.Outcome, r.ErrorClass, r.LatencyMs, r.Timestamp,
				r.BreakerState, r.RetryTier, r.ResponseExcerpt); err != nil {
				b.Fatal(err)
			}
		}
		if err := batch.Send(); err != nil {
			b.Fatal(err)
		}
	}
	elapsed, cpu := time.Since(start), cpuTime()-cpu0
	b.StopTimer()
	if n, _ := rowCounts(b, conn, db, "evt-raw"); n != uint64(b.N) {
		b.Fatalf("stored %d rows, want %d", n, b.N)
	}
	reportRates(b, elapsed, cpu)
}

// reportRates reports rows/s (wall clock) and cpu-µs/op: this process's
// CPU time per row, user and system, so 1e6 / cpu-µs/op is rows per
// second per core of the inserting side. The ClickHouse server's own CPU,
// the same work in both benchmarks (rollup view included), is not in it.
// deploy/bench/ratios.awk prints both as ratios to RawBatchInsert.
func reportRates(b *testing.B, elapsed time.Duration, cpu time.Duration) {
	b.ReportMetric(float64(b.N)/elapsed.Seconds(), "rows/s")
	b.ReportMetric(float64(cpu.Microseconds())/float64(b.N), "cpu-µs/op")
}

// cpuTime is the process's user + system CPU time.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
