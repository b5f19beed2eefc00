package endpoint_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"math"
	"net"
	"net/http"
	"net/url"
	"reflect"
	"slices"
	"strings"
	"testing"

	"github.com/vitalshq/vitals/endpoint"
)

// errNoDial is what the fuzz transport answers every dial with: a request
// that fails with anything else was refused by net/http before it could
// leave.
var errNoDial = errors.New("fuzz: not dialling")

// FuzzValidate feeds arbitrary endpoint registrations to Validate. It must
// never panic; what it accepts must be an absolute http(s) URL without
// credentials (https unless allowed), normalized event types and customer
// ids, and custom headers that neither collide nor are reserved; Validate
// must be idempotent and survive the registry's JSON; and every accepted
// endpoint must be deliverable: net/http sends its request, custom headers
// included, as far as the dial, instead of refusing it.
func FuzzValidate(f *testing.F) {
	type seed struct {
		url, types, name1, value1, name2, value2, customers string
		rate                                                float64
		inflight                                            int
		allowHTTP                                           bool
	}
	for _, s := range []seed{
		{"https://hooks.example.com/vitals", "*", "", "", "", "", "", 0, 0, false},
		{"https://hooks.example.com:8443/a/b?x=1#frag", "health_score_change,churn_risk_detected,churn_risk_detected", "Authorization", "Bearer abc", "X-Team", "cs", "b,a,a", 10, 5, false},
		{"http://[2001:db8::1]:80/", "message.attempt.exhausted,endpoint.disabled", "X-Tab", "a\tb", "X-Other", "c", "", endpoint.MaxRateLimit, 1000, true},
		{"https://hooks.example.com/", "*", "X-Team", "a", "x-team", "b", "", 0, 0, false},
		{"http://hooks.example.com/", "*", "", "", "", "", "", 0, 0, false},
		{"https://u:p@hooks.example.com/", "*", "", "", "", "", "", 0, 0, false},
		{"https://hooks.example.com/%zz", "*", "", "", "", "", "", 0, 0, false},
		{"https://xn--bcher-kva.example/", "expansion_ready", "X-Bell", "a\x07b", "", "", "", 0, 0, false},
		{"https://bücher.example/é", "alert.firing", "X-Del", "\x7f", "", "", "", 0, 0, false},
		{"https://hooks.example.com/", "*", "Webhook-Id", "x", "Host", "evil", "", 0, 0, false},
		{"https://hooks.example.com/", "*", "X-A", "line\r\nX-Injected: 1", "", "", "", 0, 0, false},
		{"https://[fe80::1%25eth0]/", "*", "", "", "", "", "", math.NaN(), -1, false},
		{"HTTPS://HOOKS.EXAMPLE.COM", "teleport", "", "", "", "", "", math.Inf(1), 0, false},
		{"https:hooks.example.com", "", "", "", "", "", "", 0, 0, false},
		{"//hooks.example.com/", "*", "", "", "", "", "", 0, 0, true},
		{"https://hooks.example.com:99999/", "*", "", "", "", "", "", 0, 0, false},
		{"https://a b.example/", "*", "", "", "", "", "", 0, 0, false},
	} {
		f.Add(s.url, s.types, s.name1, s.value1, s.name2, s.value2, s.customers, s.rate, s.inflight, s.allowHTTP)
	}
	tr := &http.Transport{
		Proxy:          nil,
		DialContext:    func(context.Context, string, string) (net.Conn, error) { return nil, errNoDial },
		DialTLSContext: func(context.Context, string, string) (net.Conn, error) { return nil, errNoDial },
	}
	f.Cleanup(tr.CloseIdleConnections)

	f.Fuzz(func(t *testing.T, rawURL, types, name1, value1, name2, value2, customers string, rate float64, inflight int, allowHTTP bool) {
		// Registrations arrive as JSON, whose strings are UTF-8.
		rawURL, types, customers = strings.ToValidUTF8(rawURL, "\uFFFD"), strings.ToValidUTF8(types, "\uFFFD"), strings.ToValidUTF8(customers, "\uFFFD")
		name1, value1 = strings.ToValidUTF8(name1, "\uFFFD"), strings.ToValidUTF8(value1, "\uFFFD")
		name2, value2 = strings.ToValidUTF8(name2, "\uFFFD"), strings.ToValidUTF8(value2, "\uFFFD")
		e := endpoint.Endpoint{URL: rawURL, RateLimit: rate, MaxInFlight: inflight}
		if types != "" {
			e.EventTypes = strings.Split(types, ",")
		}
		if customers != "" {
			e.CustomerIDs = strings.Split(customers, ",")
		}
		for _, h := range [][2]string{{name1, value1}, {name2, value2}} {
			if h[0] != "" {
				if e.Headers == nil {
					e.Headers = map[string]string{}
				}
				e.Headers[h[0]] = h[1]
			}
		}
		if err := e.Validate(allowHTTP); err != nil {
			var fe *endpoint.FieldError
			if !errors.As(err, &fe) || !errors.Is(err, endpoint.ErrInvalid) || fe.Field == "" || fe.Detail == "" {
				t.Fatalf("refusal is not a FieldError naming a field: %#v", err)
			}
			return
		}

		u, err := url.Parse(e.URL)
		switch {
		case err != nil || !u.IsAbs() || u.Hostname() == "" || u.User != nil:
			t.Fatalf("accepted URL %q: %v %+v", e.URL, err, u)
		case u.Scheme != "https" && !(allowHTTP && u.Scheme == "http"):
			t.Fatalf("accepted scheme %q (allowHTTP %v)", u.Scheme, allowHTTP)
		case len(e.EventTypes) == 0 || !slices.IsSorted(e.EventTypes) || len(slices.Compact(slices.Clone(e.EventTypes))) != len(e.EventTypes):
			t.Fatalf("event types not normalized: %q", e.EventTypes)
		case !slices.IsSorted(e.CustomerIDs) || len(slices.Compact(slices.Clone(e.CustomerIDs))) != len(e.CustomerIDs):
			t.Fatalf("customer ids not normalized: %q", e.CustomerIDs)
		case math.IsNaN(e.RateLimit) || e.RateLimit < 0 || e.MaxInFlight < 0:
			t.Fatalf("accepted rate %v, in flight %d", e.RateLimit, e.MaxInFlight)
		}
		for _, typ := range e.EventTypes {
			if !endpoint.ValidEventType(typ) {
				t.Fatalf("accepted event type %q", typ)
			}
		}

		again := e
		if err := again.Validate(allowHTTP); err != nil || !reflect.DeepEqual(again, e) {
			t.Fatalf("Validate is not idempotent: %v\n%+v\n%+v", err, e, again)
		}
		b, err := json.Marshal(e)
		if err != nil {
			t.Fatalf("accepted endpoint does not marshal: %v", err)
		}
		var stored endpoint.Endpoint
		if err := json.Unmarshal(b, &stored); err != nil {
			t.Fatalf("stored endpoint does not read back: %v", err)
		}
		if err := stored.Validate(allowHTTP); err != nil || stored.URL != e.URL || !reflect.DeepEqual(stored.Headers, e.Headers) {
			t.Fatalf("stored endpoint reads back different or invalid: %v\n%+v\n%+v", err, e, stored)
		}

		// Send it as the dispatcher does: custom headers by canonical name.
		req, err := http.NewRequestWithContext(context.Background(), http.MethodPost, e.URL, bytes.NewReader([]byte(`{}`)))
		if err != nil {
			t.Fatalf("accepted URL %q makes no request: %v", e.URL, err)
		}
		for k, v := range e.Headers {
			if endpoint.ReservedHeader(k) {
				t.Fatalf("accepted reserved header %q", k)
			}
			req.Header.Set(k, v)
		}
		if len(req.Header) != len(e.Headers) {
			t.Fatalf("custom headers %q collide once canonical: %q", e.Headers, req.Header)
		}
		req.Header.Set("Content-Type", "application/json")
		if _, err := tr.RoundTrip(req); !errors.Is(err, errNoDial) {
			t.Fatalf("net/http refuses to send accepted endpoint %q with headers %q: %v", e.URL, e.Headers, err)
		}
	})
}
