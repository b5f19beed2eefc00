package event_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/vitalshq/vitals/event"
)

func TestDerivedJSONCarriesExplanationWhenSet(t *testing.T) {
	d := event.Derived{EventID: "d1", Event: event.HealthScoreChange, CustomerID: "cust_1",
		Timestamp: time.Date(2025, 12, 5, 8, 20, 0, 0, time.UTC),
		Health:    &event.HealthChange{PreviousScore: 80, NewScore: 65, ChangeReason: "usage_decline"}}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var body map[string]any
	if err := json.Unmarshal(b, &body); err != nil {
		t.Fatal(err)
	}
	if _, ok := body["explanation"]; ok {
		t.Fatalf("explanation present while unset: %s", b)
	}

	d.Explanation = &event.Explanation{Summary: "why", Score: 65, Band: "yellow", PreviousScore: 80, PreviousBand: "green",
		Components: event.ComponentScores{Usage: 40},
		Inputs:     []event.ExplanationInput{{Component: "usage", Delta: -12.5, ScoreDelta: -3.75, Because: "trailing 30-day active users 31 vs previous 50 (-38%)"}}}
	b, err = json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		ChangeReason string             `json:"change_reason"`
		Explanation  *event.Explanation `json:"explanation"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.ChangeReason != "usage_decline" || !reflect.DeepEqual(got.Explanation, d.Explanation) {
		t.Fatalf("body %s", b)
	}
	var keys struct {
		Explanation map[string]any `json:"explanation"`
	}
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"summary", "score", "band", "previous_score", "previous_band", "components", "previous_components", "inputs"} {
		if _, ok := keys.Explanation[k]; !ok {
			t.Errorf("explanation lacks %q: %s", k, b)
		}
	}
}
