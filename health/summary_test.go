package health_test

import (
	"context"
	"log/slog"
	"maps"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/health"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/topics"
)

// TestReaderSummary writes changelog records to a kfake broker and checks
// that the reader counts customers per band as they move between bands or
// are deleted, and keeps the newest churn alerts once each.
func TestReaderSummary(t *testing.T) {
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 3, topics.CustomerState)
	sc, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	states, err := model.NewStateCodec(sc)
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.DefaultProduceTopic(topics.CustomerState))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	churn := func(id string, at time.Duration) model.DerivedSummary {
		return model.DerivedSummary{EventID: id, Event: event.ChurnRiskDetected, At: t0.Add(at), Score: 30,
			RiskLevel: model.RiskHigh, RiskIndicators: []string{"usage_drop"}}
	}
	put := func(customer, band string, recent ...model.DerivedSummary) {
		t.Helper()
		st := &model.State{CustomerID: customer, Now: t0, Score: 50, Band: band, RecentDerived: recent}
		b, err := states.EncodeState(st)
		if err != nil {
			t.Fatal(err)
		}
		if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte(customer), Value: b}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
	put("c1", model.BandGreen)
	put("c2", model.BandGreen)
	put("c3", model.BandRed, churn("e1", time.Minute))
	put("c3", model.BandRed, churn("e1", time.Minute), churn("e2", 3*time.Minute)) // e1 repeats
	put("c4", model.BandYellow, churn("e3", 2*time.Minute))

	r, err := health.NewReader([]kgo.Opt{kgo.SeedBrokers(brokers...)}, states, slog.Default())
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- r.Run(runCtx) }()
	defer func() { stop(); <-done }()
	if err := r.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	wantBands(t, r, map[string]int{"green": 2, "red": 1, "yellow": 1})
	got := r.RecentChurn()
	if len(got) != 3 || got[0].EventID != "e2" || got[1].EventID != "e3" || got[2].EventID != "e1" {
		t.Fatalf("recent churn: %+v, want e2, e3, e1 (newest first, once each)", got)
	}
	if got[0].CustomerID != "c3" || got[0].RiskLevel != model.RiskHigh || len(got[0].Indicators) != 1 {
		t.Fatalf("alert: %+v", got[0])
	}

	// c1 turns red, c2 is deleted: the counts follow.
	put("c1", model.BandRed)
	if err := cl.ProduceSync(ctx, &kgo.Record{Key: []byte("c2")}).FirstErr(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for !maps.Equal(r.Bands(), map[string]int{"red": 2, "yellow": 1}) {
		if time.Now().After(deadline) {
			t.Fatalf("bands after moves: %v", r.Bands())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func wantBands(t *testing.T, r *health.Reader, want map[string]int) {
	t.Helper()
	if got := r.Bands(); !maps.Equal(got, want) {
		t.Fatalf("bands %v, want %v", got, want)
	}
}
