package api

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/vitalshq/vitals/dispatcher/task"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/problem"
	"github.com/vitalshq/vitals/replay"
)

type replayReq struct {
	MessageID  string     `json:"message_id"`
	Since      *time.Time `json:"since"`
	Until      *time.Time `json:"until"`
	FailedOnly bool       `json:"failed_only"`
}

// createReplay records a replay job for the endpoint and answers 202 with
// its id; a replay.Runner executes it. Either message_id (optionally with
// since/until to bound the search) or since (until defaults to now).
func (s *Server) createReplay(w http.ResponseWriter, r *http.Request) {
	e, ok := s.endpointOr404(w, r)
	if !ok {
		return
	}
	var req replayReq
	if !decodeJSON(w, r, &req, `{"message_id":"<event id>"} or {"since":"<RFC 3339>","until":"<RFC 3339>","failed_only":true}`) {
		return
	}
	bad := func(field, detail string) {
		problem.Write(w, r, problem.New(http.StatusBadRequest, "invalid-replay", detail).With("field", field))
	}
	now := s.now().UTC()
	j := replay.Job{ID: replay.NewID(), EndpointID: e.ID, MessageID: req.MessageID, FailedOnly: req.FailedOnly,
		Status: replay.StatusPending, CreatedAt: now}
	if req.Since != nil {
		j.Since = req.Since.UTC()
	}
	if req.Until != nil {
		j.Until = req.Until.UTC()
	}
	switch {
	case req.MessageID == "" && req.Since == nil:
		bad("since", "give message_id to replay one event, or since (and optionally until, default now) to replay a time range")
		return
	case len(req.MessageID) > 256:
		bad("message_id", "message_id is an event id of at most 256 characters")
		return
	case req.MessageID != "" && req.FailedOnly:
		bad("failed_only", "failed_only applies to time ranges; omit it with message_id")
		return
	case req.Since != nil && j.Since.After(now):
		bad("since", "since is in the future")
		return
	case req.Until != nil && req.Since != nil && !j.Until.After(j.Since):
		bad("until", "until must be after since")
		return
	}
	if j.Until.IsZero() && req.MessageID == "" {
		j.Until = now
	}
	if e.Disabled {
		problem.Write(w, r, problem.New(http.StatusConflict, "endpoint-disabled",
			fmt.Sprintf("endpoint %s is disabled (%s); enable it with PATCH {\"disabled\":false} before replaying", e.ID, e.DisabledReason)))
		return
	}
	if err := s.d.Replays.Put(r.Context(), j); err != nil {
		s.d.Logger.Error("store replay", "id", j.ID, "err", err)
		w.Header().Set("Retry-After", "5")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "store-unavailable", "the replay could not be recorded; retry the request"))
		return
	}
	w.Header().Set("Location", "/v1/replays/"+j.ID)
	writeJSON(w, http.StatusAccepted, j)
}

func (s *Server) getReplay(w http.ResponseWriter, r *http.Request) {
	j, ok := s.d.Replays.Get(r.PathValue("id"))
	if !ok {
		problem.Write(w, r, problem.New(http.StatusNotFound, "replay-not-found",
			fmt.Sprintf("no replay %q; replays are created by POST /v1/endpoints/{id}/replay", r.PathValue("id"))))
		return
	}
	writeJSON(w, http.StatusOK, j)
}

// TestCustomerID is the customer id of test events.
const TestCustomerID = "cust_test"

type testReq struct {
	EventType string `json:"event_type"`
}

// testEndpoint queues a synthetic derived event for the endpoint through
// the normal delivery path (first retry tier, due now). The event is marked
// as a test: its id starts "test_", its customer is TestCustomerID and its
// explanation summary says so. The body is optional: {"event_type":…}
// picks the type, by default the first derived type the endpoint receives.
func (s *Server) testEndpoint(w http.ResponseWriter, r *http.Request) {
	e, ok := s.endpointOr404(w, r)
	if !ok {
		return
	}
	var req testReq
	if r.ContentLength != 0 && !decodeJSON(w, r, &req, `{"event_type":"<derived event type>"} or no body`) {
		return
	}
	typ := req.EventType
	if typ == "" {
		for _, t := range event.DerivedTypes() {
			if subscribesIgnoringState(e, t) {
				typ = t
				break
			}
		}
	}
	if typ == "" || !slices.Contains(event.DerivedTypes(), typ) || !subscribesIgnoringState(e, typ) {
		problem.Write(w, r, problem.New(http.StatusConflict, "not-subscribed",
			fmt.Sprintf("endpoint %s does not receive %q; test events are derived events it subscribes to (%v)", e.ID, typ, e.EventTypes)).With("field", "event_type"))
		return
	}
	if e.Disabled {
		problem.Write(w, r, problem.New(http.StatusConflict, "endpoint-disabled",
			fmt.Sprintf("endpoint %s is disabled (%s); enable it before testing", e.ID, e.DisabledReason)))
		return
	}
	ev := sampleEvent(typ, s.now().UTC())
	value, err := s.d.Encoder.EncodeDerived(ev)
	if err != nil {
		s.d.Logger.Error("encode test event", "err", err)
		problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal", "could not encode the test event"))
		return
	}
	t := task.Task{EndpointID: e.ID, EventID: ev.EventID, EventType: ev.Event, CustomerID: ev.CustomerID,
		Event: value, DueAt: s.now().UTC()}
	if err := s.d.Tasks.Enqueue(r.Context(), t); err != nil {
		s.d.Logger.Error("enqueue test event", "endpoint", e.ID, "err", err)
		w.Header().Set("Retry-After", "5")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "queue-unavailable", "the test event could not be queued; retry"))
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"event_id": ev.EventID, "event_type": ev.Event, "customer_id": ev.CustomerID})
}

// subscribesIgnoringState is Subscribes without the disabled check.
func subscribesIgnoringState(e endpoint.Endpoint, typ string) bool {
	e.Disabled = false
	return e.Subscribes(typ)
}

// sampleEvent returns a synthetic derived event of type typ, marked as a
// test.
func sampleEvent(typ string, now time.Time) event.Derived {
	var b [12]byte
	_, _ = rand.Read(b[:])
	d := event.Derived{EventID: "test_" + hex.EncodeToString(b[:]), Event: typ, CustomerID: TestCustomerID, Timestamp: now,
		Explanation: &event.Explanation{Summary: "test event sent by POST /v1/endpoints/{id}/test; not a real customer signal",
			Score: 65, Band: "yellow", PreviousScore: 80, PreviousBand: "green"}}
	switch typ {
	case event.HealthScoreChange:
		d.Health = &event.HealthChange{PreviousScore: 80, NewScore: 65, ChangeReason: "usage_decline"}
	case event.ExpansionReady:
		d.Expansion = &event.Expansion{OpportunityType: "upsell", ValueEstimate: 50000, Probability: 0.75,
			SuccessFactors: []string{"high_adoption", "strong_health_score", "executive_sponsorship"}}
	case event.ChurnRiskDetected:
		d.Churn = &event.ChurnRisk{RiskLevel: "high", RiskIndicators: []string{"usage_decline_30_percent", "support_escalation", "payment_issue"},
			RecommendedActions: []string{"immediate_outreach", "executive_escalation", "success_plan_review"}}
	}
	return d
}
