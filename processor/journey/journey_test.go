package journey_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/vitalshq/vitals/processor/journey"
)

func TestJourneysAreDeterministicOrderedAndUniquelyIdentified(t *testing.T) {
	start := time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)
	for _, name := range journey.Names() {
		gen := journey.ByName(name)
		a, b := gen("cust_1", start), gen("cust_1", start)
		if !reflect.DeepEqual(a, b) {
			t.Errorf("%s: two runs differ", name)
		}
		if len(a) < 100 {
			t.Errorf("%s: only %d events", name, len(a))
		}
		ids := map[string]bool{}
		for i, ev := range a {
			if ev.CustomerID != "cust_1" || ev.Source != journey.Source || ev.Data == nil {
				t.Fatalf("%s: event %d malformed: %+v", name, i, ev)
			}
			if i > 0 && ev.OccurredAt.Before(a[i-1].OccurredAt) {
				t.Fatalf("%s: event %d out of event-time order", name, i)
			}
			if ids[ev.EventID] {
				t.Fatalf("%s: duplicate event id %s", name, ev.EventID)
			}
			ids[ev.EventID] = true
		}
		other := gen("cust_2", start)
		if other[0].EventID == a[0].EventID {
			t.Errorf("%s: event ids do not depend on the customer", name)
		}
	}
	if journey.ByName("nope") != nil {
		t.Error("ByName of an unknown journey is not nil")
	}
}
