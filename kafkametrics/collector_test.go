package kafkametrics_test

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/audit"
	"github.com/vitalshq/vitals/dispatcher"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/kafkametrics"
	"github.com/vitalshq/vitals/processor"
	"github.com/vitalshq/vitals/topics"
)

// The collector exports what the cluster says: lag of a group that
// committed part of a topic, depth of a retry tier (end minus the retry
// group's commit, or the start where it has none) and of a dead-letter
// topic (end minus start); and it follows the cluster as commits advance
// and records arrive.
func TestLagAndDepthFollowTheCluster(t *testing.T) {
	brokers := testenv.Kfake(t)
	tier := topics.Retry(5 * time.Second)
	testenv.CreateTopics(t, brokers, 2, topics.CustomerEvents, tier, topics.DLQ)
	adm := admin(t, brokers)

	produce(t, brokers, topics.CustomerEvents, 0, 5)
	produce(t, brokers, topics.CustomerEvents, 1, 5)
	produce(t, brokers, tier, 0, 2)
	produce(t, brokers, tier, 1, 2)
	produce(t, brokers, topics.DLQ, 0, 1)
	produce(t, brokers, topics.DLQ, 1, 2)
	commit(t, adm, processor.DefaultGroup, topics.CustomerEvents, map[int32]int64{0: 3, 1: 5})
	commit(t, adm, dispatcher.DefaultRetryGroup, tier, map[int32]int64{0: 1})

	reg := prometheus.NewRegistry()
	c, err := kafkametrics.New([]kgo.Opt{kgo.SeedBrokers(brokers...)},
		kafkametrics.WithInterval(50*time.Millisecond), kafkametrics.WithRetrySchedule(5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	reg.MustRegister(c)
	run(t, c)

	waitFor(t, reg, map[string]float64{
		`vitals_consumer_lag{group="vitals-processor",topic="vitals.customer-events.v1"}`: 2,
		`vitals_consumer_lag{group="vitals-dispatcher-retry",topic="vitals.retry.5s.v1"}`: 3,
		`vitals_topic_depth{kind="retry",topic="vitals.retry.5s.v1"}`:                     3,
		`vitals_topic_depth{kind="dlq",topic="vitals.dlq.v1"}`:                            3,
	})
	if got := gather(t, reg); got[kafkametrics.MetricRefreshed] <= 0 {
		t.Errorf("%s = %v, want the time of the last refresh", kafkametrics.MetricRefreshed, got[kafkametrics.MetricRefreshed])
	}
	// The processor's DLQ was never created: it has no figure rather than 0.
	for k := range gather(t, reg) {
		if strings.Contains(k, topics.CustomerEventsDLQ) {
			t.Errorf("series for a topic that does not exist: %s", k)
		}
	}

	commit(t, adm, processor.DefaultGroup, topics.CustomerEvents, map[int32]int64{0: 5})
	commit(t, adm, dispatcher.DefaultRetryGroup, tier, map[int32]int64{0: 2, 1: 1})
	produce(t, brokers, topics.DLQ, 0, 2)
	waitFor(t, reg, map[string]float64{
		`vitals_consumer_lag{group="vitals-processor",topic="vitals.customer-events.v1"}`: 0,
		`vitals_consumer_lag{group="vitals-dispatcher-retry",topic="vitals.retry.5s.v1"}`: 1,
		`vitals_topic_depth{kind="retry",topic="vitals.retry.5s.v1"}`:                     1,
		`vitals_topic_depth{kind="dlq",topic="vitals.dlq.v1"}`:                            5,
	})
}

// The default groups are the stages' own group names.
func TestDefaultGroupsAreTheStagesGroups(t *testing.T) {
	want := []string{processor.DefaultGroup, dispatcher.DefaultGroup, dispatcher.DefaultRetryGroup, audit.DefaultLoaderGroup}
	if got := kafkametrics.DefaultGroups(); !slices.Equal(got, want) {
		t.Errorf("DefaultGroups() = %v, want %v", got, want)
	}
	if kafkametrics.DefaultRetryGroup != dispatcher.DefaultRetryGroup {
		t.Errorf("DefaultRetryGroup = %q, want %q", kafkametrics.DefaultRetryGroup, dispatcher.DefaultRetryGroup)
	}
}

func run(t *testing.T, c *kafkametrics.Collector) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- c.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

func admin(t *testing.T, brokers []string) *kadm.Client {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(cl.Close)
	return kadm.NewClient(cl)
}

func produce(t *testing.T, brokers []string, topic string, partition int32, n int) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.RecordPartitioner(kgo.ManualPartitioner()))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range n {
		rec := &kgo.Record{Topic: topic, Partition: partition, Value: fmt.Appendf(nil, "r%d", i)}
		if err := cl.ProduceSync(ctx, rec).FirstErr(); err != nil {
			t.Fatalf("produce to %s[%d]: %v", topic, partition, err)
		}
	}
}

func commit(t *testing.T, adm *kadm.Client, group, topic string, at map[int32]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var os kadm.Offsets
	for p, o := range at {
		os.Add(kadm.Offset{Topic: topic, Partition: p, At: o, LeaderEpoch: -1})
	}
	resps, err := adm.CommitOffsets(ctx, group, os)
	if err == nil {
		err = resps.Error()
	}
	if err != nil {
		t.Fatalf("commit %s %s %v: %v", group, topic, at, err)
	}
}

// gather returns every sample of reg by its name and labels, e.g.
// `vitals_topic_depth{kind="dlq",topic="vitals.dlq.v1"}`.
func gather(t *testing.T, reg prometheus.Gatherer) map[string]float64 {
	t.Helper()
	mfs, err := reg.Gather()
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

// waitFor waits until every series in want has its value.
func waitFor(t *testing.T, reg prometheus.Gatherer, want map[string]float64) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		got := gather(t, reg)
		ok := true
		for k, v := range want {
			if g, present := got[k]; !present || g != v {
				ok = false
			}
		}
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var lines []string
			for _, k := range slices.Sorted(maps.Keys(got)) {
				if strings.HasPrefix(k, "vitals_") {
					lines = append(lines, fmt.Sprintf("  %s %v", k, got[k]))
				}
			}
			t.Fatalf("want %v, have:\n%s", want, strings.Join(lines, "\n"))
		}
		time.Sleep(20 * time.Millisecond) // poll the collector's next refresh
	}
}
