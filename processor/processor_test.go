package processor_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor"
	"github.com/vitalshq/vitals/processor/journey"
	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/topics"
)

const testGroup = "processor-test"

// TestProcessorKafka runs the Processor against kfake over TCP: the churn
// and healthy journeys plus one undecodable record go in; the derived
// topics must then hold exactly what the pure model derives from the same
// journeys, the churn "high" event once.
func TestProcessorKafka(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	cluster, err := kfake.NewCluster(kfake.NumBrokers(1),
		kfake.SeedTopics(3, topics.CustomerEvents, topics.HealthChanges, topics.Expansion, topics.Critical))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()

	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)

	codec := jsonCodec{}
	start := time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)
	churning := journey.Churning("cust_churn", start)
	healthy := journey.Healthy("cust_ok", start)
	recs := []*kgo.Record{{Topic: topics.CustomerEvents, Key: []byte("cust_bad"), Value: []byte("not an event")}}
	for _, ev := range append(append([]event.CustomerEvent{}, churning...), healthy...) {
		b, err := codec.encodeCustomerEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topics.CustomerEvents, Key: []byte(ev.CustomerID), Value: b})
	}
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce journeys: %v", err)
	}

	// What the Kafka loop must produce: the pure model's output.
	want := map[string]int{}
	m, err := model.NewModel(model.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	wantChurn := 0
	for _, evs := range [][]event.CustomerEvent{churning, healthy} {
		st := &model.State{}
		for _, ev := range evs {
			for _, d := range m.Apply(st, ev).Derived {
				b, err := codec.EncodeDerived(d)
				if err != nil {
					t.Fatal(err)
				}
				want[recordKey(topics.ForDerived(d.Event), d.CustomerID, b)]++
				if d.Event == event.ChurnRiskDetected {
					wantChurn++
				}
			}
		}
	}

	reg := prometheus.NewRegistry()
	p, err := processor.New(codec, processor.WithBrokers(brokers...), processor.WithGroup(testGroup),
		processor.WithRegisterer(reg), processor.WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		t.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- p.Run(runCtx) }()
	defer func() {
		stop()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return after cancel")
		}
	}()

	waitCommitted(t, ctx, adm, done)

	got := readAll(t, ctx, brokers, adm)
	if fmt.Sprint(sorted(got)) != fmt.Sprint(sorted(want)) {
		t.Errorf("derived topics differ from the model\ngot:  %v\nwant: %v", sorted(got), sorted(want))
	}
	highs := 0
	for k, n := range got {
		if strings.HasPrefix(k, topics.Critical+" ") && strings.Contains(k, `"risk_level":"high"`) {
			highs += n
		}
	}
	if highs != 1 {
		t.Errorf("%d high churn events on %s, want exactly 1", highs, topics.Critical)
	}

	metrics := gather(t, reg)
	for name, want := range map[string]float64{
		`vitals_processor_events_total{outcome="applied"}`:            float64(len(churning) + len(healthy)),
		`vitals_processor_events_total{outcome="undecodable"}`:        1,
		`vitals_processor_derived_total{event="churn_risk_detected"}`: float64(wantChurn),
		`vitals_processor_derived_total{event="health_score_change"}`: float64(len(want) - wantChurn),
		`vitals_processor_derived_total{event="expansion_ready"}`:     0,
		`vitals_processor_encode_errors_total`:                        0,
	} {
		if metrics[name] != want {
			t.Errorf("%s = %v, want %v", name, metrics[name], want)
		}
	}
}

// waitCommitted waits until the group has committed the end offset of every
// input partition, failing early if Run returned.
func waitCommitted(t *testing.T, ctx context.Context, adm *kadm.Client, done <-chan error) {
	t.Helper()
	ends, err := adm.ListEndOffsets(ctx, topics.CustomerEvents)
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for {
		committed, err := adm.FetchOffsets(ctx, testGroup)
		caughtUp := err == nil
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := committed.Lookup(o.Topic, o.Partition)
			caughtUp = caughtUp && ok && c.At == o.Offset
		})
		if caughtUp {
			return
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned before catching up: %v", err)
		case <-ctx.Done():
			t.Fatalf("group %s did not commit the input's end offsets in time (last err %v)", testGroup, err)
		case <-tick.C:
		}
	}
}

// readAll reads every derived topic from the start to its current end and
// counts records by topic, key and value.
func readAll(t *testing.T, ctx context.Context, brokers []string, adm *kadm.Client) map[string]int {
	t.Helper()
	ends, err := adm.ListEndOffsets(ctx, topics.Derived()...)
	if err != nil {
		t.Fatal(err)
	}
	remaining := 0
	ends.Each(func(o kadm.ListedOffset) { remaining += int(o.Offset) })
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics.Derived()...),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	got := map[string]int{}
	for remaining > 0 {
		fetches := cl.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			t.Fatalf("reading derived topics: %d records still missing: %v", remaining, err)
		}
		fetches.EachError(func(topic string, p int32, err error) { t.Logf("fetch %s/%d: %v", topic, p, err) })
		fetches.EachRecord(func(r *kgo.Record) {
			got[recordKey(r.Topic, string(r.Key), r.Value)]++
			remaining--
		})
	}
	return got
}

func recordKey(topic, key string, value []byte) string {
	return topic + " " + key + " " + string(value)
}

func sorted(m map[string]int) []string {
	var out []string
	for k, n := range m {
		out = append(out, fmt.Sprintf("%dx %s", n, k))
	}
	sort.Strings(out)
	return out
}

// gather flattens the registry into "name{label="value"}" → value.
func gather(t *testing.T, reg *prometheus.Registry) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			name := mf.GetName()
			if len(m.GetLabel()) > 0 {
				name += "{"
				for i, l := range m.GetLabel() {
					if i > 0 {
						name += ","
					}
					name += fmt.Sprintf("%s=%q", l.GetName(), l.GetValue())
				}
				name += "}"
			}
			out[name] = m.GetCounter().GetValue()
		}
	}
	return out
}

func TestNewRequiresBrokers(t *testing.T) {
	if _, err := processor.New(jsonCodec{}); !errors.Is(err, processor.ErrNoBrokers) {
		t.Fatalf("New without brokers: err %v, want ErrNoBrokers", err)
	}
	cfg := model.DefaultConfig()
	cfg.Weights = model.Weights{}
	if _, err := processor.New(jsonCodec{}, processor.WithBrokers("127.0.0.1:1"), processor.WithModelConfig(cfg)); !errors.Is(err, model.ErrInvalidConfig) {
		t.Fatalf("New with zero weights: err %v, want ErrInvalidConfig", err)
	}
}
