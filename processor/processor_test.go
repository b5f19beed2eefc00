package processor_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/processor"
	"github.com/vitalshq/vitals/processor/journey"
	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/topics"
)

// bothBrokers runs fn against kfake over TCP and against a private Apache
// Kafka broker (so the fixed vitals.* names are free), each with every
// processor topic created with partitions partitions.
func bothBrokers(t *testing.T, partitions int32, fn func(t *testing.T, brokers []string)) {
	t.Run("kfake", func(t *testing.T) {
		fn(t, testenv.Kfake(t, kfake.NumBrokers(1), kfake.SeedTopics(partitions, allTopics()...)))
	})
	t.Run("kafka", func(t *testing.T) {
		brokers := testenv.PrivateApacheKafka(t)
		testenv.CreateTopics(t, brokers, partitions, allTopics()...)
		fn(t, brokers)
	})
}

// journeys are the three journeys for a few customers each.
func journeys() []event.CustomerEvent {
	start := time.Date(2025, 1, 6, 0, 0, 0, 0, time.UTC)
	var evs []event.CustomerEvent
	for _, c := range []string{"a", "b", "c"} {
		evs = append(evs, journey.Churning("cust_churn_"+c, start)...)
		evs = append(evs, journey.Expanding("cust_grow_"+c, start)...)
		evs = append(evs, journey.Healthy("cust_ok_"+c, start)...)
	}
	return evs
}

// TestExactlyOnce runs the journeys through one processor: the derived
// topics, read with read_committed, must hold exactly the pure model's
// output for the same input, stream by stream; the changelog must hold each
// customer's latest state on the input record's partition; the metrics must
// count what was committed.
func TestExactlyOnce(t *testing.T) {
	bothBrokers(t, 3, func(t *testing.T, brokers []string) {
		codec := newCodec(t)
		evs := journeys()
		produceEvents(t, brokers, codec, evs)
		want, wantStates := modelOutput(t, codec, evs)
		if count(want) == 0 {
			t.Fatal("the journeys derive nothing; the test would prove nothing")
		}

		r := start(t, brokers, processor.WithTransactionRecords(100))
		waitCommitted(t, brokers, 60*time.Second, r)
		equalStreams(t, readDerived(t, brokers), want)

		states, parts := readStates(t, brokers)
		if len(states) != len(wantStates) {
			t.Errorf("changelog holds %d customers, want %d", len(states), len(wantStates))
		}
		inputParts := map[string]int32{}
		for _, rec := range testenv.ReadAll(t, brokers, topics.CustomerEvents, false) {
			inputParts[string(rec.Key)] = rec.Partition
		}
		for id, w := range wantStates {
			if !statesEqual(t, states[id], w) {
				t.Errorf("changelog state of %s differs from the model's", id)
			}
			if parts[id] != inputParts[id] {
				t.Errorf("changelog of %s on partition %d, its input on %d: not co-partitioned", id, parts[id], inputParts[id])
			}
		}

		m := gather(t, r.reg)
		derived := 0.0
		for _, typ := range event.DerivedTypes() {
			derived += m[`vitals_processor_derived_total{event="`+typ+`"}`]
		}
		if derived != float64(count(want)) {
			t.Errorf("derived_total sums to %v, want %d", derived, count(want))
		}
		if got := m[`vitals_processor_events_total{outcome="applied"}`]; got != float64(len(evs)) {
			t.Errorf(`events_total{outcome="applied"} = %v, want %d`, got, len(evs))
		}
		if m["vitals_processor_transactions_committed_total"] == 0 || m["vitals_processor_transaction_commit_seconds"] == 0 {
			t.Errorf("no committed transaction counted: %v", m)
		}
	})
}

// statesEqual compares states by their changelog encoding.
func statesEqual(t testing.TB, a, b *model.State) bool {
	t.Helper()
	if a == nil || b == nil {
		return a == b
	}
	ea, err := processor.JSONStateCodec{}.EncodeState(a)
	if err != nil {
		t.Fatal(err)
	}
	eb, err := processor.JSONStateCodec{}.EncodeState(b)
	if err != nil {
		t.Fatal(err)
	}
	return string(ea) == string(eb)
}

// TestPoison sends a garbage record, a record with an unknown schema id and
// an event without customer id between valid events: each lands in the DLQ
// with its reason and origin in headers, and the valid events after them
// are processed.
func TestPoison(t *testing.T) {
	brokers := testenv.Kfake(t, kfake.NumBrokers(1), kfake.SeedTopics(1, allTopics()...))
	codec := newCodec(t)
	evs := journeys()
	half := len(evs) / 2
	produceEvents(t, brokers, codec, evs[:half])
	noCustomer, err := codec.EncodeCustomerEvent(event.CustomerEvent{EventID: "x", OccurredAt: time.Now().UTC(),
		Source: "test", Data: event.NpsResponse{Score: 3}})
	if err != nil {
		t.Fatal(err)
	}
	poison := []*kgo.Record{
		{Topic: topics.CustomerEvents, Key: []byte("bad1"), Value: []byte("not avro at all")},
		{Topic: topics.CustomerEvents, Key: []byte("bad2"), Value: []byte{0, 0, 0, 0x27, 0x0f, 2, 4, 6},
			Headers: []kgo.RecordHeader{{Key: "origin", Value: []byte("test")}}},
		{Topic: topics.CustomerEvents, Key: []byte("bad3"), Value: noCustomer},
	}
	produceRecords(t, brokers, poison...)
	produceEvents(t, brokers, codec, evs[half:])
	want, _ := modelOutput(t, codec, evs)

	r := start(t, brokers)
	waitCommitted(t, brokers, 60*time.Second, r)
	equalStreams(t, readDerived(t, brokers), want)

	dlq := testenv.ReadAll(t, brokers, topics.CustomerEventsDLQ, true)
	if len(dlq) != len(poison) {
		t.Fatalf("DLQ holds %d records, want %d", len(dlq), len(poison))
	}
	wantReasons := []string{processor.ReasonFraming, processor.ReasonUnknownSchema, processor.ReasonNoCustomer}
	for i, rec := range dlq {
		h := map[string]string{}
		for _, kv := range rec.Headers {
			h[kv.Key] = string(kv.Value)
		}
		if string(rec.Key) != string(poison[i].Key) || string(rec.Value) != string(poison[i].Value) {
			t.Errorf("DLQ record %d is %q=%q, want the raw poison record %q", i, rec.Key, rec.Value, poison[i].Key)
		}
		if h[processor.HeaderReason] != wantReasons[i] || h[processor.HeaderError] == "" ||
			h[processor.HeaderSourceTopic] != topics.CustomerEvents || h[processor.HeaderSourcePartition] != "0" ||
			h[processor.HeaderSourceOffset] != strconv.Itoa(half+i) {
			t.Errorf("DLQ record %d headers %v, want reason %s from %s/0@%d", i, h, wantReasons[i], topics.CustomerEvents, half+i)
		}
	}
	if dlq[1].Headers[0].Key != "origin" {
		t.Errorf("DLQ record lost the poison record's own headers: %v", dlq[1].Headers)
	}
	m := gather(t, r.reg)
	for _, reason := range wantReasons {
		if got := m[`vitals_processor_dlq_total{reason="`+reason+`"}`]; got != 1 {
			t.Errorf("dlq_total{reason=%q} = %v, want 1", reason, got)
		}
	}
}

// TestSkippedCounted sends every journey event twice: the repeats are
// skipped by the model as duplicates, counted by reason, and change
// nothing in the output.
func TestSkippedCounted(t *testing.T) {
	brokers := testenv.Kfake(t, kfake.NumBrokers(1), kfake.SeedTopics(2, allTopics()...))
	codec := newCodec(t)
	evs := journeys()
	var twice []event.CustomerEvent
	for _, ev := range evs {
		twice = append(twice, ev, ev)
	}
	produceEvents(t, brokers, codec, twice)
	want, _ := modelOutput(t, codec, evs)
	r := start(t, brokers)
	waitCommitted(t, brokers, 60*time.Second, r)
	equalStreams(t, readDerived(t, brokers), want)
	m := gather(t, r.reg)
	if got := m[`vitals_processor_skipped_total{reason="duplicate"}`]; got != float64(len(evs)) {
		t.Errorf(`skipped_total{reason="duplicate"} = %v, want %d`, got, len(evs))
	}
}

// TestAbortedTransactionLeavesNoState fails the third and fourth
// transactional Produce requests (kfake answers them with an error): those transactions abort, and their state
// changes must be dropped. Had a change survived, processing the same
// input again would find its event ids already seen, skip them as
// duplicates, and the committed output would miss the derived events of
// the aborted transactions.
func TestAbortedTransactionLeavesNoState(t *testing.T) {
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(2, allTopics()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	brokers := c.ListenAddrs()
	codec := newCodec(t)
	evs := journeys()
	produceEvents(t, brokers, codec, evs)
	want, _ := modelOutput(t, codec, evs)

	const failures = 2
	injected, seen := 0, 0
	c.ControlKey(kmsg.Produce.Int16(), func(req kmsg.Request) (kmsg.Response, error, bool) {
		c.KeepControl()
		pr := req.(*kmsg.ProduceRequest)
		if pr.TransactionID == nil {
			return nil, nil, false
		}
		// Let the first transactions commit, so the failing ones change
		// customers that already have committed state.
		if seen++; seen <= 2 || injected >= failures {
			return nil, nil, false
		}
		injected++
		t.Logf("injecting a produce failure into request with %d topics", len(pr.Topics))
		resp := pr.ResponseKind().(*kmsg.ProduceResponse)
		for _, rt := range pr.Topics {
			st := kmsg.NewProduceResponseTopic()
			st.Topic, st.TopicID = rt.Topic, rt.TopicID
			for _, rp := range rt.Partitions {
				sp := kmsg.NewProduceResponseTopicPartition()
				sp.Partition = rp.Partition
				sp.ErrorCode = kerr.InvalidRecord.Code
				st.Partitions = append(st.Partitions, sp)
			}
			resp.Topics = append(resp.Topics, st)
		}
		return resp, nil, true
	})

	r := start(t, brokers, processor.WithTransactionRecords(50))
	waitCommitted(t, brokers, 60*time.Second, r)
	equalStreams(t, readDerived(t, brokers), want)
	m := gather(t, r.reg)
	if got := m[`vitals_processor_transactions_aborted_total{cause="produce_error"}`]; got < 1 {
		t.Errorf("no transaction aborted for a produce error (%v); the injection did not work", got)
	}
	if got := m[`vitals_processor_skipped_total{reason="duplicate"}`]; got != 0 {
		t.Errorf("skipped %v duplicates: state of an aborted transaction leaked", got)
	}
}

// TestRebalance runs two instances in one group over a cohort; one stops
// mid-stream. The committed output must equal the single-instance (pure
// model) run: nothing lost, nothing doubled, order per customer kept.
func TestRebalance(t *testing.T) {
	brokers := testenv.Kfake(t, kfake.NumBrokers(1), kfake.SeedTopics(4, allTopics()...))
	codec := newCodec(t)
	evs := cohort("reb", 200, 40, 50)
	want, _ := modelOutput(t, codec, evs)

	a := start(t, brokers, processor.WithTransactionRecords(200))
	b := start(t, brokers, processor.WithTransactionRecords(200))
	produceEvents(t, brokers, codec, evs[:len(evs)/2])
	// Stop a once both instances committed work, while input still flows.
	deadline := time.Now().Add(30 * time.Second)
	for gather(t, a.reg)["vitals_processor_transactions_committed_total"] == 0 ||
		gather(t, b.reg)["vitals_processor_transactions_committed_total"] == 0 {
		if time.Now().After(deadline) {
			t.Fatal("both instances did not commit within 30s")
		}
		time.Sleep(10 * time.Millisecond)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		produceEvents(t, brokers, codec, evs[len(evs)/2:])
	}()
	a.Stop(t)
	<-done
	waitCommitted(t, brokers, 90*time.Second, b)
	equalStreams(t, readDerived(t, brokers), want)
	if count(want) == 0 {
		t.Fatal("the cohort derives nothing")
	}
}

// TestPartitionMismatch: a changelog with another partition count than the
// input stops Run with an error naming both counts.
func TestPartitionMismatch(t *testing.T) {
	brokers := testenv.Kfake(t, kfake.NumBrokers(1), kfake.SeedTopics(3, topics.CustomerEvents, topics.CustomerEventsDLQ,
		topics.HealthChanges, topics.Expansion, topics.Critical), kfake.SeedTopics(2, topics.CustomerState))
	p, err := processor.New(newCodec(t), processor.WithBrokers(brokers...), processor.WithLogger(testLogger()))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	err = p.Run(ctx)
	if !errors.Is(err, processor.ErrTopics) || !strings.Contains(err.Error(), "3 partitions") ||
		!strings.Contains(err.Error(), "has 2") {
		t.Fatalf("Run with a 2-partition changelog for a 3-partition input: %v, want ErrTopics naming 3 and 2", err)
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := processor.New(newCodec(t)); !errors.Is(err, processor.ErrNoBrokers) {
		t.Fatalf("New without brokers: err %v, want ErrNoBrokers", err)
	}
	cfg := model.DefaultConfig()
	cfg.Weights = model.Weights{}
	if _, err := processor.New(newCodec(t), processor.WithBrokers("127.0.0.1:1"), processor.WithModelConfig(cfg)); !errors.Is(err, model.ErrInvalidConfig) {
		t.Fatalf("New with zero weights: err %v, want ErrInvalidConfig", err)
	}
	if _, err := processor.New(newCodec(t), processor.WithBrokers("127.0.0.1:1"), processor.WithTransactionRecords(0)); err == nil {
		t.Fatal("New with 0 transaction records: no error")
	}
}
