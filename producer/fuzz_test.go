package producer

import (
	"encoding/json"
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/schemas"
)

// fuzzNow is the ingest clock of FuzzParse.
var fuzzNow = time.Date(2026, 1, 10, 12, 0, 0, 0, time.UTC)

// FuzzParse feeds arbitrary bodies to the ingest parser. It must never
// panic; a refusal must be one of the named errors or an *InvalidEventError
// naming an event of the body; an accepted body must hold only valid
// events, which re-encode as ingest JSON that parses to the same events and
// as Avro that decodes to them: whatever the API acknowledges, the pipeline
// can carry.
func FuzzParse(f *testing.F) {
	for _, seed := range []string{
		`{"type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":10}}`,
		`[
 {"event_id":"e1","type":"usage_reported","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00Z","data":{"active_users":42,"seats_purchased":50,"features_used":["reports","api"]}},
 {"type":"login_recorded","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00.123456+02:00","data":{"user_id":"u1","role":"executive"}},
 {"type":"support_ticket","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00Z","data":{"ticket_id":"t1","status":"escalated","priority":"urgent"}},
 {"type":"payment_event","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00Z","data":{"invoice_id":"i1","status":"failed","amount_cents":12000}},
 {"type":"nps_response","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00Z","data":{"score":0}},
 {"type":"contract_updated","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00Z","data":{"plan":"pro","seats":50,"arr_cents":6000000,"renewal_date":"2026-06-30","plan_features":["reports"]}},
 {"type":"sponsor_changed","customer_id":"cust_1","occurred_at":"2026-01-01T08:20:00Z","data":{"has_exec_sponsor":true,"champion_left":false}}
]`,
		`{"type":"contract_updated","customer_id":"a:b.c-d_e","occurred_at":"0001-01-01T00:00:00+00:00","data":{"plan":"\u00e9","seats":0,"arr_cents":9007199254740992,"renewal_date":"0000-01-01"}}`,
		`{"type":"usage_reported","customer_id":"c","occurred_at":"2026-01-10T13:00:00.999999999+01:00","data":{"active_users":1099511627776,"seats_purchased":0,"features_used":[]}}`,
		`{"event_id":"","type":"payment_event","customer_id":"c","occurred_at":"1969-12-31T23:59:59.999Z","data":{"invoice_id":"\ud800","status":"overdue","amount_cents":0}}`,
		`{"type":"login_recorded","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"user_id":"u","role":"admin"},"data":{"user_id":"v","role":"user"}}`,
		`{"type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":1e1}}`,
		`{"type":"nps_response","customer_id":"c","occurred_at":"0000-01-01T00:00:00Z","data":{"score":7}}`,
		`{"type":"nps_response","customer_id":"c","occurred_at":"0000-01-01T00:59:59.999-01:00","data":{"score":7}}`,
		`{"type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":5}} {}`,
		`[{"type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":5}}, 1]`,
		`{"type":"sponsor_changed","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":null}`,
		`{"type":"teleport","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{}}`,
		`{"typ":"x","type":"nps_response","customer_id":"c","occurred_at":"2026-01-01T00:00:00Z","data":{"score":1}}`,
		`{"type":`, `[]`, `[[]]`, `42`, ` `, "\xef\xbb\xbf{}", `{"Type":"nps_response"}`,
	} {
		f.Add([]byte(seed))
	}
	codec, err := schemas.New()
	if err != nil {
		f.Fatal(err)
	}

	f.Fuzz(func(t *testing.T, body []byte) {
		evs, err := ParseN(body, "client-a", fuzzNow, 50)
		if err != nil {
			checkRefusal(t, body, err)
			return
		}
		if len(evs) == 0 || len(evs) > 50 {
			t.Fatalf("accepted %d events", len(evs))
		}
		for i, ev := range evs {
			checkAccepted(t, i, ev)
		}

		again, err := ParseN(ingestJSON(t, evs), "client-a", fuzzNow, 50)
		if err != nil {
			t.Fatalf("re-encoded events do not parse: %v\nbody %q", err, body)
		}
		if !reflect.DeepEqual(again, evs) {
			t.Fatalf("re-encoded events parse differently:\n got %#v\nwant %#v", again, evs)
		}

		for i, ev := range evs {
			msg, err := codec.EncodeCustomerEvent(ev)
			if err != nil {
				t.Fatalf("event %d accepted but not encodable as Avro: %v (%#v)", i, err, ev)
			}
			back, err := codec.DecodeCustomerEvent(msg)
			if err != nil {
				t.Fatalf("event %d: Avro encoding does not decode: %v", i, err)
			}
			if !reflect.DeepEqual(back, ev) {
				t.Fatalf("event %d: Avro round trip changed it:\n got %#v\nwant %#v", i, back, ev)
			}
		}
	})
}

// checkRefusal checks err is one of Parse's documented refusals.
func checkRefusal(t *testing.T, body []byte, err error) {
	t.Helper()
	var ie *InvalidEventError
	switch {
	case errors.Is(err, ErrMalformed), errors.Is(err, ErrTooMany), errors.Is(err, ErrEmpty):
	case errors.As(err, &ie):
		if ie.Index < 0 || ie.Index >= 50 || ie.Reason == "" {
			t.Fatalf("refusal names no event of the body: %#v", ie)
		}
		if ie.Field != "" && !knownField(ie.Field) && !strings.HasSuffix(ie.Reason, "is not a known field; check its spelling") {
			t.Fatalf("refusal names field %q, which is no field of an event (body %q)", ie.Field, body)
		}
	default:
		t.Fatalf("refusal of unnamed class %T: %v", err, err)
	}
}

// knownField reports whether field is a JSON path Parse may blame besides
// an unknown field: an envelope field, or a field of data.
func knownField(field string) bool {
	if slices.Contains([]string{"event_id", "type", "customer_id", "occurred_at", "data"}, field) {
		return true
	}
	rest, ok := strings.CutPrefix(field, "data.")
	return ok && rest != ""
}

// checkAccepted checks one accepted event against the ingest rules.
func checkAccepted(t *testing.T, i int, ev event.CustomerEvent) {
	t.Helper()
	switch {
	case ev.Source != "client-a":
		t.Fatalf("event %d: source %q", i, ev.Source)
	case ev.EventID == "" || len(ev.EventID) > 128:
		t.Fatalf("event %d: event_id %q", i, ev.EventID)
	case !customerIDPattern.MatchString(ev.CustomerID):
		t.Fatalf("event %d: customer_id %q", i, ev.CustomerID)
	case ev.OccurredAt.Location() != time.UTC || !ev.OccurredAt.Equal(ev.OccurredAt.Truncate(time.Millisecond)):
		t.Fatalf("event %d: occurred_at %v not UTC milliseconds", i, ev.OccurredAt)
	case ev.OccurredAt.After(fuzzNow.Add(MaxFutureSkew)):
		t.Fatalf("event %d: occurred_at %v too far in the future", i, ev.OccurredAt)
	case ev.Data == nil || !slices.Contains(event.CustomerTypes(), ev.Type()):
		t.Fatalf("event %d: payload %#v", i, ev.Data)
	}
}

// ingestJSON writes evs back in the ingest format, event ids explicit.
func ingestJSON(t *testing.T, evs []event.CustomerEvent) []byte {
	t.Helper()
	type wire struct {
		EventID    string        `json:"event_id"`
		Type       string        `json:"type"`
		CustomerID string        `json:"customer_id"`
		OccurredAt string        `json:"occurred_at"`
		Data       event.Payload `json:"data"`
	}
	out := make([]wire, len(evs))
	for i, ev := range evs {
		out[i] = wire{ev.EventID, ev.Type(), ev.CustomerID, ev.OccurredAt.Format(time.RFC3339Nano), ev.Data}
	}
	b, err := json.Marshal(out)
	if err != nil {
		t.Fatalf("accepted events do not encode as JSON: %v", err)
	}
	return b
}
