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
// "event", "event_id", "customer_id", "timestamp" and the type's fields.
type Derived struct {
	EventID    string    // stable across retries; the webhook-id
	Event      string    // HealthScoreChange, ExpansionReady or ChurnRiskDetected
	CustomerID string    //
	Timestamp  time.Time // when the processor derived it (event time), UTC

	Health    *HealthChange
	Expansion *Expansion
	Churn     *ChurnRisk
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

// MarshalJSON encodes d as the flat webhook body of the brief.
func (d Derived) MarshalJSON() ([]byte, error) {
	m := map[string]any{
		"event":       d.Event,
		"event_id":    d.EventID,
		"customer_id": d.CustomerID,
		"timestamp":   d.Timestamp.UTC().Format(TimestampFormat),
	}
	switch {
	case d.Health != nil:
		m["previous_score"] = d.Health.PreviousScore
		m["new_score"] = d.Health.NewScore
		m["change_reason"] = d.Health.ChangeReason
	case d.Expansion != nil:
		m["opportunity_type"] = d.Expansion.OpportunityType
		m["value_estimate"] = d.Expansion.ValueEstimate
		m["probability"] = d.Expansion.Probability
		m["success_factors"] = nonNil(d.Expansion.SuccessFactors)
	case d.Churn != nil:
		m["risk_level"] = d.Churn.RiskLevel
		m["risk_indicators"] = nonNil(d.Churn.RiskIndicators)
		m["recommended_actions"] = nonNil(d.Churn.RecommendedActions)
	}
	return json.Marshal(m)
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}
