package event

import (
	"encoding/json"
	"time"
)

// Derived event names: the "event" field of every webhook body.
const (
	HealthScoreChange = "health_score_change"
	ExpansionReady    = "expansion_ready"
	ChurnRiskDetected = "churn_risk_detected"
)

// DerivedTypes lists the derived event names.
func DerivedTypes() []string {
	return []string{HealthScoreChange, ExpansionReady, ChurnRiskDetected}
}

// Derived is a business event emitted by the processor. Exactly one of
// Health, Expansion and Churn is set, matching Event.
//
// Its JSON encoding (MarshalJSON) is the webhook body: a flat object with
// "event", "event_id", "customer_id", "timestamp", the type's fields and,
// when set, "explanation".
type Derived struct {
	EventID    string    // stable across retries; the webhook-id
	Event      string    // HealthScoreChange, ExpansionReady or ChurnRiskDetected
	CustomerID string    //
	Timestamp  time.Time // when the processor derived it (event time), UTC

	Health    *HealthChange
	Expansion *Expansion
	Churn     *ChurnRisk

	// Explanation says why the event was derived; nil when the producer
	// of the event gave none (events written with schema v1).
	Explanation *Explanation
}

// Explanation is the "explanation" object of a derived event: the health
// model's component scores and score before and after, the inputs that moved
// them, and for churn the indicators and for expansion the success factors
// with their evidence. It is for humans and playbooks; its numbers are
// rounded to two decimals.
//
// Previous* are the values last reported to subscribers (the score of the
// latest health_score_change, or the customer's baseline), so Inputs say what
// moved since a subscriber last heard.
type Explanation struct {
	// Summary is one sentence saying why, e.g. "risk high: 3 indicators
	// weigh 6 (high from 5)".
	Summary            string          `json:"summary"`
	Score              int             `json:"score"`
	Band               string          `json:"band"`
	PreviousScore      int             `json:"previous_score"`
	PreviousBand       string          `json:"previous_band"`
	Components         ComponentScores `json:"components"`
	PreviousComponents ComponentScores `json:"previous_components"`
	// Inputs are the components that changed since the previous values,
	// the largest effect on the score first. Absent when none changed.
	Inputs []ExplanationInput `json:"inputs,omitempty"`
	// RiskPoints is the summed weight of Indicators (churn only).
	RiskPoints int `json:"risk_points,omitempty"`
	// Indicators are the churn indicators that hold (churn only).
	Indicators []IndicatorEvidence `json:"indicators,omitempty"`
	// Factors are the success factors that hold (expansion only).
	Factors []FactorEvidence `json:"factors,omitempty"`
}

// ComponentScores are the six health component scores, each 0–100.
type ComponentScores struct {
	Usage      float64 `json:"usage"`
	Engagement float64 `json:"engagement"`
	Support    float64 `json:"support"`
	Payment    float64 `json:"payment"`
	Sentiment  float64 `json:"sentiment"`
	Adoption   float64 `json:"adoption"`
}

// ExplanationInput is one component that moved: Delta in component points
// (0–100 scale), ScoreDelta its weighted effect on the health score, and
// Because the measurements behind it, e.g. "trailing 30-day active users 31
// vs previous 50 (-38%)".
type ExplanationInput struct {
	Component  string  `json:"component"`
	Delta      float64 `json:"delta"`
	ScoreDelta float64 `json:"score_delta"`
	Because    string  `json:"because"`
}

// IndicatorEvidence is one churn indicator, its weight in the risk level and
// the facts that raised it.
type IndicatorEvidence struct {
	Indicator string `json:"indicator"`
	Weight    int    `json:"weight"`
	Evidence  string `json:"evidence"`
}

// FactorEvidence is one expansion success factor and the facts behind it.
type FactorEvidence struct {
	Factor   string `json:"factor"`
	Evidence string `json:"evidence"`
}

// HealthChange is the body of a health_score_change event.
type HealthChange struct {
	PreviousScore int    `json:"previous_score"`
	NewScore      int    `json:"new_score"`
	ChangeReason  string `json:"change_reason"`
}

// Expansion is the body of an expansion_ready event. OpportunityType is
// "upsell" or "cross_sell"; ValueEstimate is in whole currency units.
type Expansion struct {
	OpportunityType string   `json:"opportunity_type"`
	ValueEstimate   int64    `json:"value_estimate"`
	Probability     float64  `json:"probability"`
	SuccessFactors  []string `json:"success_factors"`
}

// ChurnRisk is the body of a churn_risk_detected event. RiskLevel is "low",
// "medium", "high" or "critical".
type ChurnRisk struct {
	RiskLevel          string   `json:"risk_level"`
	RiskIndicators     []string `json:"risk_indicators"`
	RecommendedActions []string `json:"recommended_actions"`
}

// TimestampFormat is how webhook bodies write times: RFC 3339, UTC, seconds.
const TimestampFormat = "2006-01-02T15:04:05Z"

// MarshalJSON encodes d as the flat webhook body of the brief: the common
// fields, then those of its type, then the explanation when set. It uses
// fixed struct shapes (not a map): the dispatcher encodes every delivery's
// body, and a map costs a sort and a box per field.
func (d Derived) MarshalJSON() ([]byte, error) {
	type common struct {
		Event      string `json:"event"`
		EventID    string `json:"event_id"`
		CustomerID string `json:"customer_id"`
		Timestamp  string `json:"timestamp"`
	}
	c := common{d.Event, d.EventID, d.CustomerID, d.Timestamp.UTC().Format(TimestampFormat)}
	switch {
	case d.Health != nil:
		return json.Marshal(struct {
			common
			*HealthChange
			Explanation *Explanation `json:"explanation,omitempty"`
		}{c, d.Health, d.Explanation})
	case d.Expansion != nil:
		x := *d.Expansion
		x.SuccessFactors = nonNil(x.SuccessFactors)
		return json.Marshal(struct {
			common
			*Expansion
			Explanation *Explanation `json:"explanation,omitempty"`
		}{c, &x, d.Explanation})
	case d.Churn != nil:
		x := *d.Churn
		x.RiskIndicators, x.RecommendedActions = nonNil(x.RiskIndicators), nonNil(x.RecommendedActions)
		return json.Marshal(struct {
			common
			*ChurnRisk
			Explanation *Explanation `json:"explanation,omitempty"`
		}{c, &x, d.Explanation})
	}
	return json.Marshal(struct {
		common
		Explanation *Explanation `json:"explanation,omitempty"`
	}{c, d.Explanation})
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
