package schemas

import (
	"encoding/binary"
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/topics"
)

func newTestCodec(t testing.TB) *Codec {
	t.Helper()
	c, err := New()
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return c
}

func wantTime(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }

func customerEvents() []event.CustomerEvent {
	// A non-UTC time with sub-millisecond digits: the wire keeps
	// milliseconds and decoding returns UTC.
	occurred := time.Date(2025, 12, 5, 9, 20, 0, 123_456_789, time.FixedZone("CET", 3600))
	base := func(id string, p event.Payload) event.CustomerEvent {
		return event.CustomerEvent{EventID: id, CustomerID: "cust_12345", OccurredAt: occurred, Source: "client_abc", Data: p}
	}
	return []event.CustomerEvent{
		base("evt-usage", event.UsageReported{ActiveUsers: 42, SeatsPurchased: 50, FeaturesUsed: []string{"reports", "api"}}),
		base("evt-login", event.LoginRecorded{UserID: "u_1", Role: "executive"}),
		base("evt-ticket", event.SupportTicket{TicketID: "T-9", Status: "escalated", Priority: "urgent"}),
		base("evt-payment", event.PaymentEvent{InvoiceID: "inv_7", Status: "overdue", AmountCents: 1_234_567_890_123}),
		base("evt-nps", event.NpsResponse{Score: 3}),
		base("evt-contract", event.ContractUpdated{Plan: "enterprise", Seats: 250, ArrCents: 12_000_000,
			RenewalDate: "2026-03-31", PlanFeatures: []string{"reports", "api", "sso"}}),
		base("evt-sponsor", event.SponsorChanged{HasExecSponsor: true, ChampionLeft: true}),
	}
}

func derivedEvents() []event.Derived {
	ts := time.Date(2025, 12, 5, 8, 20, 0, 987_654_321, time.UTC)
	return []event.Derived{
		{EventID: "d-1", Event: event.HealthScoreChange, CustomerID: "cust_12345", Timestamp: ts,
			Health: &event.HealthChange{PreviousScore: 80, NewScore: 65, ChangeReason: "usage_decline"}},
		{EventID: "d-2", Event: event.ExpansionReady, CustomerID: "cust_12345", Timestamp: ts,
			Expansion: &event.Expansion{OpportunityType: "upsell", ValueEstimate: 50000, Probability: 0.75,
				SuccessFactors: []string{"high_adoption", "strong_health_score", "executive_sponsorship"}}},
		{EventID: "d-3", Event: event.ChurnRiskDetected, CustomerID: "cust_12345", Timestamp: ts,
			Churn: &event.ChurnRisk{RiskLevel: "high",
				RiskIndicators:     []string{"usage_decline_30_percent", "support_escalation", "payment_issue"},
				RecommendedActions: []string{"immediate_outreach", "executive_escalation", "success_plan_review"}}},
	}
}

func TestCustomerEventRoundTrip(t *testing.T) {
	c := newTestCodec(t)
	seen := map[string]bool{}
	for _, in := range customerEvents() {
		t.Run(in.Type(), func(t *testing.T) {
			seen[in.Type()] = true
			b, err := c.EncodeCustomerEvent(in)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			if id, _ := SchemaID(b); id != c.customer.info.ID {
				t.Errorf("schema id %d, want latest customer id %d", id, c.customer.info.ID)
			}
			got, err := c.DecodeCustomerEvent(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := in
			want.OccurredAt = wantTime(in.OccurredAt)
			if got.OccurredAt.Location() != time.UTC {
				t.Errorf("OccurredAt location %v, want UTC", got.OccurredAt.Location())
			}
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got, want)
			}
		})
	}
	for _, typ := range event.CustomerTypes() {
		if !seen[typ] {
			t.Errorf("no round trip case for %s", typ)
		}
	}
}

func TestCustomerEventPointerPayloadAndEmptyArrays(t *testing.T) {
	c := newTestCodec(t)
	in := event.CustomerEvent{EventID: "e", CustomerID: "c", OccurredAt: time.UnixMilli(-1_500).UTC(),
		Data: &event.UsageReported{ActiveUsers: -1}}
	b, err := c.EncodeCustomerEvent(in)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	got, err := c.DecodeCustomerEvent(b)
	if err != nil {
		t.Fatalf("decode: %v", err)
	}
	want := event.CustomerEvent{EventID: "e", CustomerID: "c", OccurredAt: time.UnixMilli(-1_500).UTC(),
		Data: event.UsageReported{ActiveUsers: -1, FeaturesUsed: []string{}}}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %#v\nwant %#v", got, want)
	}
}

func TestDerivedRoundTrip(t *testing.T) {
	c := newTestCodec(t)
	seen := map[string]bool{}
	for _, in := range derivedEvents() {
		t.Run(in.Event, func(t *testing.T) {
			seen[in.Event] = true
			b, err := c.EncodeDerived(in)
			if err != nil {
				t.Fatalf("encode: %v", err)
			}
			id, _ := SchemaID(b)
			if w := c.byID[uint32(id)]; w == nil || w.info.Subject != Subject(topics.ForDerived(in.Event)) {
				t.Errorf("schema id %d is not of subject %s", id, Subject(topics.ForDerived(in.Event)))
			}
			got, err := c.DecodeDerived(b)
			if err != nil {
				t.Fatalf("decode: %v", err)
			}
			want := in
			want.Timestamp = wantTime(in.Timestamp)
			if !reflect.DeepEqual(got, want) {
				t.Errorf("round trip:\n got %#v\nwant %#v", got, want)
			}
		})
	}
	for _, et := range event.DerivedTypes() {
		if !seen[et] {
			t.Errorf("no round trip case for %s", et)
		}
	}
}

func TestEncodeInvalid(t *testing.T) {
	c := newTestCodec(t)
	ok := customerEvents()[0]
	customer := map[string]event.CustomerEvent{
		"no payload":     {EventID: "e"},
		"nil pointer":    {EventID: "e", Data: (*event.NpsResponse)(nil)},
		"bad role":       withData(ok, event.LoginRecorded{UserID: "u", Role: "root"}),
		"bad status":     withData(ok, event.SupportTicket{TicketID: "t", Status: "closed", Priority: "low"}),
		"bad priority":   withData(ok, event.SupportTicket{TicketID: "t", Status: "opened", Priority: "p1"}),
		"bad pay status": withData(ok, event.PaymentEvent{InvoiceID: "i", Status: "paid"}),
		"bad date":       withData(ok, event.ContractUpdated{Plan: "p", RenewalDate: "31/03/2026"}),
		"empty date":     withData(ok, event.ContractUpdated{Plan: "p"}),
	}
	for name, e := range customer {
		if _, err := c.EncodeCustomerEvent(e); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
	d := derivedEvents()
	mismatch := d[0]
	mismatch.Event = event.ChurnRiskDetected
	two := d[0]
	two.Churn = d[2].Churn
	unknown := d[0]
	unknown.Event = "health_score_changed"
	big := d[0]
	big.Health = &event.HealthChange{PreviousScore: 1 << 40}
	derived := map[string]event.Derived{
		"body of another event": mismatch,
		"two bodies":            two,
		"unknown event":         unknown,
		"score out of range":    big,
		"no body":               {EventID: "x", Event: event.ExpansionReady},
	}
	for name, e := range derived {
		if _, err := c.EncodeDerived(e); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: err %v, want ErrInvalid", name, err)
		}
	}
}

func withData(e event.CustomerEvent, p event.Payload) event.CustomerEvent {
	e.Data = p
	return e
}

func TestDecodeErrors(t *testing.T) {
	c := newTestCodec(t)
	cust, err := c.EncodeCustomerEvent(customerEvents()[0])
	if err != nil {
		t.Fatal(err)
	}
	der, err := c.EncodeDerived(derivedEvents()[1])
	if err != nil {
		t.Fatal(err)
	}
	withID := func(id uint32, payload []byte) []byte {
		b := make([]byte, 5, 5+len(payload))
		binary.BigEndian.PutUint32(b[1:], id)
		return append(b, payload...)
	}
	magic1 := append([]byte{1}, cust[1:]...)
	custPayload := cust[5:]
	derPayload := der[5:]

	cases := []struct {
		name       string
		msg        []byte
		forDerived bool
		want       error
	}{
		{"empty", nil, false, ErrFraming},
		{"1 byte", []byte{0}, false, ErrFraming},
		{"2 bytes", []byte{0, 0}, false, ErrFraming},
		{"3 bytes", []byte{0, 0, 0}, false, ErrFraming},
		{"4 bytes", []byte{0, 0, 0, 0}, false, ErrFraming},
		{"magic byte 1", magic1, false, ErrFraming},
		{"magic byte 1 derived", append([]byte{1}, der[1:]...), true, ErrFraming},
		{"unknown id", withID(9999, custPayload), false, ErrUnknownSchema},
		{"id 0", withID(0, custPayload), false, ErrUnknownSchema},
		{"derived id as customer", der, false, ErrWrongSubject},
		{"customer id as derived", cust, true, ErrWrongSubject},
		{"header only", cust[:5], false, ErrMalformed},
		{"truncated customer", cust[:len(cust)-3], false, ErrMalformed},
		{"truncated derived", der[:len(der)-1], true, ErrMalformed},
		{"trailing byte", append(append([]byte{}, cust...), 0), false, ErrMalformed},
		{"garbage customer", withID(1, []byte{0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01}), false, ErrMalformed},
		{"garbage derived", withID(uint32(c.derived[event.ExpansionReady].info.ID), []byte("not avro at all")), true, ErrMalformed},
		{"union index out of range", withID(1, append(append([]byte{}, custPayload[:len(custPayload)-len(unionTail(t, c, cust))]...), 0x7e)), false, ErrMalformed},
		// A huge array block count: goavro would reserve capacity for it
		// before reading; the shape check must refuse it first.
		{"huge array count", withID(uint32(c.derived[event.ExpansionReady].info.ID), hugeArray(derPayload)), true, ErrMalformed},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var err error
			if tc.forDerived {
				_, err = c.DecodeDerived(tc.msg)
			} else {
				_, err = c.DecodeCustomerEvent(tc.msg)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("err = %v, want %v", err, tc.want)
			}
			for _, other := range []error{ErrFraming, ErrUnknownSchema, ErrWrongSubject, ErrMalformed, ErrInvalid} {
				if other != tc.want && errors.Is(err, other) {
					t.Errorf("err %v also matches %v", err, other)
				}
			}
		})
	}
}

// unionTail returns the bytes of msg from the payload union index on: the
// encoded envelope fields before it are event_id, customer_id, occurred_at
// and source.
func unionTail(t *testing.T, c *Codec, msg []byte) []byte {
	t.Helper()
	rest := msg[5:]
	var err error
	for _, f := range c.customer.shape.fields[:4] {
		if rest, err = f.skip(rest, 0); err != nil {
			t.Fatal(err)
		}
	}
	return rest
}

// hugeArray rewrites an ExpansionReady payload so success_factors claims
// 2^31-1 items: event_id, customer_id, timestamp, opportunity_type,
// value_estimate and probability are kept, the array is replaced.
func hugeArray(payload []byte) []byte {
	rest := payload
	for _, k := range []string{"string", "string", "long", "string", "long", "double"} {
		rest, _ = (&node{kind: k}).skip(rest, 0)
	}
	head := payload[:len(payload)-len(rest)]
	out := append([]byte{}, head...)
	out = binary.AppendVarint(out, 1<<31-1)
	return append(out, 'x', 'y')
}

func TestSchemaID(t *testing.T) {
	c := newTestCodec(t)
	b, err := c.EncodeDerived(derivedEvents()[2])
	if err != nil {
		t.Fatal(err)
	}
	id, err := SchemaID(b)
	if err != nil || id != c.derived[event.ChurnRiskDetected].info.ID {
		t.Fatalf("SchemaID = %d, %v; want %d", id, err, c.derived[event.ChurnRiskDetected].info.ID)
	}
	if b[0] != 0 {
		t.Fatalf("magic byte %d, want 0", b[0])
	}
}

// TestDerivedExplanationRoundTrip shows the explanation survives the wire
// with the v2 schemas, for every derived event type, and that a record
// without one decodes with a nil Explanation.
func TestDerivedExplanationRoundTrip(t *testing.T) {
	c := newTestCodec(t)
	x := &event.Explanation{
		Summary: "risk high: 3 indicator(s) weigh 6 (high from 5)", Score: 62, Band: "yellow",
		PreviousScore: 70, PreviousBand: "green",
		Components:         event.ComponentScores{Usage: 60.5, Engagement: 100, Support: 60, Payment: 50, Sentiment: 70, Adoption: 50},
		PreviousComponents: event.ComponentScores{Usage: 60.5, Engagement: 100, Support: 60, Payment: 100, Sentiment: 70, Adoption: 50},
		Inputs:             []event.ExplanationInput{{Component: "payment", Delta: -50, ScoreDelta: -7.5, Because: "1 failed or overdue invoice(s): inv-58"}},
		RiskPoints:         6,
		Indicators:         []event.IndicatorEvidence{{Indicator: "payment_issue", Weight: 2, Evidence: "failed or overdue invoice(s): inv-58"}},
		Factors:            []event.FactorEvidence{{Factor: "strong_health_score", Evidence: "health 97 ≥ 85"}},
	}
	for _, in := range derivedEvents() {
		in.Explanation = x
		b, err := c.EncodeDerived(in)
		if err != nil {
			t.Fatalf("%s: encode: %v", in.Event, err)
		}
		if id, _ := SchemaID(b); c.byID[uint32(id)].info.Version != 2 {
			t.Errorf("%s: written with schema id %d, want the v2 schema", in.Event, id)
		}
		got, err := c.DecodeDerived(b)
		if err != nil {
			t.Fatalf("%s: decode: %v", in.Event, err)
		}
		want := in
		want.Timestamp = wantTime(in.Timestamp)
		if !reflect.DeepEqual(got, want) {
			t.Errorf("%s:\n got %#v\nwant %#v", in.Event, got.Explanation, want.Explanation)
		}
		in.Explanation = nil
		b, _ = c.EncodeDerived(in)
		if got, err := c.DecodeDerived(b); err != nil || got.Explanation != nil {
			t.Errorf("%s without explanation: decoded %+v, %v", in.Event, got.Explanation, err)
		}
	}
}

func TestNativeAccessors(t *testing.T) {
	c := newTestCodec(t)
	state := Subject(topics.CustomerState)
	zero := map[string]any{"usage": 0.0, "engagement": 0.0, "support": 0.0, "payment": 0.0, "sentiment": 0.0, "adoption": 0.0}
	native := map[string]any{"customer_id": "cust_1", "score": int32(0), "components": zero, "baselined": false,
		"reported_score": int32(0), "reported_components": zero}
	b, err := c.EncodeNative(state, native)
	if err != nil {
		t.Fatalf("encode: %v", err)
	}
	got, version, err := c.DecodeNative(state, b)
	if err != nil || version != 1 || got["customer_id"] != "cust_1" || got["first_seen"] != nil {
		t.Fatalf("decode: %v version %d %v", got, version, err)
	}
	if _, _, err := c.DecodeNative(Subject(topics.HealthChanges), b); !errors.Is(err, ErrWrongSubject) {
		t.Errorf("state record read as health change: err %v, want ErrWrongSubject", err)
	}
	if _, err := c.DecodeDerived(b); !errors.Is(err, ErrWrongSubject) {
		t.Errorf("state record read by DecodeDerived: err %v, want ErrWrongSubject", err)
	}
	if _, err := c.EncodeNative("vitals.nope-value", native); !errors.Is(err, ErrInvalid) {
		t.Errorf("unknown subject: err %v, want ErrInvalid", err)
	}
	if _, err := c.EncodeNative(state, map[string]any{"customer_id": 1}); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad native: err %v, want ErrInvalid", err)
	}
	binary.BigEndian.PutUint32(b[1:5], 999)
	if _, _, err := c.DecodeNative(state, b); !errors.Is(err, ErrUnknownSchema) {
		t.Errorf("unknown id: err %v, want ErrUnknownSchema", err)
	}
}
