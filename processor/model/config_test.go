package model_test

import (
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/vitalshq/vitals/processor/model"
)

func writeConfig(t *testing.T, text string) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "model.yaml")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestLoadConfigShippedFileIsDefault(t *testing.T) {
	cfg, err := model.LoadConfig("../../deploy/model.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(cfg, model.DefaultConfig()) {
		t.Fatalf("deploy/model.yaml loads to %+v", cfg)
	}
}

func TestLoadConfigLayersOverDefaults(t *testing.T) {
	cfg, err := model.LoadConfig(writeConfig(t, `
weights: {usage: 0.35, engagement: 0.10}
churn:
  actions:
    high: [call_the_ceo]
  indicator_weights: {low_engagement: 2}
input:
  late_grace: 72h
`))
	if err != nil {
		t.Fatal(err)
	}
	want := model.DefaultConfig()
	want.Weights.Usage, want.Weights.Engagement = 0.35, 0.10
	want.Churn.Actions[model.RiskHigh] = []string{"call_the_ceo"}
	want.Churn.IndicatorWeights[model.IndicatorLowEngagement] = 2
	want.Input.LateGrace = 72 * time.Hour
	if !reflect.DeepEqual(cfg, want) {
		t.Fatalf("got %+v\nwant %+v", cfg, want)
	}
	if empty, err := model.LoadConfig(writeConfig(t, "")); err != nil || !reflect.DeepEqual(empty, model.DefaultConfig()) {
		t.Fatalf("empty file: %+v, %v", empty, err)
	}
}

func TestLoadConfigErrors(t *testing.T) {
	tests := []struct {
		name, yaml string
		want       []string // substrings of the error
	}{
		{"unknown key", "weights:\n  usage: 0.3\n  usgae: 0.1\n", []string{"line 3", "usgae"}},
		{"unknown section", "bandz: {}\n", []string{"bandz"}},
		{"wrong type", "bands: {green_min: high}\n", []string{"line 1", "high"}},
		{"bad duration", "input: {late_grace: 2 days}\n", []string{"2 days"}},
		{"weights do not sum to 1", "weights: {usage: 0.4}\n", []string{"weights: sum to 1.1", "want 1"}},
		{"unknown indicator", "churn: {indicator_weights: {usage_decline: 2}}\n", []string{"churn.indicator_weights.usage_decline: unknown indicator"}},
		{"unknown risk level", "churn: {actions: {severe: [x]}}\n", []string{"churn.actions.severe: unknown risk level"}},
		{"several problems at once", "bands: {green_min: 30}\nexpansion: {probability_max: 1.5}\n",
			[]string{"bands: yellow_min 40 must be below green_min 30", "expansion.probability_max: 1.5 out of range"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := model.LoadConfig(writeConfig(t, tt.yaml))
			if !errors.Is(err, model.ErrInvalidConfig) {
				t.Fatalf("err %v, want ErrInvalidConfig", err)
			}
			for _, w := range tt.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q lacks %q", err, w)
				}
			}
		})
	}
	if _, err := model.LoadConfig(filepath.Join(t.TempDir(), "missing.yaml")); err == nil || errors.Is(err, model.ErrInvalidConfig) {
		t.Errorf("missing file: err %v, want a read error", err)
	}
}

// TestValidate: each broken setting is reported with its key.
func TestValidate(t *testing.T) {
	tests := []struct {
		key  string
		edit func(*model.Config)
	}{
		{"weights.usage", func(c *model.Config) { c.Weights.Usage = -0.1; c.Weights.Engagement = 0.55 }},
		{"weights: sum to", func(c *model.Config) { c.Weights.Adoption = 0.1 + 2e-9 }},
		{"bands", func(c *model.Config) { c.Bands.YellowMin = 70 }},
		{"bands.green_min", func(c *model.Config) { c.Bands.GreenMin = 101 }},
		{"neutral_component", func(c *model.Config) { c.NeutralComponent = -1 }},
		{"health_change.min_delta", func(c *model.Config) { c.HealthChange.MinDelta = 0 }},
		{"health_change.baseline_window", func(c *model.Config) { c.HealthChange.BaselineWindow = -time.Second }},
		{"usage.trend_window_days", func(c *model.Config) { c.Usage.TrendWindowDays = 3 }},
		{"usage.min_trend_days", func(c *model.Config) { c.Usage.MinTrendDays = 31 }},
		{"usage.utilisation_days", func(c *model.Config) { c.Usage.UtilisationDays = 0 }},
		{"usage.full_utilisation", func(c *model.Config) { c.Usage.FullUtilisation = 0 }},
		{"usage.utilisation_share", func(c *model.Config) { c.Usage.UtilisationShare = 1.5 }},
		{"usage.decline_ratio", func(c *model.Config) { c.Usage.DeclineRatio = 1 }},
		{"usage.growth_ratio", func(c *model.Config) { c.Usage.GrowthRatio = 0.9 }},
		{"engagement.window_days", func(c *model.Config) { c.Engagement.WindowDays = 0 }},
		{"engagement.engaged_day_share", func(c *model.Config) { c.Engagement.EngagedDayShare = 0 }},
		{"engagement.exec_login_share", func(c *model.Config) { c.Engagement.ExecLoginShare = 2 }},
		{"support.escalated_penalty", func(c *model.Config) { c.Support.EscalatedPenalty = 120 }},
		{"payment.unpaid_penalty", func(c *model.Config) { c.Payment.UnpaidPenalty = -5 }},
		{"sentiment", func(c *model.Config) { c.Sentiment.DetractorMax = 9 }},
		{"adoption.feature_catalogue", func(c *model.Config) { c.Adoption.FeatureCatalogue = []string{"a", "a"} }},
		{"churn.indicator_weights.champion_left: missing", func(c *model.Config) {
			c.Churn.IndicatorWeights = map[string]int{model.IndicatorUsageDecline: 2}
		}},
		{"churn.risk_thresholds", func(c *model.Config) { c.Churn.RiskThresholds.High = 2 }},
		{"churn.risk_thresholds.low", func(c *model.Config) { c.Churn.RiskThresholds.Low = 0 }},
		{"churn.actions.critical: missing", func(c *model.Config) { delete(c.Churn.Actions, model.RiskCritical) }},
		{"churn.actions.low: empty action", func(c *model.Config) { c.Churn.Actions[model.RiskLow] = []string{""} }},
		{"churn.renewal_risk_score", func(c *model.Config) { c.Churn.RenewalRiskScore = 101 }},
		{"expansion.min_score", func(c *model.Config) { c.Expansion.MinScore = -1 }},
		{"expansion.upsell_days", func(c *model.Config) { c.Expansion.UpsellDays = 61 }},
		{"expansion.cross_sell_feature_share", func(c *model.Config) { c.Expansion.CrossSellFeatureShare = 0 }},
		{"expansion.probability_base", func(c *model.Config) { c.Expansion.ProbabilityBase = 0.99 }},
		{"input.late_grace", func(c *model.Config) { c.Input.LateGrace = -time.Hour }},
		{"input.dedupe_max_ids", func(c *model.Config) { c.Input.DedupeMaxIDs = 0 }},
		{"input.recent_derived", func(c *model.Config) { c.Input.RecentDerived = 51 }},
	}
	if err := model.DefaultConfig().Validate(); err != nil {
		t.Fatalf("default config: %v", err)
	}
	for _, tt := range tests {
		cfg := model.DefaultConfig()
		tt.edit(&cfg)
		err := cfg.Validate()
		if !errors.Is(err, model.ErrInvalidConfig) || !strings.Contains(err.Error(), tt.key) {
			t.Errorf("%s: err %v", tt.key, err)
		}
		if _, err := model.NewModel(cfg); !errors.Is(err, model.ErrInvalidConfig) {
			t.Errorf("%s: NewModel accepted it", tt.key)
		}
	}
	// Weights summing to 1 within 1e-9 are accepted.
	cfg := model.DefaultConfig()
	cfg.Weights.Adoption += 5e-10
	if err := cfg.Validate(); err != nil {
		t.Errorf("weights off by 5e-10: %v", err)
	}
}

// TestNewModelKeepsItsOwnConfig: changing the caller's maps after NewModel
// does not change the running model.
func TestNewModelKeepsItsOwnConfig(t *testing.T) {
	cfg := model.DefaultConfig()
	m, err := model.NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Churn.Actions[model.RiskHigh][0] = "changed"
	cfg.Churn.IndicatorWeights[model.IndicatorPaymentIssue] = 0
	if !reflect.DeepEqual(m.Config(), model.DefaultConfig()) {
		t.Fatal("the model's config changed with the caller's")
	}
}
