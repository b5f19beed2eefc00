package model_test

import (
	"encoding/json"
	"reflect"
	"testing"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/journey"
	"github.com/vitalshq/vitals/processor/model"
)

// TestExplanationExact: a failed invoice after a neutral baseline. The
// health change and the churn event both explain it: scores before (the
// baseline 67.5 → 68) and after (60), the payment component's move, and
// for churn the indicator with its evidence.
func TestExplanationExact(t *testing.T) {
	got := applyAll(t, newModel(t), &model.State{}, []event.CustomerEvent{
		payment("a", at(0, 9, 0), "i1", "succeeded"), payment("b", at(2, 9, 0), "i2", "failed")})
	if len(got) != 2 {
		t.Fatalf("%d events, want health change and churn", len(got))
	}
	before := event.ComponentScores{Usage: 50, Engagement: 50, Support: 100, Payment: 100, Sentiment: 50, Adoption: 50}
	after := before
	after.Payment = 50
	input := []event.ExplanationInput{{Component: "payment", Delta: -50, ScoreDelta: -7.5,
		Because: "1 failed or overdue invoice(s): i2"}}
	wantHealth := &event.Explanation{
		Summary: "score 68 → 60 (yellow → yellow); payment moved it most (-7.5 points)",
		Score:   60, Band: "yellow", PreviousScore: 68, PreviousBand: "yellow",
		Components: after, PreviousComponents: before, Inputs: input,
	}
	wantChurn := &event.Explanation{
		Summary: "risk medium: 1 indicator(s) weigh 2 (medium from 2)",
		Score:   60, Band: "yellow", PreviousScore: 68, PreviousBand: "yellow",
		Components: after, PreviousComponents: before, Inputs: input,
		RiskPoints: 2,
		Indicators: []event.IndicatorEvidence{{Indicator: "payment_issue", Weight: 2, Evidence: "failed or overdue invoice(s): i2"}},
	}
	for i, want := range []*event.Explanation{wantHealth, wantChurn} {
		if !reflect.DeepEqual(got[i].Explanation, want) {
			g, _ := json.MarshalIndent(got[i].Explanation, "", " ")
			w, _ := json.MarshalIndent(want, "", " ")
			t.Errorf("%s explanation\n got %s\nwant %s", got[i].Event, g, w)
		}
	}
}

// TestExplanationOfJourneys: every derived event of the journeys carries
// an explanation whose score matches the event, and the churn and
// expansion events name their evidence.
func TestExplanationOfJourneys(t *testing.T) {
	m := newModel(t)
	churning := applyAll(t, m, &model.State{}, journey.Churning("cust_1", start))
	expanding := applyAll(t, m, &model.State{}, journey.Expanding("cust_1", start))
	for _, d := range append(churning, expanding...) {
		x := d.Explanation
		if x == nil || x.Summary == "" {
			t.Fatalf("%s %s without explanation", d.Event, d.EventID)
		}
		if d.Health != nil && (x.Score != d.Health.NewScore || x.PreviousScore != d.Health.PreviousScore ||
			len(x.Inputs) == 0 || x.Inputs[0].Component == "") {
			t.Errorf("health change %+v explained as %+v", d.Health, x)
		}
	}

	high := churning[len(churning)-1].Explanation
	wantInd := []event.IndicatorEvidence{
		{Indicator: "usage_decline_30_percent", Weight: 2, Evidence: "trailing 30-day active users 32.1 vs previous 50 (-36%); at or below 70%"},
		{Indicator: "support_escalation", Weight: 2, Evidence: "escalated ticket(s): cust_1-ticket-1"},
		{Indicator: "payment_issue", Weight: 2, Evidence: "failed or overdue invoice(s): cust_1-inv-58"},
	}
	if high.RiskPoints != 6 || high.Summary != "risk high: 3 indicator(s) weigh 6 (high from 5)" || !reflect.DeepEqual(high.Indicators, wantInd) {
		t.Errorf("high churn explanation %+v", high)
	}

	upsell := expanding[len(expanding)-1].Explanation
	wantFactors := []event.FactorEvidence{
		{Factor: "strong_health_score", Evidence: "health 97 ≥ 85"},
		{Factor: "executive_sponsorship", Evidence: "executive sponsor on record; executive login within 14 days"},
		{Factor: "promoter_nps", Evidence: "latest NPS 10 (promoter ≥ 9)"},
		{Factor: "usage_growth", Evidence: "trailing 30-day active users 34 vs previous 30 (+13%); at or above 110%"},
	}
	wantSummary := "upsell: seat utilisation ≥ 90% for 7 days (latest 47 of 50 seats); 10 extra seats × 1200 per seat = 12000; " +
		"health 97 ≥ 75, no churn indicator, 4 success factor(s)"
	if upsell.Summary != wantSummary || !reflect.DeepEqual(upsell.Factors, wantFactors) {
		t.Errorf("upsell explanation %+v", upsell)
	}
	// The first health change of the churning journey is usage's doing,
	// and says why in the brief's words.
	first := churning[0].Explanation.Inputs[0]
	if first.Component != "usage" || first.Because !=
		"seat utilisation 59.5% (mean of 7 day(s); latest 30 of 60 seats); trailing 30-day active users 46.7 vs previous 50 (-7%)" {
		t.Errorf("first input %+v", first)
	}
}
