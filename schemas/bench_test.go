package schemas

import (
	"encoding/json"
	"testing"

	"github.com/vitalshq/vitals/event"
)

// The JSON baselines encode and decode the same values with encoding/json in
// the same run, so the Avro numbers can be reported as ratios. The customer
// baseline uses the ingest shape ({"type", "data", …}); the derived baseline
// is the webhook body (event.Derived's MarshalJSON).

// ingestJSON is the ingest JSON shape of a customer event.
type ingestJSON struct {
	EventID    string              `json:"event_id"`
	Type       string              `json:"type"`
	CustomerID string              `json:"customer_id"`
	OccurredAt string              `json:"occurred_at"`
	Source     string              `json:"source"`
	Data       event.UsageReported `json:"data"`
}

func benchCustomer() event.CustomerEvent { return customerEvents()[0] } // usage_reported
func benchDerived() event.Derived        { return derivedEvents()[2] }  // churn_risk_detected

func BenchmarkEncodeCustomerEvent(b *testing.B) {
	c := newTestCodec(b)
	e := benchCustomer()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.EncodeCustomerEvent(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeCustomerEvent(b *testing.B) {
	c := newTestCodec(b)
	msg, err := c.EncodeCustomerEvent(benchCustomer())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.DecodeCustomerEvent(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeDerived(b *testing.B) {
	c := newTestCodec(b)
	d := benchDerived()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.EncodeDerived(d); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeDerived(b *testing.B) {
	c := newTestCodec(b)
	msg, err := c.EncodeDerived(benchDerived())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		if _, err := c.DecodeDerived(msg); err != nil {
			b.Fatal(err)
		}
	}
}

func ingestOf(e event.CustomerEvent) ingestJSON {
	return ingestJSON{EventID: e.EventID, Type: e.Type(), CustomerID: e.CustomerID,
		OccurredAt: e.OccurredAt.UTC().Format("2006-01-02T15:04:05.000Z07:00"), Source: e.Source,
		Data: e.Data.(event.UsageReported)}
}

func BenchmarkJSONBaselineEncodeCustomerEvent(b *testing.B) {
	e := benchCustomer()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(ingestOf(e)); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSONBaselineDecodeCustomerEvent(b *testing.B) {
	msg, err := json.Marshal(ingestOf(benchCustomer()))
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		var v ingestJSON
		if err := json.Unmarshal(msg, &v); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkJSONBaselineEncodeDerived(b *testing.B) {
	d := benchDerived()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := json.Marshal(d); err != nil {
			b.Fatal(err)
		}
	}
}

// churnJSON is the webhook body of a churn_risk_detected event, decoded into
// a struct (event.Derived has no UnmarshalJSON).
type churnJSON struct {
	Event      string `json:"event"`
	EventID    string `json:"event_id"`
	CustomerID string `json:"customer_id"`
	Timestamp  string `json:"timestamp"`
	event.ChurnRisk
}

func BenchmarkJSONBaselineDecodeDerived(b *testing.B) {
	msg, err := json.Marshal(benchDerived())
	if err != nil {
		b.Fatal(err)
	}
	b.SetBytes(int64(len(msg)))
	b.ReportAllocs()
	for b.Loop() {
		var v churnJSON
		if err := json.Unmarshal(msg, &v); err != nil {
			b.Fatal(err)
		}
	}
}
