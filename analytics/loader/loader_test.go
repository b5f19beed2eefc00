package loader_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/analytics/loader"
	"github.com/vitalshq/vitals/internal/testenv"
)

const topic = "loader-test.v1"

// memStore keeps inserted rows; it fails the first failFirst inserts.
type memStore struct {
	mu        sync.Mutex
	failFirst int
	calls     int
	rows      []int
}

func (s *memStore) insert(_ context.Context, rows []int) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.calls++
	if s.calls <= s.failFirst {
		return errors.New("store down")
	}
	s.rows = append(s.rows, rows...)
	return nil
}

func (s *memStore) stored() []int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]int(nil), s.rows...)
}

// decode reads "n=<int>" records.
func decode(r *kgo.Record) (int, error) {
	v, ok := strings.CutPrefix(string(r.Value), "n=")
	if !ok {
		return 0, errors.New("not n=")
	}
	return strconv.Atoi(v)
}

// run runs a loader of group "g" over store until the returned stop.
func run(t *testing.T, kopts []kgo.Opt, store *memStore, reg prometheus.Registerer) (stop func()) {
	t.Helper()
	l, err := loader.New(kopts, loader.Spec[int]{Name: "test", Group: "g", Topics: []string{topic},
		Decode: decode, Insert: store.insert},
		loader.WithFlushInterval(50*time.Millisecond), loader.WithRetryBackoff(10*time.Millisecond), loader.WithMetrics(reg))
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
					t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				t.Fatal("Run did not return 30s after cancel")
			}
		})
	}
	t.Cleanup(stop)
	return stop
}

func produce(t *testing.T, cl *kgo.Client, values ...string) {
	t.Helper()
	for _, v := range values {
		if err := cl.ProduceSync(t.Context(), &kgo.Record{Topic: topic, Value: []byte(v)}).FirstErr(); err != nil {
			t.Fatal(err)
		}
	}
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

// TestLoaderRetriesThenCommits: failed inserts are retried; offsets are
// committed only after the insert, so the group's next member goes on
// after what the first stored; a record that does not decode is counted
// and skipped.
func TestLoaderRetriesThenCommits(t *testing.T) {
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 3, topic)
	kopts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	prod, err := kgo.NewClient(kopts...)
	if err != nil {
		t.Fatal(err)
	}
	defer prod.Close()
	for i := range 40 {
		produce(t, prod, "n="+strconv.Itoa(i))
	}
	produce(t, prod, "junk")

	reg := prometheus.NewRegistry()
	first := &memStore{failFirst: 3}
	stop := run(t, kopts, first, reg)
	waitFor(t, "first loader stores 40 rows and skips the junk", func() (bool, string) {
		n, junk := len(first.stored()), counter(t, reg, "vitals_loader_records_undecodable_total")
		return n >= 40 && junk == 1, "rows " + strconv.Itoa(n) + ", undecodable " + strconv.Itoa(int(junk))
	})
	if f := counter(t, reg, "vitals_loader_insert_failures_total"); f < 3 {
		t.Errorf("insert_failures_total = %v, want at least the 3 failed inserts", f)
	}
	stop()
	if got := first.stored(); len(got) != 40 {
		t.Fatalf("first loader stored %d rows, want 40", len(got))
	}

	produce(t, prod, "n=100", "n=101")
	second := &memStore{}
	run(t, kopts, second, nil)
	waitFor(t, "second loader stores the 2 new rows", func() (bool, string) {
		n := len(second.stored())
		return n >= 2, "rows " + strconv.Itoa(n)
	})
	for _, v := range second.stored() {
		if v < 100 {
			t.Fatalf("second loader reloaded committed row %d", v)
		}
	}
}

// counter returns the value of the counter name in reg (0 when absent).
func counter(t *testing.T, reg *prometheus.Registry, name string) float64 {
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
