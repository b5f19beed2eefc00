package analytics

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/vitalshq/vitals/audit"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/internal/testenv"
)

// t0 is the start of the fixture's window, on a whole hour.
var t0 = time.Date(2025, 12, 5, 8, 0, 0, 0, time.UTC)

// TestSchemaAndQueriesClickHouse18 and TestSchemaAndQueriesChDB run the
// same checks on Debian's ClickHouse 18.16 and on the current ClickHouse
// engine (chDB): migrations from the version-3 schema, applied twice, and
// every analytics query against a fixture of known rows.
func TestSchemaAndQueriesClickHouse18(t *testing.T) {
	addr := testenv.ClickHouse(t)
	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{addr}, DialTimeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	db := fmt.Sprintf("vitals_test_q%d", time.Now().UnixNano())
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		_ = conn.Exec(ctx, "DROP DATABASE IF EXISTS "+db)
		conn.Close()
	})
	var version string
	if err := conn.QueryRow(t.Context(), "SELECT version()").Scan(&version); err != nil {
		t.Fatal(err)
	}
	t.Logf("ClickHouse %s", version)
	checkSchemaAndQueries(t, nativeExec{conn}, db)
}

func TestSchemaAndQueriesChDB(t *testing.T) {
	c := startChDB(t)
	t.Logf("chDB engine: ClickHouse %s", c.version)
	checkSchemaAndQueries(t, c, "vitals_test")
}

func checkSchemaAndQueries(t *testing.T, ex executor, db string) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The schema of before this change, with rows in it.
	if err := migrateTo(ctx, ex, db, migrations()[:3]); err != nil {
		t.Fatalf("migrate to version 3: %v", err)
	}
	legacy := [][]any{}
	for i := range 2 {
		legacy = append(legacy, []any{fmt.Sprintf("legacy-%d", i), "evt-legacy", event.HealthScoreChange, "cust-0",
			"ep_legacy", "legacy.example", uint16(1), uint16(200), OutcomeDelivered, "", uint32(50), t0.Add(-2 * time.Hour)})
	}
	if err := ex.insert(ctx, db+".webhook_attempts", "attempt_id, event_id, event_type, customer_id, endpoint_id, "+
		"url_host, attempt, status_code, outcome, error_class, latency_ms, timestamp", legacy); err != nil {
		t.Fatal(err)
	}

	for i := range 2 {
		if err := migrate(ctx, ex, db); err != nil {
			t.Fatalf("Migrate #%d: %v", i+1, err)
		}
	}
	want := uint64(len(migrations()))
	if n := count(t, ex, "SELECT toUInt64(count()) FROM "+db+".schema_migrations"); n != want {
		t.Errorf("schema_migrations holds %d rows after migrating twice, want %d", n, want)
	}
	if n := count(t, ex, "SELECT toUInt64(max(version)) FROM "+db+".schema_migrations"); n != 6 {
		t.Errorf("schema version %d, want 6", n)
	}
	for _, c := range []string{"breaker_state", "retry_tier", "response_excerpt"} {
		if n := count(t, ex, "SELECT toUInt64(count()) FROM system.columns WHERE database = '"+db+
			"' AND table = 'webhook_attempts' AND name = '"+c+"' AND type = 'String'"); n != 1 {
			t.Errorf("webhook_attempts.%s: %d String columns, want 1", c, n)
		}
	}
	for _, table := range []string{"derived_events", "webhook_attempts_1m", "webhook_attempts_1m_mv"} {
		if n := count(t, ex, "SELECT toUInt64(count()) FROM system.tables WHERE database = '"+db+"' AND name = '"+table+"'"); n != 1 {
			t.Errorf("table %s missing", table)
		}
	}
	// The rollup holds the rows written before it existed (backfill).
	if n := count(t, ex, "SELECT toUInt64(uniqExactMerge(attempts)) FROM "+db+".webhook_attempts_1m WHERE endpoint_id = 'ep_legacy'"); n != 2 {
		t.Errorf("rollup holds %d legacy attempts, want the 2 backfilled", n)
	}

	s := newStore(ex, db, nil)
	insertFixture(t, ctx, ex, s, db)
	window := Query{Since: t0, Until: t0.Add(time.Hour)}

	t.Run("EndpointStats", func(t *testing.T) {
		got, err := s.EndpointStats(ctx, window)
		if err != nil {
			t.Fatal(err)
		}
		want := []EndpointStats{
			{EndpointID: "ep_fast", URLHost: "fast.example", Attempts: 100, Delivered: 90, Failed: 10, Retries: 20,
				Events: 50, Sent: 100, SuccessRate: 0.9, P50Ms: 51, P95Ms: 96, P99Ms: 100},
			{EndpointID: "ep_slow", URLHost: "slow.example:8443", Attempts: 10, Delivered: 8, DeadLettered: 1,
				CircuitOpen: 1, Events: 10, Sent: 9, SuccessRate: 8.0 / 9, P50Ms: 500, P95Ms: 900, P99Ms: 900},
		}
		same(t, "EndpointStats", got, want)

		got, err = s.EndpointStats(ctx, Query{Since: t0, Until: t0.Add(time.Hour), EndpointID: "ep_slow"})
		if err != nil {
			t.Fatal(err)
		}
		same(t, "EndpointStats of ep_slow", got, want[1:])

		got, err = s.EndpointStats(ctx, Query{Since: t0.Add(-3 * time.Hour), Limit: 1})
		if err != nil {
			t.Fatal(err)
		}
		same(t, "EndpointStats, limit 1", got, want[:1])

		got, err = s.EndpointStats(ctx, Query{Since: t0.Add(-3 * time.Hour), Until: t0})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 1 || got[0].EndpointID != "ep_legacy" || got[0].Delivered != 2 || got[0].P99Ms != 50 {
			t.Errorf("EndpointStats before the window = %+v, want the 2 legacy attempts", got)
		}
	})

	t.Run("ErrorClasses", func(t *testing.T) {
		got, err := s.ErrorClasses(ctx, window)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "ErrorClasses", got, []ErrorClassCount{
			{"ep_fast", "http_5xx", 10}, {"ep_slow", "circuit_open", 1}, {"ep_slow", "timeout", 1},
		})
	})

	t.Run("DeliverySeries", func(t *testing.T) {
		got, err := s.DeliverySeries(ctx, Query{Since: t0, Until: t0.Add(time.Hour), Step: time.Minute})
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 4 {
			t.Fatalf("DeliverySeries = %+v, want 4 buckets", got)
		}
		// ep_fast's latency states weigh the replayed duplicates double
		// (see migration 6): its quantiles are not checked here.
		got[0].P50Ms, got[0].P95Ms, got[0].P99Ms = 0, 0, 0
		got[1].P50Ms, got[1].P95Ms, got[1].P99Ms = 0, 0, 0
		same(t, "DeliverySeries", got, []DeliveryBucket{
			{Time: t0, EndpointID: "ep_fast", Attempts: 60, Delivered: 54, Failed: 6},
			{Time: t0.Add(time.Minute), EndpointID: "ep_fast", Attempts: 40, Delivered: 36, Failed: 4, Retries: 20},
			{Time: t0.Add(5 * time.Minute), EndpointID: "ep_slow", Attempts: 6, Delivered: 6, P50Ms: 400, P95Ms: 600, P99Ms: 600},
			{Time: t0.Add(6 * time.Minute), EndpointID: "ep_slow", Attempts: 4, Delivered: 2, DeadLettered: 1, CircuitOpen: 1,
				P50Ms: 800, P95Ms: 900, P99Ms: 900},
		})

		got, err = s.DeliverySeries(ctx, Query{Since: t0, Until: t0.Add(time.Hour), Step: time.Hour, EndpointID: "ep_slow"})
		if err != nil {
			t.Fatal(err)
		}
		same(t, "DeliverySeries of ep_slow by hour", got, []DeliveryBucket{
			{Time: t0, EndpointID: "ep_slow", Attempts: 10, Delivered: 8, DeadLettered: 1, CircuitOpen: 1,
				P50Ms: 500, P95Ms: 900, P99Ms: 900},
		})
	})

	t.Run("SlowestEndpoints", func(t *testing.T) {
		got, err := s.SlowestEndpoints(ctx, window)
		if err != nil {
			t.Fatal(err)
		}
		if len(got) != 2 || got[1].EndpointID != "ep_fast" || got[1].Sent != 100 {
			t.Fatalf("SlowestEndpoints = %+v, want ep_slow then ep_fast with 100 sent", got)
		}
		same(t, "SlowestEndpoints[0]", got[0], EndpointLatency{EndpointID: "ep_slow", Sent: 9, P50Ms: 500, P95Ms: 900, P99Ms: 900})
	})

	t.Run("DerivedEventCounts", func(t *testing.T) {
		got, err := s.DerivedEventCounts(ctx, Query{Since: t0, Until: t0.Add(time.Hour), Step: time.Hour})
		if err != nil {
			t.Fatal(err)
		}
		same(t, "DerivedEventCounts", got, []DerivedCount{
			{t0, event.ChurnRiskDetected, "high", 2},
			{t0, event.ExpansionReady, "upsell", 1},
			{t0, event.HealthScoreChange, "payment_failure", 1},
			{t0, event.HealthScoreChange, "usage_decline", 3},
		})
		got, err = s.DerivedEventCounts(ctx, Query{Since: t0, Until: t0.Add(time.Hour), Step: time.Minute,
			EventType: event.HealthScoreChange})
		if err != nil {
			t.Fatal(err)
		}
		same(t, "DerivedEventCounts of health changes by minute", got, []DerivedCount{
			{t0, event.HealthScoreChange, "payment_failure", 1},
			{t0, event.HealthScoreChange, "usage_decline", 2},
			{t0.Add(time.Minute), event.HealthScoreChange, "usage_decline", 1},
		})
	})

	t.Run("RecentDerivedEvents", func(t *testing.T) {
		got, err := s.RecentDerivedEvents(ctx, Query{Since: t0, Limit: 3})
		if err != nil {
			t.Fatal(err)
		}
		var ids []string
		for _, e := range got {
			ids = append(ids, e.EventID)
		}
		same(t, "RecentDerivedEvents ids", ids, []string{"evt-d7", "evt-d3", "evt-d6"})

		got, err = s.RecentDerivedEvents(ctx, Query{Since: t0, EventType: event.ChurnRiskDetected})
		if err != nil {
			t.Fatal(err)
		}
		want := []DerivedEvent{DerivedEventOf(derivedFixture()[6]), DerivedEventOf(derivedFixture()[5])}
		if len(got) != 2 {
			t.Fatalf("RecentDerivedEvents of churn = %+v, want evt-d6 and evt-d5 once each", got)
		}
		for i := range got {
			sameJSON(t, "detail", got[i].Detail, want[i].Detail)
			sameJSON(t, "explanation", got[i].Explanation, want[i].Explanation)
			got[i].Detail, got[i].Explanation, want[i].Detail, want[i].Explanation = nil, nil, nil, nil
		}
		same(t, "RecentDerivedEvents of churn", got, want)
		if got[1].Summary == "" {
			t.Error("evt-d5's summary is lost")
		}
	})

	t.Run("APIUsage", func(t *testing.T) {
		got, err := s.APIUsage(ctx, window)
		if err != nil {
			t.Fatal(err)
		}
		want := []APIUsage{
			{"c1", "GET", "/v1/endpoints", 200, 3, 0, 20, 30},
			{"", "POST", "/oauth/authorize", 401, 2, 0, 5, 5},
			{"", "GET", "/v1/endpoints", 401, 2, 2, 5, 5},
			{"c2", "POST", "/v1/events", 429, 2, 2, 5, 5},
			{"", "POST", "/oauth/token", 401, 1, 0, 5, 5},
			{"c1", "GET", "/v1/endpoints", 503, 1, 1, 5, 5},
			{"c1", "POST", "/v1/events", 202, 1, 0, 5, 5},
			{"c1", "POST", "/v1/replays", 401, 1, 1, 5, 5},
			{"c3", "POST", "/v1/admin/clients", 403, 1, 1, 5, 5},
		}
		same(t, "APIUsage", got, want)
		got, err = s.APIUsage(ctx, Query{Since: t0, Until: t0.Add(time.Hour), ClientID: "c1"})
		if err != nil {
			t.Fatal(err)
		}
		same(t, "APIUsage of c1", got, []APIUsage{want[0], want[5], want[6], want[7]})
	})

	t.Run("RateLimitRejections", func(t *testing.T) {
		got, err := s.RateLimitRejections(ctx, window)
		if err != nil {
			t.Fatal(err)
		}
		same(t, "RateLimitRejections", got, []RateLimitRejections{
			{"c2", "/v1/events", "ingest", 2, t0.Add(5 * time.Second), t0.Add(6 * time.Second)},
		})
	})

	t.Run("SecurityEvents", func(t *testing.T) {
		got, err := s.SecurityEvents(ctx, window)
		if err != nil {
			t.Fatal(err)
		}
		at := func(sec int) time.Time { return t0.Add(time.Duration(sec) * time.Second) }
		same(t, "SecurityEvents", got, []SecurityEvent{
			{SecurityFailedLogin, ReasonSignInRefused, 2, 0, 2, at(11), at(12)},
			{SecurityDenial, "invalid_token", 1, 0, 1, at(7), at(7)},
			{SecurityDenial, "missing_token", 1, 0, 1, at(8), at(8)},
			{SecurityFailedLogin, ReasonClientAuthFailed, 1, 0, 1, at(13), at(13)},
			{SecurityMFAFailure, audit.ReasonMFARequired, 1, 1, 1, at(9), at(9)},
			{SecuritySignatureFailure, audit.ReasonBadSignature, 1, 1, 1, at(10), at(10)},
		})
	})

	t.Run("BadQuery", func(t *testing.T) {
		if _, err := s.EndpointStats(ctx, Query{}); !errors.Is(err, ErrBadQuery) {
			t.Errorf("no since: err = %v, want ErrBadQuery", err)
		}
		if _, err := s.SecurityEvents(ctx, Query{Since: t0, Until: t0}); !errors.Is(err, ErrBadQuery) {
			t.Errorf("until = since: err = %v, want ErrBadQuery", err)
		}
	})
}

// insertFixture writes the known rows: attempts (with replayed duplicates),
// derived events (with reloaded duplicates) and audit records (with a
// reloaded copy), each set with one row outside the window.
func insertFixture(t *testing.T, ctx context.Context, ex executor, s *Store, db string) {
	t.Helper()
	var attempts []WebhookAttempt
	for i := range 100 {
		a := WebhookAttempt{
			AttemptID: fmt.Sprintf("fast-%03d", i), EventID: fmt.Sprintf("evt-fast-%02d", i%50),
			EventType: event.ChurnRiskDetected, CustomerID: "cust-1", EndpointID: "ep_fast", URLHost: "fast.example",
			Attempt: 1, StatusCode: 200, Outcome: OutcomeDelivered, LatencyMs: uint32(i + 1),
			Timestamp: t0.Add(time.Duration(i) * time.Second), BreakerState: "closed", ResponseExcerpt: "ok",
		}
		if i >= 80 {
			a.Attempt, a.RetryTier = 2, "vitals.retry.5s.v1"
		}
		if i%10 == 0 {
			a.StatusCode, a.Outcome, a.ErrorClass, a.ResponseExcerpt = 503, OutcomeFailed, "http_5xx", "upstream down"
		}
		attempts = append(attempts, a)
	}
	for j := range 10 {
		a := WebhookAttempt{
			AttemptID: fmt.Sprintf("slow-%02d", j), EventID: fmt.Sprintf("evt-slow-%02d", j),
			EventType: event.HealthScoreChange, CustomerID: "cust-2", EndpointID: "ep_slow", URLHost: "slow.example:8443",
			Attempt: 1, StatusCode: 200, Outcome: OutcomeDelivered, LatencyMs: uint32(100 * (j + 1)),
			Timestamp: t0.Add(5*time.Minute + time.Duration(10*j)*time.Second), BreakerState: "closed",
		}
		switch j {
		case 8:
			a.StatusCode, a.Outcome, a.ErrorClass = 0, OutcomeExhausted, "timeout"
		case 9:
			a.StatusCode, a.Outcome, a.ErrorClass, a.LatencyMs, a.BreakerState = 0, OutcomeCircuitOpen, "circuit_open", 0, "open"
		}
		attempts = append(attempts, a)
	}
	// Two inserts, the second repeating ten rows: a spool replay after a
	// crash.
	for _, batch := range [][]WebhookAttempt{attempts, attempts[:10]} {
		rows := make([][]any, len(batch))
		for i := range batch {
			rows[i] = attemptValues(&batch[i])
		}
		if err := ex.insert(ctx, db+".webhook_attempts", attemptColumns, rows); err != nil {
			t.Fatal(err)
		}
	}

	var derived []DerivedEvent
	for _, d := range derivedFixture() {
		derived = append(derived, DerivedEventOf(d))
	}
	for _, batch := range [][]DerivedEvent{derived, {derived[1], derived[5]}} {
		if err := s.InsertDerived(ctx, batch); err != nil {
			t.Fatal(err)
		}
	}

	recs := auditFixture()
	var rows [][]any
	for _, r := range append(recs, recs[2]) { // seq 3 loaded twice
		rows = append(rows, []any{r.ID, r.Time.UTC(), unixMs(r.Time), r.Instance, r.Seq, r.PrevHash, r.Hash,
			r.RequestID, r.ClientID, r.UserID, r.SourceIP, r.UserAgent, r.Method, r.Route,
			clampUint16(r.Status), uint64(r.LatencyMs), r.Scopes, r.Decision, r.Reason, r.RateLimitClass, r.BodySHA256})
	}
	if err := ex.insert(ctx, db+".api_audit", auditColumns, rows); err != nil {
		t.Fatal(err)
	}
}

// derivedFixture: evt-d0 before the window, evt-d1…d7 in it.
func derivedFixture() []event.Derived {
	expl := func(summary string) *event.Explanation {
		return &event.Explanation{Summary: summary, Score: 41, Band: "red", PreviousScore: 62, PreviousBand: "yellow",
			Inputs: []event.ExplanationInput{{Component: "usage", Delta: -30, ScoreDelta: -9, Because: "active users 12 vs 40"}}}
	}
	health := func(id string, sec int, reason string, e *event.Explanation) event.Derived {
		return event.Derived{EventID: id, Event: event.HealthScoreChange, CustomerID: "cust-" + id,
			Timestamp: t0.Add(time.Duration(sec) * time.Second),
			Health:    &event.HealthChange{PreviousScore: 62, NewScore: 41, ChangeReason: reason}, Explanation: e}
	}
	churn := func(id string, sec int) event.Derived {
		return event.Derived{EventID: id, Event: event.ChurnRiskDetected, CustomerID: "cust-" + id,
			Timestamp: t0.Add(time.Duration(sec) * time.Second),
			Churn: &event.ChurnRisk{RiskLevel: "high", RiskIndicators: []string{"usage_drop", "payment_failed"},
				RecommendedActions: []string{"call"}},
			Explanation: expl("risk high: 2 indicators weigh 5")}
	}
	return []event.Derived{
		health("evt-d0", -7200, "usage_decline", nil),
		health("evt-d1", 10, "usage_decline", expl("usage fell")),
		health("evt-d2", 20, "usage_decline", expl("usage fell")),
		health("evt-d3", 70, "usage_decline", nil),
		health("evt-d4", 30, "payment_failure", nil),
		churn("evt-d5", 40),
		churn("evt-d6", 50),
		{EventID: "evt-d7", Event: event.ExpansionReady, CustomerID: "cust-7", Timestamp: t0.Add(80 * time.Second),
			Expansion: &event.Expansion{OpportunityType: "upsell", ValueEstimate: 12000, Probability: 0.7,
				SuccessFactors: []string{"seats_full"}}},
	}
}

// auditFixture: seq 1–14 in the window (second seq, plus 250 ms), seq 15
// an hour before it.
func auditFixture() []audit.Record {
	type call struct {
		client, method, route string
		status                int
		reason, class, source string
		latency               int64
	}
	calls := []call{
		{"c1", "GET", "/v1/endpoints", 200, "", "standard", "10.0.0.1", 10},
		{"c1", "GET", "/v1/endpoints", 200, "", "standard", "10.0.0.1", 20},
		{"c1", "GET", "/v1/endpoints", 200, "", "standard", "10.0.0.1", 30},
		{"c1", "POST", "/v1/events", 202, "", "ingest", "10.0.0.1", 5},
		{"c2", "POST", "/v1/events", 429, audit.ReasonRateLimited, "ingest", "10.0.0.2", 5},
		{"c2", "POST", "/v1/events", 429, audit.ReasonRateLimited, "ingest", "10.0.0.2", 5},
		{"", "GET", "/v1/endpoints", 401, "invalid_token", "", "10.0.0.9", 5},
		{"", "GET", "/v1/endpoints", 401, "missing_token", "", "10.0.0.9", 5},
		{"c3", "POST", "/v1/admin/clients", 403, audit.ReasonMFARequired, "", "10.0.0.3", 5},
		{"c1", "POST", "/v1/replays", 401, audit.ReasonBadSignature, "", "10.0.0.1", 5},
		{"", "POST", "/oauth/authorize", 401, "", "standard", "10.0.0.7", 5},
		{"", "POST", "/oauth/authorize", 401, "", "standard", "10.0.0.8", 5},
		{"", "POST", "/oauth/token", 401, "", "realtime", "10.0.0.7", 5},
		{"c1", "GET", "/v1/endpoints", 503, audit.ReasonOverloaded, "", "10.0.0.1", 5},
		{"c1", "GET", "/v1/endpoints", 200, "", "standard", "10.0.0.1", 5},
	}
	var out []audit.Record
	for i, c := range calls {
		seq := uint64(i + 1)
		at := t0.Add(time.Duration(seq)*time.Second + 250*time.Millisecond)
		if seq == 15 {
			at = t0.Add(-time.Hour)
		}
		r := audit.Record{ID: fmt.Sprintf("rec-%d", seq), Time: at, Instance: "i1", Seq: seq,
			PrevHash: strings.Repeat("0", 64), Hash: fmt.Sprintf("%064d", seq), RequestID: fmt.Sprintf("req-%d", seq),
			ClientID: c.client, SourceIP: c.source, UserAgent: "test", Method: c.method, Route: c.route,
			Status: c.status, LatencyMs: c.latency, Scopes: []string{}, Decision: audit.DecisionAllowed,
			Reason: c.reason, RateLimitClass: c.class}
		if c.reason != "" {
			r.Decision = audit.DecisionDenied
		}
		out = append(out, r)
	}
	return out
}

// count runs a query returning one UInt64.
func count(t *testing.T, ex executor, sql string) uint64 {
	t.Helper()
	rows, err := ex.query(t.Context(), sql)
	if err != nil {
		t.Fatal(err)
	}
	defer rows.Close()
	var n uint64
	if rows.Next() {
		if err := rows.Scan(&n); err != nil {
			t.Fatal(err)
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	return n
}

func same(t *testing.T, what string, got, want any) {
	t.Helper()
	if !reflect.DeepEqual(got, want) {
		t.Errorf("%s:\n got %+v\nwant %+v", what, got, want)
	}
}

// sameJSON compares two JSON texts as values.
func sameJSON(t *testing.T, what string, got, want json.RawMessage) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal(got, &g); err != nil {
		t.Fatalf("%s: %v in %s", what, err, got)
	}
	if err := json.Unmarshal(want, &w); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(g, w) {
		t.Errorf("%s:\n got %s\nwant %s", what, got, want)
	}
}
