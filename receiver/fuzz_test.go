package receiver_test

import (
	"bytes"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vitalshq/vitals/problem"
	"github.com/vitalshq/vitals/receiver"
	"github.com/vitalshq/vitals/webhook"
)

// FuzzReceiver sends arbitrary Standard Webhooks headers and bodies to the
// handler behind `vitals listen`, optionally with the right signature
// added to the webhook-signature value. The handler must never panic; it
// answers 200 exactly when the id and a timestamp within tolerance are
// present and the right signature is among the entries, reporting the
// event as signed (id, timestamp, body, event type) and a repeat as a
// duplicate; every other request gets a 401 problem+json naming why, and
// reaches neither the output nor the callback.
func FuzzReceiver(f *testing.F) {
	const secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
	now := time.Unix(1_700_000_000, 0)
	key, err := webhook.ParseSecret(secret)
	if err != nil {
		f.Fatal(err)
	}
	body := `{"event":"churn_risk_detected","event_id":"evt_1","customer_id":"cust_12345","risk_level":"high"}`
	for _, s := range []struct {
		id, ts, sigs, body string
		sign               bool
	}{
		{"evt_1", "1700000000", "", body, true},
		{"evt_1", "1700000000", "v1,AAAA v2,xyz", body, true},
		{"evt_1", "+1700000000", "", body, true},
		{"evt_1", "1699999701", "", `{"event":17}`, true},
		{"evt_1", "1700000299", "", `[{"event":"x"}]`, true},
		{"evt_1", "1700000000", webhook.SignKey(key, "evt_1", 1_700_000_000, []byte(body)), body, false},
		{"evt_1", "1700000000", "v1," + strings.Repeat("A", 43) + "=", body, false},
		{"evt_1", "1699999000", "", body, true},
		{"evt_1", "-1", "", body, true},
		{"", "1700000000", "", body, true},
		{"evt 1\n", "1700000000", "\t", "", true},
		{"evt_1", "1700000000", "v1a,AAAA", "not json", true},
		{"evt_1", "99999999999999999999", "v1,", body, false},
	} {
		f.Add(s.id, s.ts, s.sigs, []byte(s.body), s.sign)
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))

	f.Fuzz(func(t *testing.T, id, ts, sigs string, body []byte, sign bool) {
		var got []receiver.Event
		var out bytes.Buffer
		h, err := receiver.New(secret, receiver.Output(&out), receiver.Logger(logger),
			receiver.OnEvent(func(e receiver.Event) { got = append(got, e) }),
			receiver.VerifierOptions(webhook.Clock(func() time.Time { return now })))
		if err != nil {
			t.Fatal(err)
		}
		unix, perr := strconv.ParseInt(ts, 10, 64)
		inTolerance := perr == nil && unix >= 0 && unix <= 1<<40 &&
			now.Sub(time.Unix(unix, 0)).Abs() <= webhook.DefaultTolerance
		right := ""
		if perr == nil && unix >= 0 && unix <= 1<<40 {
			right = webhook.SignKey(key, id, unix, body)
		}
		if sign && right != "" {
			sigs += " " + right
		}
		send := func() *httptest.ResponseRecorder {
			r := httptest.NewRequest(http.MethodPost, "/webhooks", bytes.NewReader(body))
			r.Header[http.CanonicalHeaderKey(webhook.HeaderID)] = []string{id}
			r.Header[http.CanonicalHeaderKey(webhook.HeaderTimestamp)] = []string{ts}
			r.Header[http.CanonicalHeaderKey(webhook.HeaderSignature)] = []string{sigs}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			return w
		}

		w := send()
		valid := id != "" && inTolerance && right != "" && carries(sigs, right)
		switch {
		case w.Code == http.StatusOK && !valid:
			t.Fatalf("accepted id=%q ts=%q sigs=%q without the right signature %q", id, ts, sigs, right)
		case w.Code != http.StatusOK && valid:
			t.Fatalf("refused a rightly signed delivery id=%q ts=%q: %d %s", id, ts, w.Code, w.Body)
		case w.Code != http.StatusOK:
			checkRefusal(t, w, id == "" || ts == "" || sigs == "", len(got), out.Len())
			return
		}

		if len(got) != 1 {
			t.Fatalf("one delivery, %d events", len(got))
		}
		ev := got[0]
		var head struct {
			Event string `json:"event"`
		}
		_ = json.Unmarshal(body, &head)
		switch {
		case ev.ID != id || !bytes.Equal(ev.Body, body) || ev.Duplicate:
			t.Fatalf("event %+v, want id %q body %q, not a duplicate", ev, id, body)
		case !ev.SignedAt.Equal(time.Unix(unix, 0)):
			t.Fatalf("webhook-timestamp %q reported as signed at %v, want %v", ts, ev.SignedAt, time.Unix(unix, 0).UTC())
		case ev.Type != head.Event:
			t.Fatalf("event type %q, body says %q", ev.Type, head.Event)
		}
		if w := send(); w.Code != http.StatusOK || len(got) != 2 || !got[1].Duplicate {
			t.Fatalf("repeat: %d, events %+v", w.Code, got)
		}
	})
}

// carries reports whether the webhook-signature value sigs has an entry
// with the MAC of right ("v1,<base64>"), however its base64 is spelled.
func carries(sigs, right string) bool {
	want, _ := base64.StdEncoding.DecodeString(strings.TrimPrefix(right, "v1,"))
	for _, e := range strings.Fields(sigs) {
		if b64, ok := strings.CutPrefix(e, "v1,"); ok {
			if mac, err := base64.StdEncoding.DecodeString(b64); err == nil && bytes.Equal(mac, want) {
				return true
			}
		}
	}
	return false
}

// checkRefusal checks a refused delivery: 401 problem+json whose reason
// says whether headers were missing, and nothing printed or called back.
func checkRefusal(t *testing.T, w *httptest.ResponseRecorder, missing bool, events, printed int) {
	t.Helper()
	if w.Code != http.StatusUnauthorized || w.Header().Get("Content-Type") != problem.ContentType {
		t.Fatalf("refusal %d %q", w.Code, w.Header().Get("Content-Type"))
	}
	var p struct {
		Status int    `json:"status"`
		Reason string `json:"reason"`
		Detail string `json:"detail"`
	}
	if err := json.Unmarshal(w.Body.Bytes(), &p); err != nil || p.Status != http.StatusUnauthorized || p.Detail == "" {
		t.Fatalf("refusal body %q: %v", w.Body, err)
	}
	reasons := []string{"bad_timestamp", "timestamp_too_old", "timestamp_too_new", "no_matching_signature"}
	if missing != (p.Reason == "missing_headers") || (!missing && !slices.Contains(reasons, p.Reason)) {
		t.Fatalf("refusal reason %q (headers missing: %v)", p.Reason, missing)
	}
	if events != 0 || printed != 0 {
		t.Fatalf("a refused delivery reached the callback (%d) or the output (%d bytes)", events, printed)
	}
}
