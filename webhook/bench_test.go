package webhook_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"net/http"
	"strconv"
	"testing"
	"time"

	"github.com/vitalshq/vitals/webhook"
)

// benchBody is about the size of a churn_risk_detected webhook body.
var benchBody = []byte(`{"event":"churn_risk_detected","event_id":"evt_01HF7S2K3M4N5P6Q7R8S9T0V1W",` +
	`"customer_id":"cust_12345","risk_level":"high","risk_indicators":["usage_decline_30_percent",` +
	`"support_escalation","payment_issue"],"recommended_actions":["immediate_outreach",` +
	`"executive_escalation","success_plan_review"],"timestamp":"2025-12-05T08:20:00Z"}`)

// BenchmarkHMACBaseline is bare HMAC-SHA256 over the same signed content:
// the floor Sign and Verify are measured against.
func BenchmarkHMACBaseline(b *testing.B) {
	key, _ := webhook.ParseSecret(vecSecret)
	content := []byte(vecID + "." + strconv.Itoa(vecTS) + "." + string(benchBody))
	b.ReportAllocs()
	b.SetBytes(int64(len(content)))
	var out [sha256.Size]byte
	for b.Loop() {
		m := hmac.New(sha256.New, key)
		m.Write(content)
		m.Sum(out[:0])
	}
}

func BenchmarkSign(b *testing.B) {
	ts := time.Unix(vecTS, 0)
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if _, err := webhook.Sign(vecSecret, vecID, ts, benchBody); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkVerify(b *testing.B) {
	ts := time.Unix(vecTS, 0)
	h := http.Header{}
	if err := webhook.Headers(h, vecID, ts, benchBody, vecSecret); err != nil {
		b.Fatal(err)
	}
	v, _ := webhook.NewVerifier(vecSecret, webhook.Clock(vecClock))
	b.ReportAllocs()
	b.SetBytes(int64(len(benchBody)))
	for b.Loop() {
		if err := v.Verify(h, benchBody); err != nil {
			b.Fatal(err)
		}
	}
}
