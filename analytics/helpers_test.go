package analytics_test

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"
	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"

	"github.com/vitalshq/vitals/analytics"
)

// Sink is the role the dispatcher needs; *Writer must keep satisfying it.
type Sink interface {
	Append(ctx context.Context, a analytics.WebhookAttempt) error
}

var _ Sink = (*analytics.Writer)(nil)

// testDB returns a connection to addr and a database name of the test's own
// (the server may be shared through VITALS_TEST_CLICKHOUSE_ADDR), dropped
// when the test ends.
func testDB(t testing.TB, addr string) (driver.Conn, string) {
	t.Helper()
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatalf("open clickhouse %s: %v", addr, err)
	}
	db := "vitals_test_" + randomHex(t, 6)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
		conn.Close()
	})
	return conn, db
}

func randomHex(t testing.TB, n int) string {
	t.Helper()
	b := make([]byte, n)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// attempts makes n distinct rows for eventID.
func attempts(eventID string, n int) []analytics.WebhookAttempt {
	ts := time.Date(2025, 12, 5, 8, 20, 0, 0, time.UTC)
	out := make([]analytics.WebhookAttempt, n)
	for i := range out {
		out[i] = analytics.WebhookAttempt{
			AttemptID:       fmt.Sprintf("%s-att-%04d", eventID, i),
			EventID:         eventID,
			EventType:       "churn_risk_detected",
			CustomerID:      "cust_12345",
			EndpointID:      "ep_1",
			URLHost:         "receiver.example:8443",
			Attempt:         uint16(i%8 + 1),
			StatusCode:      200,
			Outcome:         analytics.OutcomeDelivered,
			LatencyMs:       uint32(10 + i*7),
			Timestamp:       ts.Add(time.Duration(i) * time.Second),
			BreakerState:    "closed",
			ResponseExcerpt: `{"received":true}`,
		}
		if out[i].Attempt > 1 {
			out[i].RetryTier = "vitals.retry.5m0s.v1"
		}
	}
	return out
}

// runWriter runs w until the test ends (or stop is called) and returns a
// stop func that cancels Run and returns its error.
func runWriter(t testing.TB, w *analytics.Writer) (stop func() error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	stopped := false
	var runErr error
	stop = func() error {
		if !stopped {
			stopped = true
			cancel()
			select {
			case runErr = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Writer.Run did not return 30s after cancel")
			}
		}
		return runErr
	}
	t.Cleanup(func() {
		if err := stop(); err != nil {
			t.Errorf("Writer.Run: %v", err)
		}
		if err := w.Close(); err != nil {
			t.Errorf("Writer.Close: %v", err)
		}
	})
	return stop
}

func appendAll(t testing.TB, w *analytics.Writer, rows []analytics.WebhookAttempt) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for _, r := range rows {
		if err := w.Append(ctx, r); err != nil {
			t.Fatalf("Append %s: %v", r.AttemptID, err)
		}
	}
}

// eventually polls cond every 25ms until it returns true or the deadline
// passes, then fails with what cond last said.
func eventually(t testing.TB, deadline time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	end := time.Now().Add(deadline)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(end) {
			t.Fatalf("%s: not reached within %v; last: %s", what, deadline, state)
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// rowCounts returns, for eventID, the number of rows and of distinct
// attempt_ids in db.webhook_attempts.
func rowCounts(t testing.TB, conn driver.Conn, db, eventID string) (rows, distinct uint64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	err := conn.QueryRow(ctx, "SELECT count(), uniqExact(attempt_id) FROM "+db+
		".webhook_attempts WHERE event_id = ?", eventID).Scan(&rows, &distinct)
	if err != nil && !strings.Contains(err.Error(), "doesn't exist") {
		t.Fatalf("count rows: %v", err)
	}
	return rows, distinct
}

// spoolContents returns the attempt_ids in the spool directory's segment
// files, in file order.
func spoolContents(t testing.TB, dir string) []string {
	t.Helper()
	files, err := filepath.Glob(filepath.Join(dir, "webhook_attempts-*.jsonl"))
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, name := range files {
		f, err := os.Open(name)
		if err != nil {
			if os.IsNotExist(err) { // replayed and removed meanwhile
				continue
			}
			t.Fatal(err)
		}
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			var a analytics.WebhookAttempt
			if err := json.Unmarshal(sc.Bytes(), &a); err != nil {
				t.Fatalf("spool %s: line %q: %v", name, sc.Text(), err)
			}
			ids = append(ids, a.AttemptID)
		}
		f.Close()
		if err := sc.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return ids
}
