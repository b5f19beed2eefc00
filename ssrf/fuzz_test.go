package ssrf_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"net/url"
	"testing"

	"github.com/vitalshq/vitals/ssrf"
)

// fuzzResolver answers every name with one address and records the names
// it was asked for.
type fuzzResolver struct {
	addr  netip.Addr
	asked []string
}

func (r *fuzzResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.asked = append(r.asked, host)
	if !r.addr.IsValid() {
		return nil, errors.New("fuzz: no such host")
	}
	return []netip.Addr{r.addr}, nil
}

// FuzzCheckURL feeds arbitrary endpoint URLs, with an arbitrary address
// for any host name, to CheckURL, and that address to the dial-time check.
// Neither may panic. CheckURL must refuse what is not an absolute http(s)
// URL with a host (ErrBadURL); an IP literal host is judged by Forbidden,
// without DNS; a host name by the address it resolves to. Forbidden must
// refuse every loopback, private, unspecified, link-local and multicast
// address, and judge an IPv4 address the same in every IPv6 form that
// embeds it (mapped, compatible, NAT64, 6to4).
func FuzzCheckURL(f *testing.F) {
	for _, u := range []string{
		"https://hooks.example.com/vitals", "http://127.0.0.1/", "https://[::1]:8443/", "https://[fe80::1%25eth0]/",
		"https://[::ffff:169.254.169.254]/latest/meta-data", "https://[64:ff9b::a9fe:a9fe]/", "https://[2002:7f00:1::]/",
		"https://0x7f.1/", "https://2130706433/", "https://127.1/", "https://0177.0.0.1/", "https://127.0.0.1./",
		"https://localhost/", "https://user@10.0.0.1/", "https://10.0.0.1:443@hooks.example.com/", "https://hooks.example.com#@10.0.0.1/",
		"ftp://8.8.8.8/", "//8.8.8.8/", "https:///path", "https://[::1/", "https://%31%32%37.0.0.1/", "https://１２７.０.０.１/",
		"HTTPS://8.8.8.8", "https://[::ffff:8.8.8.8]/", "https://[0:0:0:0:0:ffff:7f00:1]/", "https://[::]/", "https://0.0.0.0/",
	} {
		for _, ip := range [][]byte{nil, {8, 8, 8, 8}, {127, 0, 0, 1}, {169, 254, 169, 254}, netip.MustParseAddr("fd00:ec2::254").AsSlice()} {
			f.Add(u, ip, uint16(443))
		}
	}
	forms := func(v4 netip.Addr) []netip.Addr {
		b := v4.As4()
		mapped := netip.AddrFrom16([16]byte{10: 0xff, 11: 0xff, 12: b[0], 13: b[1], 14: b[2], 15: b[3]})
		compat := netip.AddrFrom16([16]byte{12: b[0], 13: b[1], 14: b[2], 15: b[3]})
		nat64 := netip.AddrFrom16([16]byte{0: 0x00, 1: 0x64, 2: 0xff, 3: 0x9b, 12: b[0], 13: b[1], 14: b[2], 15: b[3]})
		sixToFour := netip.AddrFrom16([16]byte{0: 0x20, 1: 0x02, 2: b[0], 3: b[1], 4: b[2], 5: b[3], 15: 1})
		return []netip.Addr{mapped, compat, nat64, sixToFour}
	}
	ctx := context.Background()

	f.Fuzz(func(t *testing.T, rawURL string, ip []byte, port uint16) {
		addr, _ := netip.AddrFromSlice(ip)
		res := &fuzzResolver{addr: addr}
		g := ssrf.New(ssrf.Resolver(res))

		if addr.IsValid() {
			reason := ssrf.Forbidden(addr)
			must := addr.IsLoopback() || addr.IsPrivate() || addr.IsUnspecified() || addr.IsLinkLocalUnicast() ||
				addr.IsLinkLocalMulticast() || addr.IsInterfaceLocalMulticast() || addr.IsMulticast()
			if must && reason == "" {
				t.Fatalf("%s is allowed", addr)
			}
			if addr.Is4() {
				for _, form := range forms(addr) {
					if (ssrf.Forbidden(form) == "") != (reason == "") {
						t.Fatalf("%s judged %q, its form %s %q", addr, reason, form, ssrf.Forbidden(form))
					}
				}
			}
			err := g.Control("tcp4", netip.AddrPortFrom(addr, port).String(), nil)
			if (err == nil) != (reason == "") || (err != nil && !errors.Is(err, ssrf.ErrForbiddenAddress)) {
				t.Fatalf("dial-time check of %s (%q): %v", addr, reason, err)
			}
			zoned := netip.AddrPortFrom(addr.WithZone("eth0"), port).String()
			if err := g.Control("tcp6", zoned, nil); addr.Is6() && (err == nil) != (reason == "") {
				t.Fatalf("dial-time check of %s: %v", zoned, err)
			}
		}

		err := g.CheckURL(ctx, rawURL)
		u, perr := url.Parse(rawURL)
		if perr != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Hostname() == "" {
			if !errors.Is(err, ssrf.ErrBadURL) {
				t.Fatalf("%q is no absolute http(s) URL, got %v", rawURL, err)
			}
			return
		}
		host := u.Hostname()
		if lit, lerr := netip.ParseAddr(host); lerr == nil {
			if len(res.asked) != 0 {
				t.Fatalf("%q: the IP literal was looked up in DNS", rawURL)
			}
			if reason := ssrf.Forbidden(lit); (err == nil) != (reason == "") || (err != nil && !errors.Is(err, ssrf.ErrForbiddenAddress)) {
				t.Fatalf("%q: literal %s (%q): %v", rawURL, lit, reason, err)
			}
			return
		}
		if ip := net.ParseIP(host); ip != nil {
			t.Fatalf("%q: host %q is an IP for net but not for netip", rawURL, host)
		}
		if len(res.asked) != 1 || res.asked[0] != host {
			t.Fatalf("%q: looked up %q, want %q", rawURL, res.asked, host)
		}
		switch {
		case !addr.IsValid():
			if !errors.Is(err, ssrf.ErrUnresolvable) {
				t.Fatalf("%q does not resolve, got %v", rawURL, err)
			}
		case ssrf.Forbidden(addr) != "":
			if !errors.Is(err, ssrf.ErrForbiddenAddress) {
				t.Fatalf("%q resolves to forbidden %s, got %v", rawURL, addr, err)
			}
		case err != nil:
			t.Fatalf("%q resolves to allowed %s, got %v", rawURL, addr, err)
		}
	})
}
