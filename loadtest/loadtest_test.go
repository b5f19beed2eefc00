package loadtest

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/model"
)

func TestScheduleAt(t *testing.T) {
	t0 := time.Date(2025, 12, 5, 8, 0, 0, 0, time.UTC)
	s := Schedule{Start: t0, Rate: 1000}
	for _, k := range []int{0, 1, 999, 1000, 12345} {
		if got, want := s.At(k), t0.Add(time.Duration(k)*time.Millisecond); !got.Equal(want) {
			t.Errorf("At(%d) = %v, want %v", k, got, want)
		}
	}
	if got, want := (Schedule{Start: t0, Rate: 3}).At(2), t0.Add(666_666_666*time.Nanosecond); !got.Equal(want) {
		t.Errorf("At(2) at 3/s = %v, want %v", got, want)
	}
	if n := s.Count(2500 * time.Millisecond); n != 2500 {
		t.Errorf("Count(2.5s) = %d, want 2500", n)
	}
}

// TestRunOpenLoopDoesNotWaitForResponses: every operation starts on its
// schedule while all the earlier ones are still waiting for an answer.
func TestRunOpenLoopDoesNotWaitForResponses(t *testing.T) {
	const n = 100
	s := Schedule{Start: time.Now().Add(10 * time.Millisecond), Rate: 2000}
	release := make(chan struct{})
	var started atomic.Int64
	var mu sync.Mutex
	dues := make([]time.Time, n)
	var early atomic.Int64
	done := make(chan OpenLoopStats)
	go func() {
		done <- RunOpenLoop(context.Background(), s, n, 0, func(_ context.Context, k int, due time.Time) {
			if time.Now().Before(due) {
				early.Add(1)
			}
			mu.Lock()
			dues[k] = due
			mu.Unlock()
			started.Add(1)
			<-release // no answer until every operation has started
		})
	}()
	deadline := time.After(10 * time.Second)
	for started.Load() < n {
		select {
		case <-deadline:
			t.Fatalf("%d of %d operations started while the earlier ones were unanswered: the loop waits for responses", started.Load(), n)
		case <-time.After(time.Millisecond):
		}
	}
	close(release)
	st := <-done
	if st.Sent != n {
		t.Errorf("Sent = %d, want %d", st.Sent, n)
	}
	if early.Load() > 0 {
		t.Errorf("%d operations started before they were due", early.Load())
	}
	for k, d := range dues {
		if !d.Equal(s.At(k)) {
			t.Fatalf("operation %d was given due time %v, want %v", k, d, s.At(k))
		}
	}
}

// TestRunOpenLoopCountsQueueing: with one slot and slow operations, later
// operations start late, and the loop says so; they keep their scheduled
// due times, so their latency includes the wait.
func TestRunOpenLoopCountsQueueing(t *testing.T) {
	const n = 10
	s := Schedule{Start: time.Now(), Rate: 1000}
	var bad atomic.Int64
	st := RunOpenLoop(context.Background(), s, n, 1, func(_ context.Context, k int, due time.Time) {
		if !due.Equal(s.At(k)) {
			bad.Add(1)
		}
		time.Sleep(20 * time.Millisecond) // a slow answer
	})
	if bad.Load() > 0 {
		t.Errorf("%d operations were given a due time other than their scheduled one", bad.Load())
	}
	if st.Sent != n || st.Late < n-2 || st.MaxStartLag < 100*time.Millisecond {
		t.Errorf("stats %+v: want all %d sent, at least %d late, the last about 170 ms behind", st, n, n-2)
	}
}

func TestRunOpenLoopStopsWithContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	s := Schedule{Start: time.Now(), Rate: 100}
	var calls atomic.Int64
	st := RunOpenLoop(ctx, s, 1000, 0, func(context.Context, int, time.Time) {
		if calls.Add(1) == 3 {
			cancel()
		}
	})
	if st.Sent < 3 || st.Sent > 4 {
		t.Errorf("Sent = %d after cancelling at the third operation, want 3 (or 4 if one was already due)", st.Sent)
	}
}

func TestRecorderExactQuantiles(t *testing.T) {
	var r Recorder
	ms := rand.Perm(100)
	for _, v := range ms {
		r.Record(time.Duration(v+1) * time.Millisecond)
	}
	s := r.Summary()
	check := func(name string, got *float64, want float64) {
		t.Helper()
		if got == nil || *got != want {
			t.Errorf("%s = %v, want %v", name, deref(got), want)
		}
	}
	if s.Count != 100 || s.Missing != 0 {
		t.Errorf("count %d missing %d, want 100 and 0", s.Count, s.Missing)
	}
	check("p50", s.P50, 50)
	check("p95", s.P95, 95)
	check("p99", s.P99, 99)
	check("max", s.Max, 100)

	var big Recorder
	for v := 1000; v >= 1; v-- {
		big.Record(time.Duration(v) * time.Microsecond)
	}
	bs := big.Summary()
	check("p99 of 1..1000 µs", bs.P99, 0.99)
	check("p50 of 1..1000 µs", bs.P50, 0.5)

	// Two of a hundred never completed: p99 falls on them.
	var lossy Recorder
	for v := 1; v <= 98; v++ {
		lossy.Record(time.Duration(v) * time.Millisecond)
	}
	lossy.Missing(2)
	ls := lossy.Summary()
	check("p50 with losses", ls.P50, 50)
	check("p95 with losses", ls.P95, 95)
	if ls.P99 != nil || ls.Max != nil || ls.Missing != 2 {
		t.Errorf("p99 %v max %v missing %d: want p99 and max lost (nil), 2 missing", deref(ls.P99), deref(ls.Max), ls.Missing)
	}
	if e := (&Recorder{}).Summary(); e.P50 != nil || e.Count != 0 {
		t.Errorf("empty recorder: %+v", e)
	}
}

func deref(p *float64) any {
	if p == nil {
		return nil
	}
	return *p
}

// TestProgressSilentOffTerminal: a bar on a buffer or a pipe writes
// nothing at all, not even the clearing sequence at Stop.
func TestProgressSilentOffTerminal(t *testing.T) {
	var buf bytes.Buffer
	p := NewProgress(&buf, time.Second)
	p.Start()
	p.Stage("ingest")
	p.Stop()
	if buf.Len() != 0 {
		t.Errorf("progress wrote %q to a buffer", buf.String())
	}

	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	p = NewProgress(w, time.Second)
	p.Start()
	p.Stage("dispatcher")
	p.Stop()
	w.Close()
	b, err := io.ReadAll(r)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 0 {
		t.Errorf("progress wrote %q to a pipe", b)
	}
}

// TestReportJSONShape pins the field names runs are compared by.
func TestReportJSONShape(t *testing.T) {
	r := &Report{SchemaVersion: SchemaVersion, Machine: Machine{CPUs: 2}}
	r.add(Figure{ID: "dispatcher.webhooks_per_s", Stage: "dispatcher", Name: "dispatcher", Value: ptr(18000.0), Unit: "webhooks/s",
		Baseline: &Baseline{Name: "bare net/http POST", Value: 24000, Unit: "POST/s"}, Target: &Target{Text: ">= 0.6x", Min: ptr(0.6), OfRatio: true}})
	r.add(Figure{ID: "processor.events_per_s", Stage: "processor", Value: ptr(100_000.0), Unit: "events/s",
		Target: &Target{Text: ">= 150,000/s", Min: ptr(150_000.0)}})
	r.add(Figure{ID: "soak.rss_growth_pct", Stage: "soak", Unit: "%", Target: &Target{Text: "flat", Max: ptr(10.0)}, Note: "not run"})
	var rec Recorder
	rec.Record(3 * time.Millisecond)
	r.Latency = append(r.Latency, LatencyRun{Name: "e2e 1,000/s", OfferedPerS: 1000, EventsPerRequest: 1, Latency: rec.Summary()})
	r.Resources = append(r.Resources, Resources{Stage: "ingest single", Process: "api", Events: 1000, CPUSeconds: 0.5, CPUPer1k: ptr(0.5), AllocsPerEvent: ptr(300.0)})
	path := filepath.Join(t.TempDir(), "sub", "run.json")
	if err := r.WriteJSON(path); err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		SchemaVersion int              `json:"schema_version"`
		Machine       map[string]any   `json:"machine"`
		Figures       []map[string]any `json:"figures"`
		Latency       []map[string]any `json:"latency"`
		Resources     []map[string]any `json:"resources"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		t.Fatal(err)
	}
	if got.SchemaVersion != 1 || got.Machine["cpus"] != 2.0 || len(got.Figures) != 3 || len(got.Latency) != 1 || len(got.Resources) != 1 {
		t.Fatalf("report %s", b)
	}
	d := got.Figures[0]
	base, _ := d["baseline"].(map[string]any)
	target, _ := d["target"].(map[string]any)
	if d["id"] != "dispatcher.webhooks_per_s" || d["value"] != 18000.0 || d["unit"] != "webhooks/s" || d["ratio"] != 0.75 || d["met"] != true ||
		base["name"] != "bare net/http POST" || base["value"] != 24000.0 || target["min"] != 0.6 || target["of_ratio"] != true {
		t.Errorf("ratio figure %v", d)
	}
	if p := got.Figures[1]; p["met"] != false || p["ratio"] != nil {
		t.Errorf("figure below its target without baseline: %v", p)
	}
	if s, ok := got.Figures[2]["value"]; !ok || s != nil || got.Figures[2]["met"] != nil {
		t.Errorf("unmeasured figure: %v, want value null and no met", got.Figures[2])
	}
	lat, _ := got.Latency[0]["latency"].(map[string]any)
	if lat["p99_ms"] != 3.0 || lat["count"] != 1.0 || got.Latency[0]["offered_events_per_s"] != 1000.0 {
		t.Errorf("latency run %v", got.Latency[0])
	}
	if res := got.Resources[0]; res["cpu_s_per_1k_events"] != 0.5 || res["allocs_per_event"] != 300.0 || res["peak_rss_mib"] != 0.0 {
		t.Errorf("resources %v", res)
	}
	var table strings.Builder
	if err := r.WriteTable(&table); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"0.75x", "18,000", "NO", "yes", "e2e 1,000/s", "3.0"} {
		if !strings.Contains(table.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, table.String())
		}
	}
}

// TestChurnLoadMatchesTheModel: the end-to-end traffic yields a
// churn_risk_detected event exactly where churnLoad says, and every such
// webhook (customer id, event time to the second) leads back to its event.
func TestChurnLoadMatchesTheModel(t *testing.T) {
	m, err := model.NewModel(model.DefaultConfig())
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2025, 12, 5, 8, 20, 0, 500, time.UTC)
	for _, pool := range []int{0, 7} {
		const n = 7 * 40 // 40 steps: past the model's 14-day low-engagement mark
		w := newChurnLoad("t", pool, n, now)
		states := map[string]*model.State{}
		for i := range n {
			ev := w.Event(i)
			if ev.OccurredAt.After(now) {
				t.Fatalf("pool %d: event %d at %v, after now", pool, i, ev.OccurredAt)
			}
			st := states[ev.CustomerID]
			if st == nil {
				st = &model.State{}
				states[ev.CustomerID] = st
			}
			var churn []event.Derived
			for _, d := range m.Apply(st, ev).Derived {
				if d.Event == event.ChurnRiskDetected {
					churn = append(churn, d)
				}
			}
			if want := w.Emits(i); (len(churn) == 1) != want || len(churn) > 1 {
				t.Fatalf("pool %d: event %d yields %d churn events, Emits says %v", pool, i, len(churn), want)
			}
			for _, d := range churn {
				ts, _ := time.Parse(time.RFC3339, d.Timestamp.UTC().Format(event.TimestampFormat))
				if got, ok := w.Seq(d.CustomerID, ts); !ok || got != i {
					t.Fatalf("pool %d: webhook of event %d traced to %d (%v)", pool, i, got, ok)
				}
			}
		}
	}
	if _, ok := (churnLoad{Prefix: "e2e0"}).Seq("e2e1-5", time.Time{}); ok {
		t.Error("a webhook of other traffic was traced to this run")
	}
}

func TestProfileFileName(t *testing.T) {
	for in, want := range map[string]string{"e2e 1,000/s": "e2e-1000-s", "processor restore": "processor-restore", "ingest single": "ingest-single"} {
		if got := fileName(in); got != want {
			t.Errorf("fileName(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestParseMetrics(t *testing.T) {
	text := `# HELP go_memstats_mallocs_total Total number of mallocs.
# TYPE go_memstats_mallocs_total counter
go_memstats_mallocs_total 1.5e+06
vitals_processor_events_total{outcome="applied"} 10
vitals_processor_events_total{outcome="skipped",x="a}b"} 5
vitals_processor_events_total_other 99
`
	got, err := parseMetrics(strings.NewReader(text), "go_memstats_mallocs_total", "vitals_processor_events_total")
	if err != nil {
		t.Fatal(err)
	}
	if got["go_memstats_mallocs_total"] != 1.5e6 || got["vitals_processor_events_total"] != 15 {
		t.Errorf("got %v", got)
	}
}

func TestProcReadsThisProcess(t *testing.T) {
	deadline := time.Now().Add(200 * time.Millisecond)
	x := 0
	for time.Now().Before(deadline) { // burn CPU the reading must see
		x++
	}
	cpu, err := procCPU(os.Getpid())
	if err != nil || cpu <= 0 {
		t.Errorf("procCPU = %v, %v; want > 0 after burning CPU (%d)", cpu, err, x)
	}
	rss, peak, err := procMemory(os.Getpid())
	if err != nil || rss <= 0 || peak < rss {
		t.Errorf("procMemory = %v, %v, %v; want 0 < rss <= peak", rss, peak, err)
	}
}
