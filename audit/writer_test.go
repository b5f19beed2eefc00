package audit_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/audit"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/topics"
)

// kafka starts kfake with the audit topic (3 partitions) and returns
// client options for it.
func kafka(t *testing.T) []kgo.Opt {
	t.Helper()
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 3, topics.Audit)
	return []kgo.Opt{kgo.SeedBrokers(brokers...)}
}

func newWriter(t *testing.T, kopts []kgo.Opt, opts ...audit.Option) *audit.Writer {
	t.Helper()
	w, err := audit.NewWriter(kopts, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		if err := w.Close(ctx); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return w
}

func seeds(kopts []kgo.Opt) []string {
	cl, err := kgo.NewClient(kopts...)
	if err != nil {
		panic(err)
	}
	defer cl.Close()
	return cl.OptValue(kgo.SeedBrokers).([]string)
}

func call(method string, status int) audit.Record {
	return audit.Record{RequestID: "r", ClientID: "client_a", SourceIP: "198.51.100.7", UserAgent: "test",
		Method: method, Route: "/v1/endpoints", Status: status, LatencyMs: 2, Decision: audit.DecisionAllowed,
		RateLimitClass: "standard"}
}

func decode(t *testing.T, recs []*kgo.Record) []audit.Record {
	t.Helper()
	out := make([]audit.Record, len(recs))
	for i, kr := range recs {
		if err := json.Unmarshal(kr.Value, &out[i]); err != nil {
			t.Fatalf("record %d/%d: %v", kr.Partition, kr.Offset, err)
		}
		if string(kr.Key) != out[i].Instance {
			t.Fatalf("record %d/%d keyed %q, want its instance %q", kr.Partition, kr.Offset, kr.Key, out[i].Instance)
		}
	}
	return out
}

// TestSyncWriteIsAckedOnReturn: a synchronous Write returns only when the
// record is in Kafka. The linger is long, so a Write that did not wait for
// the acknowledgement would return before the record was even sent.
func TestSyncWriteIsAckedOnReturn(t *testing.T) {
	kopts := kafka(t)
	w := newWriter(t, kopts, audit.WithLinger(300*time.Millisecond))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	for i := range 3 {
		rec, err := w.Write(ctx, call("POST", 201), true)
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
		got := decode(t, testenv.ReadAll(t, seeds(kopts), topics.Audit, false))
		if len(got) != i+1 || got[i].ID != rec.ID || got[i].Hash != rec.Hash || got[i].Seq != uint64(i+1) {
			t.Fatalf("after sync Write #%d returned, Kafka holds %d records (last %+v), want %s", i+1, len(got), got, rec.ID)
		}
	}
}

// TestAsyncWriteReachesKafkaWithinASecond measures from Write's return
// until a consumer reads the record.
func TestAsyncWriteReachesKafkaWithinASecond(t *testing.T) {
	kopts := kafka(t)
	w := newWriter(t, kopts)
	cl, err := kgo.NewClient(append(kopts, kgo.ConsumeTopics(topics.Audit),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchMaxWait(50*time.Millisecond))...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	warm, cancelWarm := context.WithTimeout(ctx, 300*time.Millisecond)
	cl.PollRecords(warm, 1) // the consumer has joined; nothing to read yet
	cancelWarm()

	rec, err := w.Write(ctx, call("GET", 200), false)
	if err != nil {
		t.Fatalf("Write: %v", err)
	}
	written := time.Now()
	for {
		fetches := cl.PollRecords(ctx, 10)
		if ctx.Err() != nil {
			t.Fatal("async record never arrived")
		}
		for _, r := range decode(t, fetches.Records()) {
			if r.ID == rec.ID {
				if d := time.Since(written); d >= time.Second {
					t.Fatalf("async record arrived %v after Write, want < 1s", d)
				} else {
					t.Logf("async record readable %v after Write", d)
				}
				return
			}
		}
	}
}

// TestChainIsOrderedInOnePartition: concurrent writers, sync and async,
// leave the chain whole, in one partition, in sequence order.
func TestChainIsOrderedInOnePartition(t *testing.T) {
	kopts := kafka(t)
	w, err := audit.NewWriter(kopts)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	for g := range 8 {
		wg.Go(func() {
			for i := range 40 {
				if _, err := w.Write(ctx, call("GET", 200), (g+i)%5 == 0); err != nil {
					t.Errorf("Write: %v", err)
					return
				}
			}
		})
	}
	wg.Wait()
	if err := w.Close(ctx); err != nil {
		t.Fatalf("Close: %v", err)
	}
	kr := testenv.ReadAll(t, seeds(kopts), topics.Audit, false)
	recs := decode(t, kr)
	if len(recs) != 320 {
		t.Fatalf("Kafka holds %d records, want 320", len(recs))
	}
	for i, r := range recs {
		if kr[i].Partition != kr[0].Partition {
			t.Fatalf("chain spread over partitions %d and %d", kr[0].Partition, kr[i].Partition)
		}
		if r.Seq != uint64(i+1) {
			t.Fatalf("offset %d holds seq %d, want %d", kr[i].Offset, r.Seq, i+1)
		}
	}
	rep, err := audit.Verify(ctx, audit.Records(recs), time.Time{})
	if err != nil || !rep.OK() {
		t.Fatalf("Verify: %v %v", err, rep.Problems)
	}
	if _, err := w.Write(ctx, call("GET", 200), false); !errors.Is(err, audit.ErrClosed) {
		t.Errorf("Write after Close: %v, want ErrClosed", err)
	}
}

// TestRefusedRecordIsLoggedInFullAndCounted: Kafka refusing a record for
// good (here: larger than the batch limit) is not silent.
func TestRefusedRecordIsLoggedInFullAndCounted(t *testing.T) {
	kopts := kafka(t)
	var logs syncBuffer
	reg := prometheus.NewRegistry()
	w := newWriter(t, append(kopts, kgo.ProducerBatchMaxBytes(512)),
		audit.WithLogger(slog.New(slog.NewJSONHandler(&logs, nil))), audit.WithMetrics(reg))
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()

	big := call("GET", 200)
	big.RequestID = strings.Repeat("r", 600)
	rec, err := w.Write(ctx, big, false)
	if err != nil {
		t.Fatalf("async Write: %v (failures are reported by log and metric)", err)
	}
	failures := func(mode string) float64 {
		return counterValue(t, reg, "vitals_audit_write_failures_total", mode)
	}
	deadline := time.Now().Add(5 * time.Second)
	for failures("async") != 1 {
		if time.Now().After(deadline) {
			t.Fatalf("write_failures_total{mode=async} = %v, want 1", failures("async"))
		}
		time.Sleep(10 * time.Millisecond)
	}
	if !strings.Contains(logs.String(), rec.ID) || !strings.Contains(logs.String(), rec.Hash) {
		t.Errorf("log does not hold the refused record %s:\n%s", rec.ID, logs.String())
	}

	if _, err := w.Write(ctx, big, true); err == nil {
		t.Error("sync Write of a refused record: nil error")
	}
	if failures("sync") != 1 {
		t.Errorf("write_failures_total{mode=sync} = %v, want 1", failures("sync"))
	}
}

// TestSyncWriteGivesUpWithItsContext: with Kafka unreachable a synchronous
// Write returns ErrNotAcked when its context ends.
func TestSyncWriteGivesUpWithItsContext(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	w, err := audit.NewWriter([]kgo.Opt{kgo.SeedBrokers(addr)})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		w.Close(ctx) // the record is never acknowledged: Close gives up with ctx
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	start := time.Now()
	rec, err := w.Write(ctx, call("DELETE", 204), true)
	if !errors.Is(err, audit.ErrNotAcked) || !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Write: %v, want ErrNotAcked and DeadlineExceeded", err)
	}
	if d := time.Since(start); d > 2*time.Second {
		t.Errorf("Write took %v with a 300ms context", d)
	}
	if rec.Seq != 1 || rec.Instance != w.Instance() {
		t.Errorf("sealed record %+v: want seq 1 of the writer's chain", rec)
	}
}

func TestWriterOptionsAreChecked(t *testing.T) {
	for _, o := range []audit.Option{audit.WithLinger(0), audit.WithLinger(2 * time.Second), audit.WithMaxBuffered(0)} {
		if _, err := audit.NewWriter([]kgo.Opt{kgo.SeedBrokers("127.0.0.1:1")}, o); err == nil {
			t.Error("NewWriter accepted a bad option")
		}
	}
}

// counterValue returns the value of counter name with label mode=mode in
// reg, 0 when it has none.
func counterValue(t *testing.T, reg *prometheus.Registry, name, mode string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "mode" && l.GetValue() == mode {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

// syncBuffer is a bytes.Buffer safe for the logger's and the test's
// goroutines.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}
