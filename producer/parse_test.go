package producer

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/vitalshq/vitals/event"
)

var now = time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)

func TestParseValidTypes(t *testing.T) {
	body := `[
 {"event_id":"e1","type":"usage_reported","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00Z","data":{"active_users":42,"seats_purchased":50,"features_used":["reports","api"]}},
 {"type":"login_recorded","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00.123456+02:00","data":{"user_id":"u1","role":"executive"}},
 {"type":"support_ticket","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00Z","data":{"ticket_id":"t1","status":"escalated","priority":"urgent"}},
 {"type":"payment_event","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00Z","data":{"invoice_id":"i1","status":"failed","amount_cents":12000}},
 {"type":"nps_response","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00Z","data":{"score":0}},
 {"type":"contract_updated","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00Z","data":{"plan":"pro","seats":50,"arr_cents":6000000,"renewal_date":"2026-06-30","plan_features":["reports"]}},
 {"type":"sponsor_changed","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00Z","data":{"has_exec_sponsor":true,"champion_left":false}}
]`
	evs, err := Parse([]byte(body), "client-a", now)
	if err != nil {
		t.Fatal(err)
	}
	if len(evs) != 7 {
		t.Fatalf("got %d events", len(evs))
	}
	for i, want := range event.CustomerTypes() {
		if evs[i].Type() != want {
			t.Errorf("event %d type %q, want %q", i, evs[i].Type(), want)
		}
		if evs[i].Source != "client-a" || evs[i].CustomerID != "cust_1" || evs[i].EventID == "" {
			t.Errorf("event %d envelope %+v", i, evs[i])
		}
	}
	if evs[0].EventID != "e1" {
		t.Errorf("explicit event_id lost: %q", evs[0].EventID)
	}
	if evs[1].EventID == evs[2].EventID {
		t.Error("generated event ids collide")
	}
	if got := evs[1].OccurredAt; !got.Equal(time.Date(2026, 1, 1, 6, 20, 0, 123e6, time.UTC)) || got.Location() != time.UTC {
		t.Errorf("occurred_at not normalised to UTC millis: %v", got)
	}
	u := evs[0].Data.(event.UsageReported)
	if u.ActiveUsers != 42 || u.SeatsPurchased != 50 || len(u.FeaturesUsed) != 2 {
		t.Errorf("usage %+v", u)
	}
	one, err := Parse([]byte(`{"type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":10}}`), "x", now)
	if err != nil || len(one) != 1 || one[0].Data.(event.NpsResponse).Score != 10 {
		t.Fatalf("single object: %v %+v", err, one)
	}
}

func TestParseInvalid(t *testing.T) {
	ok := `{"type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":5}}`
	cases := []struct {
		name, body string
		index      int
		field      string
		sentinel   error
	}{
		{"empty body", ``, 0, "", ErrMalformed},
		{"malformed", `{"type":`, 0, "", ErrMalformed},
		{"not object", `42`, 0, "", ErrMalformed},
		{"empty array", `[]`, 0, "", ErrEmpty},
		{"array of numbers", `[{"type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":5}}, 1]`, 1, "", nil},
		{"unknown type", `[` + ok + `,{"type":"teleport","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{}}]`, 1, "type", nil},
		{"missing type", `{"customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":1}}`, 0, "type", nil},
		{"missing customer", `[` + ok + `,` + ok + `,{"type":"nps_response","occurred_at":"2026-01-01T00:00:00Z","data":{"score":1}}]`, 2, "customer_id", nil},
		{"bad customer", `{"type":"nps_response","customer_id":"a b","occurred_at":"2026-01-01T00:00:00Z","data":{"score":1}}`, 0, "customer_id", nil},
		{"missing time", `{"type":"nps_response","customer_id":"c","data":{"score":1}}`, 0, "occurred_at", nil},
		{"bad time", `{"type":"nps_response","customer_id":"c","occurred_at":"yesterday","data":{"score":1}}`, 0, "occurred_at", nil},
		{"future time", `{"type":"nps_response","customer_id":"c","occurred_at":"2027-01-01T00:00:00Z","data":{"score":1}}`, 0, "occurred_at", nil},
		{"missing data", `{"type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z"}`, 0, "data", nil},
		{"score range", `{"type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":11}}`, 0, "data.score", nil},
		{"score type", `{"type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":"high"}}`, 0, "data.score", nil},
		{"unknown data field", `{"type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":1,"scroe":2}}`, 0, "data.scroe", nil},
		{"unknown top field", `{"typ":"x","type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":1}}`, 0, "typ", nil},
		{"bad enum", `{"type":"support_ticket","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"ticket_id":"t","status":"lost","priority":"low"}}`, 0, "data.status", nil},
		{"missing usage", `{"type":"usage_reported","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"seats_purchased":3}}`, 0, "data.active_users", nil},
		{"bad date", `{"type":"contract_updated","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"plan":"p","seats":1,"arr_cents":1,"renewal_date":"30/06/2026"}}`, 0, "data.renewal_date", nil},
		{"missing bool", `{"type":"sponsor_changed","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"has_exec_sponsor":true}}`, 0, "data.champion_left", nil},
		{"negative seats", `{"type":"usage_reported","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"active_users":1,"seats_purchased":-1}}`, 0, "data.seats_purchased", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			evs, err := Parse([]byte(tc.body), "x", now)
			if err == nil {
				t.Fatalf("accepted: %+v", evs)
			}
			if evs != nil {
				t.Fatalf("returned events with an error")
			}
			if tc.sentinel != nil {
				if !errors.Is(err, tc.sentinel) {
					t.Fatalf("err %v, want %v", err, tc.sentinel)
				}
				return
			}
			var ie *InvalidEventError
			if !errors.As(err, &ie) {
				t.Fatalf("err %T %v, want *InvalidEventError", err, err)
			}
			if ie.Index != tc.index || ie.Field != tc.field || ie.Reason == "" {
				t.Fatalf("got index %d field %q reason %q; want index %d field %q", ie.Index, ie.Field, ie.Reason, tc.index, tc.field)
			}
		})
	}
}

func TestParseBatchLimit(t *testing.T) {
	one := `{"type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":5}}`
	full := "[" + strings.Repeat(one+",", MaxBatch-1) + one + "]"
	if evs, err := Parse([]byte(full), "x", now); err != nil || len(evs) != MaxBatch {
		t.Fatalf("full batch: %v, %d", err, len(evs))
	}
	over := "[" + strings.Repeat(one+",", MaxBatch) + one + "]"
	if _, err := Parse([]byte(over), "x", now); !errors.Is(err, ErrTooMany) {
		t.Fatalf("over batch: %v", err)
	}
}
