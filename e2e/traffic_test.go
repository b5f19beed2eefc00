package e2e

import (
	"context"
	"fmt"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/vitalshq/vitals/internal/testenv"
)

// TestTrafficControlAndAudit runs `vitals run` with ClickHouse and checks,
// on the running server: the realtime class's burst bucket (5 of a
// 100/hour quota) answers the 6th quick call with 429, RateLimit headers
// and problem+json; every call, allowed or denied, has exactly one audit
// record in ClickHouse; no token appears in the audit table; and
// `vitals audit verify` finds the chain intact.
func TestTrafficControlAndAudit(t *testing.T) {
	chAddr := testenv.ClickHouse(t)
	db := "vitals_traffic_" + randomSuffix()
	pl := startPipeline(t, "--clickhouse-addr", chAddr, "--clickhouse-database", db)
	token := pl.token(t, "customers:read endpoints:read")

	var ids []string
	call := func(method, path, tok string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(method, pl.apiURL+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		id := "e2e-" + randomSuffix()
		req.Header.Set("X-Request-Id", id)
		ids = append(ids, id)
		resp, err := pl.http.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp
	}

	var statuses []int
	var last *http.Response
	for range 6 {
		last = call(http.MethodGet, "/v1/customers/cust_none/health", token)
		statuses = append(statuses, last.StatusCode)
	}
	for i, s := range statuses[:5] {
		if s == http.StatusTooManyRequests {
			t.Fatalf("call %d of the burst refused: %v", i+1, statuses)
		}
	}
	if last.StatusCode != http.StatusTooManyRequests || last.Header.Get("Retry-After") == "" ||
		!strings.Contains(last.Header.Get("RateLimit-Policy"), `"realtime";q=100;w=3600`) ||
		last.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("6th realtime call: %d %v", last.StatusCode, last.Header)
	}
	if r := call(http.MethodGet, "/v1/endpoints", token); !strings.Contains(r.Header.Get("RateLimit"), `"standard"`) {
		t.Errorf("standard route without RateLimit header: %v", r.Header)
	}
	call(http.MethodGet, "/v1/endpoints", "")                  // denied: no token
	call(http.MethodPost, "/v1/endpoints", token)              // denied: scope (mutating: acked before the answer)
	call(http.MethodGet, "/v1/admin/clients", pl.token(t, "")) // denied: scope admin

	conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chAddr}, DialTimeout: 2 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	quoted := make([]string, len(ids))
	for i, id := range ids {
		quoted[i] = "'" + id + "'"
	}
	counts := map[string]uint64{}
	eventually(t, 60*time.Second, "one audit record per call in ClickHouse", func() bool {
		rows, err := conn.Query(context.Background(), fmt.Sprintf(
			"SELECT request_id, count() FROM %s.api_audit FINAL WHERE request_id IN (%s) GROUP BY request_id", db, strings.Join(quoted, ",")))
		if err != nil {
			return false
		}
		defer rows.Close()
		clear(counts)
		for rows.Next() {
			var id string
			var n uint64
			if rows.Scan(&id, &n) == nil {
				counts[id] = n
			}
		}
		return len(counts) == len(ids)
	})
	for id, n := range counts {
		if n != 1 {
			t.Errorf("request %s has %d audit records", id, n)
		}
	}
	var denied uint64
	if err := conn.QueryRow(context.Background(), fmt.Sprintf(
		"SELECT count() FROM %s.api_audit FINAL WHERE request_id IN (%s) AND decision = 'denied' AND reason IN ('rate_limited', 'missing_token', 'insufficient_scope')",
		db, strings.Join(quoted, ","))).Scan(&denied); err != nil || denied != 4 {
		t.Errorf("denied records with reasons: %d %v, want 4", denied, err)
	}
	// No secret in any row: the tokens, the client secret, the request key.
	for name, secret := range map[string]string{"access token": token[len(token)-40:], "client secret": pl.creds.ClientSecret,
		"request key": pl.creds.RequestKey} {
		var leaks uint64
		if err := conn.QueryRow(context.Background(), fmt.Sprintf(
			"SELECT count() FROM %s.api_audit WHERE position(concat(id, instance, request_id, client_id, user_id, source_ip, user_agent, method, route, decision, reason, rate_limit_class, body_sha256, arrayStringConcat(scopes, ' ')), '%s') > 0",
			db, strings.ReplaceAll(secret, "'", ""))).Scan(&leaks); err != nil || leaks != 0 {
			t.Errorf("%s in audit rows: %d %v", name, leaks, err)
		}
	}

	out, err := exec.Command(vitalsBin, "audit", "verify", "--clickhouse-addr", chAddr, "--clickhouse-database", db, "--since", "1h").CombinedOutput()
	if err != nil {
		t.Fatalf("vitals audit verify: %v\n%s", err, out)
	}
}
