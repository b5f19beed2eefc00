package replay_test

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/dispatcher/task"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/replay"
	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/topics"
)

const firstDelay = 50 * time.Millisecond

type env struct {
	brokers []string
	opts    []kgo.Opt
	store   *replay.Store
	eps     *endpoint.Registry
	codec   *schemas.Codec
	cl      *kgo.Client
}

// run starts fn in a goroutine owned by the test: cancelled and waited for
// at cleanup.
func run(t *testing.T, fn func(context.Context) error) {
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- fn(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
}

// newEnv starts a kfake cluster with the topics, an endpoint registry, a
// job store and a Runner.
func newEnv(t *testing.T) *env {
	t.Helper()
	brokers := testenv.Kfake(t)
	testenv.CreateTopics(t, brokers, 1, topics.Replays, topics.Endpoints)
	testenv.CreateTopics(t, brokers, 3, append(topics.Derived(), topics.DLQ, topics.Retry(firstDelay))...)
	e := &env{brokers: brokers, opts: []kgo.Opt{kgo.SeedBrokers(brokers...)}}
	var err error
	if e.store, err = replay.NewStore(e.opts); err != nil {
		t.Fatal(err)
	}
	if e.eps, err = endpoint.NewRegistry(e.opts); err != nil {
		t.Fatal(err)
	}
	if e.codec, err = schemas.New(); err != nil {
		t.Fatal(err)
	}
	if e.cl, err = kgo.NewClient(e.opts...); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(e.cl.Close)
	run(t, e.store.Run)
	run(t, e.eps.Run)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.eps.WaitReady(ctx); err != nil {
		t.Fatal(err)
	}
	r := replay.NewRunner(e.opts, e.store, e.eps, e.codec, replay.FirstDelay(firstDelay), replay.ProgressInterval(10*time.Millisecond))
	run(t, r.Run)
	return e
}

func (e *env) endpoint(t *testing.T, types ...string) endpoint.Endpoint {
	t.Helper()
	ep := endpoint.Endpoint{ID: endpoint.NewID(), URL: "https://hooks.example.com/" + t.Name(), EventTypes: types, Secret: "whsec_x"}
	if err := e.eps.Put(context.Background(), ep); err != nil {
		t.Fatal(err)
	}
	return ep
}

func (e *env) produce(t *testing.T, recs ...*kgo.Record) {
	t.Helper()
	if err := e.cl.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func (e *env) derived(t *testing.T, id, typ, customer string, ts time.Time) *kgo.Record {
	t.Helper()
	d := event.Derived{EventID: id, Event: typ, CustomerID: customer, Timestamp: ts}
	switch typ {
	case event.HealthScoreChange:
		d.Health = &event.HealthChange{PreviousScore: 80, NewScore: 60, ChangeReason: "usage_decline"}
	case event.ChurnRiskDetected:
		d.Churn = &event.ChurnRisk{RiskLevel: "high", RiskIndicators: []string{"payment_issue"}, RecommendedActions: []string{"immediate_outreach"}}
	case event.ExpansionReady:
		d.Expansion = &event.Expansion{OpportunityType: "upsell", ValueEstimate: 1, Probability: 0.5, SuccessFactors: []string{}}
	}
	v, err := e.codec.EncodeDerived(d)
	if err != nil {
		t.Fatal(err)
	}
	return &kgo.Record{Topic: topics.ForDerived(typ), Key: []byte(customer), Value: v, Timestamp: ts}
}

// submit stores a job and waits until it finished.
func (e *env) submit(t *testing.T, j replay.Job) replay.Job {
	t.Helper()
	j.ID, j.Status, j.CreatedAt = replay.NewID(), replay.StatusPending, time.Now().UTC()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := e.store.Put(ctx, j); err != nil {
		t.Fatal(err)
	}
	for {
		if got, _ := e.store.Get(j.ID); got.Status.Finished() {
			return got
		}
		select {
		case <-ctx.Done():
			got, _ := e.store.Get(j.ID)
			t.Fatalf("job %s not finished: %+v", j.ID, got)
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// queued returns the tasks of replay id in the first retry tier.
func (e *env) queued(t *testing.T, replayID string) []task.Task {
	t.Helper()
	var out []task.Task
	for _, r := range testenv.ReadAll(t, e.brokers, topics.Retry(firstDelay), false) {
		tk, err := task.Decode(r)
		if err != nil {
			t.Fatalf("retry tier holds a non-task: %v", err)
		}
		if tk.ReplayID == replayID {
			out = append(out, tk)
		}
	}
	slices.SortFunc(out, func(a, b task.Task) int { return compare(a.EventID, b.EventID) })
	return out
}

func compare(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestFailedOnlyReplay puts the deliveries that failed while an endpoint
// was down into the DLQ, as the dispatcher does, with records of another
// endpoint and records outside the range around them; a since/until
// failed_only replay re-queues exactly the endpoint's in-range ones.
func TestFailedOnlyReplay(t *testing.T) {
	e := newEnv(t)
	down := e.endpoint(t, "*")
	other := e.endpoint(t, "*")
	base := time.Now().Add(-3 * time.Hour).Truncate(time.Millisecond)
	dead := func(ep endpoint.Endpoint, id string, at time.Time) *kgo.Record {
		d := e.derived(t, id, event.ChurnRiskDetected, "cust_"+id, at)
		tk := task.Task{EndpointID: ep.ID, EventID: id, EventType: event.ChurnRiskDetected, CustomerID: "cust_" + id,
			Event: d.Value, Attempts: 8, DueAt: at, FirstAttempt: at.Add(-time.Hour), LastError: "connect", LastStatus: 0}
		r := tk.Record(topics.DLQ)
		r.Timestamp = at
		return r
	}
	var want []string
	for i := range 12 {
		at := base.Add(time.Duration(i) * 10 * time.Minute) // base … base+110m
		id := fmt.Sprintf("ev_%02d", i)
		e.produce(t, dead(down, id, at), dead(other, "other_"+id, at))
		if i >= 3 && i < 9 { // since base+30m, until base+90m (exclusive)
			want = append(want, id)
		}
	}
	j := e.submit(t, replay.Job{EndpointID: down.ID, FailedOnly: true, Since: base.Add(30 * time.Minute), Until: base.Add(90 * time.Minute)})
	if j.Status != replay.StatusDone || j.Error != "" || j.Queued != int64(len(want)) || j.Scanned != 2*int64(len(want)) {
		t.Fatalf("job %+v, want done with %d queued of %d scanned", j, len(want), 2*len(want))
	}
	got := e.queued(t, j.ID)
	var ids []string
	for _, tk := range got {
		ids = append(ids, tk.EventID)
		if tk.EndpointID != down.ID || tk.Attempts != 0 || tk.ReplayID != j.ID || tk.LastError != "" ||
			!tk.FirstAttempt.IsZero() || tk.CustomerID != "cust_"+tk.EventID || time.Since(tk.DueAt) > time.Minute {
			t.Errorf("task %+v", tk)
		}
		if ev, err := e.codec.DecodeDerived(tk.Event); err != nil || ev.EventID != tk.EventID {
			t.Errorf("task event %+v, %v", ev, err)
		}
	}
	if !slices.Equal(ids, want) {
		t.Fatalf("replayed %v, want %v", ids, want)
	}
}

// TestRangeAndMessageReplay replays every subscribed derived event of a
// range (honouring event types and the customer filter), and one message by
// id; an unknown id fails the job with a reason.
func TestRangeAndMessageReplay(t *testing.T) {
	e := newEnv(t)
	ep := endpoint.Endpoint{ID: endpoint.NewID(), URL: "https://hooks.example.com/x",
		EventTypes: []string{event.ChurnRiskDetected, event.HealthScoreChange}, CustomerIDs: []string{"c1", "c2"}, Secret: "whsec_x"}
	if err := e.eps.Put(context.Background(), ep); err != nil {
		t.Fatal(err)
	}
	base := time.Now().Add(-time.Hour).Truncate(time.Millisecond)
	e.produce(t,
		e.derived(t, "h1", event.HealthScoreChange, "c1", base),
		e.derived(t, "x1", event.ExpansionReady, "c1", base.Add(time.Second)), // not subscribed
		e.derived(t, "r1", event.ChurnRiskDetected, "c2", base.Add(2*time.Second)),
		e.derived(t, "r2", event.ChurnRiskDetected, "c9", base.Add(3*time.Second)), // customer filtered out
		e.derived(t, "h2", event.HealthScoreChange, "c2", base.Add(4*time.Second)),
		e.derived(t, "late", event.HealthScoreChange, "c1", base.Add(20*time.Minute)), // after until
	)
	j := e.submit(t, replay.Job{EndpointID: ep.ID, Since: base, Until: base.Add(10 * time.Minute)})
	var ids []string
	for _, tk := range e.queued(t, j.ID) {
		ids = append(ids, tk.EventID+"/"+tk.EventType)
	}
	if j.Status != replay.StatusDone || j.Scanned != 5 || j.Queued != 3 ||
		!slices.Equal(ids, []string{"h1/health_score_change", "h2/health_score_change", "r1/churn_risk_detected"}) {
		t.Fatalf("range job %+v queued %v", j, ids)
	}

	j = e.submit(t, replay.Job{EndpointID: ep.ID, MessageID: "h2"})
	got := e.queued(t, j.ID)
	if j.Status != replay.StatusDone || j.Queued != 1 || len(got) != 1 || got[0].EventID != "h2" || got[0].CustomerID != "c2" {
		t.Fatalf("message job %+v queued %+v", j, got)
	}
	j = e.submit(t, replay.Job{EndpointID: ep.ID, MessageID: "nope"})
	if j.Status != replay.StatusFailed || j.Queued != 0 || j.Scanned != 6 || j.Error == "" {
		t.Fatalf("unknown message job %+v", j)
	}
	t.Logf("unknown message: %s", j.Error)
}
