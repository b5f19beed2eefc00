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

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kfake"
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
// vitals.* topics), where a kill may also land in the middle of a
// rebalance; TestCrashKfake runs it on kfake.
func TestCrash(t *testing.T) {
	// group.min.session.timeout.ms is Kafka's default, 6 s.
	runCrash(t, buildCrashdisp(t), testenv.PrivateApacheKafka(t), 6*time.Second, false)
}

// TestCrashKfake is TestCrash on an in-process kfake broker, with a 2 s
// session timeout to keep it short, and one difference: a kill waits until
// the running dispatcher is the only member of both its consumer groups
// and they are stable, so no JoinGroup of the killed process is in flight.
//
// kfake (pkg/kfake at v0.0.0-20260918054303-01f206a7e32c) loses the session
// timer of a new classic-group member whose connection dies while its
// JoinGroup waits in a rebalance: group.addMemberAndRebalance stops the
// member's pending timer, and when the rebalance completes,
// group.reply restarts it (updateHeartbeat) only if clientReq.reply
// reports the response delivered — which, for a closed connection, is a
// coin toss between the buffered respCh and the closed done channel.
// Half the time the dead member therefore stays in the new generation with
// no session timer: the leader assigns it its share of the partitions,
// which are never consumed while the group is stable, and the next
// rebalance waits the whole rebalance timeout (60 s) for it to rejoin.
// Apache Kafka schedules every member's session expiration when a join
// completes (GroupCoordinator.onCompleteJoin), delivered or not. Killing a
// dispatcher only once it settled keeps that out of this test; the rest of
// the scenario — kills under load, with deliveries in flight and waiting
// in the retry tiers — is unchanged.
func TestCrashKfake(t *testing.T) {
	brokers := testenv.Kfake(t, kfake.NumBrokers(1), kfake.GroupMinSessionTimeout(time.Second))
	runCrash(t, buildCrashdisp(t), brokers, 2*time.Second, true)
}

// buildCrashdisp builds internal/crashdisp and returns the binary's path.
func buildCrashdisp(t *testing.T) string {
	t.Helper()
	bin := filepath.Join(t.TempDir(), "crashdisp")
	build := exec.Command("go", "build", "-o", bin, "./internal/crashdisp")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("build crashdisp: %v\n%s", err, out)
	}
	return bin
}

// The crash test's consumer groups.
const (
	crashGroup      = "crash-dispatcher"
	crashRetryGroup = "crash-dispatcher-retry"
)

// runCrash is the crash test against brokers; session is the dispatcher's
// group session timeout (how long a killed member holds its partitions).
// With settle, a kill waits until the running dispatcher settled in its
// groups (see TestCrashKfake).
func runCrash(t *testing.T, bin string, brokers []string, session time.Duration, settle bool) {
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

	// The events flow in chunks while the dispatcher runs and is killed.
	pcl, err := kgo.NewClient(kgo.SeedBrokers(brokers...), kgo.MaxBufferedRecords(len(recs)))
	if err != nil {
		t.Fatal(err)
	}
	defer pcl.Close()
	adm := kadm.NewClient(pcl)
	incarnation := 0
	clientID := func() string { return fmt.Sprintf("crashdisp-%d", incarnation) }
	start := func() *exec.Cmd {
		incarnation++
		cmd := exec.Command(bin, "-brokers", strings.Join(brokers, ","), "-endpoints", epFile,
			"-group", crashGroup, "-retry-group", crashRetryGroup, "-client-id", clientID(),
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
			t.Logf("consumer groups (the running dispatcher is %s):\n%s", clientID(), describeGroups(adm))
		}
	}()
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
		if settle {
			if state, ok := waitSettled(adm, clientID(), 60*time.Second); !ok {
				t.Fatalf("dispatcher %s not settled in its groups within 60s; kill %d waits for it:\n%s", clientID(), i+1, state)
			}
		}
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

	if settle {
		if state, ok := waitSettled(adm, clientID(), 60*time.Second); !ok {
			t.Errorf("dispatcher %s not settled in its groups within 60s:\n%s", clientID(), state)
		}
	}
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

// waitSettled waits until the dispatcher with client id cid is the only
// member of both crash groups and both are stable — none of its JoinGroups
// is in flight — or timeout passed. It returns the groups' state as last
// seen and whether they settled.
func waitSettled(adm *kadm.Client, cid string, timeout time.Duration) (string, bool) {
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		groups, err := adm.DescribeGroups(ctx, crashGroup, crashRetryGroup)
		cancel()
		if err == nil {
			err = groups.Error()
		}
		settled := err == nil && len(groups) == 2
		for _, g := range groups {
			settled = settled && g.State == "Stable" && len(g.Members) == 1 && g.Members[0].ClientID == cid
		}
		if settled {
			return "", true
		}
		if time.Now().After(deadline) {
			if err != nil {
				return err.Error(), false
			}
			return formatGroups(groups), false
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// describeGroups returns the crash groups' state, members and assignments.
func describeGroups(adm *kadm.Client) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	groups, err := adm.DescribeGroups(ctx, crashGroup, crashRetryGroup)
	if err != nil {
		return fmt.Sprintf("describe groups: %v", err)
	}
	return formatGroups(groups)
}

func formatGroups(groups kadm.DescribedGroups) string {
	var b strings.Builder
	for _, g := range groups.Sorted() {
		fmt.Fprintf(&b, "%s: %s", g.Group, g.State)
		if g.Err != nil {
			fmt.Fprintf(&b, " (%v)", g.Err)
		}
		b.WriteByte('\n')
		for _, m := range g.Members {
			fmt.Fprintf(&b, "  member %s (client %s)", m.MemberID, m.ClientID)
			if c, ok := m.Assigned.AsConsumer(); ok {
				for _, tp := range c.Topics {
					fmt.Fprintf(&b, " %s%v", tp.Topic, tp.Partitions)
				}
			}
			b.WriteByte('\n')
		}
	}
	return b.String()
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
