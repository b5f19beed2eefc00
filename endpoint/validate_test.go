package endpoint_test

import (
	"errors"
	"math"
	"slices"
	"strings"
	"testing"

	"github.com/vitalshq/vitals/endpoint"
)

func TestValidate(t *testing.T) {
	good := func() endpoint.Endpoint {
		return endpoint.Endpoint{URL: "https://hooks.example.com/v", EventTypes: []string{"*"}}
	}
	cases := []struct {
		name  string
		edit  func(*endpoint.Endpoint)
		http  bool
		field string // "" for valid
	}{
		{"valid", func(*endpoint.Endpoint) {}, false, ""},
		{"no url", func(e *endpoint.Endpoint) { e.URL = "" }, false, "url"},
		{"relative", func(e *endpoint.Endpoint) { e.URL = "/x" }, false, "url"},
		{"http refused", func(e *endpoint.Endpoint) { e.URL = "http://hooks.example.com/" }, false, "url"},
		{"http allowed", func(e *endpoint.Endpoint) { e.URL = "http://hooks.example.com/" }, true, ""},
		{"ftp", func(e *endpoint.Endpoint) { e.URL = "ftp://hooks.example.com/" }, true, "url"},
		{"credentials", func(e *endpoint.Endpoint) { e.URL = "https://u:p@hooks.example.com/" }, false, "url"},
		{"no types", func(e *endpoint.Endpoint) { e.EventTypes = nil }, false, "event_types"},
		{"bad type", func(e *endpoint.Endpoint) { e.EventTypes = []string{"*", "churn"} }, false, "event_types[1]"},
		{"operational", func(e *endpoint.Endpoint) {
			e.EventTypes = []string{endpoint.OpAttemptExhausted, endpoint.OpEndpointDisabled}
		}, false, ""},
		{"empty customer", func(e *endpoint.Endpoint) { e.CustomerIDs = []string{"c1", ""} }, false, "customer_ids[1]"},
		{"host header", func(e *endpoint.Endpoint) { e.Headers = map[string]string{"Host": "x"} }, false, "headers.Host"},
		{"webhook header", func(e *endpoint.Endpoint) { e.Headers = map[string]string{"Webhook-Signature": "x"} }, false, "headers.Webhook-Signature"},
		{"content-type", func(e *endpoint.Endpoint) { e.Headers = map[string]string{"content-type": "x"} }, false, "headers.content-type"},
		{"user-agent", func(e *endpoint.Endpoint) { e.Headers = map[string]string{"User-Agent": "x"} }, false, "headers.User-Agent"},
		{"transfer-encoding", func(e *endpoint.Endpoint) { e.Headers = map[string]string{"Transfer-Encoding": "x"} }, false, "headers.Transfer-Encoding"},
		{"proxy-authorization", func(e *endpoint.Endpoint) { e.Headers = map[string]string{"Proxy-Authorization": "x"} }, false, "headers.Proxy-Authorization"},
		{"bad name", func(e *endpoint.Endpoint) { e.Headers = map[string]string{"X Bad": "x"} }, false, "headers.X Bad"},
		{"crlf value", func(e *endpoint.Endpoint) { e.Headers = map[string]string{"X-Ok": "a\r\nHost: evil"} }, false, "headers.X-Ok"},
		{"authorization allowed", func(e *endpoint.Endpoint) { e.Headers = map[string]string{"Authorization": "Bearer t", "X-Team": "cs"} }, false, ""},
		{"negative rate", func(e *endpoint.Endpoint) { e.RateLimit = -1 }, false, "rate_limit"},
		{"NaN rate", func(e *endpoint.Endpoint) { e.RateLimit = math.NaN() }, false, "rate_limit"},
		{"fractional rate", func(e *endpoint.Endpoint) { e.RateLimit = 0.5 }, false, ""},
		{"in flight", func(e *endpoint.Endpoint) { e.MaxInFlight = -2 }, false, "max_in_flight"},
		{"reason without disabled", func(e *endpoint.Endpoint) { e.DisabledReason = "x" }, false, "disabled_reason"},
		{"long description", func(e *endpoint.Endpoint) { e.Description = strings.Repeat("d", 513) }, false, "description"},
	}
	for _, c := range cases {
		e := good()
		c.edit(&e)
		err := e.Validate(c.http)
		var fe *endpoint.FieldError
		switch {
		case c.field == "" && err != nil:
			t.Errorf("%s: %v", c.name, err)
		case c.field != "" && (!errors.As(err, &fe) || fe.Field != c.field || !errors.Is(err, endpoint.ErrInvalid)):
			t.Errorf("%s: %v, want field %s", c.name, err, c.field)
		}
	}
	e := good()
	e.EventTypes = []string{"expansion_ready", "churn_risk_detected", "expansion_ready"}
	e.CustomerIDs = []string{"b", "a", "b"}
	if err := e.Validate(false); err != nil || !slices.Equal(e.EventTypes, []string{"churn_risk_detected", "expansion_ready"}) || !slices.Equal(e.CustomerIDs, []string{"a", "b"}) {
		t.Fatalf("normalize: %v %v %v", err, e.EventTypes, e.CustomerIDs)
	}
}
