package task

import (
	"errors"
	"reflect"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

func TestRoundTrip(t *testing.T) {
	now := time.UnixMilli(1767225600123).UTC()
	for _, in := range []Task{
		{EndpointID: "ep_1", EventID: "ev_1", EventType: "churn_risk_detected", CustomerID: "cust_1",
			Event: []byte{0, 0, 0, 0, 7, 1}, Attempts: 3, DueAt: now.Add(time.Minute), FirstAttempt: now,
			LastError: "http_5xx", LastStatus: 503, ReplayID: "rp_1"},
		{EndpointID: "ep_2", EventID: "ev_2", EventType: "expansion_ready", CustomerID: "c", Event: []byte{1}, DueAt: now},
	} {
		r := in.Record("vitals.retry.5s.v1")
		if r.Topic != "vitals.retry.5s.v1" || string(r.Key) != in.CustomerID {
			t.Fatalf("record %+v", r)
		}
		out, err := Decode(r)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(in, out) {
			t.Fatalf("round trip:\n in %+v\nout %+v", in, out)
		}
	}
}

func TestDecodeRefusesNonTasks(t *testing.T) {
	good := Task{EndpointID: "ep", EventID: "ev", Event: []byte{1}, DueAt: time.Now()}.Record("x")
	for name, r := range map[string]*kgo.Record{
		"no headers":   {Value: []byte{1}},
		"no value":     {Headers: good.Headers},
		"bad attempts": {Value: []byte{1}, Headers: append(append([]kgo.RecordHeader{}, good.Headers...), kgo.RecordHeader{Key: HeaderAttempts, Value: []byte("x")})},
		"bad due":      {Value: []byte{1}, Headers: append(append([]kgo.RecordHeader{}, good.Headers...), kgo.RecordHeader{Key: HeaderDueAt, Value: []byte("soon")})},
	} {
		if _, err := Decode(r); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: err %v, want ErrMalformed", name, err)
		}
	}
}
