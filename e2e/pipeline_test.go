package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/processor/journey"
	"github.com/vitalshq/vitals/simulate"
	"github.com/vitalshq/vitals/topics"
)

func randomSuffix() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// sendJourney posts evs through the API in batches and asserts 202s.
func (pl *pipeline) sendJourney(t *testing.T, token string, evs []event.CustomerEvent) {
	t.Helper()
	for i := 0; i < len(evs); i += 200 {
		body, err := json.Marshal(simulate.Ingest(evs[i:min(i+200, len(evs))]))
		if err != nil {
			t.Fatal(err)
		}
		status, _, b := pl.do(t, http.MethodPost, "/v1/events", token, "application/json", body)
		if status != http.StatusAccepted {
			t.Fatalf("POST /v1/events: %d %s", status, b)
		}
	}
}

// TestPipeline drives the whole pipeline — API, Kafka, processor,
// dispatcher, ClickHouse — once on kfake over TCP and once on Apache Kafka.
func TestPipeline(t *testing.T) {
	chAddr := testenv.ClickHouse(t)
	testenv.Brokers(t, func(t *testing.T, brokers []string) {
		db := "vitals_e2e_" + randomSuffix()
		pl := startPipeline(t, "--kafka-brokers", strings.Join(brokers, ","),
			"--clickhouse-addr", chAddr, "--clickhouse-database", db, "--partitions", "3",
			"--retry-schedule", "200ms,500ms")
		rcv := newReceiver(t)
		epID := pl.register(t, rcv, "*")
		token := pl.token(t, "events:write")
		start := time.Now().UTC().Add(-61 * 24 * time.Hour).Truncate(24 * time.Hour)
		run := randomSuffix()

		t.Run("churn risk reaches the receiver, signed, and ClickHouse logs the attempt", func(t *testing.T) {
			cust := "cust_churn_" + run
			pl.sendJourney(t, token, journey.Churning(cust, start))
			var got delivery
			eventually(t, 90*time.Second, "a high churn_risk_detected", func() bool {
				for _, d := range rcv.find(event.ChurnRiskDetected, cust) {
					if d.Fields["risk_level"] == "high" {
						got = d
						return true
					}
				}
				return false
			})
			inds := strings.Fields(fmt.Sprint(got.Fields["risk_indicators"]))
			for _, want := range []string{"usage_decline_30_percent", "support_escalation", "payment_issue"} {
				if !slices.ContainsFunc(inds, func(s string) bool { return strings.Trim(s, "[]") == want }) {
					t.Errorf("risk_indicators %v lack %s", got.Fields["risk_indicators"], want)
				}
			}
			if acts, _ := got.Fields["recommended_actions"].([]any); len(acts) == 0 {
				t.Errorf("recommended_actions empty: %s", got.Body)
			}
			if got.ID != got.Fields["event_id"] {
				t.Errorf("webhook-id %q is not the body's event_id %v", got.ID, got.Fields["event_id"])
			}
			if rcv.badCount() != 0 {
				t.Errorf("%d deliveries failed the independent signature check", rcv.badCount())
			}

			// The read model serves the customer's health from the changelog.
			readTok := pl.token(t, "customers:read")
			var hv struct {
				Score            int      `json:"score"`
				Band             string   `json:"band"`
				RiskLevel        string   `json:"risk_level"`
				ActiveIndicators []string `json:"active_indicators"`
				RecentEvents     []struct {
					Event string `json:"event"`
				} `json:"recent_derived_events"`
			}
			eventually(t, 30*time.Second, "GET /v1/customers/{id}/health to show the high risk", func() bool {
				status, _, b := pl.do(t, http.MethodGet, "/v1/customers/"+cust+"/health", readTok, "", nil)
				return status == http.StatusOK && json.Unmarshal(b, &hv) == nil && hv.RiskLevel == "high"
			})
			if hv.Band == "" || len(hv.ActiveIndicators) < 3 || len(hv.RecentEvents) == 0 {
				t.Errorf("health view %+v", hv)
			}
			if status, ct, _ := pl.do(t, http.MethodGet, "/v1/customers/cust_nobody_"+run+"/health", readTok, "", nil); status != http.StatusNotFound || ct != "application/problem+json" {
				t.Errorf("unknown customer: %d %s", status, ct)
			}
			if status, _, _ := pl.do(t, http.MethodGet, "/v1/customers/"+cust+"/health", token, "", nil); status != http.StatusForbidden {
				t.Errorf("health without customers:read: %d, want 403", status)
			}

			// The attempt is in ClickHouse with its latency.
			conn, err := clickhouse.Open(&clickhouse.Options{Addr: []string{chAddr}, DialTimeout: 5 * time.Second})
			if err != nil {
				t.Fatal(err)
			}
			defer conn.Close()
			var (
				status           uint16
				latency          uint32
				outcome, ep, hst string
				n                uint64
			)
			eventually(t, 60*time.Second, "the attempt row in ClickHouse", func() bool {
				row := conn.QueryRow(context.Background(), fmt.Sprintf(
					"SELECT count(), any(status_code), any(latency_ms), any(outcome), any(endpoint_id), any(url_host) FROM %s.webhook_attempts WHERE event_id = ?", db), got.ID)
				return row.Scan(&n, &status, &latency, &outcome, &ep, &hst) == nil && n > 0
			})
			if status != http.StatusNoContent || outcome != "delivered" || ep != epID || !strings.HasPrefix(rcv.srv.URL, "http://"+hst) {
				t.Errorf("attempt row: status %d outcome %q endpoint %q host %q", status, outcome, ep, hst)
			}
			if latency > 15000 {
				t.Errorf("latency_ms %d beyond the delivery timeout", latency)
			}
		})

		t.Run("healthy then growing customer gets health_score_change and expansion_ready", func(t *testing.T) {
			cust := "cust_grow_" + run
			pl.sendJourney(t, token, journey.Expanding(cust, start))
			eventually(t, 90*time.Second, "expansion_ready", func() bool {
				return len(rcv.find(event.ExpansionReady, cust)) > 0 && len(rcv.find(event.HealthScoreChange, cust)) > 0
			})
			hc := rcv.find(event.HealthScoreChange, cust)[0].Fields
			assertFields(t, hc, map[string]string{"event": "string", "event_id": "string", "customer_id": "string",
				"timestamp": "time", "previous_score": "int", "new_score": "int", "change_reason": "string"})
			if hc["change_reason"] != "usage_growth" {
				t.Errorf("change_reason %v, want usage_growth", hc["change_reason"])
			}
			ex := rcv.find(event.ExpansionReady, cust)[0].Fields
			assertFields(t, ex, map[string]string{"event": "string", "event_id": "string", "customer_id": "string",
				"timestamp": "time", "opportunity_type": "string", "value_estimate": "int", "probability": "float",
				"success_factors": "strings"})
			if ex["opportunity_type"] != "upsell" || ex["value_estimate"] != float64(12000) {
				t.Errorf("expansion body %v", ex)
			}
		})

		t.Run("analytics reports through the CLI", func(t *testing.T) {
			report := func(name string) []map[string]any {
				t.Helper()
				// The journeys happened 61 days ago: derived events carry
				// their activity's time.
				out, err := exec.Command(vitalsBin, "analytics", name, "--since", "2000h", "--json",
					"--credentials", filepath.Join(pl.dataDir, "bootstrap-client.json")).CombinedOutput()
				if err != nil {
					t.Fatalf("vitals analytics %s: %v\n%s", name, err, out)
				}
				var rows []map[string]any
				if err := json.Unmarshal(out, &rows); err != nil {
					t.Fatalf("vitals analytics %s: %v\n%s", name, err, out)
				}
				return rows
			}
			// Each run of the CLI requests a token: poll once a second.
			within := func(what string, cond func() bool) {
				t.Helper()
				pace := time.NewTicker(time.Second)
				defer pace.Stop()
				for deadline := time.Now().Add(60 * time.Second); !cond(); <-pace.C {
					if time.Now().After(deadline) {
						t.Fatalf("timed out waiting for %s", what)
					}
				}
			}
			within("the endpoint's deliveries in the endpoints report", func() bool {
				for _, r := range report("endpoints") {
					if r["endpoint_id"] == epID && r["delivered"].(float64) > 0 && r["success_rate"].(float64) > 0 {
						return true
					}
				}
				return false
			})
			within("churn_risk_detected in the events report", func() bool {
				for _, r := range report("events") {
					if r["event_type"] == event.ChurnRiskDetected && r["events"].(float64) > 0 {
						return true
					}
				}
				return false
			})
		})

		t.Run("bad input is refused with problem+json and nothing reaches Kafka", func(t *testing.T) {
			bad := "cust_bad_" + run
			valid := func(cust string) string {
				return fmt.Sprintf(`{"type":"nps_response","customer_id":%q,"occurred_at":"2026-01-01T00:00:00Z","data":{"score":9}}`, cust)
			}
			narrow := pl.token(t, "endpoints:read")
			big := append([]byte("["+valid(bad)), bytes.Repeat([]byte(" "), 5<<20)...)
			big = append(big, ']')
			cases := []struct {
				name, token, body string
				raw               []byte
				status            int
				field             string
			}{
				{name: "malformed JSON", token: token, body: `[` + valid(bad) + `, {"type":`, status: 400},
				{name: "unknown event type", token: token, body: `[` + valid(bad) + `,{"type":"teleported","customer_id":"` + bad + `","occurred_at":"2026-01-01T00:00:00Z","data":{}}]`, status: 400, field: "type"},
				{name: "missing customer_id", token: token, body: `[` + valid(bad) + `,{"type":"nps_response","occurred_at":"2026-01-01T00:00:00Z","data":{"score":3}}]`, status: 400, field: "customer_id"},
				{name: "oversize body", token: token, raw: big, status: 413},
				{name: "no token", body: valid(bad), status: 401},
				{name: "wrong scope", token: narrow, body: valid(bad), status: 403},
			}
			for _, tc := range cases {
				body := tc.raw
				if body == nil {
					body = []byte(tc.body)
				}
				status, ct, b := pl.do(t, http.MethodPost, "/v1/events", tc.token, "application/json", body)
				if status != tc.status {
					t.Errorf("%s: status %d, want %d: %s", tc.name, status, tc.status, b)
					continue
				}
				var p map[string]any
				if ct != "application/problem+json" || json.Unmarshal(b, &p) != nil {
					t.Errorf("%s: not problem+json: %q %s", tc.name, ct, b)
					continue
				}
				if p["status"] != float64(tc.status) || p["type"] == "" || p["title"] == "" || p["detail"] == "" {
					t.Errorf("%s: incomplete problem %s", tc.name, b)
				}
				if tc.field != "" && (p["field"] != tc.field || p["index"] != float64(1)) {
					t.Errorf("%s: problem names index %v field %v, want 1 %s", tc.name, p["index"], p["field"], tc.field)
				}
			}
			// A valid sentinel after the bad requests: once it is readable,
			// everything accepted before it is too.
			sentinel := "cust_sentinel_" + run
			if status, _, b := pl.do(t, http.MethodPost, "/v1/events", token, "application/json", []byte(valid(sentinel))); status != http.StatusAccepted {
				t.Fatalf("sentinel: %d %s", status, b)
			}
			recs := testenv.ReadAll(t, brokers, topics.CustomerEvents, false)
			var sawSentinel bool
			for _, r := range recs {
				switch string(r.Key) {
				case sentinel:
					sawSentinel = true
				case bad:
					t.Errorf("a refused event reached Kafka: partition %d offset %d", r.Partition, r.Offset)
				}
			}
			if !sawSentinel {
				t.Fatal("the accepted sentinel event is not in the topic; the check proves nothing")
			}
		})
	})
}

// assertFields checks that body has each field with the given JSON type.
func assertFields(t *testing.T, body map[string]any, want map[string]string) {
	t.Helper()
	for k, typ := range want {
		v, ok := body[k]
		if !ok {
			t.Errorf("field %q missing from %v", k, body)
			continue
		}
		switch typ {
		case "string":
			if s, ok := v.(string); !ok || s == "" {
				t.Errorf("field %q = %#v, want a non-empty string", k, v)
			}
		case "time":
			s, _ := v.(string)
			if _, err := time.Parse(time.RFC3339, s); err != nil || !strings.HasSuffix(s, "Z") {
				t.Errorf("field %q = %#v, want RFC 3339 UTC", k, v)
			}
		case "int":
			f, ok := v.(float64)
			if !ok || f != float64(int64(f)) {
				t.Errorf("field %q = %#v, want an integer", k, v)
			}
		case "float":
			if f, ok := v.(float64); !ok || f <= 0 || f >= 1 {
				t.Errorf("field %q = %#v, want a probability in (0, 1)", k, v)
			}
		case "strings":
			arr, ok := v.([]any)
			if !ok || len(arr) == 0 {
				t.Errorf("field %q = %#v, want a non-empty array of strings", k, v)
			}
			for _, x := range arr {
				if _, ok := x.(string); !ok {
					t.Errorf("field %q holds %#v, want strings", k, x)
				}
			}
		}
	}
}
