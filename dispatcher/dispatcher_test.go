package dispatcher_test

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/dispatcher"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/ssrf"
	"github.com/vitalshq/vitals/topics"
	"github.com/vitalshq/vitals/webhook"
)

// jsonCodec is a test-only wire format for derived events: the lead wires
// package schemas' Avro codec in production.
type jsonCodec struct{}

type plainDerived event.Derived // no MarshalJSON: every field round-trips

func (jsonCodec) DecodeDerived(b []byte) (event.Derived, error) {
	var p plainDerived
	err := json.Unmarshal(b, &p)
	return event.Derived(p), err
}

func encode(t *testing.T, d event.Derived) []byte {
	t.Helper()
	b, err := json.Marshal(plainDerived(d))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// staticEndpoints is a fixed endpoint registry.
type staticEndpoints []endpoint.Endpoint

func (s staticEndpoints) Get(id string) (endpoint.Endpoint, bool) {
	for _, e := range s {
		if e.ID == id {
			return e, true
		}
	}
	return endpoint.Endpoint{}, false
}

func (s staticEndpoints) Subscribed(eventType string) []endpoint.Endpoint {
	var out []endpoint.Endpoint
	for _, e := range s {
		if e.Subscribes(eventType) {
			out = append(out, e)
		}
	}
	return out
}

// memSink keeps attempt rows in memory.
type memSink struct {
	mu   sync.Mutex
	rows []analytics.WebhookAttempt
}

func (m *memSink) Append(_ context.Context, a analytics.WebhookAttempt) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.rows = append(m.rows, a)
	return nil
}

func (m *memSink) forEndpoint(id string) []analytics.WebhookAttempt {
	m.mu.Lock()
	defer m.mu.Unlock()
	var out []analytics.WebhookAttempt
	for _, r := range m.rows {
		if r.EndpointID == id {
			out = append(out, r)
		}
	}
	return out
}

// hit is one request a receiver saw.
type hit struct {
	header http.Header
	body   []byte
	at     time.Time
}

// receiver is a real HTTP endpoint answering with status(n) for its n-th
// request (1-based).
type receiver struct {
	srv    *httptest.Server
	mu     sync.Mutex
	hits   []hit
	status func(n int) int
	hold   chan struct{} // when non-nil, requests wait for it to close
}

func newReceiver(t *testing.T, status func(n int) int) *receiver {
	t.Helper()
	r := &receiver{status: status}
	r.srv = httptest.NewServer(http.HandlerFunc(r.serve))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	body, _ := io.ReadAll(req.Body)
	r.mu.Lock()
	r.hits = append(r.hits, hit{header: req.Header.Clone(), body: body, at: time.Now()})
	n, hold := len(r.hits), r.hold
	r.mu.Unlock()
	if hold != nil {
		select {
		case <-hold:
		case <-req.Context().Done():
			return
		}
	}
	code := http.StatusOK
	if r.status != nil {
		code = r.status(n)
	}
	w.WriteHeader(code)
}

func (r *receiver) got() []hit {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.hits)
}

func (r *receiver) ids() []string {
	var out []string
	for _, h := range r.got() {
		out = append(out, h.header.Get("webhook-id"))
	}
	return out
}

func ok(int) int { return http.StatusOK }

// env is one kfake cluster over TCP with the derived topics.
type env struct {
	t       *testing.T
	brokers []string
	prod    *kgo.Client
	adm     *kadm.Client
}

func newEnv(t *testing.T) *env {
	t.Helper()
	seed := append(topics.Derived(), topics.DLQ, topics.Operational)
	for _, tier := range topics.RetryTiers(append(append(testSchedule(), breakerSchedule()...), 5*time.Second), 1) {
		seed = append(seed, tier.Name)
	}
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, seed...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(c.Close)
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)
	return &env{t: t, brokers: c.ListenAddrs(), prod: prod, adm: kadm.NewClient(prod)}
}

func (e *env) produce(evs ...event.Derived) {
	e.t.Helper()
	for _, ev := range evs {
		rec := &kgo.Record{Topic: topics.ForDerived(ev.Event), Key: []byte(ev.CustomerID), Value: encode(e.t, ev)}
		if err := e.prod.ProduceSync(context.Background(), rec).FirstErr(); err != nil {
			e.t.Fatal(err)
		}
	}
}

// committed returns the group's committed offset of topic partition 0, or
// -1 when none.
func (e *env) committed(group, topic string) int64 {
	e.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	resp, err := e.adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) || errors.Is(err, kerr.CoordinatorLoadInProgress) {
		return -1
	}
	if err != nil {
		e.t.Fatal(err)
	}
	o, ok := resp.Lookup(topic, 0)
	if !ok {
		return -1
	}
	return o.At
}

// start runs a dispatcher until the test ends (or stop is called) and
// checks that Run returned without error.
func (e *env) start(eps staticEndpoints, opts ...dispatcher.Option) (stop func()) {
	e.t.Helper()
	base := []dispatcher.Option{
		dispatcher.WithAllowPrivate(true),
		dispatcher.WithRetryJitter(0),
		dispatcher.WithRetrySchedule(testSchedule()...),
		dispatcher.WithKafkaOptions(kgo.FetchMaxWait(50 * time.Millisecond)),
	}
	d, err := dispatcher.New(e.brokers, jsonCodec{}, eps, append(base, opts...)...)
	if err != nil {
		e.t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- d.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					e.t.Errorf("Run: %v", err)
				}
			case <-time.After(30 * time.Second):
				e.t.Error("Run did not return 30s after cancel")
			}
		})
	}
	e.t.Cleanup(stop)
	return stop
}

// eventually polls cond every 10 ms until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func health(id string) event.Derived {
	return event.Derived{EventID: id, Event: event.HealthScoreChange, CustomerID: "cust_12345",
		Timestamp: time.Date(2025, 12, 5, 8, 20, 0, 0, time.UTC),
		Health:    &event.HealthChange{PreviousScore: 80, NewScore: 65, ChangeReason: "usage_decline"}}
}

func churn(id string) event.Derived {
	return event.Derived{EventID: id, Event: event.ChurnRiskDetected, CustomerID: "cust_12345",
		Timestamp: time.Date(2025, 12, 5, 8, 20, 0, 0, time.UTC),
		Churn: &event.ChurnRisk{RiskLevel: "high", RiskIndicators: []string{"payment_issue"},
			RecommendedActions: []string{"immediate_outreach"}}}
}

func newEndpoint(t *testing.T, id string, r *receiver, types ...string) endpoint.Endpoint {
	t.Helper()
	secret, err := webhook.NewSecret()
	if err != nil {
		t.Fatal(err)
	}
	return endpoint.Endpoint{ID: id, URL: r.srv.URL + "/webhooks/" + id, EventTypes: types, Secret: secret}
}

func TestDeliversSignedEventToSubscribedEndpointOnly(t *testing.T) {
	e := newEnv(t)
	subscribed, other := newReceiver(t, ok), newReceiver(t, ok)
	epA := newEndpoint(t, "ep_a", subscribed, event.HealthScoreChange)
	epB := newEndpoint(t, "ep_b", other, event.ExpansionReady)
	sink := &memSink{}
	reg := prometheus.NewRegistry()
	e.start(staticEndpoints{epA, epB}, dispatcher.WithGroup("g-signed"), dispatcher.WithRetryGroup("g-signed-retry"), dispatcher.WithSink(sink), dispatcher.WithRegisterer(reg))
	ev := health("evt_signed_1")
	e.produce(ev)

	eventually(t, "offset commit after delivery", func() bool { return e.committed("g-signed", topics.HealthChanges) == 1 })
	hits := subscribed.got()
	if len(hits) != 1 {
		t.Fatalf("subscribed endpoint got %d requests", len(hits))
	}
	// The record is committed, so every delivery of it has finished: the
	// unsubscribed endpoint would have been called by now.
	if n := len(other.got()); n != 0 {
		t.Fatalf("unsubscribed endpoint got %d requests", n)
	}
	h := hits[0]
	wantBody, _ := json.Marshal(ev)
	if string(h.body) != string(wantBody) {
		t.Fatalf("body %s, want %s", h.body, wantBody)
	}
	if h.header.Get("Content-Type") != "application/json" || h.header.Get("User-Agent") != "Vitals-Webhooks/1" ||
		h.header.Get("webhook-id") != "evt_signed_1" {
		t.Fatalf("headers %v", h.header)
	}
	// Verify the signature by hand: HMAC-SHA256(key, id.ts.body).
	key, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(epA.Secret, "whsec_"))
	mac := hmac.New(sha256.New, key)
	fmt.Fprintf(mac, "%s.%s.%s", h.header.Get("webhook-id"), h.header.Get("webhook-timestamp"), h.body)
	want := "v1," + base64.StdEncoding.EncodeToString(mac.Sum(nil))
	if got := h.header.Get("webhook-signature"); got != want {
		t.Fatalf("webhook-signature %q, want %q", got, want)
	}
	var ts int64
	fmt.Sscan(h.header.Get("webhook-timestamp"), &ts)
	if d := time.Since(time.Unix(ts, 0)); d < -time.Second || d > time.Minute {
		t.Fatalf("webhook-timestamp %d is %s off", ts, d)
	}

	rows := sink.forEndpoint("ep_a")
	if len(rows) != 1 {
		t.Fatalf("sink rows %+v", rows)
	}
	r := rows[0]
	if r.Outcome != analytics.OutcomeDelivered || r.StatusCode != 200 || r.Attempt != 1 || r.EventID != "evt_signed_1" ||
		r.EventType != event.HealthScoreChange || r.CustomerID != "cust_12345" || r.ErrorClass != "" ||
		r.URLHost != strings.TrimPrefix(subscribed.srv.URL, "http://") || len(r.AttemptID) != 36 {
		t.Fatalf("row %+v", r)
	}
	if n := counter(t, reg, "vitals_webhook_deliveries_total", "delivered"); n != 1 {
		t.Fatalf("deliveries{delivered} = %v", n)
	}
}

// counter reads a counter with the given first label value from reg.
func counter(t *testing.T, reg *prometheus.Registry, name, label string) float64 {
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
			if m.GetLabel()[0].GetValue() == label {
				return m.GetCounter().GetValue()
			}
		}
	}
	t.Fatalf("no %s{%s}", name, label)
	return 0
}

func TestSlowEndpointDoesNotDelayFastOne(t *testing.T) {
	e := newEnv(t)
	slow, fast := newReceiver(t, ok), newReceiver(t, ok)
	slow.hold = make(chan struct{})
	epSlow := newEndpoint(t, "ep_slow", slow, event.HealthScoreChange)
	epFast := newEndpoint(t, "ep_fast", fast, "*")
	e.start(staticEndpoints{epSlow, epFast}, dispatcher.WithGroup("g-slow"), dispatcher.WithRetryGroup("g-slow-retry"), dispatcher.WithDeliveryTimeout(20*time.Second))
	// Same partition, slow event first.
	e.produce(health("evt_slow"), health("evt_both"))
	e.produce(churn("evt_fast"))

	eventually(t, "fast endpoint got all three events while slow is stuck", func() bool { return len(fast.got()) == 3 })
	if n := len(slow.got()); n > 2 {
		t.Fatalf("slow endpoint got %d requests", n)
	}
	// Nothing of the health topic can be committed while evt_slow is out.
	if off := e.committed("g-slow", topics.HealthChanges); off > 0 {
		t.Fatalf("committed offset %d before the slow delivery finished", off)
	}
	close(slow.hold)
	eventually(t, "health topic committed after slow delivery", func() bool { return e.committed("g-slow", topics.HealthChanges) == 2 })
	if !slices.Equal(slow.ids(), []string{"evt_slow", "evt_both"}) && !slices.Equal(slow.ids(), []string{"evt_both", "evt_slow"}) {
		t.Fatalf("slow ids %v", slow.ids())
	}
}

func TestOffsetsCommittedOnlyAfterDelivery(t *testing.T) {
	e := newEnv(t)
	r := newReceiver(t, ok)
	stuck := newReceiver(t, ok)
	stuck.hold = make(chan struct{}) // never released in the first run
	ep := newEndpoint(t, "ep_main", r, "*")
	epStuck := newEndpoint(t, "ep_stuck", stuck, event.ExpansionReady)
	sink1 := &memSink{}
	stop := e.start(staticEndpoints{ep, epStuck}, dispatcher.WithGroup("g-restart"), dispatcher.WithRetryGroup("g-restart-retry"), dispatcher.WithSink(sink1))
	e.produce(health("evt_r1"), health("evt_r2"))
	exp := event.Derived{EventID: "evt_r3", Event: event.ExpansionReady, CustomerID: "cust_9",
		Timestamp: time.Now().UTC(), Expansion: &event.Expansion{OpportunityType: "upsell", ValueEstimate: 50000, Probability: 0.75}}
	e.produce(exp)

	eventually(t, "first run delivered three events to ep_main", func() bool { return len(r.got()) == 3 })
	eventually(t, "health commit", func() bool { return e.committed("g-restart", topics.HealthChanges) == 2 })
	eventually(t, "stuck endpoint reached", func() bool { return len(stuck.got()) == 1 })
	stop() // evt_r3's delivery to ep_stuck is cut short: not finished
	if off := e.committed("g-restart", topics.Expansion); off > 0 {
		t.Fatalf("expansion offset %d committed though a delivery never finished", off)
	}
	stuckRows := sink1.forEndpoint("ep_stuck")
	if len(stuckRows) != 1 || stuckRows[0].ErrorClass != "canceled" {
		t.Fatalf("cut-short attempt rows %+v", stuckRows)
	}

	// Restart: a second dispatcher in the same group.
	close(stuck.hold)
	e.produce(health("evt_r4"))
	e.start(staticEndpoints{ep, epStuck}, dispatcher.WithGroup("g-restart"))
	eventually(t, "second run delivered", func() bool {
		return e.committed("g-restart", topics.HealthChanges) == 3 && e.committed("g-restart", topics.Expansion) == 1
	})
	// evt_r1, evt_r2 were committed and are not delivered again; evt_r3 was
	// not committed and is (at least once).
	got := r.ids()
	slices.Sort(got)
	if want := []string{"evt_r1", "evt_r2", "evt_r3", "evt_r3", "evt_r4"}; !slices.Equal(got, want) {
		t.Fatalf("ep_main ids %v, want %v", got, want)
	}
	if ids := stuck.ids(); !slices.Equal(ids, []string{"evt_r3", "evt_r3"}) {
		t.Fatalf("ep_stuck ids %v", ids)
	}
}

func TestHTTPSenderFailureClasses(t *testing.T) {
	redirect := newReceiver(t, func(int) int { return http.StatusFound })
	notFound := newReceiver(t, func(int) int { return http.StatusNotFound })
	broken := newReceiver(t, func(int) int { return http.StatusBadGateway })
	slow := newReceiver(t, ok)
	slow.hold = make(chan struct{})
	defer close(slow.hold)
	tlsSrv := httptest.NewTLSServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	defer tlsSrv.Close()
	closed := httptest.NewServer(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {}))
	closedURL := closed.URL
	closed.Close()

	strict := dispatcher.NewHTTPSender()
	open := dispatcher.NewHTTPSender(dispatcher.Timeout(300*time.Millisecond), dispatcher.Guard(ssrf.New(ssrf.AllowPrivate(true))))
	cases := []struct {
		name   string
		s      *dispatcher.HTTPSender
		url    string
		class  string
		status int
	}{
		{"loopback refused by default", strict, redirect.srv.URL, dispatcher.ClassSSRFRefused, 0},
		{"redirect not followed", open, redirect.srv.URL, dispatcher.ClassRedirect, 302},
		{"4xx", open, notFound.srv.URL, dispatcher.ClassHTTP4xx, 404},
		{"5xx", open, broken.srv.URL, dispatcher.ClassHTTP5xx, 502},
		{"timeout", open, slow.srv.URL, dispatcher.ClassTimeout, 0},
		{"connect", open, closedURL, dispatcher.ClassConnect, 0},
		{"tls", open, tlsSrv.URL, dispatcher.ClassTLS, 0},
	}
	for _, c := range cases {
		resp, err := c.s.Send(context.Background(), &dispatcher.Request{EndpointID: "ep", URL: c.url, Header: http.Header{}, Body: []byte("{}")})
		if got := dispatcher.Classify(resp.StatusCode, err); got != c.class || resp.StatusCode != c.status {
			t.Errorf("%s: class %q status %d (err %v), want %q %d", c.name, got, resp.StatusCode, err, c.class, c.status)
		}
	}
	if n := len(redirect.got()); n != 1 {
		t.Errorf("redirect receiver saw %d requests, want 1 (the strict sender must not reach it)", n)
	}
	resp, err := open.Send(context.Background(), &dispatcher.Request{EndpointID: "ep", URL: notFound.srv.URL, Header: http.Header{}, Body: nil})
	if !errors.Is(err, dispatcher.ErrHTTPStatus) || resp.StatusCode != 404 {
		t.Errorf("404: %v", err)
	}
}

// TestOrderedEndpointHoldsTheCustomersNextEvent checks per-customer FIFO of
// an ordered endpoint: while a customer's delivery is in flight, its next
// event waits, and other customers' events do not. An unordered endpoint
// in the same run gets the next event at once (what the ordering prevents).
func TestOrderedEndpointHoldsTheCustomersNextEvent(t *testing.T) {
	e := newEnv(t)
	ordered, unordered := newReceiver(t, ok), newReceiver(t, ok)
	ordered.hold, unordered.hold = make(chan struct{}), make(chan struct{})
	epOrdered := newEndpoint(t, "ep_ordered", ordered, event.HealthScoreChange)
	epOrdered.Ordered, epOrdered.MaxInFlight = true, 8
	epUnordered := newEndpoint(t, "ep_unordered", unordered, event.HealthScoreChange)
	epUnordered.MaxInFlight = 8
	e.start(staticEndpoints{epOrdered, epUnordered}, dispatcher.WithGroup("g-ordered"), dispatcher.WithRetryGroup("g-ordered-retry"),
		dispatcher.WithDeliveryTimeout(20*time.Second))
	other := health("evt_b1")
	other.CustomerID = "cust_other"
	e.produce(health("evt_a1"), health("evt_a2"), other)

	eventually(t, "the unordered endpoint got all three while held", func() bool { return len(unordered.got()) == 3 })
	eventually(t, "the ordered endpoint got the first event of each customer", func() bool { return len(ordered.got()) == 2 })
	if ids := ordered.ids(); slices.Contains(ids, "evt_a2") {
		t.Fatalf("ordered endpoint got evt_a2 while evt_a1 was in flight: %v", ids)
	}
	close(ordered.hold)
	close(unordered.hold)
	eventually(t, "the ordered endpoint got evt_a2 after evt_a1", func() bool { return len(ordered.got()) == 3 })
	ids := ordered.ids()
	if slices.Index(ids, "evt_a1") > slices.Index(ids, "evt_a2") {
		t.Fatalf("customer order broken: %v", ids)
	}
}
