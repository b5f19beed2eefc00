package model_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/journey"
	"github.com/vitalshq/vitals/processor/model"
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
		// Baseline 90 (usage 100: 50 of 60 seats ≥ full utilisation 0.8 ×
		// 0.7 + steady trend; sentiment neutral until NPS 7 on day 2).
		// From day 30 usage falls 4 users a day to 30 (day 34): the 7-day
		// mean utilisation sinks, day 36: 85; day 47: the 30-day trend
		// (known once each window has 7 days) falls too: 80. Day 50: a high
		// ticket opens (support 80, -4 points); with day 51's usage the
		// score reaches 75, support having moved it most since the last
		// report: support_tickets_opened. Day 54:
		// trailing mean ≤ 70 % of the previous → usage_decline_30_percent
		// (weight 2 → medium). Day 57: escalated (support 60): 70, still
		// medium (sum 4). Day 58: failed invoice (payment 50): 62, sum 6 →
		// high.
		name: "churning",
		evs:  journey.Churning("cust_1", start),
		want: []event.Derived{
			health(at(36, 10, 0), 90, 85, "usage_decline"),
			health(at(47, 10, 0), 85, 80, "usage_decline"),
			health(at(51, 10, 0), 80, 75, "support_tickets_opened"),
			churn(at(54, 10, 0), "medium", []string{"usage_decline_30_percent"},
				[]string{"schedule_check_in", "review_usage"}),
			health(at(57, 14, 0), 75, 70, "support_escalation"),
			health(at(58, 8, 0), 70, 62, "payment_issue"),
			churn(at(58, 8, 0), "high",
				[]string{"usage_decline_30_percent", "support_escalation", "payment_issue"},
				[]string{"immediate_outreach", "executive_escalation", "success_plan_review"}),
		},
		score: 62,
	}, {
		// Baseline 88 (30/50 seats, NPS 8 on day 0). From day 30, 47/50
		// seats (94 %) and a fourth feature; day 32 the 7-day mean
		// utilisation has risen enough: 93 (usage_growth). Day 36 is the
		// 7th day ≥ 90 %: upsell of ceil(50 × 0.2) = 10 seats × (6 000 000 /
		// 100 / 50 = 1 200) = 12 000; factors strong health (97), exec
		// sponsor, promoter (NPS 10 on day 35), growth (trend 1.13): 0.4 + 4
		// × 0.1 = 0.8.
		name: "expanding",
		evs:  journey.Expanding("cust_1", start),
		want: []event.Derived{
			health(at(32, 10, 0), 88, 93, "usage_growth"),
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
// customers: state growth from empty and every derived event with its
// explanation (the allocations per op are those, amortized; see
// BenchmarkModelApplyQuiet for the common Apply).
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

// BenchmarkModelApplyQuiet applies 20 consecutive 60-day periods of the
// healthy journey to one customer: the common Apply that derives nothing,
// which must not allocate once the customer's state has grown.
func BenchmarkModelApplyQuiet(b *testing.B) {
	m := newModel(b)
	var evs []event.CustomerEvent
	for p := range 20 {
		evs = append(evs, journey.Healthy("cust_bench", start.AddDate(0, 0, 60*p))...)
	}
	st := &model.State{}
	for _, ev := range evs {
		if r := m.Apply(st, ev); len(r.Derived) > 0 || r.Skipped != "" {
			b.Fatalf("the quiet journey derived %+v", r)
		}
	}
	b.ReportAllocs()
	st, i := &model.State{}, 0
	for b.Loop() {
		if i == len(evs) {
			st, i = &model.State{}, 0
		}
		m.Apply(st, evs[i])
		i++
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "events/s")
}
