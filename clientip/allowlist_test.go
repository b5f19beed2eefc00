package clientip_test

import (
	"encoding/json"
	"io"
	"mime"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/vitalshq/vitals/clientip"
	"github.com/vitalshq/vitals/problem"
)

// mustAllow parses an allow-list or fails the test.
func mustAllow(t testing.TB, entries ...string) clientip.AllowList {
	t.Helper()
	l, err := clientip.ParseAllowList(entries)
	if err != nil {
		t.Fatalf("ParseAllowList(%q): %v", entries, err)
	}
	return l
}

func TestParseAllowListErrors(t *testing.T) {
	for _, c := range []struct {
		entries []string
		want    string
	}{
		{[]string{"10.0.0.0/8", "192.168.0.0/16", "10.0.0.300/8"}, `allow-list entry 3 "10.0.0.300/8": want a CIDR`},
		{[]string{"10.0.0.0/33"}, `allow-list entry 1 "10.0.0.0/33": `},
		{[]string{"2001:db8::/129"}, `allow-list entry 1 "2001:db8::/129": `},
		{[]string{"10.0.0.0/8", " "}, `allow-list entry 2 " ": empty`},
		{[]string{"example.com"}, `allow-list entry 1 "example.com": `},
		{[]string{"10.0.0.0/8/8"}, `allow-list entry 1 "10.0.0.0/8/8": `},
		{[]string{"fe80::/10%eth0"}, `allow-list entry 1 "fe80::/10%eth0": IPv6 zones`},
	} {
		l, err := clientip.ParseAllowList(c.entries)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("ParseAllowList(%q): got error %v, want one starting %q", c.entries, err, c.want)
		}
		if !l.Empty() {
			t.Errorf("ParseAllowList(%q) failed but returned a non-empty list %s", c.entries, l)
		}
	}
}

func TestAllows(t *testing.T) {
	list := mustAllow(t, "10.0.0.0/8", "203.0.113.9", "2001:db8::/32", "::ffff:192.168.0.0/112")
	for addr, want := range map[string]bool{
		"10.0.0.1":           true,
		"10.255.255.255":     true,
		"11.0.0.1":           false,
		"203.0.113.9":        true,
		"203.0.113.10":       false,
		"2001:db8::1":        true,
		"2001:db9::1":        false,
		"::ffff:10.1.2.3":    true, // mapped addresses match as IPv4
		"::ffff:11.1.2.3":    false,
		"192.168.7.7":        true, // a mapped prefix matches IPv4
		"192.169.0.1":        false,
		"::1":                false,
		"2001:db8::1%eth0":   true, // the zone is ignored
		"::ffff:203.0.113.9": true,
	} {
		if got := list.Allows(netip.MustParseAddr(addr)); got != want {
			t.Errorf("%s.Allows(%s) = %v, want %v", list, addr, got, want)
		}
	}
	if list.Allows(netip.Addr{}) {
		t.Error("a non-empty list allows the unknown (zero) address")
	}

	for name, empty := range map[string]clientip.AllowList{
		"zero": {},
		"nil":  mustAllow(t),
		"[]":   mustAllow(t, []string{}...),
	} {
		if !empty.Empty() || empty.String() != "any" {
			t.Errorf("%s list: Empty() = %v, String() = %q", name, empty.Empty(), empty)
		}
		for _, a := range []netip.Addr{netip.MustParseAddr("198.51.100.1"), netip.MustParseAddr("2001:db8::1"), {}} {
			if !empty.Allows(a) {
				t.Errorf("%s list denies %s; an empty list allows any address", name, a)
			}
		}
	}
}

func TestAllowListJSON(t *testing.T) {
	type client struct {
		ID      string             `json:"id"`
		IPAllow clientip.AllowList `json:"ip_allow"`
	}
	c := client{ID: "c1", IPAllow: mustAllow(t, "10.1.2.3/8", "203.0.113.9", "2001:db8::/32")}
	b, err := json.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"c1","ip_allow":["10.0.0.0/8","203.0.113.9/32","2001:db8::/32"]}`; string(b) != want {
		t.Errorf("marshal: got %s, want %s", b, want)
	}
	var back client
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got, want := back.IPAllow.String(), "10.0.0.0/8, 203.0.113.9/32, 2001:db8::/32"; got != want {
		t.Errorf("round trip: got %s, want %s", got, want)
	}
	if p := back.IPAllow.Prefixes(); len(p) != 3 || p[1] != netip.MustParsePrefix("203.0.113.9/32") {
		t.Errorf("Prefixes() = %v", p)
	}

	b, err = json.Marshal(client{ID: "c2"})
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"id":"c2","ip_allow":[]}`; string(b) != want {
		t.Errorf("empty list: got %s, want %s", b, want)
	}
	for _, in := range []string{`{"ip_allow":null}`, `{"ip_allow":[]}`, `{}`} {
		back = client{IPAllow: mustAllow(t, "10.0.0.0/8")}
		if in == `{}` {
			back = client{}
		}
		if err := json.Unmarshal([]byte(in), &back); err != nil || !back.IPAllow.Empty() {
			t.Errorf("unmarshal %s: got %s, %v; want an empty list", in, back.IPAllow, err)
		}
	}

	err = json.Unmarshal([]byte(`{"ip_allow":["10.0.0.0/8","192.168.0.0/16","10.0.0.300/8"]}`), &back)
	if err == nil || !strings.Contains(err.Error(), `allow-list entry 3 "10.0.0.300/8"`) {
		t.Errorf("unmarshal a bad entry: got %v", err)
	}
	err = json.Unmarshal([]byte(`{"ip_allow":"10.0.0.0/8"}`), &back)
	if err == nil || !strings.Contains(err.Error(), "JSON array") {
		t.Errorf("unmarshal a string: got %v", err)
	}
}

// TestDenyOverSocket is the attack test: a request from outside a client's
// allow-list is refused with a 403 problem, and a spoofed X-Forwarded-For
// from an untrusted peer does not get it in.
func TestDenyOverSocket(t *testing.T) {
	list := mustAllow(t, "10.0.0.0/8")
	guard := func(res *clientip.Resolver) string {
		h := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			addr, _ := clientip.FromContext(r.Context())
			if !list.Allows(addr) {
				clientip.Deny(w, r, addr)
				return
			}
			_, _ = io.WriteString(w, "ok")
		}))
		srv := httptest.NewServer(h)
		t.Cleanup(srv.Close)
		return srv.URL
	}
	do := func(url, xff string) (*http.Response, []byte) {
		req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, url+"/oauth/token", nil)
		if err != nil {
			t.Fatal(err)
		}
		if xff != "" {
			req.Header.Set("X-Forwarded-For", xff)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return resp, b
	}

	untrusted := guard(clientip.NewResolver(nil))
	for _, xff := range []string{"", "10.0.0.5", "203.0.113.9, 10.0.0.5"} {
		resp, body := do(untrusted, xff)
		if resp.StatusCode != http.StatusForbidden {
			t.Fatalf("XFF %q from untrusted 127.0.0.1: %s %s, want 403", xff, resp.Status, body)
		}
		if mt, _, _ := mime.ParseMediaType(resp.Header.Get("Content-Type")); mt != problem.ContentType {
			t.Errorf("Content-Type %q, want %s", resp.Header.Get("Content-Type"), problem.ContentType)
		}
		var p map[string]any
		if err := json.Unmarshal(body, &p); err != nil {
			t.Fatalf("body %s: %v", body, err)
		}
		if p["type"] != "https://vitals.dev/problems/ip-not-allowed" ||
			p["status"] != float64(403) || p["title"] != "Forbidden" || p["instance"] != "/oauth/token" || p["client_ip"] != "127.0.0.1" {
			t.Errorf("problem %s", body)
		}
		if d, _ := p["detail"].(string); d != "request from 127.0.0.1 is outside the client's IP allow-list; ask an admin to add it (or a range containing it) to the client's ip_allow" {
			t.Errorf("detail %q", d)
		}
	}

	// Through a trusted proxy, the address it reports is checked.
	trusted := guard(mustTrusted(t, "127.0.0.1"))
	if resp, body := do(trusted, "203.0.113.9, 10.0.0.5"); resp.StatusCode != http.StatusOK {
		t.Errorf("allowed client via trusted proxy: %s %s", resp.Status, body)
	}
	if resp, body := do(trusted, "10.0.0.5, 203.0.113.9"); resp.StatusCode != http.StatusForbidden || !strings.Contains(string(body), "203.0.113.9") {
		t.Errorf("client 203.0.113.9 spoofing 10.0.0.5 via trusted proxy: %s %s, want 403 naming 203.0.113.9", resp.Status, body)
	}
}

func TestProblemUnknownAddress(t *testing.T) {
	p := clientip.Problem(netip.Addr{})
	if p.Status != http.StatusForbidden || p.Type != clientip.ProblemType || !strings.Contains(p.Detail, "could not be determined") {
		t.Errorf("got %+v", p)
	}
	if _, ok := p.Extra["client_ip"]; ok {
		t.Errorf("unknown address reported as client_ip: %+v", p.Extra)
	}
	if p := clientip.Problem(netip.MustParseAddr("::ffff:203.0.113.9")); !strings.HasPrefix(p.Detail, "request from 203.0.113.9 ") {
		t.Errorf("mapped address not shown as IPv4: %q", p.Detail)
	}
}
