package audit_test

import (
	"context"
	"errors"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/analytics/loader"
	"github.com/vitalshq/vitals/audit"
	"github.com/vitalshq/vitals/topics"
)

// memSink keeps inserted batches in memory; it fails the first failFirst
// inserts.
type memSink struct {
	mu        sync.Mutex
	failFirst int
	calls     int
	recs      []audit.Record
}

func (s *memSink) InsertAudit(_ context.Context, recs []audit.Record) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= s.failFirst {
		return errors.New("store down")
	}
	s.recs = append(s.recs, recs...)
	return nil
}

func (s *memSink) records() []audit.Record {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]audit.Record(nil), s.recs...)
}

// runLoader runs a Loader over sink until the returned stop is called (or
// the test ends).
func runLoader(t *testing.T, kopts []kgo.Opt, sink audit.Sink, opts ...loader.Option) (stop func()) {
	t.Helper()
	l, err := audit.NewLoader(kopts, sink, append([]loader.Option{loader.WithFlushInterval(50 * time.Millisecond),
		loader.WithRetryBackoff(10 * time.Millisecond)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- l.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Loader.Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Loader.Run did not return 30s after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func waitFor(t *testing.T, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s: not reached in 15s; last: %s", what, state)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestLoaderRetriesThenCommits: inserts that fail are retried; offsets are
// committed after the insert, so a second loader of the group does not
// reload what the first stored; a record that is not an audit record is
// counted and skipped.
func TestLoaderRetriesThenCommits(t *testing.T) {
	kopts := kafka(t)
	w := newWriter(t, kopts)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for i := range 50 {
		if _, err := w.Write(ctx, call("GET", 200), i%10 == 0); err != nil {
			t.Fatal(err)
		}
	}
	junk, err := kgo.NewClient(kopts...)
	if err != nil {
		t.Fatal(err)
	}
	defer junk.Close()
	if err := junk.ProduceSync(ctx, &kgo.Record{Topic: topics.Audit, Key: []byte("x"), Value: []byte("not json")}).FirstErr(); err != nil {
		t.Fatal(err)
	}

	reg := prometheus.NewRegistry()
	first := &memSink{failFirst: 3}
	stop := runLoader(t, kopts, first, loader.WithMetrics(reg))
	waitFor(t, "first loader stores 50 records", func() (bool, string) {
		n := len(first.records())
		return n >= 50, "records: " + strconv.Itoa(n)
	})
	waitFor(t, "undecodable record counted", func() (bool, string) {
		n := counterValue0(t, reg, "vitals_loader_records_undecodable_total")
		return n == 1, "undecodable: " + strconv.Itoa(int(n))
	})
	stop()
	if got := first.records(); len(got) != 50 {
		t.Fatalf("first loader stored %d records, want 50", len(got))
	}
	rep, err := audit.Verify(ctx, audit.Records(first.records()), time.Time{})
	if err != nil || !rep.OK() || rep.Records != 50 {
		t.Fatalf("Verify of the loaded records: %v, %d records, %v", err, rep.Records, rep.Problems)
	}

	for range 5 {
		if _, err := w.Write(ctx, call("POST", 201), true); err != nil {
			t.Fatal(err)
		}
	}
	second := &memSink{}
	runLoader(t, kopts, second)
	waitFor(t, "second loader stores the 5 new records", func() (bool, string) {
		n := len(second.records())
		return n >= 5, "records: " + strconv.Itoa(n)
	})
	for _, r := range second.records() {
		if r.Seq <= 50 {
			t.Fatalf("second loader reloaded committed seq %d", r.Seq)
		}
	}
}

// counterValue0 returns the value of the unlabelled counter name in reg.
func counterValue0(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			return mf.GetMetric()[0].GetCounter().GetValue()
		}
	}
	return 0
}
