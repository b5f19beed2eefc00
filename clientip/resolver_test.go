package clientip_test

import (
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"

	"github.com/vitalshq/vitals/clientip"
)

// mustTrusted parses trusted-proxy entries or fails the test.
func mustTrusted(t testing.TB, entries ...string) *clientip.Resolver {
	t.Helper()
	ps, err := clientip.ParseTrusted(entries)
	if err != nil {
		t.Fatalf("ParseTrusted(%q): %v", entries, err)
	}
	return clientip.NewResolver(ps)
}

// echoServer starts a server on ln (127.0.0.1 when ln is nil) that answers
// each request with the client address res.Middleware stored, or "none".
func echoServer(t *testing.T, res *clientip.Resolver, ln net.Listener) string {
	t.Helper()
	h := res.Middleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		addr, ok := clientip.FromContext(r.Context())
		if !ok {
			_, _ = io.WriteString(w, "none")
			return
		}
		_, _ = io.WriteString(w, addr.String())
	}))
	srv := httptest.NewUnstartedServer(h)
	if ln != nil {
		srv.Listener.Close()
		srv.Listener = ln
	}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv.URL
}

// get sends GET url with one X-Forwarded-For header line per xff element
// and returns the body.
func get(t *testing.T, url string, xff ...string) string {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range xff {
		req.Header.Add("X-Forwarded-For", line)
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
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %s: %s", url, resp.Status, b)
	}
	return string(b)
}

func TestUntrustedPeerIgnoresXFF(t *testing.T) {
	for name, res := range map[string]*clientip.Resolver{
		"other ranges trusted": mustTrusted(t, "10.0.0.0/8", "2001:db8::/32"),
		"nothing trusted":      clientip.NewResolver(nil),
		"nil resolver":         nil,
	} {
		t.Run(name, func(t *testing.T) {
			url := echoServer(t, res, nil)
			for _, xff := range [][]string{
				nil,
				{"203.0.113.9"},
				{"10.0.0.7"}, // spoofing a trusted proxy's range changes nothing
				{"203.0.113.9, 10.0.0.2", "10.0.0.3"},
				{"garbage"},
			} {
				if got := get(t, url, xff...); got != "127.0.0.1" {
					t.Errorf("XFF %q from untrusted 127.0.0.1: got %s, want the socket peer 127.0.0.1", xff, got)
				}
			}
		})
	}
}

func TestTrustedPeerRightmostUntrusted(t *testing.T) {
	url := echoServer(t, mustTrusted(t, "127.0.0.1"), nil)
	cases := []struct {
		xff  []string
		want string
	}{
		{nil, "127.0.0.1"},
		{[]string{""}, "127.0.0.1"},
		{[]string{"203.0.113.9"}, "203.0.113.9"},
		// The client sent "198.51.100.1"; the proxy appended what it saw.
		{[]string{"198.51.100.1, 203.0.113.9"}, "203.0.113.9"},
		{[]string{"198.51.100.1,203.0.113.9"}, "203.0.113.9"},
		{[]string{"  198.51.100.1 ,\t203.0.113.9  "}, "203.0.113.9"},
		{[]string{"203.0.113.9,"}, "203.0.113.9"}, // empty list elements are skipped
		{[]string{",,203.0.113.9,,"}, "203.0.113.9"},
	}
	for _, c := range cases {
		if got := get(t, url, c.xff...); got != c.want {
			t.Errorf("XFF %q via trusted 127.0.0.1: got %s, want %s", c.xff, got, c.want)
		}
	}
}

func TestTrustedProxyChain(t *testing.T) {
	url := echoServer(t, mustTrusted(t, "127.0.0.1/32", "10.0.0.0/8", "2001:db8:1::/48"), nil)
	cases := []struct {
		xff  []string
		want string
	}{
		{[]string{"198.51.100.7, 203.0.113.9, 10.1.2.3, 10.0.0.2"}, "203.0.113.9"},
		{[]string{"198.51.100.7, 2001:db8:2::9, 2001:db8:1::2, 10.0.0.2"}, "2001:db8:2::9"},
		// A spoofed entry inside a trusted range left of the real client is
		// never reached.
		{[]string{"10.9.9.9, 203.0.113.9, 10.0.0.2"}, "203.0.113.9"},
		// Every hop trusted: the leftmost is the client (inside the range).
		{[]string{"10.0.0.5, 10.0.0.2"}, "10.0.0.5"},
	}
	for _, c := range cases {
		if got := get(t, url, c.xff...); got != c.want {
			t.Errorf("XFF %q: got %s, want %s", c.xff, got, c.want)
		}
	}
}

func TestMultipleHeaderLines(t *testing.T) {
	url := echoServer(t, mustTrusted(t, "127.0.0.1", "10.0.0.0/8"), nil)
	cases := []struct {
		xff  []string
		want string
	}{
		// Lines are one list, in order: the last line is the nearest hop.
		{[]string{"198.51.100.7, 203.0.113.9", "10.0.0.2"}, "203.0.113.9"},
		{[]string{"198.51.100.7", "203.0.113.9", "10.0.0.3, 10.0.0.2"}, "203.0.113.9"},
		{[]string{"198.51.100.7", "203.0.113.9", ""}, "203.0.113.9"},
		{[]string{"203.0.113.9", "10.0.0.2", "10.0.0.1"}, "203.0.113.9"},
	}
	for _, c := range cases {
		if got := get(t, url, c.xff...); got != c.want {
			t.Errorf("XFF lines %q: got %s, want %s", c.xff, got, c.want)
		}
	}
}

func TestMalformedXFFStopsWalk(t *testing.T) {
	url := echoServer(t, mustTrusted(t, "127.0.0.1", "10.0.0.0/8"), nil)
	cases := []struct {
		xff  []string
		want string
	}{
		{[]string{"garbage"}, "127.0.0.1"},
		{[]string{"unknown"}, "127.0.0.1"},
		{[]string{"10.0.0.300"}, "127.0.0.1"},
		{[]string{"1.2.3.4.5"}, "127.0.0.1"},
		{[]string{"[1.2.3.4]"}, "127.0.0.1"},
		{[]string{"fe80::1%eth0"}, "127.0.0.1"},
		{[]string{"203.0.113.9 198.51.100.7"}, "127.0.0.1"},
		// The last trusted hop read before the bad entry, never the
		// (client-written) entries left of it.
		{[]string{"203.0.113.9, garbage, 10.0.0.2"}, "10.0.0.2"},
		{[]string{"203.0.113.9", "garbage", "10.0.0.3, 10.0.0.2"}, "10.0.0.3"},
		// Garbage left of the first untrusted entry is never read.
		{[]string{"garbage, 203.0.113.9"}, "203.0.113.9"},
		{[]string{"garbage", "203.0.113.9, 10.0.0.2"}, "203.0.113.9"},
	}
	for _, c := range cases {
		if got := get(t, url, c.xff...); got != c.want {
			t.Errorf("XFF %q: got %s, want %s", c.xff, got, c.want)
		}
	}
}

func TestXFFEntryForms(t *testing.T) {
	url := echoServer(t, mustTrusted(t, "127.0.0.1"), nil)
	for xff, want := range map[string]string{
		"203.0.113.9:4711":              "203.0.113.9",
		"2001:db8::1":                   "2001:db8::1",
		"[2001:db8::1]":                 "2001:db8::1",
		"[2001:db8::1]:443":             "2001:db8::1",
		"::ffff:203.0.113.9":            "203.0.113.9",
		"[::ffff:203.0.113.9]:80":       "203.0.113.9",
		"::ffff:127.0.0.1":              "127.0.0.1", // trusted once unmapped, and the leftmost
		"203.0.113.9, ::ffff:127.0.0.1": "203.0.113.9",
	} {
		if got := get(t, url, xff); got != want {
			t.Errorf("XFF %q: got %s, want %s", xff, got, want)
		}
	}
}

func TestIPv6Peer(t *testing.T) {
	listen := func(t *testing.T) net.Listener {
		ln, err := net.Listen("tcp6", "[::1]:0")
		if err != nil {
			t.Skipf("no IPv6 loopback here: %v", err)
		}
		return ln
	}
	t.Run("untrusted", func(t *testing.T) {
		url := echoServer(t, mustTrusted(t, "127.0.0.1", "2001:db8::/32"), listen(t))
		if got := get(t, url, "2001:db8::9"); got != "::1" {
			t.Errorf("got %s, want the socket peer ::1", got)
		}
	})
	t.Run("trusted", func(t *testing.T) {
		url := echoServer(t, mustTrusted(t, "::1/128"), listen(t))
		if got := get(t, url, "2001:db8::7, 2001:db8::9"); got != "2001:db8::9" {
			t.Errorf("got %s, want 2001:db8::9", got)
		}
		if got := get(t, url, "2001:db8::7, 203.0.113.9"); got != "203.0.113.9" {
			t.Errorf("got %s, want 203.0.113.9", got)
		}
	})
}

// TestPeerForms covers RemoteAddr shapes a real socket cannot easily
// produce here: IPv4-mapped IPv6 peers (dual-stack listeners behind some
// wrappers), zoned link-local peers, bare IPs and non-IP peers.
func TestPeerForms(t *testing.T) {
	res := mustTrusted(t, "::ffff:127.0.0.1") // a mapped prefix trusts the IPv4 address
	cases := []struct {
		remote, xff, want string
	}{
		{"[::ffff:127.0.0.1]:1234", "203.0.113.9", "203.0.113.9"},
		{"127.0.0.1:1234", "203.0.113.9", "203.0.113.9"},
		{"127.0.0.1", "203.0.113.9", "203.0.113.9"},
		{"[::ffff:203.0.113.9]:1234", "198.51.100.7", "203.0.113.9"},
		{"[fe80::1%eth0]:1234", "198.51.100.7", "fe80::1"},
		{"fe80::1%eth0", "", "fe80::1"},
		{"@", "198.51.100.7", "invalid IP"},
		{"", "198.51.100.7", "invalid IP"},
		{"unix:/run/vitals.sock", "198.51.100.7", "invalid IP"},
	}
	for _, c := range cases {
		r := httptest.NewRequest(http.MethodGet, "/", nil)
		r.RemoteAddr = c.remote
		if c.xff != "" {
			r.Header.Set("X-Forwarded-For", c.xff)
		}
		if got := res.Addr(r).String(); got != c.want {
			t.Errorf("RemoteAddr %q, XFF %q: got %s, want %s", c.remote, c.xff, got, c.want)
		}
	}
}

func TestParseTrusted(t *testing.T) {
	ps, err := clientip.ParseTrusted([]string{"10.1.2.3/8", " 192.0.2.10 ", "::1", "2001:db8::/32", "::ffff:172.16.0.0/108"})
	if err != nil {
		t.Fatal(err)
	}
	// Host bits are cleared and IPv4-mapped prefixes become IPv4 ones.
	want := []string{"10.0.0.0/8", "192.0.2.10/32", "::1/128", "2001:db8::/32", "172.16.0.0/12"}
	if len(ps) != len(want) {
		t.Fatalf("got %v, want %v", ps, want)
	}
	for i := range ps {
		if ps[i].String() != want[i] {
			t.Errorf("entry %d: got %s, want %s", i+1, ps[i], want[i])
		}
	}
	for _, c := range []struct {
		entries []string
		want    string
	}{
		{[]string{"10.0.0.0/8", "10.0.0.300"}, `trusted-proxy entry 2 "10.0.0.300": `},
		{[]string{"proxy.internal"}, `trusted-proxy entry 1 "proxy.internal": `},
		{[]string{"10.0.0.0/8", "::1", ""}, `trusted-proxy entry 3 "": empty`},
		{[]string{"fe80::1%eth0"}, `trusted-proxy entry 1 "fe80::1%eth0": IPv6 zones`},
	} {
		_, err := clientip.ParseTrusted(c.entries)
		if err == nil || !strings.HasPrefix(err.Error(), c.want) {
			t.Errorf("ParseTrusted(%q): got error %v, want one starting %q", c.entries, err, c.want)
		}
	}
}

func TestNewResolverNormalizes(t *testing.T) {
	// Unmasked and IPv4-mapped prefixes built by hand still match.
	res := clientip.NewResolver([]netip.Prefix{
		netip.PrefixFrom(netip.MustParseAddr("::ffff:127.0.0.9"), 104),
		{}, // invalid: matches nothing
	})
	r := httptest.NewRequest(http.MethodGet, "/", nil)
	r.RemoteAddr = "127.0.0.1:80"
	r.Header.Set("X-Forwarded-For", "203.0.113.9")
	if got := res.Addr(r); got != netip.MustParseAddr("203.0.113.9") {
		t.Errorf("got %s, want 203.0.113.9 (127.0.0.1 trusted through ::ffff:127.0.0.9/104)", got)
	}
	r.RemoteAddr = "192.0.2.1:80"
	if got := res.Addr(r); got != netip.MustParseAddr("192.0.2.1") {
		t.Errorf("got %s, want the untrusted peer 192.0.2.1", got)
	}
}

func TestContext(t *testing.T) {
	if a, ok := clientip.FromContext(context.Background()); ok || a.IsValid() {
		t.Errorf("empty context: got %s, %v; want zero, false", a, ok)
	}
	want := netip.MustParseAddr("203.0.113.9")
	if a, ok := clientip.FromContext(clientip.NewContext(context.Background(), want)); !ok || a != want {
		t.Errorf("got %s, %v; want %s, true", a, ok, want)
	}
	if a, ok := clientip.FromContext(clientip.NewContext(context.Background(), netip.Addr{})); ok || a.IsValid() {
		t.Errorf("unknown address: got %s, %v; want zero, false", a, ok)
	}
}
