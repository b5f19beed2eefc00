package model_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/processor/journey"
)

var start = time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)

// at is day d, hh:mm after start.
func at(d, hh, mm int) time.Time {
	return start.Add(time.Duration(d)*24*time.Hour + time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute)
}

func newModel(t testing.TB) *model.Model {
	t.Helper()
	m, err := model.NewModel(model.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// applyAll applies evs to st and returns every derived event. It checks the
// id and timestamp contract of each: the id is DerivedID of the input that
// caused it, the timestamp that input's event time.
func applyAll(t *testing.T, m *model.Model, st *model.State, evs []event.CustomerEvent) []event.Derived {
	t.Helper()
	var out []event.Derived
	for _, ev := range evs {
		for _, d := range m.Apply(st, ev).Derived {
			sub := ""
			if d.Expansion != nil {
				sub = d.Expansion.OpportunityType
			}
			if want := model.DerivedID(ev.CustomerID, ev, d.Event, sub); d.EventID != want {
				t.Errorf("%s caused by %s: id %s, want %s", d.Event, ev.EventID, d.EventID, want)
			}
			if !d.Timestamp.Equal(ev.OccurredAt) {
				t.Errorf("%s caused by %s: timestamp %v, want %v", d.Event, ev.EventID, d.Timestamp, ev.OccurredAt)
			}
			out = append(out, d)
		}
	}
	return out
}

// withoutIDs blanks the ids and explanations so expectations can be written
// as literals (applyAll checks the ids; TestExplanation the explanations).
func withoutIDs(ds []event.Derived) []event.Derived {
	if len(ds) == 0 {
		return nil
	}
	out := make([]event.Derived, len(ds))
	for i, d := range ds {
		d.EventID = ""
		d.Explanation = nil
		out[i] = d
	}
	return out
}

func health(ts time.Time, prev, cur int, reason string) event.Derived {
	return event.Derived{Event: event.HealthScoreChange, CustomerID: "cust_1", Timestamp: ts,
		Health: &event.HealthChange{PreviousScore: prev, NewScore: cur, ChangeReason: reason}}
}

func churn(ts time.Time, level string, indicators, actions []string) event.Derived {
	return event.Derived{Event: event.ChurnRiskDetected, CustomerID: "cust_1", Timestamp: ts,
		Churn: &event.ChurnRisk{RiskLevel: level, RiskIndicators: indicators, RecommendedActions: actions}}
}

func expansion(ts time.Time, kind string, value int64, p float64, factors []string) event.Derived {
	return event.Derived{Event: event.ExpansionReady, CustomerID: "cust_1", Timestamp: ts,
		Expansion: &event.Expansion{OpportunityType: kind, ValueEstimate: value, Probability: p, SuccessFactors: factors}}
}

func sameDerived(t *testing.T, got, want []event.Derived) {
	t.Helper()
	got = withoutIDs(got)
	if reflect.DeepEqual(got, want) {
		return
	}
	gj, _ := json.MarshalIndent(got, "", " ")
	wj, _ := json.MarshalIndent(want, "", " ")
	t.Errorf("derived events differ\ngot:  %s\nwant: %s", gj, wj)
}

func TestJourneys(t *testing.T) {
	tests := []struct {
		name  string
		evs   []event.CustomerEvent
		want  []event.Derived
		score int
	}{{
		// Steady usage, daily logins, invoices paid, one ticket opened and
		// resolved: score stays at 95, nothing to report.
		name:  "healthy",
		evs:   journey.Healthy("cust_1", start),
		want:  nil,
		score: 95,
	}, {
		// Baseline 90 (NPS still neutral at the end of day 0's window).
		// Day 34: utilisation 30/60 → usage 73.75, score 84. Day 50: the
		// 30-day trend (now known) keeps falling and a high ticket opens: 76.
		// Day 54: trailing mean 34.7 vs 50 → usage_decline_30_percent
		// (weight 2 → medium). Day 57: escalation (sum 4, still medium, no
		// event) → 70. Day 58: failed invoice → sum 6 → high, score 62.
		name: "churning",
		evs:  journey.Churning("cust_1", start),
		want: []event.Derived{
			health(at(34, 10, 0), 90, 84, "usage_decline"),
			health(at(50, 14, 0), 84, 76, "usage_decline"),
			churn(at(54, 10, 0), "medium", []string{"usage_decline_30_percent"},
				[]string{"schedule_check_in", "review_usage"}),
			health(at(57, 14, 0), 76, 70, "support_escalation"),
			health(at(58, 8, 0), 70, 62, "payment_issue"),
			churn(at(58, 8, 0), "high",
				[]string{"usage_decline_30_percent", "support_escalation", "payment_issue"},
				[]string{"immediate_outreach", "executive_escalation", "success_plan_review"}),
		},
		score: 62,
	}, {
		// Baseline 85 (30/50 seats, NPS neutral). Day 30: 47/50 seats →
		// usage 100, 4 of 6 features → 95 (usage_growth moved it most).
		// Day 36 is the 7th day ≥ 90 %: upsell of ceil(50 × 0.2) = 10 seats ×
		// (6 000 000 / 100 / 50 = 1 200) = 12 000; factors strong health (97),
		// exec sponsor, promoter (NPS 10 on day 35), growth (trend 1.13):
		// 0.4 + 4 × 0.1 = 0.8.
		name: "expanding",
		evs:  journey.Expanding("cust_1", start),
		want: []event.Derived{
			health(at(30, 10, 0), 85, 95, "usage_growth"),
			expansion(at(36, 10, 0), "upsell", 12000, 0.8,
				[]string{"strong_health_score", "executive_sponsorship", "promoter_nps", "usage_growth"}),
		},
		score: 97,
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := newModel(t)
			st := &model.State{}
			got := applyAll(t, m, st, tt.evs)
			sameDerived(t, got, tt.want)
			if st.Score != tt.score {
				t.Errorf("final score %d, want %d", st.Score, tt.score)
			}
			if tt.name == "healthy" && st.RiskLevel != "" {
				t.Errorf("healthy customer has risk level %q", st.RiskLevel)
			}
		})
	}
}

func nps(id string, ts time.Time, score int32) event.CustomerEvent {
	return event.CustomerEvent{EventID: id, CustomerID: "cust_1", OccurredAt: ts, Data: event.NpsResponse{Score: score}}
}

func ticket(id string, ts time.Time, ticketID, status string) event.CustomerEvent {
	return event.CustomerEvent{EventID: id, CustomerID: "cust_1", OccurredAt: ts,
		Data: event.SupportTicket{TicketID: ticketID, Status: status, Priority: "normal"}}
}

// With only NPS known the score is 62.5 + NPS: 8 → 71 (green), 7 → 70
// (green), 6 → 69 (yellow).
func TestHealthScoreChangeThreshold(t *testing.T) {
	tests := []struct {
		name string
		evs  []event.CustomerEvent
		want []event.Derived
	}{{
		name: "band change emits below the delta",
		evs:  []event.CustomerEvent{nps("a", at(0, 9, 0), 8), nps("b", at(2, 9, 0), 6)},
		want: []event.Derived{health(at(2, 9, 0), 71, 69, "nps_detractor")},
	}, {
		name: "small change in one band is silent",
		evs:  []event.CustomerEvent{nps("a", at(0, 9, 0), 8), nps("b", at(2, 9, 0), 7)},
		want: nil,
	}, {
		name: "change within the baseline window is silent",
		evs:  []event.CustomerEvent{nps("a", at(0, 9, 0), 10), nps("b", at(0, 20, 0), 0)},
		want: nil,
	}, {
		name: "delta is measured from the last report, not the last event",
		evs: []event.CustomerEvent{nps("a", at(0, 9, 0), 5), // 68
			nps("b", at(2, 9, 0), 4), // 67: Δ1
			nps("c", at(3, 9, 0), 3), // 66: Δ2
			nps("d", at(4, 9, 0), 2), // 65: Δ3
			nps("e", at(5, 9, 0), 0), // 63: Δ5
		},
		want: []event.Derived{health(at(5, 9, 0), 68, 63, "nps_detractor")},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ofType(applyAll(t, newModel(t), &model.State{}, tt.evs), event.HealthScoreChange)
			sameDerived(t, got, tt.want)
		})
	}
}

// ofType keeps the events of type typ.
func ofType(ds []event.Derived, typ string) []event.Derived {
	var out []event.Derived
	for _, d := range ds {
		if d.Event == typ {
			out = append(out, d)
		}
	}
	return out
}

func TestChurnRiskSuppressedWithin24h(t *testing.T) {
	medium := []string{"schedule_check_in", "review_usage"}
	evs := []event.CustomerEvent{
		ticket("e1", at(0, 0, 0), "t1", "escalated"), // medium: emitted
		ticket("e2", at(0, 2, 0), "t1", "resolved"),  // none
		ticket("e3", at(0, 5, 0), "t2", "escalated"), // medium again after 5h: suppressed
		ticket("e4", at(0, 7, 0), "t2", "resolved"),  // none
		ticket("e5", at(1, 1, 0), "t3", "escalated"), // medium after 25h: emitted
	}
	got := ofType(applyAll(t, newModel(t), &model.State{}, evs), event.ChurnRiskDetected)
	sameDerived(t, got, []event.Derived{
		churn(at(0, 0, 0), "medium", []string{"support_escalation"}, medium),
		churn(at(1, 1, 0), "medium", []string{"support_escalation"}, medium),
	})
}

func TestChurnRiskNotRepeatedWhileLevelHolds(t *testing.T) {
	evs := []event.CustomerEvent{
		ticket("e1", at(0, 0, 0), "t1", "escalated"),
		ticket("e2", at(3, 0, 0), "t2", "escalated"), // still medium (sum 2): nothing new
	}
	if got := ofType(applyAll(t, newModel(t), &model.State{}, evs), event.ChurnRiskDetected); len(got) != 1 {
		t.Fatalf("%d churn events, want 1", len(got))
	}
}

func TestLateTicketUpdateDoesNotReopen(t *testing.T) {
	m := newModel(t)
	st := &model.State{}
	applyAll(t, m, st, []event.CustomerEvent{
		ticket("e1", at(0, 9, 0), "t1", "resolved"),
		ticket("e0", at(0, 8, 0), "t1", "escalated"), // older, arrives late
	})
	if st.RiskLevel != "" || st.Tickets["t1"].Status != "resolved" {
		t.Fatalf("late escalation overrode the resolution: risk %q ticket %+v", st.RiskLevel, st.Tickets["t1"])
	}
}

func TestCrossSell(t *testing.T) {
	features := []string{"a", "b", "c", "d", "e"}
	ev := func(id string, ts time.Time, p event.Payload) event.CustomerEvent {
		return event.CustomerEvent{EventID: id, CustomerID: "cust_1", OccurredAt: ts, Data: p}
	}
	evs := []event.CustomerEvent{
		ev("c1", at(0, 9, 0), event.ContractUpdated{Plan: "pro", Seats: 10, ArrCents: 1_000_000,
			RenewalDate: "2026-01-01", PlanFeatures: features}),
		// 8/10 seats (usage 100), 4 of 5 features (adoption 80): score 86.
		ev("u1", at(0, 10, 0), event.UsageReported{ActiveUsers: 8, SeatsPurchased: 10, FeaturesUsed: features[:4]}),
		ev("u2", at(1, 10, 0), event.UsageReported{ActiveUsers: 8, SeatsPurchased: 10, FeaturesUsed: features[:4]}),
	}
	got := applyAll(t, newModel(t), &model.State{}, evs)
	// value: 20 % of ARR 10 000; factors: high adoption, strong score →
	// 0.6. Once per 30 days: day 1 reports nothing new.
	sameDerived(t, got, []event.Derived{
		expansion(at(0, 10, 0), "cross_sell", 2000, 0.6, []string{"high_adoption", "strong_health_score"}),
	})
}

func TestDuplicateInputIgnored(t *testing.T) {
	m := newModel(t)
	st := &model.State{}
	evs := journey.Churning("cust_1", start)
	applyAll(t, m, st, evs)
	before, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	// The event that raised the risk to high, delivered again.
	dup := evs[len(evs)-1]
	for _, ev := range evs {
		if _, ok := ev.Data.(event.PaymentEvent); ok && ev.OccurredAt.Equal(at(58, 8, 0)) {
			dup = ev
		}
	}
	if got := m.Apply(st, dup); got.Derived != nil || got.Skipped != model.SkippedDuplicate {
		t.Fatalf("duplicate %s produced %d events", dup.EventID, len(got.Derived))
	}
	after, _ := json.Marshal(st)
	if string(before) != string(after) {
		t.Fatalf("duplicate changed the state\nbefore %s\nafter  %s", before, after)
	}
}

// A State serialized mid-journey and restored continues exactly as the
// uninterrupted one: same events, same ids. This is what a changelog
// restore relies on.
func TestStateRoundTripAndReplayIsDeterministic(t *testing.T) {
	m := newModel(t)
	evs := journey.Churning("cust_1", start)
	whole := applyAll(t, m, &model.State{}, evs)

	half := len(evs) / 2
	st := &model.State{}
	resumed := applyAll(t, m, st, evs[:half])
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	restored := &model.State{}
	if err := json.Unmarshal(b, restored); err != nil {
		t.Fatal(err)
	}
	resumed = append(resumed, applyAll(t, m, restored, evs[half:])...)
	if !reflect.DeepEqual(whole, resumed) {
		t.Fatalf("restored run differs:\nwhole   %v\nresumed %v", whole, resumed)
	}
	if len(whole) == 0 {
		t.Fatal("churning journey derived nothing")
	}
}

func TestNewModelRejectsInvalidConfig(t *testing.T) {
	if _, err := model.NewModel(model.Config{}); !errors.Is(err, model.ErrInvalidConfig) {
		t.Fatalf("zero config: err %v, want ErrInvalidConfig", err)
	}
	cfg := model.DefaultConfig()
	cfg.Churn.RiskThresholds.High = 1
	if _, err := model.NewModel(cfg); !errors.Is(err, model.ErrInvalidConfig) {
		t.Fatalf("descending thresholds: err %v, want ErrInvalidConfig", err)
	}
}

// BenchmarkModelApply applies the three journeys round-robin to fresh
// customers.
func BenchmarkModelApply(b *testing.B) {
	m := newModel(b)
	var journeys [][]event.CustomerEvent
	for _, name := range journey.Names() {
		journeys = append(journeys, journey.ByName(name)("cust_bench", start))
	}
	b.ReportAllocs()
	st, j, i := &model.State{}, 0, 0
	for b.Loop() {
		if i == len(journeys[j]) {
			st, j, i = &model.State{}, (j+1)%len(journeys), 0
		}
		m.Apply(st, journeys[j][i])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}

func TestChurnIndicators(t *testing.T) {
	ev := func(id string, ts time.Time, p event.Payload) event.CustomerEvent {
		return event.CustomerEvent{EventID: id, CustomerID: "cust_1", OccurredAt: ts, Data: p}
	}
	usage := event.UsageReported{ActiveUsers: 8, SeatsPurchased: 10}
	tests := []struct {
		name string
		evs  []event.CustomerEvent
		want event.Derived // the last churn event
	}{{
		name: "champion left",
		evs:  []event.CustomerEvent{ev("s1", at(0, 9, 0), event.SponsorChanged{HasExecSponsor: true, ChampionLeft: true})},
		want: churn(at(0, 9, 0), "medium", []string{"champion_left"}, []string{"schedule_check_in", "review_usage"}),
	}, {
		// No login for 14 days counts only once the customer is 14 days old.
		name: "low engagement",
		evs: []event.CustomerEvent{ev("u1", at(0, 9, 0), usage), ev("u2", at(13, 9, 0), usage),
			ev("u3", at(14, 9, 0), usage)},
		want: churn(at(14, 9, 0), "low", []string{"low_engagement"}, []string{"monitor_health"}),
	}, {
		// Renewal in 30 days; two failed invoices and an escalation take the
		// score to 45 (< 50): three strong indicators → high.
		name: "renewal at risk",
		evs: []event.CustomerEvent{
			ev("c1", at(0, 9, 0), event.ContractUpdated{Plan: "pro", Seats: 10, ArrCents: 1_000_000,
				RenewalDate: at(30, 0, 0).Format(time.DateOnly)}),
			ev("p1", at(0, 9, 1), event.PaymentEvent{InvoiceID: "i1", Status: "failed"}),
			ev("p2", at(0, 9, 2), event.PaymentEvent{InvoiceID: "i2", Status: "overdue"}),
			ticket("t1", at(0, 9, 3), "t1", "escalated"),
		},
		want: churn(at(0, 9, 3), "high", []string{"support_escalation", "payment_issue", "renewal_at_risk"},
			[]string{"immediate_outreach", "executive_escalation", "success_plan_review"}),
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ofType(applyAll(t, newModel(t), &model.State{}, tt.evs), event.ChurnRiskDetected)
			if len(got) == 0 {
				t.Fatal("no churn event")
			}
			sameDerived(t, got[len(got)-1:], []event.Derived{tt.want})
		})
	}
}
