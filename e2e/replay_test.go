package e2e

import (
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vitalshq/vitals/dispatcher/task"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/processor/journey"
	"github.com/vitalshq/vitals/topics"
)

// TestReplayAfterOutage: deliveries to an endpoint that is down exhaust
// their (compressed) retries into the DLQ; once it is back, a since/until
// failed-only replay delivers every one of them with its original
// webhook-id.
func TestReplayAfterOutage(t *testing.T) {
	brokers := testenv.Kfake(t)
	pl := startPipeline(t, "--kafka-brokers", strings.Join(brokers, ","), "--partitions", "3",
		"--retry-schedule", "100ms,200ms", "--breaker-open", "300ms")
	rcv := newReceiver(t)
	epID := pl.register(t, rcv, event.ChurnRiskDetected, event.HealthScoreChange)
	since := time.Now().UTC().Add(-time.Second)

	rcv.setDown(true)
	cust := "cust_replay_" + randomSuffix()
	start := time.Now().UTC().Add(-61 * 24 * time.Hour).Truncate(24 * time.Hour)
	pl.sendJourney(t, pl.token(t, "events:write"), journey.Churning(cust, start))

	// Wait until the DLQ holds the exhausted deliveries of this customer.
	var dead []string
	eventually(t, 60*time.Second, "exhausted deliveries in the DLQ", func() bool {
		dead = dead[:0]
		for _, r := range testenv.ReadAll(t, brokers, topics.DLQ, false) {
			if tk, err := task.Decode(r); err == nil && tk.EndpointID == epID && tk.CustomerID == cust {
				dead = append(dead, tk.EventID)
			}
		}
		// The churning journey derives churn events and health changes.
		return len(dead) >= 4
	})
	if rcv.failedCount() == 0 || len(rcv.find(event.ChurnRiskDetected, cust)) != 0 {
		t.Fatalf("the receiver was not down: %d failed requests", rcv.failedCount())
	}

	rcv.setDown(false)
	tok := pl.token(t, "endpoints:write")
	body := fmt.Sprintf(`{"since":%q,"until":%q,"failed_only":true}`,
		since.Format(time.RFC3339Nano), time.Now().UTC().Add(time.Second).Format(time.RFC3339Nano))
	status, _, b := pl.do(t, http.MethodPost, "/v1/endpoints/"+epID+"/replay", tok, "application/json", []byte(body))
	if status != http.StatusAccepted {
		t.Fatalf("replay: %d %s", status, b)
	}
	var job struct {
		ID     string `json:"id"`
		Status string `json:"status"`
		Queued int    `json:"queued"`
	}
	if err := json.Unmarshal(b, &job); err != nil || !strings.HasPrefix(job.ID, "rp_") {
		t.Fatalf("replay response %s: %v", b, err)
	}
	read := pl.token(t, "endpoints:read")
	eventually(t, 60*time.Second, "the replay job to finish", func() bool {
		status, _, b := pl.do(t, http.MethodGet, "/v1/replays/"+job.ID, read, "", nil)
		return status == http.StatusOK && json.Unmarshal(b, &job) == nil && job.Status == "done"
	})
	if job.Queued < len(dead) {
		t.Errorf("replay queued %d, the DLQ held %d", job.Queued, len(dead))
	}
	eventually(t, 60*time.Second, "every dead-lettered event delivered", func() bool {
		var got []string
		for _, typ := range []string{event.ChurnRiskDetected, event.HealthScoreChange} {
			for _, d := range rcv.find(typ, cust) {
				got = append(got, d.ID)
			}
		}
		for _, id := range dead {
			if !slices.Contains(got, id) {
				return false
			}
		}
		return true
	})
	if rcv.badCount() != 0 {
		t.Errorf("%d replayed deliveries failed the signature check", rcv.badCount())
	}
}
