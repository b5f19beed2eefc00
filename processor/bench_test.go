package processor

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"runtime"
	"testing"
	"time"

	dto "github.com/prometheus/client_model/go"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/model"
	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/topics"
)

// benchEvents is the input of one benchmark iteration: benchCustomers
// customers with benchEvents/benchCustomers days of usage and logins each,
// interleaved across customers like live traffic.
const (
	benchEvents    = 40_000
	benchCustomers = 2000
)

// benchInput returns the encoded input and the pure model's final states.
func benchInput(b *testing.B, codec *schemas.Codec) ([]*kgo.Record, map[string]*model.State) {
	b.Helper()
	m, err := model.NewModel(model.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	start := time.Date(2025, 2, 3, 0, 0, 0, 0, time.UTC)
	states := map[string]*model.State{}
	recs := make([]*kgo.Record, 0, benchEvents)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range benchEvents {
		c, n := i%benchCustomers, i/benchCustomers
		id := fmt.Sprintf("bench-%05d", c)
		var p event.Payload = event.UsageReported{ActiveUsers: int64(20 + rng.IntN(30)), SeatsPurchased: 50,
			FeaturesUsed: []string{"reports", "api"}}
		if n%2 == 1 {
			p = event.LoginRecorded{UserID: fmt.Sprintf("%s-u%d", id, rng.IntN(5)), Role: "user"}
		}
		ev := event.CustomerEvent{EventID: fmt.Sprintf("%s-%d", id, n), CustomerID: id,
			OccurredAt: start.Add(time.Duration(n/2) * 24 * time.Hour), Source: "bench", Data: p}
		if states[id] == nil {
			states[id] = &model.State{CustomerID: id}
		}
		m.Apply(states[id], ev)
		v, err := codec.EncodeCustomerEvent(ev)
		if err != nil {
			b.Fatal(err)
		}
		recs = append(recs, &kgo.Record{Topic: topics.CustomerEvents, Key: []byte(id), Value: v})
	}
	return recs, states
}

func benchCluster(b *testing.B) []string {
	b.Helper()
	names := append([]string{topics.CustomerEvents, topics.CustomerState, topics.CustomerEventsDLQ}, topics.Derived()...)
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(6, names...))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(c.Close)
	return c.ListenAddrs()
}

// BenchmarkProcessorEOS measures the processor with exactly-once on
// (kfake over TCP, JSON state): each iteration produces benchEvents input
// records to a fresh cluster, then times one processor from start until
// the group committed all of them. Reported: events/s, commit latency,
// allocations per event (of the whole process, kfake included) and the
// encoded state size per customer. Sub-benchmarks vary the transaction
// size and interval; DefaultTransactionRecords and
// DefaultTransactionInterval were chosen from them.
func BenchmarkProcessorEOS(b *testing.B) {
	codec, err := schemas.New()
	if err != nil {
		b.Fatal(err)
	}
	recs, states := benchInput(b, codec)
	avro, err := model.NewStateCodec(codec)
	if err != nil {
		b.Fatal(err)
	}
	// The deployed state codec is Avro (cmd/vitals wires model.StateCodec);
	// JSON, the package default, is measured beside it at the default size.
	for _, tc := range []struct {
		records  int
		interval time.Duration
		name     string
		states   StateCodec
	}{
		{500, 100 * time.Millisecond, "avro", avro},
		{2000, 100 * time.Millisecond, "avro", avro},
		{DefaultTransactionRecords, DefaultTransactionInterval, "avro", avro},
		{DefaultTransactionRecords, DefaultTransactionInterval, "json", JSONStateCodec{}},
		{10000, 100 * time.Millisecond, "avro", avro},
	} {
		var stateBytes int
		for _, st := range states {
			v, err := tc.states.EncodeState(st)
			if err != nil {
				b.Fatal(err)
			}
			stateBytes += len(v)
		}
		b.Run(fmt.Sprintf("txn=%d/%v/state=%s", tc.records, tc.interval, tc.name), func(b *testing.B) {
			var elapsed time.Duration
			var mallocs uint64
			var commit float64
			for range b.N {
				b.StopTimer()
				brokers := benchCluster(b)
				produce(b, brokers, recs)
				p, err := New(codec, WithBrokers(brokers...), WithTransactionalID("bench"), WithStateCodec(tc.states),
					WithTransactionRecords(tc.records), WithTransactionInterval(tc.interval),
					WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))))
				if err != nil {
					b.Fatal(err)
				}
				var before, after runtime.MemStats
				runtime.ReadMemStats(&before)
				b.StartTimer()
				began := time.Now()
				ctx, cancel := context.WithCancel(context.Background())
				done := make(chan error, 1)
				go func() { done <- p.Run(ctx) }()
				waitGroupCommitted(b, brokers, DefaultGroup, int64(len(recs)), done)
				elapsed += time.Since(began)
				b.StopTimer()
				runtime.ReadMemStats(&after)
				mallocs += after.Mallocs - before.Mallocs
				cancel()
				if err := <-done; err != nil {
					b.Fatal(err)
				}
				commit += p.metrics.commitTimeMean()
				var applied dto.Metric
				if err := p.metrics.events.WithLabelValues(outcomeApplied).Write(&applied); err != nil ||
					int(applied.GetCounter().GetValue()) != len(recs) {
					b.Fatalf("applied %v events, want %d (%v)", applied.GetCounter().GetValue(), len(recs), err)
				}
			}
			n := float64(b.N * len(recs))
			b.ReportMetric(n/elapsed.Seconds(), "events/s")
			b.ReportMetric(float64(mallocs)/n, "allocs/event")
			b.ReportMetric(commit/float64(b.N)*1000, "commit-ms")
			b.ReportMetric(float64(stateBytes)/float64(len(states)), "state-B/customer")
			b.ReportMetric(0, "ns/op")
		})
	}
}

// BenchmarkRawProduce is the baseline beside BenchmarkProcessorEOS: the
// rate at which a plain franz-go client (idempotent, acks=all, no
// transactions) produces the same input records to a fresh kfake cluster
// in the same run.
func BenchmarkRawProduce(b *testing.B) {
	codec, err := schemas.New()
	if err != nil {
		b.Fatal(err)
	}
	recs, _ := benchInput(b, codec)
	var elapsed time.Duration
	for range b.N {
		b.StopTimer()
		brokers := benchCluster(b)
		cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MaxBufferedRecords(len(recs)))
		if err != nil {
			b.Fatal(err)
		}
		out := make([]*kgo.Record, len(recs))
		for i, r := range recs {
			out[i] = &kgo.Record{Topic: topics.CustomerEvents, Key: r.Key, Value: r.Value}
		}
		b.StartTimer()
		began := time.Now()
		if err := cl.ProduceSync(context.Background(), out...).FirstErr(); err != nil {
			b.Fatal(err)
		}
		elapsed += time.Since(began)
		b.StopTimer()
		cl.Close()
	}
	b.ReportMetric(float64(b.N*len(recs))/elapsed.Seconds(), "records/s")
	b.ReportMetric(0, "ns/op")
}

// BenchmarkEventPath is the processor's CPU work per event without Kafka:
// decode, clone the committed state, apply the model, encode derived
// events and the state — the allocations a processed event costs.
func BenchmarkEventPath(b *testing.B) {
	codec, err := schemas.New()
	if err != nil {
		b.Fatal(err)
	}
	recs, _ := benchInput(b, codec)
	m, err := model.NewModel(model.DefaultConfig())
	if err != nil {
		b.Fatal(err)
	}
	committed := map[string]*model.State{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := range b.N {
		r := recs[i%len(recs)]
		if i%len(recs) == 0 {
			clear(committed)
		}
		ev, err := codec.DecodeCustomerEvent(r.Value)
		if err != nil {
			b.Fatal(err)
		}
		st := committed[ev.CustomerID]
		if st == nil {
			st = &model.State{CustomerID: ev.CustomerID}
		} else {
			st = cloneState(st)
		}
		for _, d := range m.Apply(st, ev).Derived {
			if _, err := codec.EncodeDerived(d); err != nil {
				b.Fatal(err)
			}
		}
		if _, err := (JSONStateCodec{}).EncodeState(st); err != nil {
			b.Fatal(err)
		}
		committed[ev.CustomerID] = st
	}
}

func produce(b *testing.B, brokers []string, recs []*kgo.Record) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MaxBufferedRecords(len(recs)))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	out := make([]*kgo.Record, len(recs))
	for i, r := range recs {
		out[i] = &kgo.Record{Topic: r.Topic, Key: r.Key, Value: r.Value}
	}
	if err := cl.ProduceSync(context.Background(), out...).FirstErr(); err != nil {
		b.Fatal(err)
	}
}

// waitGroupCommitted waits until group committed n input offsets in all.
func waitGroupCommitted(b *testing.B, brokers []string, group string, n int64, done <-chan error) {
	b.Helper()
	cl, err := kgo.NewClient(kgo.SeedBrokers(brokers...))
	if err != nil {
		b.Fatal(err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for {
		var sum int64
		if offs, err := adm.FetchOffsets(ctx, group); err == nil {
			offs.Each(func(o kadm.OffsetResponse) { sum += max(0, o.At) })
		}
		if sum >= n {
			return
		}
		select {
		case err := <-done:
			b.Fatalf("Run returned: %v", err)
		case <-ctx.Done():
			b.Fatalf("committed %d of %d", sum, n)
		case <-time.After(5 * time.Millisecond):
		}
	}
}
