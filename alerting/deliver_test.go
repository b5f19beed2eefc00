package alerting_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/alerting"
	"github.com/vitalshq/vitals/dispatcher"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/topics"
	"github.com/vitalshq/vitals/webhook"
)

// The whole loop: an endpoint fails, its breaker stays open past the
// rule's For, the evaluator reads that from the dispatcher's metrics and
// writes alert.firing; the dispatcher delivers it, signed, to the
// operations endpoint subscribed to alerts. The endpoint recovers, its
// breaker closes, and alert.resolved follows. Each arrives once.
func TestBreakerAlertReachesTheOperationsEndpoint(t *testing.T) {
	schedule := []time.Duration{100 * time.Millisecond, 200 * time.Millisecond, 300 * time.Millisecond, 400 * time.Millisecond,
		500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond,
		500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond}
	seed := append(topics.Derived(), topics.DLQ, topics.Operational)
	for _, tier := range topics.RetryTiers(schedule, 1) {
		seed = append(seed, tier.Name)
	}
	brokers := testenv.Kfake(t, kfake.NumBrokers(1), kfake.SeedTopics(1, seed...))

	var healthy atomic.Bool
	failing := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !healthy.Load() {
			w.WriteHeader(http.StatusInternalServerError)
		}
	}))
	t.Cleanup(failing.Close)
	opsSecret := secret(t)
	verifier, err := webhook.NewVerifier(opsSecret)
	if err != nil {
		t.Fatal(err)
	}
	ops := &opsReceiver{verifier: verifier}
	opsSrv := httptest.NewServer(ops)
	t.Cleanup(opsSrv.Close)
	eps := endpoints{
		{ID: "ep_failing", URL: failing.URL + "/hooks", EventTypes: []string{"*"}, Secret: secret(t)},
		{ID: "ep_ops", URL: opsSrv.URL + "/alerts", EventTypes: []string{endpoint.OpAlertFiring, endpoint.OpAlertResolved}, Secret: opsSecret},
	}

	reg := prometheus.NewRegistry()
	d, err := dispatcher.New(brokers, jsonDecoder{}, eps,
		dispatcher.WithRegisterer(reg), dispatcher.WithAllowPrivate(true), dispatcher.WithRetryJitter(0),
		dispatcher.WithLogger(quiet()),
		dispatcher.WithRetrySchedule(schedule...),
		dispatcher.WithBreakerSettings(dispatcher.BreakerSettings{ConsecutiveFailures: 2, OpenFor: 200 * time.Millisecond, SuccessesToClose: 1}),
		dispatcher.WithKafkaOptions(kgo.FetchMaxWait(50*time.Millisecond)))
	if err != nil {
		t.Fatal(err)
	}
	th := alerting.DefaultThresholds()
	th.BreakerOpenFor = 600 * time.Millisecond
	ev, err := alerting.New(seeds(brokers), reg, alerting.WithRules(alerting.Rules(th)[0]), alerting.WithInterval(50*time.Millisecond),
		alerting.WithLogger(quiet()))
	if err != nil {
		t.Fatal(err)
	}
	run(t, d.Run)
	run(t, ev.Run)

	for _, id := range []string{"evt_1", "evt_2", "evt_3"} {
		produceDerived(t, brokers, event.Derived{EventID: id, Event: event.ChurnRiskDetected, CustomerID: "cust_1",
			Timestamp: time.Now().UTC(), Churn: &event.ChurnRisk{RiskLevel: "high"}})
	}
	firing := ops.wait(t, 1)[0]
	if firing.Type != endpoint.OpAlertFiring || firing.Alert != alerting.AlertBreakerOpen || firing.EndpointID != "ep_failing" ||
		firing.Value < 1 {
		t.Fatalf("firing: %+v", firing)
	}
	if open := firing.Timestamp.Sub(firing.ActiveSince); open < th.BreakerOpenFor {
		t.Fatalf("fired after the breaker was open %v, want at least %v", open, th.BreakerOpenFor)
	}
	healthy.Store(true)
	resolved := ops.wait(t, 2)[1]
	if resolved.Type != endpoint.OpAlertResolved || resolved.Key != firing.Key || resolved.EndpointID != "ep_failing" {
		t.Fatalf("resolved: %+v", resolved)
	}
}

// endpoints is a fixed endpoint registry.
type endpoints []endpoint.Endpoint

func (s endpoints) Get(id string) (endpoint.Endpoint, bool) {
	for _, e := range s {
		if e.ID == id {
			return e, true
		}
	}
	return endpoint.Endpoint{}, false
}

func (s endpoints) Subscribed(eventType string) []endpoint.Endpoint {
	var out []endpoint.Endpoint
	for _, e := range s {
		if e.Subscribes(eventType) {
			out = append(out, e)
		}
	}
	return out
}

// jsonDecoder reads derived events written by produceDerived.
type jsonDecoder struct{}

type plainDerived event.Derived // no MarshalJSON: every field round-trips

func (jsonDecoder) DecodeDerived(b []byte) (event.Derived, error) {
	var p plainDerived
	err := json.Unmarshal(b, &p)
	return event.Derived(p), err
}

func produceDerived(t *testing.T, brokers []string, d event.Derived) {
	t.Helper()
	b, err := json.Marshal(plainDerived(d))
	if err != nil {
		t.Fatal(err)
	}
	cl, err := kgo.NewClient(seeds(brokers)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	rec := &kgo.Record{Topic: topics.ForDerived(d.Event), Key: []byte(d.CustomerID), Value: b}
	if err := cl.ProduceSync(t.Context(), rec).FirstErr(); err != nil {
		t.Fatal(err)
	}
}

func secret(t *testing.T) string {
	t.Helper()
	s, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// opsReceiver is the operations endpoint: it verifies each webhook's
// signature and keeps the alert events, de-duplicated by webhook-id as a
// receiver would, counting the duplicates.
type opsReceiver struct {
	verifier *webhook.Verifier
	mu       sync.Mutex
	got      []alerting.Event
	ids      map[string]bool
	dups     int
	bad      []string
}

func (o *opsReceiver) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	o.mu.Lock()
	defer o.mu.Unlock()
	if err := o.verifier.Verify(r.Header, body); err != nil {
		o.bad = append(o.bad, err.Error())
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	var e alerting.Event
	if err := json.Unmarshal(body, &e); err != nil || e.ID != r.Header.Get("webhook-id") {
		o.bad = append(o.bad, "body "+string(body)+" webhook-id "+r.Header.Get("webhook-id"))
		w.WriteHeader(http.StatusBadRequest)
		return
	}
	if o.ids == nil {
		o.ids = map[string]bool{}
	}
	if o.ids[e.ID] {
		o.dups++
		return
	}
	o.ids[e.ID] = true
	o.got = append(o.got, e)
}

// wait waits until n distinct events arrived and returns them; more than
// n, a bad request or a duplicate fails.
func (o *opsReceiver) wait(t *testing.T, n int) []alerting.Event {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		o.mu.Lock()
		got, dups, bad := append([]alerting.Event(nil), o.got...), o.dups, append([]string(nil), o.bad...)
		o.mu.Unlock()
		switch {
		case len(bad) > 0:
			t.Fatalf("bad deliveries: %v", bad)
		case dups > 0:
			t.Fatalf("%d duplicate deliveries", dups)
		case len(got) > n:
			t.Fatalf("%d alert webhooks, want %d: %+v", len(got), n, got)
		case len(got) == n:
			return got
		case time.Now().After(deadline):
			t.Fatalf("%d alert webhooks after 15s, want %d: %+v", len(got), n, got)
		}
		time.Sleep(10 * time.Millisecond) // poll the receiver
	}
}
