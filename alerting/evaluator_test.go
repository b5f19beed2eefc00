package alerting_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/alerting"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/kafkametrics"
	"github.com/vitalshq/vitals/topics"
)

// Conditions measured from the cluster by kafkametrics: dead letters
// arriving fire one alert.firing, which is not repeated while the growth
// stays within the window, and one alert.resolved once a window passed
// without growth; a consumer lag above its threshold fires once however
// many evaluations it lasts, and resolves when the group catches up.
func TestTransitionsBecomeOneEventEach(t *testing.T) {
	brokers := testenv.Kfake(t, kfake.NumBrokers(1), kfake.SeedTopics(1, topics.DLQ, topics.Operational, topics.CustomerEvents))
	reg := prometheus.NewRegistry()
	const tick = 50 * time.Millisecond
	col, err := kafkametrics.New(seeds(brokers), kafkametrics.WithInterval(tick), kafkametrics.WithGroups("vitals-processor"),
		kafkametrics.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(col)
	th := alerting.DefaultThresholds()
	th.DeadLetterWindow = 600 * time.Millisecond
	th.ConsumerLag, th.ConsumerLagFor = 2, 0
	rules := alerting.Rules(th)
	ev, err := alerting.New(seeds(brokers), reg, alerting.WithRules(rules[1], rules[2]), alerting.WithInterval(tick),
		alerting.WithRegisterer(reg), alerting.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	ops := newTail(t, brokers)
	run(t, col.Run)
	run(t, ev.Run)
	// The evaluator reads the empty dead-letter topic before a record
	// arrives: growth is measured from what it has seen.
	waitMetric(t, reg, `vitals_topic_depth{kind="dlq",topic="vitals.dlq.v1"}`, func(v float64) bool { return v == 0 })
	evaluated := gather(t, reg)["vitals_alert_evaluations_total"]
	waitMetric(t, reg, "vitals_alert_evaluations_total", func(v float64) bool { return v > evaluated+1 })

	produce(t, brokers, topics.DLQ, 1)
	firing := ops.wait(t, 1)[0]
	if firing.Type != endpoint.OpAlertFiring || firing.Alert != alerting.AlertDeadLetters || firing.Value != 1 ||
		firing.Labels["topic"] != topics.DLQ || firing.Severity != alerting.SeverityWarning || !strings.HasPrefix(firing.ID, "op_") {
		t.Fatalf("firing event: %+v", firing)
	}
	all := ops.wait(t, 2)
	resolved := all[1]
	if resolved.Type != endpoint.OpAlertResolved || resolved.Key != firing.Key || !resolved.ActiveSince.Equal(firing.ActiveSince) ||
		resolved.ID == firing.ID {
		t.Fatalf("resolved event: %+v after %+v", resolved, firing)
	}
	if held := resolved.Timestamp.Sub(firing.Timestamp); held < th.DeadLetterWindow-tick {
		t.Fatalf("resolved %v after firing, before a window (%v) without growth", held, th.DeadLetterWindow)
	}

	// Lag: 5 records, a group that committed none of them.
	produce(t, brokers, topics.CustomerEvents, 5)
	commit(t, brokers, "vitals-processor", topics.CustomerEvents, 0)
	lagFiring := ops.wait(t, 3)[2]
	if lagFiring.Type != endpoint.OpAlertFiring || lagFiring.Alert != alerting.AlertConsumerLag || lagFiring.Value != 5 ||
		lagFiring.Threshold != 2 || lagFiring.Labels["group"] != "vitals-processor" {
		t.Fatalf("lag firing event: %+v", lagFiring)
	}
	// Let ten more evaluations see the lag: still one event.
	refreshed := func() float64 { return gather(t, reg)[kafkametrics.MetricRefreshed] }
	after := refreshed() + 10*tick.Seconds()
	waitMetric(t, reg, kafkametrics.MetricRefreshed, func(v float64) bool { return v >= after })
	if n := len(ops.events()); n != 3 {
		t.Fatalf("%d events while the lag held, want 3: %+v", n, ops.events())
	}
	if g := gather(t, reg)[`vitals_alerts_firing{alert="VitalsConsumerLagHigh"}`]; g != 1 {
		t.Errorf("vitals_alerts_firing for the lag: %v, want 1", g)
	}
	commit(t, brokers, "vitals-processor", topics.CustomerEvents, 5)
	lagResolved := ops.wait(t, 4)[3]
	if lagResolved.Type != endpoint.OpAlertResolved || lagResolved.Key != lagFiring.Key || lagResolved.Value != 0 {
		t.Fatalf("lag resolved event: %+v", lagResolved)
	}
	for _, e := range ops.events() {
		if e.Key != firing.Key && e.Key != lagFiring.Key {
			t.Errorf("unexpected alert %+v", e)
		}
	}
}

func TestRulesAreValidated(t *testing.T) {
	brokers := []string{"127.0.0.1:1"}
	bad := []alerting.Rule{
		{Name: "", Metric: "m"},
		{Name: "n"},
		{Name: "n", Metric: "m", Kind: alerting.Growth},
		{Name: "n", Metric: "m", For: -time.Second},
	}
	for _, r := range bad {
		if _, err := alerting.New(seeds(brokers), prometheus.NewRegistry(), alerting.WithRules(r)); err == nil {
			t.Errorf("rule %+v accepted", r)
		}
	}
	r := alerting.DefaultRules()[0]
	if _, err := alerting.New(seeds(brokers), prometheus.NewRegistry(), alerting.WithRules(r, r)); err == nil {
		t.Error("two rules of one name accepted")
	}
	if _, err := alerting.New(seeds(brokers), prometheus.NewRegistry()); err != nil {
		t.Errorf("default rules: %v", err)
	}
}

// quiet discards the logs of the stages under test.
func quiet() *slog.Logger { return slog.New(slog.DiscardHandler) }

func seeds(brokers []string) []kgo.Opt { return []kgo.Opt{kgo.SeedBrokers(brokers...)} }

// run runs fn until the test ends and checks it returned nil.
func run(t *testing.T, fn func(context.Context) error) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func produce(t *testing.T, brokers []string, topic string, n int) {
	t.Helper()
	cl, err := kgo.NewClient(seeds(brokers)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		if err := cl.ProduceSync(ctx, &kgo.Record{Topic: topic, Value: fmt.Appendf(nil, "r%d", i)}).FirstErr(); err != nil {
			t.Fatalf("produce to %s: %v", topic, err)
		}
	}
}

// commit commits offset at of partition 0 of topic for group.
func commit(t *testing.T, brokers []string, group, topic string, at int64) {
	t.Helper()
	cl, err := kgo.NewClient(seeds(brokers)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var os kadm.Offsets
	os.Add(kadm.Offset{Topic: topic, Partition: 0, At: at, LeaderEpoch: -1})
	resps, err := kadm.NewClient(cl).CommitOffsets(ctx, group, os)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		t.Fatalf("commit %s: %v", group, err)
	}
}

// tail reads topics.Operational from the start in the background.
type tail struct {
	mu  sync.Mutex
	got []alerting.Event
}

func newTail(t *testing.T, brokers []string) *tail {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ConsumeTopics(topics.Operational),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))
	if err != nil {
		t.Fatal(err)
	}
	tl := &tail{}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Go(func() {
		for {
			fs := cl.PollFetches(ctx)
			if ctx.Err() != nil {
				return
			}
			fs.EachRecord(func(r *kgo.Record) {
				var e alerting.Event
				if err := json.Unmarshal(r.Value, &e); err != nil {
					t.Errorf("operational record %q: %v", r.Value, err)
					return
				}
				if string(r.Key) != e.Key {
					t.Errorf("record key %q, event key %q", r.Key, e.Key)
				}
				tl.mu.Lock()
				tl.got = append(tl.got, e)
				tl.mu.Unlock()
			})
		}
	})
	t.Cleanup(func() { cancel(); wg.Wait(); cl.Close() })
	return tl
}

func (tl *tail) events() []alerting.Event {
	tl.mu.Lock()
	defer tl.mu.Unlock()
	return append([]alerting.Event(nil), tl.got...)
}

// wait waits until n events arrived and returns them; more than n fails.
func (tl *tail) wait(t *testing.T, n int) []alerting.Event {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := tl.events()
		switch {
		case len(got) > n:
			t.Fatalf("%d operational events, want %d: %+v", len(got), n, got)
		case len(got) == n:
			return got
		case time.Now().After(deadline):
			t.Fatalf("%d operational events after 10s, want %d: %+v", len(got), n, got)
		}
		time.Sleep(10 * time.Millisecond) // poll the tail
	}
}

// gather returns every gauge and counter sample of g by name and labels.
func gather(t *testing.T, g prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := g.Gather()
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			var labels []string
			for _, l := range m.GetLabel() {
				labels = append(labels, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
			}
			key := mf.GetName()
			if len(labels) > 0 {
				key += "{" + strings.Join(labels, ",") + "}"
			}
			v := m.GetGauge().GetValue()
			if m.Counter != nil {
				v = m.GetCounter().GetValue()
			}
			out[key] = v
		}
	}
	return out
}

// waitMetric waits until the sample named key satisfies ok.
func waitMetric(t *testing.T, g prometheus.Gatherer, key string, ok func(float64) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		v, present := gather(t, g)[key]
		if present && ok(v) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s = %v (present %v) after 10s", key, v, present)
		}
		time.Sleep(10 * time.Millisecond) // poll the registry
	}
}
