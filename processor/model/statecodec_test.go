package model_test

import (
	"errors"
	"reflect"
	"testing"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/journey"
	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/topics"
)

func newStateCodec(t testing.TB) *model.StateCodec {
	t.Helper()
	c, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	sc, err := model.NewStateCodec(c)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

// testJourneys are the scripted journeys plus one noisy cohort customer
// (tickets, NPS, features, many ids in the dedupe window).
func testJourneys() map[string][]event.CustomerEvent {
	out := map[string][]event.CustomerEvent{}
	for _, name := range journey.Names() {
		out[name] = journey.ByName(name)("cust_1", start)
	}
	out["cohort"] = journey.Cohort{Seed: 7, Customers: 1, Days: 90, Start: start}.Customer(0).Events
	return out
}

// TestStateRoundTrip encodes the State after every event of each journey:
// it decodes to a deeply equal State, encodes to the same bytes again, and
// a run resumed from a decoded mid-journey State derives exactly what the
// uninterrupted run derives (ids and explanations included) and ends in
// the same State. This is what the changelog restore relies on.
func TestStateRoundTrip(t *testing.T) {
	sc := newStateCodec(t)
	m := newModel(t)
	for name, evs := range testJourneys() {
		t.Run(name, func(t *testing.T) {
			whole := &model.State{}
			var wholeOut []event.Derived
			resumeAt := len(evs) * 2 / 3
			var resumed *model.State
			maxBytes := 0
			for i, e := range evs {
				wholeOut = append(wholeOut, m.Apply(whole, e).Derived...)
				b, err := sc.EncodeState(whole)
				if err != nil {
					t.Fatalf("event %d: encode: %v", i, err)
				}
				maxBytes = max(maxBytes, len(b))
				got, err := sc.DecodeState(b)
				if err != nil {
					t.Fatalf("event %d: decode: %v", i, err)
				}
				if !reflect.DeepEqual(got, whole) {
					t.Fatalf("event %d: decoded state differs\n got %s\nwant %s", i, snapshot(t, got), snapshot(t, whole))
				}
				if again, _ := sc.EncodeState(got); string(again) != string(b) {
					t.Fatalf("event %d: equal states encode differently", i)
				}
				if i == resumeAt-1 {
					resumed = got
				}
			}
			var resumedOut []event.Derived
			st := &model.State{}
			for _, e := range evs[:resumeAt] {
				resumedOut = append(resumedOut, m.Apply(st, e).Derived...)
			}
			for _, e := range evs[resumeAt:] {
				resumedOut = append(resumedOut, m.Apply(resumed, e).Derived...)
			}
			if !reflect.DeepEqual(wholeOut, resumedOut) {
				t.Fatalf("resumed run derived differently:\nwhole   %v\nresumed %v", wholeOut, resumedOut)
			}
			if !reflect.DeepEqual(whole, resumed) {
				t.Fatalf("resumed run ends in another state")
			}
			final, _ := sc.EncodeState(whole)
			t.Logf("%s: %d events, state %d bytes at the end, %d at most", name, len(evs), len(final), maxBytes)
		})
	}
}

func TestStateCodecErrors(t *testing.T) {
	sc := newStateCodec(t)
	c, _ := schemas.New()
	d, err := c.EncodeDerived(event.Derived{EventID: "d", Event: event.HealthScoreChange, CustomerID: "c",
		Health: &event.HealthChange{}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := sc.DecodeState(d); !errors.Is(err, schemas.ErrWrongSubject) {
		t.Errorf("derived record as state: err %v, want ErrWrongSubject", err)
	}
	if _, err := sc.DecodeState([]byte{1, 2}); !errors.Is(err, schemas.ErrFraming) {
		t.Errorf("garbage: err %v, want ErrFraming", err)
	}
	b, _ := sc.EncodeState(&model.State{CustomerID: "c"})
	if _, err := sc.DecodeState(b[:len(b)-1]); !errors.Is(err, schemas.ErrMalformed) {
		t.Errorf("truncated: err %v, want ErrMalformed", err)
	}
	if _, err := model.NewStateCodec(nil); err == nil {
		t.Error("NewStateCodec(nil) accepted")
	}
}

// TestStateKeepsReadModelFields: the State after the churning journey says
// what a read model shows: score, band, components, active indicators,
// risk level and the last five derived events.
func TestStateKeepsReadModelFields(t *testing.T) {
	m := newModel(t)
	st := &model.State{}
	all := applyAll(t, m, st, journey.Churning("cust_1", start))
	if st.Score != 62 || st.Band != model.BandYellow || st.RiskLevel != model.RiskHigh {
		t.Fatalf("score %d band %s risk %s", st.Score, st.Band, st.RiskLevel)
	}
	wantInd := []string{"usage_decline_30_percent", "support_escalation", "payment_issue"}
	if !reflect.DeepEqual(st.Indicators, wantInd) {
		t.Fatalf("indicators %v, want %v", st.Indicators, wantInd)
	}
	if len(st.RecentDerived) != 5 {
		t.Fatalf("%d recent derived events, want 5", len(st.RecentDerived))
	}
	last5 := all[len(all)-5:]
	for i, d := range last5 {
		r := st.RecentDerived[i]
		if r.EventID != d.EventID || r.Event != d.Event || !r.At.Equal(d.Timestamp) {
			t.Errorf("recent %d: %+v, want %s %s", i, r, d.Event, d.EventID)
		}
	}
	high := st.RecentDerived[4]
	if high.RiskLevel != "high" || !reflect.DeepEqual(high.RiskIndicators, wantInd) || high.Score != 62 {
		t.Errorf("last recent %+v", high)
	}
	hc := st.RecentDerived[3]
	if hc.PreviousScore != 70 || hc.Score != 62 || hc.ChangeReason != "payment_issue" {
		t.Errorf("health change summary %+v", hc)
	}
}

func benchState(b *testing.B) *model.State {
	m := newModel(b)
	st := &model.State{}
	c := journey.Cohort{Seed: 7, Customers: 1, Days: 90, Start: start}
	for _, e := range c.Customer(0).Events {
		m.Apply(st, e)
	}
	return st
}

// BenchmarkStateEncode encodes the state of a noisy customer after 90 days.
func BenchmarkStateEncode(b *testing.B) {
	sc, st := newStateCodec(b), benchState(b)
	b.ReportAllocs()
	n := 0
	for b.Loop() {
		out, err := sc.EncodeState(st)
		if err != nil {
			b.Fatal(err)
		}
		n = len(out)
	}
	b.ReportMetric(float64(n), "bytes/state")
}

func BenchmarkStateDecode(b *testing.B) {
	sc, st := newStateCodec(b), benchState(b)
	enc, err := sc.EncodeState(st)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	for b.Loop() {
		if _, err := sc.DecodeState(enc); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(len(enc)), "bytes/state")
}

func TestStateSubject(t *testing.T) {
	if model.StateSubject != schemas.Subject(topics.CustomerState) {
		t.Fatalf("StateSubject %q", model.StateSubject)
	}
}
