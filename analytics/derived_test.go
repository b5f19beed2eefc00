package analytics_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/analytics/loader"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/topics"
)

// flakySink fails its first inserts, then passes them to a Store.
type flakySink struct {
	store *analytics.Store
	fail  atomic.Int32
}

func (f *flakySink) InsertDerived(ctx context.Context, events []analytics.DerivedEvent) error {
	if f.fail.Add(-1) >= 0 {
		return errors.New("clickhouse away")
	}
	return f.store.InsertDerived(ctx, events)
}

// TestDerivedLoaderIntoClickHouse: the derived-events loader copies Avro
// records of the three derived topics into derived_events, explanation
// included, across a failing insert, skipping a record that is not Avro;
// a second run of the group loads only what came after.
func TestDerivedLoaderIntoClickHouse(t *testing.T) {
	addr := testenv.ClickHouse(t)
	conn, db := testDB(t, addr)
	store, err := analytics.NewStore(addr, analytics.WithDatabase(db))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close()
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 2, topics.Derived()...)
	kopts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	codec, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	prod, err := kgo.NewClient(kopts...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	now := time.Now().UTC().Truncate(time.Second)
	produce := func(evs ...event.Derived) {
		t.Helper()
		for _, d := range evs {
			v, err := codec.EncodeDerived(d)
			if err != nil {
				t.Fatal(err)
			}
			rec := &kgo.Record{Topic: topics.ForDerived(d.Event), Key: []byte(d.CustomerID), Value: v}
			if err := prod.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
				t.Fatal(err)
			}
		}
	}
	churn := func(i int) event.Derived {
		return event.Derived{EventID: fmt.Sprintf("evt-load-%d", i), Event: event.ChurnRiskDetected,
			CustomerID: fmt.Sprintf("cust-%d", i), Timestamp: now.Add(-time.Duration(i) * time.Second),
			Churn: &event.ChurnRisk{RiskLevel: "critical", RiskIndicators: []string{"usage_drop"}, RecommendedActions: []string{"call"}},
			Explanation: &event.Explanation{Summary: "risk critical: usage fell", Score: 20, Band: "red",
				Indicators: []event.IndicatorEvidence{{Indicator: "usage_drop", Weight: 3, Evidence: "users 3 vs 30"}}}}
	}
	health := event.Derived{EventID: "evt-load-h", Event: event.HealthScoreChange, CustomerID: "cust-h", Timestamp: now,
		Health: &event.HealthChange{PreviousScore: 70, NewScore: 55, ChangeReason: "support_escalation"}}
	for i := range 10 {
		produce(churn(i))
	}
	produce(health)
	if err := prod.ProduceSync(t.Context(), &kgo.Record{Topic: topics.Expansion, Value: []byte("not avro")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	sink := &flakySink{store: store}
	sink.fail.Store(2)
	stop := runDerivedLoader(t, kopts, codec, sink, loader.WithMetrics(reg))
	q := analytics.Query{Since: now.Add(-time.Hour), Limit: 100}
	eventually(t, 20*time.Second, "11 events in derived_events", func() (bool, string) {
		got, err := store.RecentDerivedEvents(t.Context(), q)
		return err == nil && len(got) == 11, fmt.Sprintf("%d events, err %v", len(got), err)
	})
	eventually(t, 5*time.Second, "the record that is not Avro counted", func() (bool, string) {
		v := counterValue(t, reg, "vitals_loader_records_undecodable_total")
		return v == 1, fmt.Sprint(v)
	})
	stop()

	got, err := store.RecentDerivedEvents(t.Context(), analytics.Query{Since: now.Add(-time.Hour), EventType: event.HealthScoreChange})
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 1 || got[0].Reason != "support_escalation" || got[0].Explanation != nil || !got[0].Timestamp.Equal(now) {
		t.Fatalf("health event loaded as %+v", got)
	}
	got, err = store.RecentDerivedEvents(t.Context(), analytics.Query{Since: now.Add(-time.Hour), EventType: event.ChurnRiskDetected, Limit: 1})
	if err != nil {
		t.Fatal(err)
	}
	var expl event.Explanation
	if len(got) != 1 || got[0].EventID != "evt-load-0" || got[0].Reason != "critical" ||
		json.Unmarshal(got[0].Explanation, &expl) != nil || expl.Indicators[0].Evidence != "users 3 vs 30" {
		t.Fatalf("newest churn event loaded as %+v", got)
	}

	produce(churn(10))
	runDerivedLoader(t, kopts, codec, store)
	eventually(t, 20*time.Second, "the 12th event loaded", func() (bool, string) {
		got, err := store.RecentDerivedEvents(t.Context(), q)
		return err == nil && len(got) == 12, fmt.Sprintf("%d events, err %v", len(got), err)
	})
	var rows uint64
	if err := conn.QueryRow(t.Context(), "SELECT count() FROM "+db+".derived_events").Scan(&rows); err != nil {
		t.Fatal(err)
	}
	if rows != 12 {
		t.Errorf("derived_events holds %d rows, want 12: the second run reloaded committed records", rows)
	}
}

// runDerivedLoader runs a derived-events loader until the returned stop (or
// the test's end).
func runDerivedLoader(t *testing.T, kopts []kgo.Opt, codec *schemas.Codec, sink analytics.DerivedSink, opts ...loader.Option) (stop func()) {
	t.Helper()
	l, err := analytics.NewDerivedLoader(kopts, codec, sink, append([]loader.Option{
		loader.WithFlushInterval(50 * time.Millisecond), loader.WithRetryBackoff(10 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	stopped := false
	stop = func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("loader Run: %v", err)
			}
		case <-time.After(30 * time.Second):
			t.Fatal("loader Run did not return 30s after cancel")
		}
	}
	t.Cleanup(stop)
	return stop
}
