package processor_test

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"math/rand/v2"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/processor"
	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/topics"
)

const testGroup = "processor-test"

// allTopics are the topics the processor reads and writes.
func allTopics() []string {
	return append([]string{topics.CustomerEvents, topics.CustomerState, topics.CustomerEventsDLQ}, topics.Derived()...)
}

func newCodec(t testing.TB) *schemas.Codec {
	t.Helper()
	c, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// testLogger logs to the test output when VITALS_TEST_LOG is set.
func testLogger() *slog.Logger {
	if os.Getenv("VITALS_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelInfo}))
	}
	return slog.New(slog.NewTextHandler(io.Discard, nil))
}

// produceEvents writes evs to topics.CustomerEvents keyed by customer id,
// in order.
func produceEvents(t testing.TB, brokers []string, codec *schemas.Codec, evs []event.CustomerEvent) {
	t.Helper()
	recs := make([]*kgo.Record, 0, len(evs))
	for _, ev := range evs {
		b, err := codec.EncodeCustomerEvent(ev)
		if err != nil {
			t.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topics.CustomerEvents, Key: []byte(ev.CustomerID), Value: b})
	}
	produceRecords(t, brokers, recs...)
}

func produceRecords(t testing.TB, brokers []string, recs ...*kgo.Record) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.ProducerLinger(5*time.Millisecond),
		kgo.MaxBufferedRecords(len(recs)+1))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if err := cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		t.Fatalf("produce %d records: %v", len(recs), err)
	}
}

// streams are derived events by "topic key" in offset order: what a
// read_committed reader of one customer's events on one topic sees.
type streams map[string][]string

// modelOutput is what an uninterrupted run of the pure model derives from
// evs (applied per customer in input order), encoded by codec.
func modelOutput(t testing.TB, codec *schemas.Codec, evs []event.CustomerEvent) (streams, map[string]*model.State) {
	t.Helper()
	m, err := model.NewModel(model.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	out := streams{}
	states := map[string]*model.State{}
	for _, ev := range evs {
		st := states[ev.CustomerID]
		if st == nil {
			st = &model.State{CustomerID: ev.CustomerID}
			states[ev.CustomerID] = st
		}
		for _, d := range m.Apply(st, ev).Derived {
			b, err := codec.EncodeDerived(d)
			if err != nil {
				t.Fatal(err)
			}
			k := topics.ForDerived(d.Event) + " " + d.CustomerID
			out[k] = append(out[k], string(b))
		}
	}
	return out, states
}

// readDerived reads every derived topic with read_committed.
func readDerived(t testing.TB, brokers []string) streams {
	t.Helper()
	out := streams{}
	for _, topic := range topics.Derived() {
		for _, r := range testenv.ReadAll(t, brokers, topic, true) {
			k := topic + " " + string(r.Key)
			out[k] = append(out[k], string(r.Value))
		}
	}
	return out
}

// readStates reads the changelog with read_committed and returns each
// customer's latest state record, and the partition it is on.
func readStates(t testing.TB, brokers []string) (map[string]*model.State, map[string]int32) {
	t.Helper()
	states := map[string]*model.State{}
	parts := map[string]int32{}
	for _, r := range testenv.ReadAll(t, brokers, topics.CustomerState, true) {
		st, err := processor.JSONStateCodec{}.DecodeState(r.Value)
		if err != nil {
			t.Fatalf("changelog offset %d: %v", r.Offset, err)
		}
		states[string(r.Key)] = st
		parts[string(r.Key)] = r.Partition
	}
	return states, parts
}

// equalStreams reports the first differences between got and want.
func equalStreams(t testing.TB, got, want streams) {
	t.Helper()
	n := 0
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if !slices.Equal(got[k], want[k]) {
			if n++; n <= 5 {
				t.Errorf("%s: got %d records, want %d (first difference at %d)", k, len(got[k]), len(want[k]),
					firstDiff(got[k], want[k]))
			}
		}
	}
	for k := range got {
		if _, ok := want[k]; !ok {
			if n++; n <= 5 {
				t.Errorf("%s: %d unexpected records", k, len(got[k]))
			}
		}
	}
	if n > 5 {
		t.Errorf("... %d streams differ in all", n)
	}
}

func firstDiff(a, b []string) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

func count(s streams) int {
	n := 0
	for _, v := range s {
		n += len(v)
	}
	return n
}

// running is a processor started by start.
type running struct {
	p    *processor.Processor
	reg  *prometheus.Registry
	stop context.CancelFunc
	done chan error
}

// start runs a processor in the background; it is stopped when the test
// ends unless stopped before.
func start(t testing.TB, brokers []string, opts ...processor.Option) *running {
	t.Helper()
	reg := prometheus.NewRegistry()
	opts = append([]processor.Option{processor.WithBrokers(brokers...), processor.WithGroup(testGroup),
		processor.WithRegisterer(reg), processor.WithLogger(testLogger()),
		processor.WithTransactionalID(fmt.Sprintf("txn-%d", rand.Uint64()))}, opts...)
	p, err := processor.New(newCodec(t), opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, stop := context.WithCancel(context.Background())
	r := &running{p: p, reg: reg, stop: stop, done: make(chan error, 1)}
	go func() { r.done <- p.Run(ctx) }()
	t.Cleanup(func() { r.Stop(t) })
	return r
}

// Stop cancels the processor and waits for Run to return.
func (r *running) Stop(t testing.TB) {
	t.Helper()
	r.stop()
	select {
	case err, ok := <-r.done:
		if ok && err != nil {
			t.Errorf("Run: %v", err)
		}
		if ok {
			close(r.done)
		}
	case <-time.After(30 * time.Second):
		t.Error("Run did not return within 30s of cancel")
	}
}

// waitCommitted waits until group has committed the end offset of every
// input partition, failing early if one of the processors' Run returned.
func waitCommitted(t testing.TB, brokers []string, timeout time.Duration, rs ...*running) {
	t.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	ends, err := adm.ListEndOffsets(ctx, topics.CustomerEvents)
	if err != nil {
		t.Fatal(err)
	}
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last string
	for {
		committed, err := adm.FetchOffsets(ctx, testGroup)
		caughtUp := err == nil
		var behind []string
		ends.Each(func(o kadm.ListedOffset) {
			c, ok := committed.Lookup(o.Topic, o.Partition)
			if !ok || c.At != o.Offset {
				caughtUp = false
				behind = append(behind, fmt.Sprintf("p%d %d/%d", o.Partition, c.At, o.Offset))
			}
		})
		if caughtUp {
			return
		}
		last = strings.Join(behind, " ")
		for _, r := range rs {
			select {
			case err := <-r.done:
				t.Fatalf("Run returned before catching up: %v", err)
			default:
			}
		}
		select {
		case <-ctx.Done():
			t.Fatalf("group %s did not commit the input's end offsets within %v: %s (err %v)", testGroup, timeout, last, err)
		case <-tick.C:
		}
	}
}

// gather flattens the registry into "name{label="value"}" → value
// (counters, gauges; histograms as their sample count).
func gather(t testing.TB, reg *prometheus.Registry) map[string]float64 {
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
				var ls []string
				for _, l := range m.GetLabel() {
					ls = append(ls, fmt.Sprintf("%s=%q", l.GetName(), l.GetValue()))
				}
				name += "{" + strings.Join(ls, ",") + "}"
			}
			switch {
			case m.GetCounter() != nil:
				out[name] = m.GetCounter().GetValue()
			case m.GetGauge() != nil:
				out[name] = m.GetGauge().GetValue()
			case m.GetHistogram() != nil:
				out[name] = float64(m.GetHistogram().GetSampleCount())
			}
		}
	}
	return out
}

// cohort generates a deterministic stream of n events for each of
// customers customers: usage, logins, tickets, payments and NPS answers
// over n days, some customers declining (churn risk), some growing. The
// stream is interleaved by day within blocks of block customers, so every
// transaction touches many customers while each customer's events stay in
// event-time order.
func cohort(prefix string, customers, n, block int) []event.CustomerEvent {
	start := time.Date(2025, 3, 3, 0, 0, 0, 0, time.UTC)
	per := make([][]event.CustomerEvent, customers)
	for c := range customers {
		id := fmt.Sprintf("%s-%05d", prefix, c)
		rng := rand.New(rand.NewPCG(uint64(c), 42))
		seats := int64(20 + rng.IntN(80))
		kind := c % 4 // 0 steady, 1 declining, 2 growing, 3 troubled
		var evs []event.CustomerEvent
		add := func(day int, min int, p event.Payload) {
			evs = append(evs, event.CustomerEvent{
				EventID:    fmt.Sprintf("%s-%03d", id, len(evs)),
				CustomerID: id, OccurredAt: start.Add(time.Duration(day)*24*time.Hour + time.Duration(min)*time.Minute),
				Source: "test", Data: p,
			})
		}
		add(0, 1, event.ContractUpdated{Plan: "growth", Seats: seats, ArrCents: seats * 120_000,
			RenewalDate:  start.AddDate(0, 0, 80).Format(time.DateOnly),
			PlanFeatures: []string{"reports", "api", "dashboards", "alerts", "exports"}})
		for day := 0; len(evs) < n; day++ {
			frac := 0.7
			switch kind {
			case 1:
				frac = max(0.2, 0.8-0.03*float64(day))
			case 2:
				frac = min(1.0, 0.6+0.03*float64(day))
			}
			add(day, 10, event.UsageReported{ActiveUsers: int64(frac * float64(seats)), SeatsPurchased: seats,
				FeaturesUsed: []string{"reports", "api", "dashboards", "alerts"}[:2+rng.IntN(3)]})
			if len(evs) < n {
				role := "user"
				if rng.IntN(5) == 0 {
					role = "executive"
				}
				add(day, 20, event.LoginRecorded{UserID: fmt.Sprintf("%s-u%d", id, rng.IntN(9)), Role: role})
			}
			if len(evs) < n && rng.IntN(6) == 0 {
				switch kind {
				case 3:
					add(day, 30, event.SupportTicket{TicketID: fmt.Sprintf("%s-t%d", id, day), Status: "escalated", Priority: "urgent"})
				default:
					add(day, 30, event.NpsResponse{Score: int32(5 + rng.IntN(6))})
				}
			}
			if len(evs) < n && kind == 3 && day%10 == 5 {
				add(day, 40, event.PaymentEvent{InvoiceID: fmt.Sprintf("%s-i%d", id, day), Status: "failed", AmountCents: 90_000})
			}
		}
		per[c] = evs
	}
	var out []event.CustomerEvent
	for b := 0; b < customers; b += block {
		for i := range n {
			for c := b; c < min(b+block, customers); c++ {
				out = append(out, per[c][i])
			}
		}
	}
	return out
}
