package model_test

import (
	"slices"
	"testing"
	"time"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/journey"
	"github.com/vitalshq/vitals/processor/model"
)

// cohortRun is what a cohort's customers derived.
type cohortRun struct {
	dropped map[string]bool
	churn   map[string][]event.Derived // by customer
	health  int
	events  int
}

func runCohort(t *testing.T, m *model.Model, c journey.Cohort) cohortRun {
	t.Helper()
	r := cohortRun{dropped: map[string]bool{}, churn: map[string][]event.Derived{}}
	for i := range c.Customers {
		cust := c.Customer(i)
		r.dropped[cust.ID] = cust.Dropped
		st := &model.State{}
		for _, e := range cust.Events {
			res := m.Apply(st, e)
			if res.Skipped != "" {
				t.Fatalf("%s: %s skipped as %s", cust.ID, e.EventID, res.Skipped)
			}
			for _, d := range res.Derived {
				switch d.Event {
				case event.ChurnRiskDetected:
					r.churn[cust.ID] = append(r.churn[cust.ID], d)
				case event.HealthScoreChange:
					r.health++
				}
			}
		}
		r.events += len(cust.Events)
	}
	return r
}

var cohortStart = time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)

// TestCohort is the control group: 1000 simulated healthy customers over 90
// days, with daily usage noise of ±15 %, quiet weekends, tickets opened
// and resolved, NPS answers of 7–10 and paid invoices, derive no
// churn_risk_detected, and few health changes. The same cohort with a 40 %
// usage drop for every tenth customer from day 45 raises churn for exactly
// those, and a trigger-happy model fires on the healthy cohort: so the
// zero above is the model's doing, not the cohort being too clean.
func TestCohort(t *testing.T) {
	healthy := journey.Cohort{Seed: 2026, Customers: 1000, Days: 90, Start: cohortStart}

	t.Run("healthy cohort raises no churn", func(t *testing.T) {
		r := runCohort(t, newModel(t), healthy)
		for id, ds := range r.churn {
			t.Errorf("%s: %d churn events, first %+v", id, len(ds), ds[0].Churn)
		}
		// Real moves still report: measured 3.7 per customer in 90 days
		// (an executive login leaving the 14-day window, a ticket, a
		// promoter answer). Daily noise and weekends must not add more:
		// scoring the latest day's utilisation instead of the 7-day mean
		// gave about 29 (measured on 300 customers).
		if per := float64(r.health) / float64(healthy.Customers); per > 5 {
			t.Errorf("%.2f health_score_change per healthy customer in 90 days, want ≤ 5", per)
		}
		t.Logf("%d events, %d health changes", r.events, r.health)
	})

	t.Run("40 % usage drop raises churn for exactly the dropped", func(t *testing.T) {
		c := healthy
		c.DropShare, c.Drop, c.DropFromDay = 0.1, 0.4, 45
		r := runCohort(t, newModel(t), c)
		dropped := 0
		for id, d := range r.dropped {
			ds := r.churn[id]
			switch {
			case d && len(ds) == 0:
				t.Errorf("%s: usage dropped 40 %% and no churn event", id)
			case d && !slices.Contains(ds[0].Churn.RiskIndicators, model.IndicatorUsageDecline):
				t.Errorf("%s: churn without usage_decline_30_percent: %+v", id, ds[0].Churn)
			case !d && len(ds) > 0:
				t.Errorf("%s: not dropped, churn %+v", id, ds[0].Churn)
			}
			if d {
				dropped++
			}
		}
		if dropped != 100 {
			t.Fatalf("%d dropped customers, want 100", dropped)
		}
	})

	t.Run("a trigger-happy model fires on the healthy cohort", func(t *testing.T) {
		cfg := model.DefaultConfig()
		cfg.Sentiment.DetractorMax, cfg.Sentiment.PromoterMin = 7, 9 // passives as detractors
		cfg.Usage.DeclineRatio = 0.95                                // a 5 % dip as a decline
		m, err := model.NewModel(cfg)
		if err != nil {
			t.Fatal(err)
		}
		c := healthy
		c.Customers = 300
		r := runCohort(t, m, c)
		if len(r.churn) < c.Customers/10 {
			t.Fatalf("only %d of %d healthy customers tripped a trigger-happy model: the cohort is too clean to test with", len(r.churn), c.Customers)
		}
		t.Logf("trigger-happy model: churn for %d of %d healthy customers", len(r.churn), c.Customers)
	})
}
