package journey_test

import (
	"reflect"
	"testing"
	"time"

	"github.com/vitalshq/vitals/event"
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

func TestCohortIsDeterministicAndRealistic(t *testing.T) {
	start := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	c := journey.Cohort{Seed: 3, Customers: 50, Days: 90, Start: start, DropShare: 0.1, Drop: 0.4, DropFromDay: 45}
	dropped := 0
	for i := range c.Customers {
		a, b := c.Customer(i), c.Customer(i)
		if !reflect.DeepEqual(a, b) {
			t.Fatalf("customer %d: two runs differ", i)
		}
		if a.Dropped {
			dropped++
		}
		ids := map[string]bool{}
		var weekday, weekend []float64
		for j, ev := range a.Events {
			if ev.CustomerID != a.ID || ev.Data == nil || ids[ev.EventID] {
				t.Fatalf("customer %d event %d malformed or repeated: %+v", i, j, ev)
			}
			ids[ev.EventID] = true
			if j > 0 && ev.OccurredAt.Before(a.Events[j-1].OccurredAt) {
				t.Fatalf("customer %d: event %d out of order", i, j)
			}
			if u, ok := ev.Data.(event.UsageReported); ok && ev.OccurredAt.Before(start.AddDate(0, 0, 45)) {
				share := float64(u.ActiveUsers) / float64(u.SeatsPurchased)
				if wd := ev.OccurredAt.Weekday(); wd == time.Saturday || wd == time.Sunday {
					weekend = append(weekend, share)
				} else {
					weekday = append(weekday, share)
				}
			}
		}
		if len(weekday) < 25 || len(weekend) < 10 || mean(weekend) >= 0.7*mean(weekday) {
			t.Errorf("customer %d: weekday utilisation %.2f, weekend %.2f: weekends not quieter", i, mean(weekday), mean(weekend))
		}
		lo, hi := minMax(weekday)
		if hi/lo > 1.15/0.85+0.05 || hi/lo < 1.1 {
			t.Errorf("customer %d: weekday utilisation spread %.2f–%.2f, want about ±15 %% noise", i, lo, hi)
		}
	}
	if dropped != 5 {
		t.Errorf("%d dropped customers of 50 with DropShare 0.1, want 5", dropped)
	}
	if c.Customer(0).Events[0].EventID == (journey.Cohort{Seed: 4, Customers: 1, Days: 90, Start: start}).Customer(0).Events[0].EventID {
		t.Error("event ids do not depend on the seed")
	}
}

func mean(xs []float64) float64 {
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func minMax(xs []float64) (float64, float64) {
	lo, hi := xs[0], xs[0]
	for _, x := range xs {
		lo, hi = min(lo, x), max(hi, x)
	}
	return lo, hi
}
