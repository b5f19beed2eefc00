package model

import (
	"errors"
	"fmt"
	"time"
)

// ErrInvalidConfig is returned (wrapped) by NewModel for a Config the model
// cannot run with.
var ErrInvalidConfig = errors.New("processor: invalid model config")

// Churn risk indicators, in the order they appear in risk_indicators.
const (
	IndicatorUsageDecline  = "usage_decline_30_percent"
	IndicatorSupportEscal  = "support_escalation"
	IndicatorPaymentIssue  = "payment_issue"
	IndicatorNpsDetractor  = "nps_detractor"
	IndicatorChampionLeft  = "champion_left"
	IndicatorLowEngagement = "low_engagement"
	IndicatorRenewalAtRisk = "renewal_at_risk"
)

// Churn risk levels (risk_level), lowest first.
const (
	RiskLow      = "low"
	RiskMedium   = "medium"
	RiskHigh     = "high"
	RiskCritical = "critical"
)

// Expansion opportunity types (opportunity_type).
const (
	OpportunityUpsell    = "upsell"
	OpportunityCrossSell = "cross_sell"
)

// Expansion success factors, in the order they appear in success_factors.
const (
	FactorHighAdoption      = "high_adoption"
	FactorStrongHealthScore = "strong_health_score"
	FactorExecSponsorship   = "executive_sponsorship"
	FactorPromoterNPS       = "promoter_nps"
	FactorUsageGrowth       = "usage_growth"
)

// Indicators lists every churn risk indicator in output order.
func Indicators() []string {
	return []string{IndicatorUsageDecline, IndicatorSupportEscal, IndicatorPaymentIssue,
		IndicatorNpsDetractor, IndicatorChampionLeft, IndicatorLowEngagement, IndicatorRenewalAtRisk}
}

// RiskLevels lists the churn risk levels from lowest to highest.
func RiskLevels() []string { return []string{RiskLow, RiskMedium, RiskHigh, RiskCritical} }

// Weights are the relative weights of the six health components. They need
// not add up to 1: the score divides by their sum.
type Weights struct {
	Usage      float64 `yaml:"usage"`
	Engagement float64 `yaml:"engagement"`
	Support    float64 `yaml:"support"`
	Payment    float64 `yaml:"payment"`
	Sentiment  float64 `yaml:"sentiment"`
	Adoption   float64 `yaml:"adoption"`
}

// RiskThresholds are the minimum summed indicator weights of each risk
// level. A sum below Low means no risk.
type RiskThresholds struct {
	Low      int `yaml:"low"`
	Medium   int `yaml:"medium"`
	High     int `yaml:"high"`
	Critical int `yaml:"critical"`
}

// Config tunes the health model. DefaultConfig documents every default; the
// zero Config is not usable (NewModel rejects it).
type Config struct {
	// Weights of the health components (defaults: usage 0.30, engagement
	// 0.15, support 0.20, payment 0.15, sentiment 0.10, adoption 0.10).
	Weights Weights `yaml:"weights"`
	// GreenMin and YellowMin are the band floors: green ≥ 70, yellow ≥ 40,
	// red below.
	GreenMin  int `yaml:"green_min"`
	YellowMin int `yaml:"yellow_min"`
	// ScoreChangeMin is the |Δ| against the last reported score that emits a
	// health_score_change (default 5); a band change emits regardless.
	ScoreChangeMin int `yaml:"score_change_min"`
	// BaselineWindow is how long after a customer's first event its score
	// only sets the baseline, silently (default 24h): the first day of data
	// (contract, first usage, first logins) would otherwise report jumps from
	// an arbitrary starting point.
	BaselineWindow time.Duration `yaml:"baseline_window"`
	// NeutralComponent is the score of a component with no data yet
	// (default 50).
	NeutralComponent float64 `yaml:"neutral_component"`

	// FullUtilisation is the seat utilisation that earns the full
	// utilisation score (default 0.8).
	FullUtilisation float64 `yaml:"full_utilisation"`
	// UsageDeclineRatio: trailing 30-day mean daily active users at or below
	// this share of the previous 30 days is usage_decline_30_percent
	// (default 0.7).
	UsageDeclineRatio float64 `yaml:"usage_decline_ratio"`
	// UsageGrowthRatio: the same ratio at or above this is the usage_growth
	// success factor (default 1.1).
	UsageGrowthRatio float64 `yaml:"usage_growth_ratio"`
	// MinTrendDays is how many days with a usage report each 30-day window
	// needs before the trend counts (default 7).
	MinTrendDays int `yaml:"min_trend_days"`

	// EngagementDays is the login window and the silence that is
	// low_engagement (default 14).
	EngagementDays int `yaml:"engagement_days"`
	// EngagedDayShare is the share of days in the window with a login that
	// earns the full login score (default 0.5).
	EngagedDayShare float64 `yaml:"engaged_day_share"`

	// AdoptionDays is how recent a feature's use must be to count as
	// adopted (default 30).
	AdoptionDays int `yaml:"adoption_days"`
	// FeatureCatalogue is the feature list adoption is measured against when
	// the contract names no plan features (default empty: adoption stays
	// neutral until a contract says).
	FeatureCatalogue []string `yaml:"feature_catalogue"`

	// RenewalWindowDays and RenewalRiskScore define renewal_at_risk: renewal
	// within 90 days and health below 50.
	RenewalWindowDays int `yaml:"renewal_window_days"`
	RenewalRiskScore  int `yaml:"renewal_risk_score"`

	// IndicatorWeights weigh each churn indicator; RiskThresholds map their
	// sum to a level. Defaults: usage decline, support escalation, payment
	// issue, champion left and renewal at risk weigh 2 ("strong"); NPS
	// detractor and low engagement weigh 1. Levels: low ≥ 1, medium ≥ 2,
	// high ≥ 5 (three strong indicators, or two and a weak one), critical
	// ≥ 8 (four strong ones).
	IndicatorWeights map[string]int `yaml:"indicator_weights"`
	RiskThresholds   RiskThresholds `yaml:"risk_thresholds"`
	// RiskRepeatAfter is the least event time between two churn events of
	// the same level for one customer (default 24h).
	RiskRepeatAfter time.Duration `yaml:"risk_repeat_after"`
	// Actions are the recommended_actions of each risk level.
	Actions map[string][]string `yaml:"actions"`

	// ExpansionMinScore is the least health for expansion_ready (default 75).
	ExpansionMinScore int `yaml:"expansion_min_score"`
	// UpsellUtilisation held for UpsellDays consecutive days of usage reports
	// is an upsell (defaults 0.9 and 7).
	UpsellUtilisation float64 `yaml:"upsell_utilisation"`
	UpsellDays        int     `yaml:"upsell_days"`
	// UpsellSeatShare sizes the upsell: extra seats = ceil(seats × share),
	// at least 1 (default 0.2).
	UpsellSeatShare float64 `yaml:"upsell_seat_share"`
	// CrossSellFeatureShare of the plan's features in use is a cross_sell
	// (default 0.8); its value_estimate is CrossSellARRShare of the ARR
	// (default 0.2).
	CrossSellFeatureShare float64 `yaml:"cross_sell_feature_share"`
	CrossSellARRShare     float64 `yaml:"cross_sell_arr_share"`
	// Probability = min(ProbabilityMax, ProbabilityBase + ProbabilityPerFactor
	// × success factors), rounded to 2 decimals (defaults 0.4, 0.1, 0.95).
	ProbabilityBase      float64 `yaml:"probability_base"`
	ProbabilityPerFactor float64 `yaml:"probability_per_factor"`
	ProbabilityMax       float64 `yaml:"probability_max"`
	// StrongScore is the health that is the strong_health_score factor
	// (default 85); high_adoption needs adoption ≥ HighAdoption (default 80).
	StrongScore  int     `yaml:"strong_score"`
	HighAdoption float64 `yaml:"high_adoption"`
	// ExpansionRepeatAfter is the least event time between two
	// expansion_ready events of the same opportunity type (default 30 days).
	ExpansionRepeatAfter time.Duration `yaml:"expansion_repeat_after"`

	// DedupeWindow is how many recent input event ids per customer are
	// remembered to drop duplicates (default 128).
	DedupeWindow int `yaml:"dedupe_window"`
}

// DefaultConfig returns the brief's default health model.
func DefaultConfig() Config {
	return Config{
		Weights:           Weights{Usage: 0.30, Engagement: 0.15, Support: 0.20, Payment: 0.15, Sentiment: 0.10, Adoption: 0.10},
		GreenMin:          70,
		YellowMin:         40,
		ScoreChangeMin:    5,
		BaselineWindow:    24 * time.Hour,
		NeutralComponent:  50,
		FullUtilisation:   0.8,
		UsageDeclineRatio: 0.7,
		UsageGrowthRatio:  1.1,
		MinTrendDays:      7,
		EngagementDays:    14,
		EngagedDayShare:   0.5,
		AdoptionDays:      30,
		RenewalWindowDays: 90,
		RenewalRiskScore:  50,
		IndicatorWeights: map[string]int{
			IndicatorUsageDecline: 2, IndicatorSupportEscal: 2, IndicatorPaymentIssue: 2,
			IndicatorNpsDetractor: 1, IndicatorChampionLeft: 2, IndicatorLowEngagement: 1,
			IndicatorRenewalAtRisk: 2,
		},
		RiskThresholds:  RiskThresholds{Low: 1, Medium: 2, High: 5, Critical: 8},
		RiskRepeatAfter: 24 * time.Hour,
		Actions: map[string][]string{
			RiskLow:      {"monitor_health"},
			RiskMedium:   {"schedule_check_in", "review_usage"},
			RiskHigh:     {"immediate_outreach", "executive_escalation", "success_plan_review"},
			RiskCritical: {"immediate_outreach", "executive_escalation", "success_plan_review", "retention_offer"},
		},
		ExpansionMinScore:     75,
		UpsellUtilisation:     0.9,
		UpsellDays:            7,
		UpsellSeatShare:       0.2,
		CrossSellFeatureShare: 0.8,
		CrossSellARRShare:     0.2,
		ProbabilityBase:       0.4,
		ProbabilityPerFactor:  0.1,
		ProbabilityMax:        0.95,
		StrongScore:           85,
		HighAdoption:          80,
		ExpansionRepeatAfter:  30 * 24 * time.Hour,
		DedupeWindow:          128,
	}
}

// validate reports the first setting the model cannot run with.
func (c Config) validate() error {
	w := c.Weights
	for _, v := range []float64{w.Usage, w.Engagement, w.Support, w.Payment, w.Sentiment, w.Adoption} {
		if v < 0 {
			return fmt.Errorf("%w: negative weight %v", ErrInvalidConfig, v)
		}
	}
	switch {
	case w.Usage+w.Engagement+w.Support+w.Payment+w.Sentiment+w.Adoption <= 0:
		return fmt.Errorf("%w: weights sum to zero", ErrInvalidConfig)
	case c.YellowMin > c.GreenMin:
		return fmt.Errorf("%w: yellow_min %d above green_min %d", ErrInvalidConfig, c.YellowMin, c.GreenMin)
	case c.ScoreChangeMin < 1:
		return fmt.Errorf("%w: score_change_min %d below 1", ErrInvalidConfig, c.ScoreChangeMin)
	case c.FullUtilisation <= 0:
		return fmt.Errorf("%w: full_utilisation must be positive", ErrInvalidConfig)
	case c.MinTrendDays < 1 || c.EngagementDays < 1 || c.AdoptionDays < 1 || c.UpsellDays < 1:
		return fmt.Errorf("%w: day counts must be at least 1", ErrInvalidConfig)
	case c.EngagedDayShare <= 0:
		return fmt.Errorf("%w: engaged_day_share must be positive", ErrInvalidConfig)
	case c.RiskThresholds.Low < 1 || c.RiskThresholds.Medium < c.RiskThresholds.Low ||
		c.RiskThresholds.High < c.RiskThresholds.Medium || c.RiskThresholds.Critical < c.RiskThresholds.High:
		return fmt.Errorf("%w: risk thresholds must be ≥ 1 and ascending", ErrInvalidConfig)
	case c.DedupeWindow < 0:
		return fmt.Errorf("%w: negative dedupe_window", ErrInvalidConfig)
	}
	return nil
}
