package clientip_test

import (
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
)

// FuzzResolverXFF feeds arbitrary X-Forwarded-For headers (newlines split
// header lines). Addr must never panic; from an untrusted peer it must
// return the peer; from a trusted peer it must return a valid, unzoned,
// unmapped address that text prepended by the client cannot change once an
// untrusted hop is found.
func FuzzResolverXFF(f *testing.F) {
	for _, seed := range []string{
		"",
		"203.0.113.9",
		"198.51.100.1, 203.0.113.9, 10.0.0.2",
		"10.0.0.5, 10.0.0.2",
		"203.0.113.9\n10.0.0.2",
		",,, ,\t,",
		"garbage, 203.0.113.9",
		"203.0.113.9, garbage, 10.0.0.2",
		"[2001:db8::1]:443, [::ffff:10.0.0.1]",
		"fe80::1%eth0, 10.0.0.300, 1.2.3.4:99999, [1.2.3.4]",
		"::ffff:203.0.113.9,::ffff:10.0.0.2",
	} {
		f.Add(seed)
	}
	res := mustTrusted(f, "10.0.0.0/8", "2001:db8:1::/48")
	untrustedPeer := netip.MustParseAddr("203.0.113.77")
	trustedPeer := netip.MustParseAddr("10.0.0.1")

	f.Fuzz(func(t *testing.T, xff string) {
		req := func(peer netip.Addr, lines []string) *http.Request {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = netip.AddrPortFrom(peer, 4711).String()
			r.Header["X-Forwarded-For"] = lines
			return r
		}
		lines := strings.Split(xff, "\n")

		if got := res.Addr(req(untrustedPeer, lines)); got != untrustedPeer {
			t.Fatalf("untrusted peer with XFF %q: got %s, want %s", lines, got, untrustedPeer)
		}

		got := res.Addr(req(trustedPeer, lines))
		if !got.IsValid() || got.Zone() != "" || got.Is4In6() {
			t.Fatalf("trusted peer with XFF %q: got %v", lines, got)
		}
		if !netip.MustParsePrefix("10.0.0.0/8").Contains(got) && !netip.MustParsePrefix("2001:db8:1::/48").Contains(got) {
			spoofed := append([]string{"198.51.100.66, garbage, 10.9.9.9, " + lines[0]}, lines[1:]...)
			if again := res.Addr(req(trustedPeer, spoofed)); again != got {
				t.Fatalf("client-prepended entries changed the answer: XFF %q -> %s, %q -> %s", lines, got, spoofed, again)
			}
		}
	})
}
