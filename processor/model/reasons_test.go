package model_test

import (
	"slices"
	"testing"
	"time"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/journey"
	"github.com/vitalshq/vitals/processor/model"
)

// ev is an input event of cust_1.
func ev(id string, ts time.Time, p event.Payload) event.CustomerEvent {
	return event.CustomerEvent{EventID: id, CustomerID: "cust_1", OccurredAt: ts, Data: p}
}

func usage(id string, ts time.Time, active, seats int64, features ...string) event.CustomerEvent {
	return ev(id, ts, event.UsageReported{ActiveUsers: active, SeatsPurchased: seats, FeaturesUsed: features})
}

func login(id string, ts time.Time, role string) event.CustomerEvent {
	return ev(id, ts, event.LoginRecorded{UserID: "u_" + id, Role: role})
}

func payment(id string, ts time.Time, invoice, status string) event.CustomerEvent {
	return ev(id, ts, event.PaymentEvent{InvoiceID: invoice, Status: status, AmountCents: 100_000})
}

func contract(id string, ts time.Time, seats, arrCents int64, renewal string, features ...string) event.CustomerEvent {
	return ev(id, ts, event.ContractUpdated{Plan: "pro", Seats: seats, ArrCents: arrCents, RenewalDate: renewal, PlanFeatures: features})
}

func prioTicket(id string, ts time.Time, ticketID, status, prio string) event.CustomerEvent {
	return ev(id, ts, event.SupportTicket{TicketID: ticketID, Status: status, Priority: prio})
}

var (
	actLow      = []string{"monitor_health"}
	actMedium   = []string{"schedule_check_in", "review_usage"}
	actHigh     = []string{"immediate_outreach", "executive_escalation", "success_plan_review"}
	actCritical = []string{"immediate_outreach", "executive_escalation", "success_plan_review", "retention_offer"}
)

// TestChangeReasons drives each change_reason with the fewest events. With
// no data, components are neutral (50) except support and payment (100):
// 0.30×50 + 0.15×50 + 0.20×100 + 0.15×100 + 0.10×50 + 0.10×50 = 67.5 → 68.
// The first event's day (before BaselineWindow ends) only sets the
// baseline; the event on day 2 or later moves the score.
func TestChangeReasons(t *testing.T) {
	tests := []struct {
		reason string
		evs    []event.CustomerEvent
		want   []event.Derived
	}{{
		// Day 0: 40/50 seats = full utilisation → usage 100: 82.5 → 83.
		// Day 2: 10/50: 7-day mean utilisation 0.5 → 62.5 × 0.7 + 30 =
		// 73.75 → 74.625 → 75.
		reason: "usage_decline",
		evs:    []event.CustomerEvent{usage("a", at(0, 9, 0), 40, 50), usage("b", at(2, 9, 0), 10, 50)},
		want:   []event.Derived{health(at(2, 9, 0), 83, 75, "usage_decline")},
	}, {
		reason: "usage_growth",
		evs:    []event.CustomerEvent{usage("a", at(0, 9, 0), 10, 50), usage("b", at(2, 9, 0), 40, 50)},
		// Day 0: utilisation 0.2 → 25 × 0.7 + 30 = 47.5 → 66.75 → 67.
		// Day 2: 7-day mean 0.5 → 73.75 → 74.625 → 75.
		want: []event.Derived{health(at(2, 9, 0), 67, 75, "usage_growth")},
	}, {
		// Day 0: a login → logins on 1 of 1 days → 100 × 0.8 = 80: 72. Day
		// 3: 1 of 4 days = 50 % of EngagedDayShare → 40: 66.
		reason: "engagement_drop",
		evs:    []event.CustomerEvent{login("a", at(0, 9, 0), "user"), payment("b", at(3, 9, 0), "i1", "succeeded")},
		want:   []event.Derived{health(at(3, 9, 0), 72, 66, "engagement_drop")},
	}, {
		// Young and no login: neutral 50. An executive login on day 2: 1 of
		// 3 days → 0.8 × 66.7 + 20 = 73.3: 71, only 3 points but green.
		// (Day 3's second login: 2 of 4 days → 100: 75, Δ 4: silent.)
		reason: "engagement_gain",
		evs: []event.CustomerEvent{payment("a", at(0, 9, 0), "i1", "succeeded"),
			login("b", at(2, 9, 0), "executive"), login("c", at(3, 9, 0), "executive")},
		want: []event.Derived{health(at(2, 9, 0), 68, 71, "engagement_gain")},
	}, {
		// An escalated ticket: support 60 → 59.5 → 60; it is also the
		// support_escalation churn indicator (weight 2: medium).
		reason: "support_escalation",
		evs:    []event.CustomerEvent{payment("a", at(0, 9, 0), "i1", "succeeded"), ticket("b", at(2, 9, 0), "t1", "escalated")},
		want: []event.Derived{health(at(2, 9, 0), 68, 60, "support_escalation"),
			churn(at(2, 9, 0), "medium", []string{"support_escalation"}, actMedium)},
	}, {
		// Two open high tickets: 100 - 2 × (10 + 10) = 60; nothing escalated.
		reason: "support_tickets_opened",
		evs: []event.CustomerEvent{payment("a", at(0, 9, 0), "i1", "succeeded"),
			prioTicket("b", at(2, 9, 0), "t1", "opened", "high"), prioTicket("c", at(2, 9, 5), "t2", "opened", "urgent")},
		want: []event.Derived{health(at(2, 9, 5), 68, 60, "support_tickets_opened")},
	}, {
		// The baseline has the escalation (and its churn event: churn is
		// not held back by the baseline window); resolving it adds 8.
		reason: "support_resolved",
		evs:    []event.CustomerEvent{ticket("a", at(0, 9, 0), "t1", "escalated"), ticket("b", at(2, 9, 0), "t1", "resolved")},
		want: []event.Derived{churn(at(0, 9, 0), "medium", []string{"support_escalation"}, actMedium),
			health(at(2, 9, 0), 60, 68, "support_resolved")},
	}, {
		// A failed invoice: payment 50 → 60; churn medium (payment_issue).
		reason: "payment_issue",
		evs:    []event.CustomerEvent{payment("a", at(0, 9, 0), "i1", "succeeded"), payment("b", at(2, 9, 0), "i2", "failed")},
		want: []event.Derived{health(at(2, 9, 0), 68, 60, "payment_issue"),
			churn(at(2, 9, 0), "medium", []string{"payment_issue"}, actMedium)},
	}, {
		reason: "payment_recovered",
		evs:    []event.CustomerEvent{payment("a", at(0, 9, 0), "i1", "overdue"), payment("b", at(2, 9, 0), "i1", "succeeded")},
		want: []event.Derived{churn(at(0, 9, 0), "medium", []string{"payment_issue"}, actMedium),
			health(at(2, 9, 0), 60, 68, "payment_recovered")},
	}, {
		// NPS 0: sentiment 0 → 62.5 → 63 (Δ 5); churn low (nps_detractor
		// weighs 1).
		reason: "nps_detractor",
		evs:    []event.CustomerEvent{payment("a", at(0, 9, 0), "i1", "succeeded"), nps("b", at(2, 9, 0), 0)},
		want: []event.Derived{health(at(2, 9, 0), 68, 63, "nps_detractor"),
			churn(at(2, 9, 0), "low", []string{"nps_detractor"}, actLow)},
	}, {
		// A passive answer after a promoter: only 3 points, but the score
		// leaves green (an open ticket makes the baseline 70.5 → 71; NPS 7:
		// 67.5 → 68).
		reason: "nps_decline",
		evs: []event.CustomerEvent{nps("a", at(0, 9, 0), 10), prioTicket("b", at(0, 9, 5), "t1", "opened", "normal"),
			nps("c", at(2, 9, 0), 7)},
		want: []event.Derived{health(at(2, 9, 0), 71, 68, "nps_decline")},
	}, {
		reason: "nps_promoter",
		evs:    []event.CustomerEvent{payment("a", at(0, 9, 0), "i1", "succeeded"), nps("b", at(2, 9, 0), 10)},
		want:   []event.Derived{health(at(2, 9, 0), 68, 73, "nps_promoter")},
	}, {
		// From a detractor (0) to a passive (8): +8 points.
		reason: "nps_improved",
		evs:    []event.CustomerEvent{nps("a", at(0, 9, 0), 0), nps("b", at(2, 9, 0), 8)},
		want: []event.Derived{churn(at(0, 9, 0), "low", []string{"nps_detractor"}, actLow),
			health(at(2, 9, 0), 63, 71, "nps_improved")},
	}, {
		// Both plan features in use (adoption 100, usage 100: 87.5 → 88,
		// and a cross_sell of 20 % of ARR 10 000), then the plan grows to
		// four features: adoption 50 → 82.5 → 83.
		reason: "adoption_drop",
		evs: []event.CustomerEvent{contract("a", at(0, 9, 0), 10, 1_000_000, "", "f1", "f2"),
			usage("b", at(0, 10, 0), 8, 10, "f1", "f2"),
			contract("c", at(2, 9, 0), 10, 1_000_000, "", "f1", "f2", "f3", "f4")},
		want: []event.Derived{expansion(at(0, 10, 0), "cross_sell", 2000, 0.6, []string{"high_adoption", "strong_health_score"}),
			health(at(2, 9, 0), 88, 83, "adoption_drop")},
	}, {
		reason: "adoption_gain",
		evs: []event.CustomerEvent{contract("a", at(0, 9, 0), 10, 1_000_000, "", "f1", "f2", "f3", "f4"),
			usage("b", at(0, 10, 0), 8, 10, "f1", "f2"),
			usage("c", at(2, 10, 0), 8, 10, "f3", "f4")},
		want: []event.Derived{health(at(2, 10, 0), 83, 88, "adoption_gain"),
			expansion(at(2, 10, 0), "cross_sell", 2000, 0.6, []string{"high_adoption", "strong_health_score"})},
	}}
	covered := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.reason, func(t *testing.T) {
			got := applyAll(t, newModel(t), &model.State{}, tt.evs)
			sameDerived(t, got, tt.want)
			for _, d := range got {
				if d.Health != nil {
					covered[d.Health.ChangeReason] = true
				}
			}
		})
	}
	for _, r := range model.ChangeReasons() {
		if !covered[r] {
			t.Errorf("change_reason %s has no case", r)
		}
	}
}

// TestChurnIndicatorsAndRiskLevels drives each indicator alone (and the
// levels their weights reach), then combinations up to critical.
func TestChurnIndicatorsAndRiskLevels(t *testing.T) {
	tests := []struct {
		name string
		evs  []event.CustomerEvent
		want []event.Derived // every churn event
	}{{
		name: "champion_left alone is medium",
		evs:  []event.CustomerEvent{ev("s1", at(0, 9, 0), event.SponsorChanged{HasExecSponsor: true, ChampionLeft: true})},
		want: []event.Derived{churn(at(0, 9, 0), "medium", []string{"champion_left"}, actMedium)},
	}, {
		// No login for 14 days counts only once the customer is 14 days
		// old.
		name: "low_engagement alone is low",
		evs: []event.CustomerEvent{usage("u1", at(0, 9, 0), 8, 10), usage("u2", at(13, 9, 0), 8, 10),
			usage("u3", at(14, 9, 0), 8, 10)},
		want: []event.Derived{churn(at(14, 9, 0), "low", []string{"low_engagement"}, actLow)},
	}, {
		name: "low_engagement after the last login",
		evs: []event.CustomerEvent{login("l1", at(0, 9, 0), "user"), login("l2", at(10, 9, 0), "user"),
			usage("u1", at(24, 8, 59), 8, 10), usage("u2", at(24, 9, 0), 8, 10)},
		want: []event.Derived{churn(at(24, 9, 0), "low", []string{"low_engagement"}, actLow)},
	}, {
		name: "nps_detractor alone is low; 6 is a detractor",
		evs:  []event.CustomerEvent{nps("n1", at(0, 9, 0), 6)},
		want: []event.Derived{churn(at(0, 9, 0), "low", []string{"nps_detractor"}, actLow)},
	}, {
		name: "support_escalation alone is medium",
		evs:  []event.CustomerEvent{ticket("t1", at(0, 9, 0), "t1", "escalated")},
		want: []event.Derived{churn(at(0, 9, 0), "medium", []string{"support_escalation"}, actMedium)},
	}, {
		name: "payment_issue alone is medium; overdue counts",
		evs:  []event.CustomerEvent{payment("p1", at(0, 9, 0), "i1", "overdue")},
		want: []event.Derived{churn(at(0, 9, 0), "medium", []string{"payment_issue"}, actMedium)},
	}, {
		name: "usage_decline_30_percent alone is medium (the churning journey up to day 54)",
		evs:  journeyUpTo(54),
		want: []event.Derived{churn(at(54, 10, 0), "medium", []string{"usage_decline_30_percent"}, actMedium)},
	}, {
		// Renewal in 30 days; two failed invoices (payment 0) and an
		// escalation (support 60) take the score to 45 (< 50):
		// renewal_at_risk joins. Medium at the first failure (2), then
		// high at the escalation (2 + 2 + renewal 2 = 6).
		name: "renewal_at_risk needs health below 50",
		evs: []event.CustomerEvent{
			contract("c1", at(0, 9, 0), 10, 1_000_000, at(30, 0, 0).Format(time.DateOnly)),
			payment("p1", at(0, 9, 1), "i1", "failed"),
			payment("p2", at(0, 9, 2), "i2", "overdue"),
			ticket("t1", at(0, 9, 3), "t1", "escalated"),
		},
		want: []event.Derived{
			churn(at(0, 9, 1), "medium", []string{"payment_issue"}, actMedium),
			churn(at(0, 9, 3), "high", []string{"support_escalation", "payment_issue", "renewal_at_risk"}, actHigh),
		},
	}, {
		name: "renewal beyond the window is no risk",
		evs: []event.CustomerEvent{
			contract("c1", at(0, 9, 0), 10, 1_000_000, at(91, 0, 0).Format(time.DateOnly)),
			payment("p1", at(0, 9, 1), "i1", "failed"),
			payment("p2", at(0, 9, 2), "i2", "overdue"),
			ticket("t1", at(0, 9, 3), "t1", "escalated"),
		},
		want: []event.Derived{churn(at(0, 9, 1), "medium", []string{"payment_issue"}, actMedium)},
	}, {
		// Levels rise low (detractor 1) → medium (+ payment 2 = 3) → high
		// (+ escalation 2, and the score falls to 47, below 50 with renewal
		// in 60 days: + renewal_at_risk 2 = 7) → critical (+ champion left
		// = 9).
		name: "each level in turn up to critical",
		evs: []event.CustomerEvent{
			contract("c1", at(0, 9, 0), 10, 1_000_000, at(60, 0, 0).Format(time.DateOnly)),
			nps("n1", at(0, 10, 0), 0),
			payment("p1", at(0, 11, 0), "i1", "failed"),
			ticket("t1", at(0, 12, 0), "t1", "escalated"),
			ev("s1", at(0, 13, 0), event.SponsorChanged{ChampionLeft: true}),
		},
		want: []event.Derived{
			churn(at(0, 10, 0), "low", []string{"nps_detractor"}, actLow),
			churn(at(0, 11, 0), "medium", []string{"payment_issue", "nps_detractor"}, actMedium),
			churn(at(0, 12, 0), "high", []string{"support_escalation", "payment_issue", "nps_detractor", "renewal_at_risk"}, actHigh),
			churn(at(0, 13, 0), "critical", []string{"support_escalation", "payment_issue", "nps_detractor", "champion_left", "renewal_at_risk"}, actCritical),
		},
	}}
	levels := map[string]bool{}
	indicators := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := ofType(applyAll(t, newModel(t), &model.State{}, tt.evs), event.ChurnRiskDetected)
			sameDerived(t, got, tt.want)
			for _, d := range got {
				levels[d.Churn.RiskLevel] = true
				for _, in := range d.Churn.RiskIndicators {
					indicators[in] = true
				}
			}
		})
	}
	for _, l := range model.RiskLevels() {
		if !levels[l] {
			t.Errorf("risk level %s has no case", l)
		}
	}
	for _, in := range model.Indicators() {
		if !indicators[in] {
			t.Errorf("indicator %s has no case", in)
		}
	}
}

// journeyUpTo is the churning journey's events before day d+1.
func journeyUpTo(d int) []event.CustomerEvent {
	var out []event.CustomerEvent
	for _, e := range journey.Churning("cust_1", start) {
		if e.OccurredAt.Before(at(d+1, 0, 0)) {
			out = append(out, e)
		}
	}
	return out
}

// TestExpansion: upsell and cross_sell with their value estimates and
// probabilities, once per opportunity per 30 days, never beside a churn
// indicator, and tuned by the config.
func TestExpansion(t *testing.T) {
	features := []string{"a", "b", "c", "d", "e"}
	day := func(d int, id string) []event.CustomerEvent {
		return []event.CustomerEvent{login(id+"-l", at(d, 9, 0), "user"),
			usage(id+"-u", at(d, 10, 0), 8, 10, features[:4]...)}
	}
	crossSell := append([]event.CustomerEvent{contract("c1", at(0, 8, 0), 10, 1_000_000, "2026-01-01", features...)}, day(0, "d0")...)
	crossSell = append(crossSell, day(1, "d1")...)
	crossSell = append(crossSell, day(31, "d31")...)

	upsellCfg := model.DefaultConfig()
	upsellCfg.Expansion.UpsellSeatShare = 0.5
	upsellCfg.Expansion.ProbabilityMax = 0.6

	tests := []struct {
		name string
		cfg  model.Config
		evs  []event.CustomerEvent
		want []event.Derived
	}{{
		// Day 0: 8/10 seats (usage 100), 4 of 5 plan features (adoption
		// 80), a login (engagement 80): score 90. value 20 % of ARR
		// 10 000; factors high adoption and strong health: 0.4 + 2 × 0.1.
		// Day 1 is within 30 days: nothing. Day 31: again, now with a weak
		// engagement (1 login day of 14): score 80, only high adoption.
		name: "cross_sell once per 30 days",
		cfg:  model.DefaultConfig(),
		evs:  crossSell,
		want: []event.Derived{
			expansion(at(0, 10, 0), "cross_sell", 2000, 0.6, []string{"high_adoption", "strong_health_score"}),
			expansion(at(31, 10, 0), "cross_sell", 2000, 0.5, []string{"high_adoption"}),
		},
	}, {
		name: "no expansion beside a churn indicator",
		cfg:  model.DefaultConfig(),
		evs:  append([]event.CustomerEvent{nps("n0", at(0, 7, 0), 6)}, crossSell[:3]...),
		want: []event.Derived{churn(at(0, 7, 0), "low", []string{"nps_detractor"}, actLow)},
	}, {
		// The expanding journey's upsell with upsell_seat_share 0.5 (25
		// extra seats × 1 200) and probability_max 0.6.
		name: "upsell tuned",
		cfg:  upsellCfg,
		evs:  journey.Expanding("cust_1", start),
		want: []event.Derived{expansion(at(36, 10, 0), "upsell", 30000, 0.6,
			[]string{"strong_health_score", "executive_sponsorship", "promoter_nps", "usage_growth"})},
	}}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := model.NewModel(tt.cfg)
			if err != nil {
				t.Fatal(err)
			}
			got := applyAll(t, m, &model.State{}, tt.evs)
			got = slices.DeleteFunc(got, func(d event.Derived) bool { return d.Event == event.HealthScoreChange })
			sameDerived(t, got, tt.want)
		})
	}
}
