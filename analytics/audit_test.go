package analytics_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/analytics/loader"
	"github.com/vitalshq/vitals/audit"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/topics"
)

// The store is the Loader's sink and Verify's source.
var (
	_ audit.Sink   = (*analytics.AuditStore)(nil)
	_ audit.Source = (*analytics.AuditStore)(nil)
)

func auditStore(t *testing.T) (*analytics.AuditStore, driver.Conn, string) {
	t.Helper()
	addr := testenv.ClickHouse(t)
	conn, db := testDB(t, addr)
	s, err := analytics.NewAuditStore(addr, analytics.WithDatabase(db))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, conn, db
}

// mutate runs an ALTER TABLE … UPDATE/DELETE on api_audit and waits until
// ClickHouse finished it (mutations run in the background).
func mutate(t *testing.T, conn driver.Conn, db, stmt string, args ...any) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := conn.Exec(ctx, "ALTER TABLE "+db+".api_audit "+stmt, args...); err != nil {
		t.Fatalf("ALTER TABLE api_audit %s: %v", stmt, err)
	}
	eventually(t, 20*time.Second, "mutation "+stmt+" done", func() (bool, string) {
		var pending uint64
		if err := conn.QueryRow(ctx, "SELECT count() FROM system.mutations WHERE database = ? AND table = 'api_audit' AND is_done = 0", db).Scan(&pending); err != nil {
			return false, err.Error()
		}
		return pending == 0, fmt.Sprintf("%d mutations pending", pending)
	})
}

func verifyStore(t *testing.T, s *analytics.AuditStore, since time.Time) audit.Report {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	rep, err := audit.Verify(ctx, s, since)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

func countStored(t *testing.T, conn driver.Conn, db string) uint64 {
	t.Helper()
	var n uint64
	err := conn.QueryRow(context.Background(), "SELECT uniqExact(instance, seq) FROM "+db+".api_audit").Scan(&n)
	if err != nil {
		return 0 // the table appears with the first insert
	}
	return n
}

// TestAuditLoadVerifyTamper is the audit log end to end: records written
// through Kafka (kfake), loaded into ClickHouse, verified; then a stored
// record altered, and another removed, each found by chain and seq.
func TestAuditLoadVerifyTamper(t *testing.T) {
	store, conn, db := auditStore(t)
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 3, topics.Audit)
	kopts := []kgo.Opt{kgo.SeedBrokers(brokers...)}

	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var writers []*audit.Writer
	for range 2 { // two API instances: two chains
		w, err := audit.NewWriter(kopts)
		if err != nil {
			t.Fatal(err)
		}
		writers = append(writers, w)
	}
	for i := range 40 {
		w := writers[i%2]
		rec := audit.Record{RequestID: fmt.Sprintf("req-%d", i), ClientID: "client_a", SourceIP: "192.0.2.1",
			UserAgent: "test", Method: "GET", Route: "/v1/customers/{id}", Status: 200, LatencyMs: int64(i),
			Scopes: []string{"customers:read"}, Decision: audit.DecisionAllowed, RateLimitClass: "realtime"}
		if i%4 == 3 {
			rec.Method, rec.Route, rec.Status, rec.Decision, rec.Reason = "POST", "/v1/endpoints", 429, audit.DecisionDenied, audit.ReasonRateLimited
		}
		if _, err := w.Write(ctx, rec, rec.Method == "POST"); err != nil {
			t.Fatal(err)
		}
	}
	for _, w := range writers {
		if err := w.Close(ctx); err != nil {
			t.Fatal(err)
		}
	}

	l, err := audit.NewLoader(kopts, store, loader.WithFlushInterval(100*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	lctx, stopLoader := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- l.Run(lctx) }()
	eventually(t, 20*time.Second, "40 records in api_audit", func() (bool, string) {
		n := countStored(t, conn, db)
		return n == 40, fmt.Sprintf("%d records", n)
	})
	stopLoader()
	if err := <-done; err != nil {
		t.Fatalf("Loader.Run: %v", err)
	}

	rep := verifyStore(t, store, time.Time{})
	if !rep.OK() || rep.Records != 40 || len(rep.Chains) != 2 {
		t.Fatalf("Verify of the loaded log: %d records, %d chains, problems %v", rep.Records, len(rep.Chains), rep.Problems)
	}

	// A reload (at least once) leaves copies: harmless to Verify, invisible
	// to queries.
	var all []audit.Record
	if err := store.ScanAudit(ctx, time.Time{}, func(r audit.Record) error { all = append(all, r); return nil }); err != nil {
		t.Fatal(err)
	}
	if err := store.InsertAudit(ctx, all[:10]); err != nil {
		t.Fatal(err)
	}
	rep = verifyStore(t, store, time.Time{})
	if !rep.OK() || rep.Duplicates != 10 {
		t.Fatalf("after reloading 10 records: duplicates %d, problems %v", rep.Duplicates, rep.Problems)
	}
	got, err := store.QueryAudit(ctx, analytics.AuditQuery{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 40 {
		t.Fatalf("QueryAudit returned %d records, want each of the 40 once", len(got))
	}

	// Altered in ClickHouse: a denied call turned into an allowed one.
	victim := all[slices.IndexFunc(all, func(r audit.Record) bool { return r.Decision == audit.DecisionDenied })]
	mutate(t, conn, db, "UPDATE decision = 'allowed', reason = '' WHERE instance = ? AND seq = ?", victim.Instance, victim.Seq)
	rep = verifyStore(t, store, time.Time{})
	if !slices.ContainsFunc(rep.Problems, func(p audit.Problem) bool {
		return p.Instance == victim.Instance && p.Seq == victim.Seq && p.Kind == audit.ProblemAltered
	}) || len(rep.Problems) != 1 {
		t.Fatalf("after altering %s seq %d: problems %v, want that record altered", victim.Instance, victim.Seq, rep.Problems)
	}

	// Removed in ClickHouse.
	gone := all[25]
	mutate(t, conn, db, "DELETE WHERE instance = ? AND seq = ?", gone.Instance, gone.Seq)
	rep = verifyStore(t, store, time.Time{})
	if !slices.ContainsFunc(rep.Problems, func(p audit.Problem) bool {
		return p.Instance == gone.Instance && p.Seq == gone.Seq && p.Kind == audit.ProblemGap
	}) || len(rep.Problems) != 2 {
		t.Fatalf("after removing %s seq %d: problems %v, want a gap there (and the altered record)", gone.Instance, gone.Seq, rep.Problems)
	}
	for _, p := range rep.Problems {
		t.Logf("found: %s", p)
	}
}

// TestAuditVerifySinceInClickHouse: a window's first record is anchored by
// the one before it, fetched even though it is older than the window.
func TestAuditVerifySinceInClickHouse(t *testing.T) {
	store, conn, db := auditStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := audit.NewChain()
	var recs []audit.Record
	for range 10 {
		recs = append(recs, c.Seal(audit.Record{Method: "GET", Route: "/v1/audit", Status: 200, Decision: audit.DecisionAllowed}))
	}
	// Spread the chain over ten minutes, re-sealing so hashes stay right.
	base := time.Now().UTC().Add(-time.Hour).Truncate(time.Millisecond)
	for i := range recs {
		recs[i].Time = base.Add(time.Duration(i) * time.Minute)
		if i > 0 {
			recs[i].PrevHash = recs[i-1].Hash
		}
		recs[i].Hash = recs[i].ComputeHash()
	}
	if err := store.InsertAudit(ctx, recs); err != nil {
		t.Fatal(err)
	}
	since := recs[6].Time
	rep := verifyStore(t, store, since)
	if !rep.OK() || len(rep.Chains) != 1 || rep.Chains[0].FirstSeq != 6 || rep.Chains[0].Records != 5 {
		t.Fatalf("Verify since seq 7: chains %+v problems %v, want seq 6 (anchor) to 10", rep.Chains, rep.Problems)
	}
	mutate(t, conn, db, "DELETE WHERE seq = 6")
	rep = verifyStore(t, store, since)
	if len(rep.Problems) != 1 || rep.Problems[0].Seq != 6 || rep.Problems[0].Kind != audit.ProblemGap {
		t.Fatalf("after removing the anchor: problems %v, want a gap at seq 6", rep.Problems)
	}
}

func TestQueryAudit(t *testing.T) {
	store, _, _ := auditStore(t)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	c := audit.NewChain()
	var recs []audit.Record
	for i := range 30 {
		r := audit.Record{ClientID: []string{"client_a", "client_b"}[i%2], UserID: "", RequestID: fmt.Sprintf("req-%02d", i),
			Method: "GET", Route: "/v1/customers/{id}", Status: 200, Decision: audit.DecisionAllowed,
			Scopes: []string{"customers:read", "audit:read"}}
		if i%3 == 0 {
			r.Decision, r.Reason, r.Status = audit.DecisionDenied, audit.ReasonInsufficientScope, 403
		}
		recs = append(recs, c.Seal(r))
	}
	if err := store.InsertAudit(ctx, recs); err != nil {
		t.Fatal(err)
	}

	all, err := store.QueryAudit(ctx, analytics.AuditQuery{})
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 30 || all[0].Seq != 30 || all[29].Seq != 1 {
		t.Fatalf("QueryAudit: %d records, first seq %d: want 30, newest first", len(all), all[0].Seq)
	}
	if !slices.Equal(all[0].Scopes, recs[29].Scopes) || all[0].Hash != recs[29].Hash || !all[0].Time.Equal(recs[29].Time) ||
		all[0].ComputeHash() != all[0].Hash {
		t.Errorf("stored record differs from the written one:\n got %+v\nwant %+v", all[0], recs[29])
	}

	denied, err := store.QueryAudit(ctx, analytics.AuditQuery{ClientID: "client_a", Decision: audit.DecisionDenied})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range denied {
		if r.ClientID != "client_a" || r.Decision != audit.DecisionDenied || r.Reason != audit.ReasonInsufficientScope {
			t.Errorf("filter let through %+v", r)
		}
	}
	if len(denied) != 5 { // i = 0, 6, 12, 18, 24
		t.Errorf("client_a denied: %d records, want 5", len(denied))
	}

	one, err := store.QueryAudit(ctx, analytics.AuditQuery{RequestID: "req-17"})
	if err != nil || len(one) != 1 || one[0].Seq != 18 {
		t.Errorf("by request id: %v %+v", err, one)
	}
	window, err := store.QueryAudit(ctx, analytics.AuditQuery{Since: recs[10].Time, Until: recs[20].Time})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range window {
		if r.Time.Before(recs[10].Time) || !r.Time.Before(recs[20].Time) {
			t.Errorf("record at %v outside [%v, %v)", r.Time, recs[10].Time, recs[20].Time)
		}
	}

	// Paging with a cursor visits every record once.
	var paged []uint64
	q := analytics.AuditQuery{Limit: 7}
	for {
		page, err := store.QueryAudit(ctx, q)
		if err != nil {
			t.Fatal(err)
		}
		if len(page) == 0 {
			break
		}
		for _, r := range page {
			paged = append(paged, r.Seq)
		}
		cur, err := analytics.ParseAuditCursor(analytics.AuditCursorOf(page[len(page)-1]).String())
		if err != nil {
			t.Fatal(err)
		}
		q.Before = &cur
	}
	if len(paged) != 30 || paged[0] != 30 || paged[29] != 1 {
		t.Errorf("paged seqs %v: want 30 down to 1", paged)
	}
	if _, err := analytics.ParseAuditCursor("12.x.inst"); !errors.Is(err, analytics.ErrBadCursor) {
		t.Errorf("ParseAuditCursor of a bad token: %v", err)
	}
}
