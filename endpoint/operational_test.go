package endpoint_test

import (
	"testing"

	"github.com/vitalshq/vitals/endpoint"
)

// Alert events are operational: an endpoint receives them only when it
// names them, never through "*", and may name them at registration.
func TestAlertEventsAreOperational(t *testing.T) {
	for _, typ := range []string{endpoint.OpAlertFiring, endpoint.OpAlertResolved} {
		if !endpoint.IsOperational(typ) || !endpoint.ValidEventType(typ) {
			t.Errorf("%s: operational %v, valid %v; want both", typ, endpoint.IsOperational(typ), endpoint.ValidEventType(typ))
		}
		all := endpoint.Endpoint{EventTypes: []string{"*"}}
		if all.Subscribes(typ) {
			t.Errorf(`an endpoint subscribed to "*" receives %s`, typ)
		}
		ops := endpoint.Endpoint{URL: "https://ops.example.com/alerts", EventTypes: []string{typ}}
		if err := ops.Validate(false); err != nil {
			t.Errorf("endpoint naming %s: %v", typ, err)
		}
		if !ops.Subscribes(typ) {
			t.Errorf("an endpoint naming %s does not receive it", typ)
		}
	}
	if endpoint.IsOperational("churn_risk_detected") {
		t.Error("a derived event type counts as operational")
	}
}
