package model

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/vitalshq/vitals/event"
)

// The explanation of a derived event is built only when one is emitted, so
// its allocations do not burden the common Apply that emits nothing.

// explainBase fills what every explanation carries: scores and bands before
// (as last reported) and after, component scores, and the inputs that moved
// them since the last report.
func (m *Model) explainBase(st *State, s signals, prev reported) *event.Explanation {
	x := &event.Explanation{
		Score:              s.score,
		Band:               m.Band(s.score),
		PreviousScore:      prev.score,
		PreviousBand:       m.Band(prev.score),
		Components:         componentScores(s.comps),
		PreviousComponents: componentScores(prev.comps),
	}
	deltas := m.weightedDeltas(prev.comps, s.comps)
	old, cur := componentArray(prev.comps), componentArray(s.comps)
	for i, name := range componentNames {
		delta := round2(cur[i] - old[i])
		if delta == 0 {
			continue
		}
		x.Inputs = append(x.Inputs, event.ExplanationInput{Component: name, Delta: delta,
			ScoreDelta: round2(deltas[i]), Because: m.because(i, st, s)})
	}
	slices.SortStableFunc(x.Inputs, func(a, b event.ExplanationInput) int {
		return cmp.Compare(math.Abs(b.ScoreDelta), math.Abs(a.ScoreDelta))
	})
	return x
}

// explainHealth explains a health_score_change; moved is the index of the
// component named by its change_reason.
func (m *Model) explainHealth(st *State, s signals, prev reported, moved int) *event.Explanation {
	x := m.explainBase(st, s, prev)
	d := m.weightedDeltas(prev.comps, s.comps)[moved]
	x.Summary = fmt.Sprintf("score %d → %d (%s → %s); %s moved it most (%+.1f points)",
		prev.score, s.score, x.PreviousBand, x.Band, componentNames[moved], d)
	return x
}

// explainChurn explains a churn_risk_detected.
func (m *Model) explainChurn(st *State, s signals, prev reported, level string, points int, indicators []string) *event.Explanation {
	x := m.explainBase(st, s, prev)
	x.RiskPoints = points
	for _, in := range indicators {
		x.Indicators = append(x.Indicators, event.IndicatorEvidence{Indicator: in,
			Weight: m.cfg.Churn.IndicatorWeights[in], Evidence: m.evidence(in, st, s)})
	}
	x.Summary = fmt.Sprintf("risk %s: %d indicator(s) weigh %d (%s from %d)",
		level, len(indicators), points, level, m.threshold(level))
	return x
}

// explainExpansion explains an expansion_ready.
func (m *Model) explainExpansion(st *State, s signals, prev reported, kind string, value, extra int64, streak int, factors []string) *event.Explanation {
	x := m.explainBase(st, s, prev)
	for _, f := range factors {
		x.Factors = append(x.Factors, event.FactorEvidence{Factor: f, Evidence: m.factorEvidence(f, st, s)})
	}
	c := st.Contract
	switch kind {
	case OpportunityUpsell:
		x.Summary = fmt.Sprintf("upsell: seat utilisation ≥ %s for %d days (latest %d of %d seats); %d extra seats × %s per seat = %d",
			pct(m.cfg.Expansion.UpsellUtilisation), streak, s.active, s.seats, extra,
			trimFloat(float64(c.ArrCents)/100/float64(c.Seats)), value)
	case OpportunityCrossSell:
		x.Summary = fmt.Sprintf("cross_sell: %d of %d plan features in use (≥ %s); %s of ARR %s = %d",
			s.adoptUsed, s.adoptCatalog, pct(m.cfg.Expansion.CrossSellFeatureShare),
			pct(m.cfg.Expansion.CrossSellARRShare), trimFloat(float64(c.ArrCents)/100), value)
	}
	x.Summary += fmt.Sprintf("; health %d ≥ %d, no churn indicator, %d success factor(s)",
		s.score, m.cfg.Expansion.MinScore, len(factors))
	return x
}

// threshold is the least risk points of level.
func (m *Model) threshold(level string) int {
	t := m.cfg.Churn.RiskThresholds
	switch level {
	case RiskCritical:
		return t.Critical
	case RiskHigh:
		return t.High
	case RiskMedium:
		return t.Medium
	}
	return t.Low
}

// because says what measurements component i's score stands on.
func (m *Model) because(i int, st *State, s signals) string {
	switch componentNames[i] {
	case "usage":
		var parts []string
		if s.utilKnown {
			parts = append(parts, fmt.Sprintf("seat utilisation %s (mean of %d day(s); latest %d of %d seats)",
				pct(s.utilisation), s.utilDays, s.active, s.seats))
		} else {
			parts = append(parts, "seat utilisation unknown")
		}
		if s.trendKnown {
			parts = append(parts, m.trendText(s))
		} else {
			parts = append(parts, fmt.Sprintf("30-day trend not yet known (%d and %d days of reports, need %d each)",
				s.trailDays, s.prevDays, m.cfg.Usage.MinTrendDays))
		}
		return strings.Join(parts, "; ")
	case "engagement":
		if s.engagementNeutral {
			return "no login yet"
		}
		exec := "no executive login"
		if s.execLogin {
			exec = "an executive login"
		}
		return fmt.Sprintf("logins on %d of the last %d days; %s", s.loginDays, s.loginSpan, exec)
	case "support":
		return fmt.Sprintf("%d open ticket(s) (%d high or urgent), %d escalated", s.open+s.escalated, s.urgent, s.escalated)
	case "payment":
		if s.unpaid == 0 {
			return "no failed or overdue invoice"
		}
		return fmt.Sprintf("%d failed or overdue invoice(s): %s", s.unpaid, strings.Join(m.unpaidIDs(st), ", "))
	case "sentiment":
		if st.NPS == nil {
			return "no NPS answer yet"
		}
		return fmt.Sprintf("latest NPS %d (%s) on %s", st.NPS.Score, m.npsClass(int(st.NPS.Score)), st.NPS.At.Format(time.DateOnly))
	case "adoption":
		if !s.adoptKnown {
			return "no feature catalogue yet"
		}
		of := "the feature catalogue"
		if s.adoptFromPlan {
			of = "the plan's features"
		}
		return fmt.Sprintf("%d of %d of %s used in the last %d days", s.adoptUsed, s.adoptCatalog, of, m.cfg.Adoption.WindowDays)
	}
	return ""
}

func (m *Model) trendText(s signals) string {
	return fmt.Sprintf("trailing %d-day active users %s vs previous %s (%+.0f%%)", m.cfg.Usage.TrendWindowDays,
		trimFloat(round1(s.trailMean)), trimFloat(round1(s.prevMean)), 100*(s.trend-1))
}

func (m *Model) npsClass(score int) string {
	switch {
	case score <= m.cfg.Sentiment.DetractorMax:
		return "detractor"
	case score >= m.cfg.Sentiment.PromoterMin:
		return "promoter"
	}
	return "passive"
}

// evidence says why churn indicator in holds.
func (m *Model) evidence(in string, st *State, s signals) string {
	switch in {
	case IndicatorUsageDecline:
		return fmt.Sprintf("%s; at or below %s", m.trendText(s), pct(m.cfg.Usage.DeclineRatio))
	case IndicatorSupportEscal:
		var ids []string
		for id, tk := range st.Tickets {
			if tk.Status == "escalated" {
				ids = append(ids, id)
			}
		}
		slices.Sort(ids)
		return "escalated ticket(s): " + strings.Join(ids, ", ")
	case IndicatorPaymentIssue:
		return "failed or overdue invoice(s): " + strings.Join(m.unpaidIDs(st), ", ")
	case IndicatorNpsDetractor:
		return fmt.Sprintf("latest NPS %d on %s (detractor ≤ %d)", st.NPS.Score, st.NPS.At.Format(time.DateOnly), m.cfg.Sentiment.DetractorMax)
	case IndicatorChampionLeft:
		return "sponsor report of " + st.Sponsor.At.Format(time.DateOnly) + ": champion left"
	case IndicatorLowEngagement:
		if st.LastLoginAt.IsZero() {
			return fmt.Sprintf("no login since first seen on %s (%d days or more)", st.FirstSeen.Format(time.DateOnly), m.cfg.Churn.LowEngagementDays)
		}
		return fmt.Sprintf("no login since %s (%d days or more)", st.LastLoginAt.Format(time.DateOnly), m.cfg.Churn.LowEngagementDays)
	case IndicatorRenewalAtRisk:
		days := int(st.Contract.Renewal.Sub(st.Now.Truncate(24*time.Hour)).Hours() / 24)
		return fmt.Sprintf("renewal on %s in %d days (within %d) and health %d below %d",
			st.Contract.Renewal.Format(time.DateOnly), days, m.cfg.Churn.RenewalWindowDays, s.score, m.cfg.Churn.RenewalRiskScore)
	}
	return ""
}

// factorEvidence says why success factor f holds.
func (m *Model) factorEvidence(f string, st *State, s signals) string {
	switch f {
	case FactorHighAdoption:
		return fmt.Sprintf("adoption %s (%d of %d features) ≥ %s", trimFloat(round1(100*s.adoption)), s.adoptUsed, s.adoptCatalog,
			trimFloat(m.cfg.Expansion.HighAdoption))
	case FactorStrongHealthScore:
		return fmt.Sprintf("health %d ≥ %d", s.score, m.cfg.Expansion.StrongScore)
	case FactorExecSponsorship:
		var why []string
		if st.Sponsor != nil && st.Sponsor.HasExecSponsor {
			why = append(why, "executive sponsor on record")
		}
		if s.execLogin {
			why = append(why, fmt.Sprintf("executive login within %d days", s.loginSpan))
		}
		return strings.Join(why, "; ")
	case FactorPromoterNPS:
		return fmt.Sprintf("latest NPS %d (promoter ≥ %d)", st.NPS.Score, m.cfg.Sentiment.PromoterMin)
	case FactorUsageGrowth:
		return fmt.Sprintf("%s; at or above %s", m.trendText(s), pct(m.cfg.Usage.GrowthRatio))
	}
	return ""
}

// unpaidIDs lists the failed or overdue invoices, sorted.
func (m *Model) unpaidIDs(st *State) []string {
	var ids []string
	for id, inv := range st.Invoices {
		if inv.Status == "failed" || inv.Status == "overdue" {
			ids = append(ids, id)
		}
	}
	slices.Sort(ids)
	return ids
}

func componentScores(c Components) event.ComponentScores {
	return event.ComponentScores{Usage: round2(c.Usage), Engagement: round2(c.Engagement), Support: round2(c.Support),
		Payment: round2(c.Payment), Sentiment: round2(c.Sentiment), Adoption: round2(c.Adoption)}
}

func componentArray(c Components) [6]float64 {
	return [6]float64{c.Usage, c.Engagement, c.Support, c.Payment, c.Sentiment, c.Adoption}
}

func round1(x float64) float64 { return math.Round(x*10) / 10 }
func round2(x float64) float64 { return math.Round(x*100) / 100 }

// pct formats a share as a percentage: 0.7 → "70%".
func pct(x float64) string { return trimFloat(round1(100*x)) + "%" }

// trimFloat formats x without trailing zeros: 50 → "50", 34.7 → "34.7".
func trimFloat(x float64) string { return fmt.Sprintf("%g", x) }
