package api_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vitalshq/vitals/api"
	"github.com/vitalshq/vitals/dispatcher/task"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/replay"
	"github.com/vitalshq/vitals/topics"
	"github.com/vitalshq/vitals/webhook"
)

func (f *fixture) create(t *testing.T, body string) map[string]any {
	t.Helper()
	resp, m := f.do(t, http.MethodPost, "/v1/endpoints", "application/json", body)
	if resp.StatusCode != http.StatusCreated {
		t.Fatalf("create %s: %d %v", body, resp.StatusCode, m)
	}
	return m
}

func TestEndpointFieldsAndPatch(t *testing.T) {
	f := newFixture(t)
	m := f.create(t, `{"url":"https://1.1.1.1/hooks","event_types":["churn_risk_detected","message.attempt.exhausted"],
		"customer_ids":["c2","c1"],"headers":{"Authorization":"Bearer s3cret","X-Team":"cs"},"rate_limit":2.5,"max_in_flight":4,"ordered":true}`)
	id := m["id"].(string)
	if m["rate_limit"] != 2.5 || m["max_in_flight"] != float64(4) || m["ordered"] != true || m["signing"] != "hmac" ||
		m["headers"].(map[string]any)["Authorization"] != "[redacted]" || m["headers"].(map[string]any)["X-Team"] != "cs" {
		t.Fatalf("created %v", m)
	}
	stored, _ := f.reg.Get(id)
	if stored.Headers["Authorization"] != "Bearer s3cret" || !slices.Equal(stored.CustomerIDs, []string{"c1", "c2"}) {
		t.Fatalf("stored %+v", stored)
	}

	patch := func(body string) (*http.Response, map[string]any) {
		return f.do(t, http.MethodPatch, "/v1/endpoints/"+id, "application/merge-patch+json", body)
	}
	// Merge patch: headers merge by name (null removes), null resets a field,
	// absent fields stay.
	resp, m := patch(`{"headers":{"X-Team":null,"X-Env":"prod"},"customer_ids":null,"rate_limit":0,"description":"crm"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("patch: %d %v", resp.StatusCode, m)
	}
	got, _ := f.reg.Get(id)
	if len(got.Headers) != 2 || got.Headers["X-Env"] != "prod" || got.Headers["Authorization"] == "" || got.CustomerIDs != nil ||
		got.RateLimit != 0 || got.MaxInFlight != 4 || !got.Ordered || got.Description != "crm" || got.Secret != stored.Secret || got.UpdatedAt.IsZero() {
		t.Fatalf("after patch %+v", got)
	}
	// Disable with a reason, then enable.
	if resp, m = patch(`{"disabled":true,"disabled_reason":"maintenance"}`); resp.StatusCode != http.StatusOK || m["disabled"] != true || m["disabled_reason"] != "maintenance" || m["disabled_at"] == nil {
		t.Fatalf("disable: %d %v", resp.StatusCode, m)
	}
	if got, _ := f.reg.Get(id); !got.Disabled || got.DisabledReason != "maintenance" {
		t.Fatalf("not disabled: %+v", got)
	}
	if resp, m = patch(`{"disabled":false}`); resp.StatusCode != http.StatusOK || m["disabled"] != false || m["disabled_reason"] != nil {
		t.Fatalf("enable: %d %v", resp.StatusCode, m)
	}
	// Validation names the field; nothing is stored.
	for body, field := range map[string]string{
		`{"url":null}`:                            "url",
		`{"url":"https://10.1.2.3/x"}`:            "url",
		`{"url":"http://1.1.1.1/x"}`:              "url",
		`{"event_types":["nope"]}`:                "event_types[0]",
		`{"headers":{"Content-Type":"text/xml"}}`: "headers.Content-Type",
		`{"max_in_flight":-1}`:                    "max_in_flight",
		`{"rate_limit":"fast"}`:                   "rate_limit",
		`{"secret":"whsec_AAAA"}`:                 "secret",
		`{"disabled_reason":"x"}`:                 "disabled_reason",
	} {
		resp, m := patch(body)
		wantProblem(t, resp, m, http.StatusBadRequest, "")
		if m["field"] != field {
			t.Errorf("patch %s: field %v, want %s (%v)", body, m["field"], field, m["detail"])
		}
	}
	if after, _ := f.reg.Get(id); after.URL != got.URL || after.MaxInFlight != 4 {
		t.Fatalf("a refused patch changed the endpoint: %+v", after)
	}
	resp, m = f.do(t, http.MethodPatch, "/v1/endpoints/ep_nope", "application/json", `{}`)
	wantProblem(t, resp, m, http.StatusNotFound, "ep_nope")

	// ed25519 signing: the response and reads show the public key only.
	m = f.create(t, `{"url":"https://1.1.1.1/ed","event_types":["*"],"signing":"ed25519"}`)
	pub, _ := m["ed25519_public_key"].(string)
	ep, _ := f.reg.Get(m["id"].(string))
	if m["signing"] != "ed25519" || pub == "" || ep.SigningKeyEd25519 == "" || strings.Contains(mustJSON(m), ep.SigningKeyEd25519) {
		t.Fatalf("ed25519 endpoint %v", m)
	}
	sig, err := webhook.SignEd25519(ep.SigningKeyEd25519, "evt_1", time.Now(), []byte("{}"))
	if err != nil {
		t.Fatal(err)
	}
	v, _ := webhook.NewVerifier("", webhook.AcceptEd25519(pub))
	if err := v.VerifyValues("evt_1", strconv.FormatInt(time.Now().Unix(), 10), sig, []byte("{}")); err != nil {
		t.Fatalf("v1a with the returned public key: %v", err)
	}
}

func mustJSON(v any) string { b, _ := json.Marshal(v); return string(b) }

// TestRotation rotates a secret with a short overlap and delivers to a real
// receiver holding only the OLD secret, signing as the dispatcher does
// (every secret of Endpoint.Secrets at send time): it verifies during the
// overlap and fails after it; a receiver with the new secret always
// verifies.
func TestRotation(t *testing.T) {
	const overlap = 300 * time.Millisecond
	f := newFixture(t, api.SecretOverlap(overlap))
	m := f.create(t, `{"url":"https://1.1.1.1/r","event_types":["*"]}`)
	id, oldSecret := m["id"].(string), m["secret"].(string)

	resp, m := f.do(t, http.MethodPost, "/v1/endpoints/"+id+"/secret/rotate", "", "")
	newSecret, _ := m["secret"].(string)
	if resp.StatusCode != http.StatusOK || !strings.HasPrefix(newSecret, "whsec_") || newSecret == oldSecret || m["previous_secret_expires_at"] == nil {
		t.Fatalf("rotate: %d %v", resp.StatusCode, m)
	}
	oldV, _ := webhook.NewVerifier(oldSecret)
	newV, _ := webhook.NewVerifier(newSecret)
	receiver := func(v *webhook.Verifier) *httptest.Server {
		s := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			var body bytes.Buffer
			_, _ = body.ReadFrom(r.Body)
			if err := v.Verify(r.Header, body.Bytes()); err != nil {
				http.Error(w, err.Error(), http.StatusUnauthorized)
				return
			}
			w.WriteHeader(http.StatusNoContent)
		}))
		t.Cleanup(s.Close)
		return s
	}
	oldRecv, newRecv := receiver(oldV), receiver(newV)
	deliver := func(to *httptest.Server) int {
		ep, _ := f.reg.Get(id)
		body := []byte(`{"event":"health_score_change","event_id":"evt_9"}`)
		req, _ := http.NewRequest(http.MethodPost, to.URL, bytes.NewReader(body))
		if err := webhook.Headers(req.Header, "evt_9", time.Now(), body, ep.Secrets(time.Now())...); err != nil {
			t.Fatal(err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	ep, _ := f.reg.Get(id)
	if ep.Secret != newSecret || ep.PreviousSecret != oldSecret || time.Until(ep.PreviousUntil) > overlap {
		t.Fatalf("stored rotation %+v", ep)
	}
	if code := deliver(oldRecv); code != http.StatusNoContent {
		t.Fatalf("old-secret receiver during the overlap: %d", code)
	}
	if code := deliver(newRecv); code != http.StatusNoContent {
		t.Fatalf("new-secret receiver during the overlap: %d", code)
	}
	for !time.Now().After(ep.PreviousUntil) {
		time.Sleep(time.Until(ep.PreviousUntil) + time.Millisecond)
	}
	if code := deliver(oldRecv); code != http.StatusUnauthorized {
		t.Fatalf("old-secret receiver after the overlap: %d, want 401", code)
	}
	if code := deliver(newRecv); code != http.StatusNoContent {
		t.Fatalf("new-secret receiver after the overlap: %d", code)
	}
}

// TestSignaturesVerifyWithStandardWebhooksLibrary writes signed samples and
// has e2e/standardwebhooks/verify.py check them with the PyPI
// standardwebhooks library (v1) and an independent ed25519 implementation
// (v1a). Needs `pip install standardwebhooks==1.1.0` (make deps).
func TestSignaturesVerifyWithStandardWebhooksLibrary(t *testing.T) {
	oldSecret, _ := webhook.NewSecret()
	newSecret, _ := webhook.NewSecret()
	seed, pub, _ := webhook.NewEd25519Key()
	_, otherPub, _ := webhook.NewEd25519Key()
	now := time.Now()
	body := `{"event":"churn_risk_detected","event_id":"evt_1","customer_id":"cust_12345","risk_level":"high"}`
	h := http.Header{}
	if err := webhook.Headers(h, "evt_1", now, []byte(body), newSecret, oldSecret); err != nil {
		t.Fatal(err)
	}
	sigA, err := webhook.SignEd25519(seed, "evt_1", now, []byte(body))
	if err != nil {
		t.Fatal(err)
	}
	both := h.Get(webhook.HeaderSignature)
	all := both + " " + sigA
	newOnly := h.Clone()
	_ = webhook.Headers(newOnly, "evt_1", now, []byte(body), newSecret)
	ts := h.Get(webhook.HeaderTimestamp)
	sample := func(name, sig, secret, public string, expect bool) map[string]any {
		return map[string]any{"name": name, "id": "evt_1", "timestamp": ts, "body": body, "signature": sig,
			"secret": secret, "public_key": public, "expect": expect}
	}
	samples := []map[string]any{
		sample("overlap: old secret", all, oldSecret, "", true),
		sample("overlap: new secret", all, newSecret, "", true),
		sample("after overlap: old secret", newOnly.Get(webhook.HeaderSignature), oldSecret, "", false),
		sample("after overlap: new secret", newOnly.Get(webhook.HeaderSignature), newSecret, "", true),
		sample("v1a: public key", all, "", pub, true),
		sample("v1a: other public key", all, "", otherPub, false),
		sample("tampered body", all, newSecret, "", false),
	}
	samples[len(samples)-1]["body"] = strings.Replace(body, "high", "low", 1)
	file := filepath.Join(t.TempDir(), "samples.json")
	b, _ := json.Marshal(samples)
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, "python3", "../e2e/standardwebhooks/verify.py", file).CombinedOutput()
	t.Logf("verify.py:\n%s", out)
	if err != nil {
		t.Fatalf("verify.py: %v (install the library with: pip install standardwebhooks==1.1.0)", err)
	}
}

func TestReplayAndTestRoutes(t *testing.T) {
	f := newFixture(t)
	m := f.create(t, `{"url":"https://1.1.1.1/t","event_types":["expansion_ready","churn_risk_detected"]}`)
	id := m["id"].(string)
	post := func(path, body string) (*http.Response, map[string]any) {
		return f.do(t, http.MethodPost, path, "application/json", body)
	}
	for body, field := range map[string]string{
		`{}`:                               "since",
		`{"since":"2999-01-01T00:00:00Z"}`: "since",
		`{"since":"2026-01-02T00:00:00Z","until":"2026-01-01T00:00:00Z"}`: "until",
		`{"message_id":"e","failed_only":true}`:                           "failed_only",
	} {
		resp, m := post("/v1/endpoints/"+id+"/replay", body)
		wantProblem(t, resp, m, http.StatusBadRequest, "")
		if m["field"] != field {
			t.Errorf("replay %s: field %v, want %s", body, m["field"], field)
		}
	}
	resp, m := post("/v1/endpoints/"+id+"/replay", `{"since":"2026-01-01T00:00:00Z","until":"2026-01-02T00:00:00Z","failed_only":true}`)
	if resp.StatusCode != http.StatusAccepted || !strings.HasPrefix(m["id"].(string), "rp_") || m["status"] != "pending" {
		t.Fatalf("replay: %d %v", resp.StatusCode, m)
	}
	rid := m["id"].(string)
	resp, m = f.do(t, http.MethodGet, "/v1/replays/"+rid, "", "")
	if resp.StatusCode != http.StatusOK || m["endpoint_id"] != id || m["failed_only"] != true || m["status"] != string(replay.StatusPending) {
		t.Fatalf("get replay: %d %v", resp.StatusCode, m)
	}
	resp, m = f.do(t, http.MethodGet, "/v1/replays/rp_nope", "", "")
	wantProblem(t, resp, m, http.StatusNotFound, "rp_nope")

	// A test event goes through the task path, marked as a test.
	resp, m = post("/v1/endpoints/"+id+"/test", `{"event_type":"health_score_change"}`)
	wantProblem(t, resp, m, http.StatusConflict, "does not receive")
	resp, m = f.do(t, http.MethodPost, "/v1/endpoints/"+id+"/test", "", "")
	if resp.StatusCode != http.StatusAccepted || m["event_type"] != "expansion_ready" {
		t.Fatalf("test: %d %v", resp.StatusCode, m)
	}
	recs := testenv.ReadAll(t, f.brokers, topics.Retry(replay.DefaultFirstDelay), false)
	if len(recs) != 1 {
		t.Fatalf("retry tier holds %d records", len(recs))
	}
	tk, err := task.Decode(recs[0])
	if err != nil || tk.EndpointID != id || tk.EventID != m["event_id"] || !strings.HasPrefix(tk.EventID, "test_") || tk.Attempts != 0 {
		t.Fatalf("test task %+v, %v", tk, err)
	}
	ev, err := f.codec.DecodeDerived(tk.Event)
	if err != nil || ev.CustomerID != api.TestCustomerID || ev.Expansion == nil || ev.Explanation == nil || !strings.Contains(ev.Explanation.Summary, "test event") {
		t.Fatalf("test event %+v, %v", ev, err)
	}
}
