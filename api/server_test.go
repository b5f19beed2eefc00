package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/api"
	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/ops"
	"github.com/vitalshq/vitals/producer"
	"github.com/vitalshq/vitals/replay"
	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/ssrf"
	"github.com/vitalshq/vitals/topics"
	"github.com/vitalshq/vitals/webhook"
)

type fixture struct {
	srv     *httptest.Server
	tokens  *auth.Server
	checks  *ops.Checks
	full    string // token with every non-admin scope
	reg     *endpoint.Registry
	brokers []string
	codec   *schemas.Codec
}

// newFixture serves the API over a kfake broker with real auth, producer,
// endpoint registry and SSRF guard (private addresses refused).
func newFixture(t *testing.T, apiOpts ...api.Option) *fixture {
	t.Helper()
	brokers := testenv.Kfake(t)
	names := []string{topics.Retry(replay.DefaultFirstDelay)}
	for _, s := range topics.All(3) {
		names = append(names, s.Name)
	}
	testenv.CreateTopics(t, brokers, 3, names...)
	opts := []kgo.Opt{kgo.SeedBrokers(brokers...)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	reg, err := endpoint.NewRegistry(opts)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- reg.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := reg.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	replays, err := replay.NewStore(opts)
	if err != nil {
		t.Fatal(err)
	}
	rdone := make(chan error, 1)
	go func() { rdone <- replays.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-rdone })
	if err := replays.WaitReady(wctx); err != nil {
		t.Fatal(err)
	}
	qcl, err := kgo.NewClient(opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(qcl.Close)
	codec, err := schemas.New()
	if err != nil {
		t.Fatal(err)
	}
	prod, err := producer.New(opts, codec)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(prod.Close)

	store := auth.NewMemoryStore()
	tokens := auth.NewServer("https://vitals.test", store, store)
	if _, err := tokens.EnsureSigningKey(ctx); err != nil {
		t.Fatal(err)
	}
	client, _ := auth.NewClient("test", auth.NonAdminScopes(), time.Now())
	if err := store.PutClient(ctx, client); err != nil {
		t.Fatal(err)
	}
	full, _, err := tokens.IssueAccessToken(client.ID, auth.NonAdminScopes())
	if err != nil {
		t.Fatal(err)
	}
	checks := &ops.Checks{}
	h := api.New(api.Deps{Auth: tokens, JWKSHandler: tokens.JWKSHandler(),
		Producer: prod, Endpoints: reg, URLChecker: ssrf.New(), NewSecret: webhook.NewSecret, Checks: checks,
		Replays: replays, Tasks: replay.NewQueue(qcl, replay.DefaultFirstDelay), Encoder: codec}, apiOpts...)
	srv := httptest.NewServer(h)
	t.Cleanup(srv.Close)
	return &fixture{srv: srv, tokens: tokens, checks: checks, full: full, reg: reg, brokers: brokers, codec: codec}
}

func (f *fixture) do(t *testing.T, method, path, ct, body string) (*http.Response, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, f.srv.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+f.full)
	if ct != "" {
		req.Header.Set("Content-Type", ct)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp, m
}

func wantProblem(t *testing.T, resp *http.Response, m map[string]any, status int, detailHas string) {
	t.Helper()
	if resp.StatusCode != status || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("got %d %q %v, want %d problem+json", resp.StatusCode, resp.Header.Get("Content-Type"), m, status)
	}
	if m["status"] != float64(status) || !strings.HasPrefix(m["type"].(string), "https://") ||
		!strings.Contains(m["detail"].(string), detailHas) || m["instance"] == "" {
		t.Fatalf("problem %v lacks status/type/detail %q/instance", m, detailHas)
	}
}

func TestUnroutedRequestsAreProblems(t *testing.T) {
	f := newFixture(t)
	resp, m := f.do(t, http.MethodGet, "/v1/nothing-here", "", "")
	wantProblem(t, resp, m, http.StatusNotFound, "no route GET /v1/nothing-here")
	resp, m = f.do(t, http.MethodPut, "/v1/events", "application/json", "{}")
	wantProblem(t, resp, m, http.StatusMethodNotAllowed, "PUT is not supported")
	if !strings.Contains(resp.Header.Get("Allow"), http.MethodPost) {
		t.Errorf("Allow = %q", resp.Header.Get("Allow"))
	}
	resp, m = f.do(t, http.MethodPost, "/v1/events", "text/plain", "{}")
	wantProblem(t, resp, m, http.StatusUnsupportedMediaType, "Content-Type: application/json")
	resp, m = f.do(t, http.MethodPost, "/v1/events", "application/json", strings.Repeat("[", 10))
	wantProblem(t, resp, m, http.StatusBadRequest, "malformed")
}

func TestEventsAccepted(t *testing.T) {
	f := newFixture(t)
	resp, m := f.do(t, http.MethodPost, "/v1/events", "application/json; charset=utf-8",
		`[{"event_id":"e-1","type":"nps_response","customer_id":"c1","occurred_at":"2026-01-01T00:00:00Z","data":{"score":9}},
		  {"type":"sponsor_changed","customer_id":"c2","occurred_at":"2026-01-01T00:00:00Z","data":{"has_exec_sponsor":true,"champion_left":false}}]`)
	if resp.StatusCode != http.StatusAccepted || m["accepted"] != float64(2) {
		t.Fatalf("%d %v", resp.StatusCode, m)
	}
	if ids := m["event_ids"].([]any); ids[0] != "e-1" || ids[1] == "" {
		t.Fatalf("event_ids %v", ids)
	}
	metrics, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(metrics.Body)
	metrics.Body.Close()
	if !bytes.Contains(b, []byte(`vitals_api_requests_total{class="standard",code="202",route="POST /v1/events"} 1`)) {
		t.Fatalf("metrics lack the request with its rate-limit class:\n%s", b)
	}
}

func TestEndpointLifecycle(t *testing.T) {
	f := newFixture(t)
	// Validation: each bad field is named.
	for _, tc := range []struct{ body, field string }{
		{`{"event_types":["*"]}`, "url"},
		{`{"url":"https://hooks.example.com/x"}`, "event_types"},
		{`{"url":"https://hooks.example.com/x","event_types":["churn"]}`, "event_types[0]"},
		{`{"url":"ftp://hooks.example.com/x","event_types":["*"]}`, "url"},
		{`{"url":"http://127.0.0.1:9/x","event_types":["*"]}`, "url"},
		{`{"url":"https://127.0.0.1:9/x","event_types":["*"]}`, "url"},
		{`{"url":"https://[::ffff:10.0.0.1]/x","event_types":["*"]}`, "url"},
		{`{"url":"https://1.1.1.1/x","event_types":["*"],"headers":{"Webhook-Id":"x"}}`, "headers.Webhook-Id"},
		{`{"url":"https://1.1.1.1/x","event_types":["*"],"rate_limit":-1}`, "rate_limit"},
		{`{"url":"https://1.1.1.1/x","event_types":["*"],"signing":"rsa"}`, "signing"},
		{`{"url":"http://169.254.169.254/latest/meta-data","event_types":["*"]}`, "url"},
	} {
		resp, m := f.do(t, http.MethodPost, "/v1/endpoints", "application/json", tc.body)
		wantProblem(t, resp, m, http.StatusBadRequest, "")
		if m["field"] != tc.field {
			t.Errorf("%s: field %v, want %s", tc.body, m["field"], tc.field)
		}
	}
	resp, m := f.do(t, http.MethodPost, "/v1/endpoints", "application/json", `{"url":"https://1.1.1.1/hooks","event_types":["churn_risk_detected","expansion_ready","churn_risk_detected"],"extra":1}`)
	wantProblem(t, resp, m, http.StatusBadRequest, "unknown field")

	resp, m = f.do(t, http.MethodPost, "/v1/endpoints", "application/json", `{"url":"https://1.1.1.1/hooks","event_types":["churn_risk_detected","expansion_ready","churn_risk_detected"]}`)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create: %d %v", resp.StatusCode, m)
	}
	id := m["id"].(string)
	if !strings.HasPrefix(m["secret"].(string), "whsec_") || resp.Header.Get("Location") != "/v1/endpoints/"+id {
		t.Fatalf("created %v, Location %q", m, resp.Header.Get("Location"))
	}
	if types := m["event_types"].([]any); len(types) != 2 {
		t.Errorf("event_types not de-duplicated: %v", types)
	}
	// Reads never show the secret.
	_, got := f.do(t, http.MethodGet, "/v1/endpoints/"+id, "", "")
	if got["id"] != id || got["secret"] != nil {
		t.Fatalf("get: %v", got)
	}
	_, list := f.do(t, http.MethodGet, "/v1/endpoints", "", "")
	if data := list["data"].([]any); len(data) != 1 || data[0].(map[string]any)["secret"] != nil {
		t.Fatalf("list: %v", list)
	}
	resp, _ = f.do(t, http.MethodDelete, "/v1/endpoints/"+id, "", "")
	if resp.StatusCode != http.StatusNoContent {
		t.Fatalf("delete: %d", resp.StatusCode)
	}
	resp, m = f.do(t, http.MethodGet, "/v1/endpoints/"+id, "", "")
	wantProblem(t, resp, m, http.StatusNotFound, id)
	resp, m = f.do(t, http.MethodDelete, "/v1/endpoints/"+id, "", "")
	wantProblem(t, resp, m, http.StatusNotFound, id)
}

func TestReadiness(t *testing.T) {
	f := newFixture(t)
	get := func() (int, map[string]any) {
		resp, err := http.Get(f.srv.URL + "/readyz")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(resp.Body).Decode(&m)
		return resp.StatusCode, m
	}
	if code, m := get(); code != http.StatusOK {
		t.Fatalf("ready: %d %v", code, m)
	}
	f.checks.Add("kafka", func(context.Context) error { return errors.New("broker unreachable") })
	if code, m := get(); code != http.StatusServiceUnavailable || !bytes.Contains([]byte(m["failed"].(map[string]any)["kafka"].(string)), []byte("unreachable")) {
		t.Fatalf("not ready: %d %v", code, m)
	}
	resp, err := http.Get(f.srv.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !bytes.Contains(b, []byte(`vitals_api_requests_total{class="none",code="503",route="GET /readyz"} 1`)) {
		t.Fatalf("metrics lack the readyz request:\n%s", b)
	}
}
