package dispatcher_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"hash/fnv"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/topics"
	"github.com/vitalshq/vitals/webhook"
)

// crashEvents is how many derived events the crash test delivers.
const crashEvents = 3000

// crashSchedule is the crash test's compressed retry schedule: seven
// attempts within about eight seconds, so no delivery is dead-lettered
// while the dispatcher is down for a rebalance.
const crashSchedule = "200ms,500ms,1s,2s,2s,2s"

// TestCrash runs the dispatcher as a separate process (internal/crashdisp)
// while 3000 Avro derived events of mixed types flow into the derived
// topics, kills it with SIGKILL three times at random moments and starts it
// again each time. Two real receivers verify every request's Standard
// Webhooks signature on their own (HMAC-SHA256 of "id.timestamp.body"), and
// one of them answers 500 to the first request of about one event in ten,
// so deliveries wait in the retry tiers across the kills.
//
// At the end every subscribed (event, endpoint) pair must have been
// answered 2xx at least once, every request must carry the event id as its
// webhook-id and a valid signature, no endpoint may see an event it is not
// subscribed to, and nothing may be dead-lettered. Lost offsets or retry
// tasks show up as a missing pair; the duplicate rate (pairs delivered more
// than once, the price of at-least-once) is reported.
//
// It runs on Apache Kafka (a private broker: the test uses the fixed
// vitals.* topics). On kfake the same scenario stalls in about one run in
// three — one derived-topic partition stops being delivered after a kill —
// which is under investigation (see the issue notes of [3/9]); reproduce it
// by passing testenv.Kfake(t, kfake.NumBrokers(1)) to runCrash.
func TestCrash(t *testing.T) {
	bin := filepath.Join(t.TempDir(), "crashdisp")
	build := exec.Command("go", "build", "-o", bin, "./internal/crashdisp")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build crashdisp: %v\n%s", err, out)
	}
	// group.min.session.timeout.ms is Kafka's default, 6 s.
	runCrash(t, bin, testenv.PrivateApacheKafka(t), 6*time.Second)
}

// runCrash is the crash test against brokers; session is the dispatcher's
// group session timeout (how long a killed member holds its partitions).
func runCrash(t *testing.T, bin string, brokers []string, session time.Duration) {
	began := time.Now()
	createCrashTopics(t, brokers)

	evs := crashDerived(crashEvents)
	known := make(map[string]string, len(evs))
	for _, ev := range evs {
		known[ev.EventID] = ev.Event
	}
	all := newCrashReceiver(t, "ep_all", known, 0, "*")
	some := newCrashReceiver(t, "ep_some", known, 10, event.HealthScoreChange, event.ChurnRiskDetected)
	receivers := []*crashReceiver{all, some}
	want := 0
	for _, r := range receivers {
		want += r.subscribedCount()
	}

	dir := t.TempDir()
	epFile := filepath.Join(dir, "endpoints.json")
	b, err := json.Marshal([]endpoint.Endpoint{all.endpoint, some.endpoint})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(epFile, b, 0o600); err != nil {
		t.Fatal(err)
	}

	codec, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	recs := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		v, err := codec.EncodeDerived(ev)
		if err != nil {
			t.Fatal(err)
		}
		recs[i] = &kgo.Record{Topic: topics.ForDerived(ev.Event), Key: []byte(ev.CustomerID), Value: v}
	}

	logs, err := os.Create(filepath.Join(dir, "crashdisp.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer logs.Close()
	start := func() *exec.Cmd {
		cmd := exec.Command(bin, "-brokers", strings.Join(brokers, ","), "-endpoints", epFile,
			"-group", "crash-dispatcher", "-retry-group", "crash-dispatcher-retry",
			"-retry-schedule", crashSchedule, "-breaker-failures", "20", "-breaker-open", "500ms",
			"-session-timeout", session.String(), "-log-level", "warn")
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		return cmd
	}
	defer func() {
		if t.Failed() {
			b, _ := os.ReadFile(logs.Name())
			t.Logf("crashdisp log (last 4 KiB):\n%s", b[max(0, len(b)-4096):])
		}
	}()

	// The events flow in chunks while the dispatcher runs and is killed.
	pcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MaxBufferedRecords(len(recs)))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	produced := make(chan error, 1)
	go func() {
		const chunk = 50
		tick := time.NewTicker(60 * time.Millisecond)
		defer tick.Stop()
		for i := 0; i < len(recs); i += chunk {
			if err := pcl.ProduceSync(ctx, recs[i:min(i+chunk, len(recs))]...).FirstErr(); err != nil {
				produced <- err
				return
			}
			select {
			case <-tick.C:
			case <-ctx.Done():
				produced <- ctx.Err()
				return
			}
		}
		produced <- nil
	}()

	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 0))
	t.Logf("kill seed %d", seed)
	cmd := start()
	defer func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			_ = cmd.Wait()
		}
	}()
	for i := range 3 {
		// Kill i lands after a random share of the pairs arrived, in the
		// i-th third of the run.
		at := int(float64(want) * (float64(i) + 0.2 + 0.6*rng.Float64()) / 3.5)
		if got := waitArrived(receivers, at, 60*time.Second); got < at {
			t.Fatalf("%d of %d pairs arrived within 60s; kill %d waits for %d", got, want, i+1, at)
		}
		time.Sleep(time.Duration(rng.IntN(100)) * time.Millisecond)
		if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		_ = cmd.Wait()
		t.Logf("kill %d after ≥ %d of %d pairs arrived (%v)", i+1, at, want, time.Since(began).Round(time.Millisecond))
		cmd = start()
	}
	if err := <-produced; err != nil {
		t.Fatalf("produce events: %v", err)
	}
	if got := waitArrived(receivers, want, 45*time.Second); got < want {
		t.Errorf("%d of %d pairs arrived within 45s of the last restart", got, want)
	}
	delivered := time.Since(began)

	_ = cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case err := <-done:
		if err != nil {
			t.Errorf("crashdisp did not stop cleanly on SIGTERM: %v", err)
		}
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		<-done
		t.Error("crashdisp did not stop within 30s of SIGTERM")
	}

	arrivals, dups, injected := 0, 0, 0
	for _, r := range receivers {
		r.mu.Lock()
		for _, p := range r.problems {
			t.Errorf("%s: %s", r.endpoint.ID, p)
		}
		var missing []string
		for id, n := range r.arrivals {
			if n < 1 {
				missing = append(missing, id)
			}
			arrivals += n
			dups += max(0, n-1)
		}
		if len(missing) > 0 {
			slices.Sort(missing)
			t.Errorf("%s: %d subscribed events never arrived, e.g. %v", r.endpoint.ID, len(missing), missing[:min(10, len(missing))])
		}
		injected += r.injected
		r.mu.Unlock()
	}
	if dlq := testenv.ReadAll(t, brokers, topics.DLQ, false); len(dlq) > 0 {
		t.Errorf("%d deliveries dead-lettered; want none", len(dlq))
	}
	t.Logf("pairs: %d (%d events, 2 endpoints); arrivals answered 2xx: %d; injected 500s: %d",
		want, len(evs), arrivals, injected)
	t.Logf("duplicates: %.1f %% (%d extra deliveries over %d pairs); waited %v for the pairs",
		100*float64(dups)/float64(want), dups, want, delivered.Round(time.Millisecond))
}

// createCrashTopics creates every topic Vitals creates at start and the
// retry tiers of crashSchedule.
func createCrashTopics(t *testing.T, brokers []string) {
	t.Helper()
	var waits []time.Duration
	for _, s := range strings.Split(crashSchedule, ",") {
		d, err := time.ParseDuration(s)
		if err != nil {
			t.Fatal(err)
		}
		waits = append(waits, d)
	}
	byCount := map[int32][]string{}
	for _, s := range append(topics.All(0), topics.RetryTiers(waits, topics.DefaultPartitions)...) {
		byCount[s.Partitions] = append(byCount[s.Partitions], s.Name)
	}
	for n, names := range byCount {
		testenv.CreateTopics(t, brokers, n, names...)
	}
}

// crashDerived returns n derived events of 200 customers, the three types
// in turn.
func crashDerived(n int) []event.Derived {
	at := time.Date(2025, 12, 5, 8, 20, 0, 0, time.UTC)
	out := make([]event.Derived, n)
	for i := range out {
		d := event.Derived{EventID: fmt.Sprintf("evt_crash_%05d", i),
			CustomerID: fmt.Sprintf("cust_%04d", i%200), Timestamp: at.Add(time.Duration(i) * time.Second)}
		switch i % 3 {
		case 0:
			d.Event = event.HealthScoreChange
			d.Health = &event.HealthChange{PreviousScore: 80, NewScore: 65, ChangeReason: "usage_decline"}
		case 1:
			d.Event = event.ExpansionReady
			d.Expansion = &event.Expansion{OpportunityType: "upsell", ValueEstimate: 50000, Probability: 0.75,
				SuccessFactors: []string{"high_adoption", "strong_health_score"}}
		default:
			d.Event = event.ChurnRiskDetected
			d.Churn = &event.ChurnRisk{RiskLevel: "high", RiskIndicators: []string{"payment_issue"},
				RecommendedActions: []string{"immediate_outreach"}}
		}
		out[i] = d
	}
	return out
}

// crashReceiver is a real HTTP endpoint that verifies every request's
// signature itself and counts, per event id, the requests it answered 2xx.
// With failEvery > 0 it answers 500 to the first request of the events
// whose id hashes to 0 modulo failEvery.
type crashReceiver struct {
	endpoint  endpoint.Endpoint
	key       []byte
	known     map[string]string // event id → type, of every produced event
	failEvery uint32

	mu       sync.Mutex
	arrivals map[string]int  // subscribed event id → 2xx answers
	seen     map[string]bool // event ids requested at least once
	injected int             // 500s answered on purpose
	problems []string
}

func newCrashReceiver(t *testing.T, id string, known map[string]string, failEvery uint32, types ...string) *crashReceiver {
	t.Helper()
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	// The key is decoded here, not with package webhook: the receiver
	// checks the signatures independently of the code that makes them.
	key, err := base64.StdEncoding.DecodeString(strings.TrimPrefix(secret, "whsec_"))
	if err != nil {
		t.Fatal(err)
	}
	r := &crashReceiver{key: key, known: known, failEvery: failEvery,
		arrivals: map[string]int{}, seen: map[string]bool{}}
	srv := httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(srv.Close)
	r.endpoint = endpoint.Endpoint{ID: id, URL: srv.URL + "/webhooks/" + id, EventTypes: types,
		Secret: secret, MaxInFlight: 32, CreatedAt: time.Now().UTC()}
	for evID, typ := range known {
		if r.endpoint.Subscribes(typ) {
			r.arrivals[evID] = 0
		}
	}
	return r
}

func (r *crashReceiver) subscribedCount() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.arrivals)
}

// delivered returns how many subscribed events were answered 2xx at least
// once.
func (r *crashReceiver) delivered() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, c := range r.arrivals {
		if c > 0 {
			n++
		}
	}
	return n
}

func (r *crashReceiver) problem(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.problems) < 20 {
		r.problems = append(r.problems, fmt.Sprintf(format, args...))
	}
}

func (r *crashReceiver) serve(w http.ResponseWriter, req *http.Request) {
	body, err := io.ReadAll(req.Body)
	if err != nil {
		return // the sender went away (killed) mid-request
	}
	id := req.Header.Get("webhook-id")
	ts := req.Header.Get("webhook-timestamp")
	if !r.signed(id, ts, req.Header.Get("webhook-signature"), body) {
		r.problem("request %q: signature does not verify", id)
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var msg struct {
		EventID string `json:"event_id"`
		Event   string `json:"event"`
	}
	if err := json.Unmarshal(body, &msg); err != nil {
		r.problem("request %q: body: %v", id, err)
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	typ, ok := r.known[msg.EventID]
	switch {
	case msg.EventID != id:
		r.problem("webhook-id %q differs from event_id %q", id, msg.EventID)
	case !ok:
		r.problem("event %q was never produced", id)
	case typ != msg.Event:
		r.problem("event %q has type %q, produced as %q", id, msg.Event, typ)
	case !r.endpoint.Subscribes(typ):
		r.problem("event %q of type %q is not subscribed", id, typ)
	}

	r.mu.Lock()
	first := !r.seen[id]
	r.seen[id] = true
	if first && r.failEvery > 0 && hash32(id)%r.failEvery == 0 {
		r.injected++
		r.mu.Unlock()
		w.WriteHeader(http.StatusInternalServerError)
		return
	}
	if _, sub := r.arrivals[id]; sub {
		r.arrivals[id]++
	}
	r.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// signed verifies a Standard Webhooks signature header: one of its
// space-separated "v1,<base64>" entries must be the HMAC-SHA256 of
// "id.timestamp.body", and the timestamp within five minutes of now.
func (r *crashReceiver) signed(id, ts, header string, body []byte) bool {
	unix, err := strconv.ParseInt(ts, 10, 64)
	if err != nil || id == "" || time.Since(time.Unix(unix, 0)).Abs() > 5*time.Minute {
		return false
	}
	mac := hmac.New(sha256.New, r.key)
	mac.Write([]byte(id + "." + ts + "."))
	mac.Write(body)
	want := mac.Sum(nil)
	for _, entry := range strings.Fields(header) {
		v, sig, ok := strings.Cut(entry, ",")
		if !ok || v != "v1" {
			continue
		}
		got, err := base64.StdEncoding.DecodeString(sig)
		if err == nil && hmac.Equal(got, want) {
			return true
		}
	}
	return false
}

func hash32(s string) uint32 {
	h := fnv.New32a()
	h.Write([]byte(s))
	return h.Sum32()
}

// waitArrived waits until the receivers together answered 2xx for at least
// n distinct pairs, or timeout passed, and returns how many did.
func waitArrived(rs []*crashReceiver, n int, timeout time.Duration) int {
	deadline := time.Now().Add(timeout)
	for {
		got := 0
		for _, r := range rs {
			got += r.delivered()
		}
		if got >= n || time.Now().After(deadline) {
			return got
		}
		time.Sleep(20 * time.Millisecond)
	}
}
