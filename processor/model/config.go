package model

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"slices"
	"sort"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// ErrInvalidConfig is wrapped by every error of LoadConfig, Validate and
// NewModel about a Config the model cannot run with.
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

// Config tunes the health model. Every number of the model is here;
// DefaultConfig is the brief's model and documents every default, and
// deploy/model.yaml spells the same defaults as a YAML file (LoadConfig).
// The zero Config is not usable (Validate rejects it).
//
// The yaml tags are the keys of the model config file; nested structs are
// its sections.
type Config struct {
	// Weights of the six health components; they must sum to 1.
	Weights Weights `yaml:"weights"`
	// Bands are the score floors of the green and yellow bands.
	Bands Bands `yaml:"bands"`
	// NeutralComponent is the score of a component with no data yet
	// (default 50).
	NeutralComponent float64 `yaml:"neutral_component"`
	// HealthChange says when a health_score_change is emitted.
	HealthChange HealthChangeConfig `yaml:"health_change"`

	Usage      UsageConfig      `yaml:"usage"`
	Engagement EngagementConfig `yaml:"engagement"`
	Support    SupportConfig    `yaml:"support"`
	Payment    PaymentConfig    `yaml:"payment"`
	Sentiment  SentimentConfig  `yaml:"sentiment"`
	Adoption   AdoptionConfig   `yaml:"adoption"`

	Churn     ChurnConfig     `yaml:"churn"`
	Expansion ExpansionConfig `yaml:"expansion"`
	// Input governs late and duplicate input and what State remembers.
	Input InputConfig `yaml:"input"`
}

// Weights are the weights of the six health components (defaults: usage
// 0.30, engagement 0.15, support 0.20, payment 0.15, sentiment 0.10,
// adoption 0.10). Each is in [0, 1] and they sum to 1 within 1e-9.
type Weights struct {
	Usage      float64 `yaml:"usage"`
	Engagement float64 `yaml:"engagement"`
	Support    float64 `yaml:"support"`
	Payment    float64 `yaml:"payment"`
	Sentiment  float64 `yaml:"sentiment"`
	Adoption   float64 `yaml:"adoption"`
}

// Bands are the band floors: green ≥ GreenMin (70), yellow ≥ YellowMin
// (40), red below.
type Bands struct {
	GreenMin  int `yaml:"green_min"`
	YellowMin int `yaml:"yellow_min"`
}

// HealthChangeConfig says when a health_score_change is emitted.
type HealthChangeConfig struct {
	// MinDelta is the |Δ| against the last reported score that emits
	// (default 5); a band change emits regardless.
	MinDelta int `yaml:"min_delta"`
	// BaselineWindow is how long after a customer's first event its score
	// only sets the baseline, silently (default 24h): the first day of data
	// (contract, first usage, first logins) would otherwise report jumps from
	// an arbitrary starting point.
	BaselineWindow time.Duration `yaml:"baseline_window"`
}

// UsageConfig tunes the usage component and the usage trend.
type UsageConfig struct {
	// TrendWindowDays is one trend window (default 30): the trend compares
	// the mean daily active users of the trailing window with the window
	// before it, so State keeps 2 × TrendWindowDays daily buckets.
	TrendWindowDays int `yaml:"trend_window_days"`
	// MinTrendDays is how many days with a usage report each window needs
	// before the trend counts (default 7).
	MinTrendDays int `yaml:"min_trend_days"`
	// UtilisationDays is how many recent days the seat utilisation is
	// averaged over (default 7), so a weekend dip does not move the score.
	UtilisationDays int `yaml:"utilisation_days"`
	// FullUtilisation earns the full utilisation score (default 0.8).
	FullUtilisation float64 `yaml:"full_utilisation"`
	// UtilisationShare is utilisation's share of the usage component; the
	// trend is the rest (default 0.7).
	UtilisationShare float64 `yaml:"utilisation_share"`
	// DeclinePointsPerPercent is what each percent of decline costs the
	// trend part (default 2: a 50 % decline scores 0).
	DeclinePointsPerPercent float64 `yaml:"decline_points_per_percent"`
	// DeclineRatio: trend at or below it is usage_decline_30_percent
	// (default 0.7).
	DeclineRatio float64 `yaml:"decline_ratio"`
	// GrowthRatio: trend at or above it is the usage_growth success factor
	// (default 1.1).
	GrowthRatio float64 `yaml:"growth_ratio"`
}

// EngagementConfig tunes the engagement component.
type EngagementConfig struct {
	// WindowDays is the login window (default 14).
	WindowDays int `yaml:"window_days"`
	// EngagedDayShare of the window's days with a login earns the full
	// login score (default 0.5).
	EngagedDayShare float64 `yaml:"engaged_day_share"`
	// ExecLoginShare is the share of the component earned by an executive
	// login within the window (default 0.2).
	ExecLoginShare float64 `yaml:"exec_login_share"`
}

// SupportConfig tunes the support component: 100 minus the penalties.
type SupportConfig struct {
	OpenPenalty         float64 `yaml:"open_penalty"`          // per open ticket (10)
	HighPriorityPenalty float64 `yaml:"high_priority_penalty"` // extra per open high/urgent ticket (10)
	EscalatedPenalty    float64 `yaml:"escalated_penalty"`     // per escalated ticket (40)
	// ResolvedKeep is how long a resolved ticket is remembered, so a late
	// update cannot reopen it (default 720h).
	ResolvedKeep time.Duration `yaml:"resolved_keep"`
}

// PaymentConfig tunes the payment component: 100 minus the penalties.
type PaymentConfig struct {
	UnpaidPenalty float64 `yaml:"unpaid_penalty"` // per failed or overdue invoice (50)
	// SettledKeep is how long a paid invoice is remembered (default 720h).
	SettledKeep time.Duration `yaml:"settled_keep"`
}

// SentimentConfig classifies NPS answers. The component is the latest NPS
// × 10.
type SentimentConfig struct {
	DetractorMax int `yaml:"detractor_max"` // NPS ≤ this is a detractor (6)
	PromoterMin  int `yaml:"promoter_min"`  // NPS ≥ this is a promoter (9)
}

// AdoptionConfig tunes the adoption component: the share of the catalogue
// (the contract's plan features, else FeatureCatalogue) used recently.
type AdoptionConfig struct {
	// WindowDays is how recent a feature's use must be (default 30).
	WindowDays int `yaml:"window_days"`
	// FeatureCatalogue is used when the contract names no plan features
	// (default empty: adoption stays neutral until a contract says).
	FeatureCatalogue []string `yaml:"feature_catalogue"`
}

// ChurnConfig tunes churn_risk_detected.
type ChurnConfig struct {
	// IndicatorWeights weigh each indicator; RiskThresholds map their sum
	// to a level. Defaults: usage decline, support escalation, payment
	// issue, champion left and renewal at risk weigh 2; NPS detractor and
	// low engagement weigh 1.
	IndicatorWeights map[string]int `yaml:"indicator_weights"`
	// RiskThresholds: low ≥ 1, medium ≥ 2, high ≥ 5 (three strong
	// indicators, or two and a weak one), critical ≥ 8 (four strong ones).
	RiskThresholds RiskThresholds `yaml:"risk_thresholds"`
	// RepeatAfter is the least event time between two churn events of the
	// same level for one customer (default 24h).
	RepeatAfter time.Duration `yaml:"repeat_after"`
	// Actions are the recommended_actions of each risk level.
	Actions map[string][]string `yaml:"actions"`
	// LowEngagementDays without a login is low_engagement (default 14).
	LowEngagementDays int `yaml:"low_engagement_days"`
	// RenewalWindowDays and RenewalRiskScore define renewal_at_risk:
	// renewal within 90 days and health below 50.
	RenewalWindowDays int `yaml:"renewal_window_days"`
	RenewalRiskScore  int `yaml:"renewal_risk_score"`
}

// RiskThresholds are the least summed indicator weights of each risk level,
// strictly ascending. A sum below Low means no risk.
type RiskThresholds struct {
	Low      int `yaml:"low"`
	Medium   int `yaml:"medium"`
	High     int `yaml:"high"`
	Critical int `yaml:"critical"`
}

// ExpansionConfig tunes expansion_ready.
type ExpansionConfig struct {
	// MinScore is the least health for any opportunity (default 75).
	MinScore int `yaml:"min_score"`
	// UpsellUtilisation held for UpsellDays consecutive days of usage
	// reports is an upsell (defaults 0.9 and 7).
	UpsellUtilisation float64 `yaml:"upsell_utilisation"`
	UpsellDays        int     `yaml:"upsell_days"`
	// UpsellSeatShare sizes the upsell: extra seats = ceil(seats × share),
	// at least 1 (default 0.2); value_estimate = extra seats × ARR / seats.
	UpsellSeatShare float64 `yaml:"upsell_seat_share"`
	// CrossSellFeatureShare of the plan's features in use is a cross_sell
	// (default 0.8); its value_estimate is CrossSellARRShare of the ARR
	// (default 0.2).
	CrossSellFeatureShare float64 `yaml:"cross_sell_feature_share"`
	CrossSellARRShare     float64 `yaml:"cross_sell_arr_share"`
	// probability = min(ProbabilityMax, ProbabilityBase +
	// ProbabilityPerFactor × success factors), rounded to 2 decimals
	// (defaults 0.4, 0.1, 0.95).
	ProbabilityBase      float64 `yaml:"probability_base"`
	ProbabilityPerFactor float64 `yaml:"probability_per_factor"`
	ProbabilityMax       float64 `yaml:"probability_max"`
	// StrongScore is the health that is strong_health_score (default 85);
	// HighAdoption the adoption component that is high_adoption (default
	// 80).
	StrongScore  int     `yaml:"strong_score"`
	HighAdoption float64 `yaml:"high_adoption"`
	// RepeatAfter is the least event time between two expansion_ready
	// events of one opportunity type (default 720h = 30 days).
	RepeatAfter time.Duration `yaml:"repeat_after"`
}

// InputConfig governs late and duplicate input and what State remembers.
type InputConfig struct {
	// LateGrace is how far behind the customer's latest event time an
	// event may be and still be applied, in its day (default 48h). Older
	// ones are skipped as SkippedLate.
	LateGrace time.Duration `yaml:"late_grace"`
	// DedupeWindow: an event whose event_id was seen with an event time
	// less than this apart is a duplicate (default 24h). Ids are forgotten
	// once older than this behind the customer's latest event time.
	DedupeWindow time.Duration `yaml:"dedupe_window"`
	// DedupeMaxIDs caps the ids remembered per customer (default 4096);
	// past it the oldest are forgotten early, so a customer sending more
	// than this many events within DedupeWindow is deduplicated only
	// against the latest DedupeMaxIDs.
	DedupeMaxIDs int `yaml:"dedupe_max_ids"`
	// RecentDerived is how many derived events State keeps for the read
	// model (default 5).
	RecentDerived int `yaml:"recent_derived"`
}

// DefaultConfig returns the brief's default health model.
func DefaultConfig() Config {
	return Config{
		Weights:          Weights{Usage: 0.30, Engagement: 0.15, Support: 0.20, Payment: 0.15, Sentiment: 0.10, Adoption: 0.10},
		Bands:            Bands{GreenMin: 70, YellowMin: 40},
		NeutralComponent: 50,
		HealthChange:     HealthChangeConfig{MinDelta: 5, BaselineWindow: 24 * time.Hour},
		Usage: UsageConfig{
			TrendWindowDays:         30,
			MinTrendDays:            7,
			UtilisationDays:         7,
			FullUtilisation:         0.8,
			UtilisationShare:        0.7,
			DeclinePointsPerPercent: 2,
			DeclineRatio:            0.7,
			GrowthRatio:             1.1,
		},
		Engagement: EngagementConfig{WindowDays: 14, EngagedDayShare: 0.5, ExecLoginShare: 0.2},
		Support: SupportConfig{OpenPenalty: 10, HighPriorityPenalty: 10, EscalatedPenalty: 40,
			ResolvedKeep: 30 * 24 * time.Hour},
		Payment:   PaymentConfig{UnpaidPenalty: 50, SettledKeep: 30 * 24 * time.Hour},
		Sentiment: SentimentConfig{DetractorMax: 6, PromoterMin: 9},
		Adoption:  AdoptionConfig{WindowDays: 30, FeatureCatalogue: []string{}},
		Churn: ChurnConfig{
			IndicatorWeights: map[string]int{
				IndicatorUsageDecline: 2, IndicatorSupportEscal: 2, IndicatorPaymentIssue: 2,
				IndicatorNpsDetractor: 1, IndicatorChampionLeft: 2, IndicatorLowEngagement: 1,
				IndicatorRenewalAtRisk: 2,
			},
			RiskThresholds: RiskThresholds{Low: 1, Medium: 2, High: 5, Critical: 8},
			RepeatAfter:    24 * time.Hour,
			Actions: map[string][]string{
				RiskLow:      {"monitor_health"},
				RiskMedium:   {"schedule_check_in", "review_usage"},
				RiskHigh:     {"immediate_outreach", "executive_escalation", "success_plan_review"},
				RiskCritical: {"immediate_outreach", "executive_escalation", "success_plan_review", "retention_offer"},
			},
			LowEngagementDays: 14,
			RenewalWindowDays: 90,
			RenewalRiskScore:  50,
		},
		Expansion: ExpansionConfig{
			MinScore:              75,
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
			RepeatAfter:           30 * 24 * time.Hour,
		},
		Input: InputConfig{LateGrace: 48 * time.Hour, DedupeWindow: 24 * time.Hour, DedupeMaxIDs: 4096, RecentDerived: 5},
	}
}

// LoadConfig reads the model config file at path (YAML) over DefaultConfig:
// keys the file leaves out keep their default, and the entries of the maps
// churn.indicator_weights and churn.actions replace only the entries named.
// Unknown keys, values of the wrong type and a Config that fails Validate
// are errors wrapping ErrInvalidConfig. An empty file is DefaultConfig.
func LoadConfig(path string) (Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return Config{}, fmt.Errorf("model config: %w", err)
	}
	cfg, err := ParseConfig(raw)
	if err != nil {
		return Config{}, fmt.Errorf("model config %s: %w", path, err)
	}
	return cfg, nil
}

// ParseConfig is LoadConfig on the YAML text raw instead of a file: the
// parser of operator input, in one place for LoadConfig and the fuzz test.
func ParseConfig(raw []byte) (Config, error) {
	cfg := DefaultConfig()
	if err := decodeConfig(raw, &cfg); err != nil {
		return Config{}, err
	}
	if err := cfg.Validate(); err != nil {
		return Config{}, err
	}
	return cfg, nil
}

// decodeConfig decodes YAML raw onto cfg, refusing unknown keys.
func decodeConfig(raw []byte, cfg *Config) error {
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	dec.KnownFields(true)
	if err := dec.Decode(cfg); err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("%w: %v", ErrInvalidConfig, err)
	}
	return nil
}

// Validate reports every setting the model cannot run with, each naming its
// key in the config file (e.g. "weights: sum to 0.95, want 1 (within
// 1e-9)"), joined with "; " into one error wrapping ErrInvalidConfig; nil
// when c is usable.
func (c Config) Validate() error {
	var problems []string
	bad := func(key, format string, args ...any) {
		problems = append(problems, key+": "+fmt.Sprintf(format, args...))
	}
	between := func(key string, v, lo, hi float64) {
		if math.IsNaN(v) || v < lo || v > hi {
			bad(key, "%v out of range [%v, %v]", v, lo, hi)
		}
	}
	atLeast := func(key string, v, lo int) {
		if v < lo {
			bad(key, "%d below %d", v, lo)
		}
	}
	nonNegative := func(key string, d time.Duration) {
		if d < 0 {
			bad(key, "negative duration %v", d)
		}
	}

	w := c.Weights
	sum := 0.0
	for _, kv := range []struct {
		k string
		v float64
	}{{"usage", w.Usage}, {"engagement", w.Engagement}, {"support", w.Support},
		{"payment", w.Payment}, {"sentiment", w.Sentiment}, {"adoption", w.Adoption}} {
		between("weights."+kv.k, kv.v, 0, 1)
		sum += kv.v
	}
	if math.Abs(sum-1) > 1e-9 {
		bad("weights", "sum to %v, want 1 (within 1e-9)", sum)
	}

	between("bands.yellow_min", float64(c.Bands.YellowMin), 0, 100)
	between("bands.green_min", float64(c.Bands.GreenMin), 0, 100)
	if c.Bands.YellowMin >= c.Bands.GreenMin {
		bad("bands", "yellow_min %d must be below green_min %d", c.Bands.YellowMin, c.Bands.GreenMin)
	}
	between("neutral_component", c.NeutralComponent, 0, 100)
	between("health_change.min_delta", float64(c.HealthChange.MinDelta), 1, 100)
	nonNegative("health_change.baseline_window", c.HealthChange.BaselineWindow)

	u := c.Usage
	between("usage.trend_window_days", float64(u.TrendWindowDays), 7, 183)
	atLeast("usage.min_trend_days", u.MinTrendDays, 1)
	if u.MinTrendDays > u.TrendWindowDays {
		bad("usage.min_trend_days", "%d above usage.trend_window_days %d", u.MinTrendDays, u.TrendWindowDays)
	}
	between("usage.utilisation_days", float64(u.UtilisationDays), 1, float64(2*u.TrendWindowDays))
	if !(u.FullUtilisation > 0 && u.FullUtilisation <= 2) {
		bad("usage.full_utilisation", "%v out of range (0, 2]", u.FullUtilisation)
	}
	between("usage.utilisation_share", u.UtilisationShare, 0, 1)
	between("usage.decline_points_per_percent", u.DeclinePointsPerPercent, 0, 100)
	if !(u.DeclineRatio > 0 && u.DeclineRatio < 1) {
		bad("usage.decline_ratio", "%v out of range (0, 1)", u.DeclineRatio)
	}
	if !(u.GrowthRatio > 1) {
		bad("usage.growth_ratio", "%v must be above 1", u.GrowthRatio)
	}

	e := c.Engagement
	between("engagement.window_days", float64(e.WindowDays), 1, 90)
	if !(e.EngagedDayShare > 0 && e.EngagedDayShare <= 1) {
		bad("engagement.engaged_day_share", "%v out of range (0, 1]", e.EngagedDayShare)
	}
	between("engagement.exec_login_share", e.ExecLoginShare, 0, 1)

	between("support.open_penalty", c.Support.OpenPenalty, 0, 100)
	between("support.high_priority_penalty", c.Support.HighPriorityPenalty, 0, 100)
	between("support.escalated_penalty", c.Support.EscalatedPenalty, 0, 100)
	nonNegative("support.resolved_keep", c.Support.ResolvedKeep)
	between("payment.unpaid_penalty", c.Payment.UnpaidPenalty, 0, 100)
	nonNegative("payment.settled_keep", c.Payment.SettledKeep)

	between("sentiment.detractor_max", float64(c.Sentiment.DetractorMax), 0, 10)
	between("sentiment.promoter_min", float64(c.Sentiment.PromoterMin), 0, 10)
	if c.Sentiment.DetractorMax >= c.Sentiment.PromoterMin {
		bad("sentiment", "detractor_max %d must be below promoter_min %d", c.Sentiment.DetractorMax, c.Sentiment.PromoterMin)
	}
	between("adoption.window_days", float64(c.Adoption.WindowDays), 1, 366)
	for i, f := range c.Adoption.FeatureCatalogue {
		if f == "" || slices.Index(c.Adoption.FeatureCatalogue, f) != i {
			bad("adoption.feature_catalogue", "empty or repeated feature %q", f)
		}
	}

	ch := c.Churn
	for _, in := range sortedKeys(ch.IndicatorWeights) {
		if !slices.Contains(Indicators(), in) {
			bad("churn.indicator_weights."+in, "unknown indicator (known: %v)", Indicators())
		} else {
			between("churn.indicator_weights."+in, float64(ch.IndicatorWeights[in]), 0, 100)
		}
	}
	for _, in := range Indicators() {
		if _, ok := ch.IndicatorWeights[in]; !ok {
			bad("churn.indicator_weights."+in, "missing")
		}
	}
	t := ch.RiskThresholds
	atLeast("churn.risk_thresholds.low", t.Low, 1)
	if !(t.Low < t.Medium && t.Medium < t.High && t.High < t.Critical) {
		bad("churn.risk_thresholds", "low %d, medium %d, high %d, critical %d must be strictly ascending",
			t.Low, t.Medium, t.High, t.Critical)
	}
	nonNegative("churn.repeat_after", ch.RepeatAfter)
	for _, level := range sortedKeys(ch.Actions) {
		if !slices.Contains(RiskLevels(), level) {
			bad("churn.actions."+level, "unknown risk level (known: %v)", RiskLevels())
		}
	}
	for _, level := range RiskLevels() {
		acts, ok := ch.Actions[level]
		switch {
		case !ok || len(acts) == 0:
			bad("churn.actions."+level, "missing: every risk level needs at least one action")
		case slices.Contains(acts, ""):
			bad("churn.actions."+level, "empty action")
		}
	}
	between("churn.low_engagement_days", float64(ch.LowEngagementDays), 1, 366)
	between("churn.renewal_window_days", float64(ch.RenewalWindowDays), 0, 3660)
	between("churn.renewal_risk_score", float64(ch.RenewalRiskScore), 0, 100)

	x := c.Expansion
	between("expansion.min_score", float64(x.MinScore), 0, 100)
	if !(x.UpsellUtilisation > 0 && x.UpsellUtilisation <= 2) {
		bad("expansion.upsell_utilisation", "%v out of range (0, 2]", x.UpsellUtilisation)
	}
	between("expansion.upsell_days", float64(x.UpsellDays), 1, float64(2*u.TrendWindowDays))
	if !(x.UpsellSeatShare > 0 && x.UpsellSeatShare <= 10) {
		bad("expansion.upsell_seat_share", "%v out of range (0, 10]", x.UpsellSeatShare)
	}
	if !(x.CrossSellFeatureShare > 0 && x.CrossSellFeatureShare <= 1) {
		bad("expansion.cross_sell_feature_share", "%v out of range (0, 1]", x.CrossSellFeatureShare)
	}
	between("expansion.cross_sell_arr_share", x.CrossSellARRShare, 0, 10)
	between("expansion.probability_base", x.ProbabilityBase, 0, 1)
	between("expansion.probability_per_factor", x.ProbabilityPerFactor, 0, 1)
	between("expansion.probability_max", x.ProbabilityMax, 0, 1)
	if x.ProbabilityBase > x.ProbabilityMax {
		bad("expansion.probability_base", "%v above probability_max %v", x.ProbabilityBase, x.ProbabilityMax)
	}
	between("expansion.strong_score", float64(x.StrongScore), 0, 100)
	between("expansion.high_adoption", x.HighAdoption, 0, 100)
	nonNegative("expansion.repeat_after", x.RepeatAfter)

	in := c.Input
	nonNegative("input.late_grace", in.LateGrace)
	nonNegative("input.dedupe_window", in.DedupeWindow)
	between("input.dedupe_max_ids", float64(in.DedupeMaxIDs), 1, 1<<20)
	between("input.recent_derived", float64(in.RecentDerived), 0, 50)
	if len(problems) > 0 {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, strings.Join(problems, "; "))
	}
	return nil
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
