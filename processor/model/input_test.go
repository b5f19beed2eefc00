package model_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/model"
)

// snapshot is st's JSON form, to show an Apply changed nothing.
func snapshot(t *testing.T, st *model.State) string {
	t.Helper()
	b, err := json.Marshal(st)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func mustApply(t *testing.T, m *model.Model, st *model.State, e event.CustomerEvent) model.Result {
	t.Helper()
	r := m.Apply(st, e)
	if r.Skipped != "" {
		t.Fatalf("%s skipped as %s", e.EventID, r.Skipped)
	}
	return r
}

// TestOutOfOrderWithinGraceLandsInItsDay: usage reported late, within the
// 48 h grace, fills its own day's bucket, and the customer ends exactly as
// if the events had arrived in order.
func TestOutOfOrderWithinGraceLandsInItsDay(t *testing.T) {
	m := newModel(t)
	inOrder := []event.CustomerEvent{
		usage("u10", at(10, 12, 0), 30, 50), usage("u11", at(11, 12, 0), 20, 50), usage("u12", at(12, 12, 0), 40, 50),
	}
	late := []event.CustomerEvent{inOrder[0], inOrder[2], inOrder[1]} // day 11 arrives 24 h late

	a, b := &model.State{}, &model.State{}
	applyAll(t, m, a, inOrder)
	for _, e := range late {
		mustApply(t, m, b, e)
	}
	want := []model.UsageDay{{Day: model.Day(at(10, 0, 0)), ActiveUsers: 30, Seats: 50},
		{Day: model.Day(at(11, 0, 0)), ActiveUsers: 20, Seats: 50}, {Day: model.Day(at(12, 0, 0)), ActiveUsers: 40, Seats: 50}}
	if !reflect.DeepEqual(b.Usage, want) {
		t.Fatalf("usage buckets %+v, want %+v", b.Usage, want)
	}
	a.SeenIDs, b.SeenIDs = nil, nil // arrival order differs, by design
	if !reflect.DeepEqual(a, b) {
		t.Fatalf("out-of-order state differs from in-order:\n%s\n%s", snapshot(t, a), snapshot(t, b))
	}

	// A later report of the same day keeps the day's highest.
	mustApply(t, m, b, usage("u11b", at(11, 18, 0), 25, 50))
	if got := b.Usage[1].ActiveUsers; got != 25 {
		t.Fatalf("day 11 active users %d after a higher late report, want 25", got)
	}
}

// TestLateBeyondGraceSkipped: more than 48 h behind the customer's latest
// event time is skipped as late and changes nothing; exactly 48 h is
// applied. The grace is configurable.
func TestLateBeyondGraceSkipped(t *testing.T) {
	m := newModel(t)
	st := &model.State{}
	mustApply(t, m, st, usage("u10", at(10, 12, 0), 30, 50))
	before := snapshot(t, st)

	r := m.Apply(st, usage("old", at(8, 11, 59), 49, 50)) // 48 h 1 min behind
	if r.Skipped != model.SkippedLate || r.Derived != nil {
		t.Fatalf("49 h late: %+v, want skipped late", r)
	}
	if snapshot(t, st) != before {
		t.Fatal("a late event changed the state")
	}
	mustApply(t, m, st, usage("edge", at(8, 12, 0), 49, 50)) // exactly 48 h
	if st.Usage[0].Day != model.Day(at(8, 0, 0)) {
		t.Fatalf("the 48 h old event is not in its day: %+v", st.Usage)
	}

	cfg := model.DefaultConfig()
	cfg.Input.LateGrace = time.Hour
	short, err := model.NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st = &model.State{}
	mustApply(t, short, st, usage("u10", at(10, 12, 0), 30, 50))
	if r := short.Apply(st, usage("u10b", at(10, 10, 59), 30, 50)); r.Skipped != model.SkippedLate {
		t.Fatalf("grace 1h, 61 min late: %+v", r)
	}
}

// TestDuplicates: the same event_id within 24 h of event time is skipped
// and changes nothing; after 24 h it is applied again.
func TestDuplicates(t *testing.T) {
	m := newModel(t)
	st := &model.State{}
	first := ticket("dup", at(1, 9, 0), "t1", "escalated")
	got := applyAll(t, m, st, []event.CustomerEvent{payment("p0", at(0, 9, 0), "i0", "succeeded"), first})
	if len(ofType(got, event.ChurnRiskDetected)) != 1 {
		t.Fatalf("setup: %d churn events", len(ofType(got, event.ChurnRiskDetected)))
	}
	before := snapshot(t, st)
	if r := m.Apply(st, first); r.Skipped != model.SkippedDuplicate || r.Derived != nil {
		t.Fatalf("redelivery: %+v, want skipped duplicate", r)
	}
	// The same id with an event time 23 h later is still a duplicate.
	again := first
	again.OccurredAt = at(2, 8, 0)
	if r := m.Apply(st, again); r.Skipped != model.SkippedDuplicate {
		t.Fatalf("same id 23 h later: %+v, want skipped duplicate", r)
	}
	if snapshot(t, st) != before {
		t.Fatal("a duplicate changed the state")
	}

	// 25 h later the id is reused for new activity: applied.
	reused := ticket("dup", at(2, 10, 0), "t2", "opened")
	mustApply(t, m, st, reused)
	if st.Tickets["t2"].Status != "opened" {
		t.Fatalf("the reused id was not applied: %+v", st.Tickets)
	}

	// A redelivery of an event whose id has left the window (the
	// customer's clock is 25 h past it) but is within the grace is
	// applied: dedupe remembers 24 h, no more.
	st = &model.State{}
	old := nps("n1", at(0, 9, 0), 9)
	mustApply(t, m, st, old)
	mustApply(t, m, st, payment("p1", at(1, 10, 0), "i1", "succeeded"))
	if len(st.SeenIDs) != 1 || st.SeenIDs[0].ID != "p1" {
		t.Fatalf("ids 25 h behind not pruned: %+v", st.SeenIDs)
	}
	mustApply(t, m, st, old)
}

// TestDedupeHardCap: past input.dedupe_max_ids the id with the oldest event
// time is forgotten first, so memory stays bounded however many events a
// customer sends within the window.
func TestDedupeHardCap(t *testing.T) {
	cfg := model.DefaultConfig()
	cfg.Input.DedupeMaxIDs = 3
	m, err := model.NewModel(cfg)
	if err != nil {
		t.Fatal(err)
	}
	st := &model.State{}
	evs := []event.CustomerEvent{nps("a", at(0, 9, 0), 9), nps("b", at(0, 8, 0), 9), nps("c", at(0, 10, 0), 9), nps("d", at(0, 11, 0), 9)}
	for _, e := range evs {
		mustApply(t, m, st, e)
	}
	if len(st.SeenIDs) != 3 {
		t.Fatalf("%d ids remembered, want the cap 3", len(st.SeenIDs))
	}
	if r := m.Apply(st, evs[0]); r.Skipped != model.SkippedDuplicate {
		t.Fatalf("a (not the oldest) forgotten: %+v", r)
	}
	if r := m.Apply(st, evs[1]); r.Skipped != "" { // b had the oldest event time
		t.Fatalf("b should have been forgotten: %+v", r)
	}
}

func TestEmptyPayloadSkipped(t *testing.T) {
	if r := newModel(t).Apply(&model.State{}, event.CustomerEvent{EventID: "x", CustomerID: "cust_1", OccurredAt: at(0, 0, 0)}); r.Skipped != model.SkippedEmpty {
		t.Fatalf("%+v", r)
	}
}
