package ssrf_test

import (
	"context"
	"errors"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/vitalshq/vitals/ssrf"
)

var forbidden = []string{
	"0.0.0.0", "0.1.2.3", // unspecified / this network
	"127.0.0.1", "127.255.255.254", // loopback
	"10.0.0.1", "10.255.255.255", "172.16.0.1", "172.31.255.255", "192.168.0.1", "192.168.255.255", // RFC 1918
	"100.64.0.1", "100.127.255.255", // CGNAT
	"169.254.169.254", "169.254.0.1", // link-local, cloud metadata
	"224.0.0.1", "239.255.255.250", // multicast
	"255.255.255.255", "240.0.0.1", // broadcast, reserved
	"192.0.0.170", "192.0.2.1", "198.18.0.1", "198.51.100.7", "203.0.113.9", // special purpose
	"::", "::1", // unspecified, loopback
	"fc00::1", "fd12:3456:789a::1", "fd00:ec2::254", // ULA (incl. AWS IPv6 metadata)
	"fe80::1", "fe80::1%eth0", // link-local, with a zone
	"ff02::1",                                                                         // multicast
	"::ffff:127.0.0.1", "::ffff:10.0.0.1", "::ffff:169.254.169.254", "::ffff:0.0.0.0", // IPv4-mapped
	"::127.0.0.1",                             // IPv4-compatible
	"64:ff9b::a9fe:a9fe", "64:ff9b::10.1.2.3", // NAT64 of metadata / private
	"2002:7f00:1::", "2002:c0a8:101::1", // 6to4 of loopback / private
	"2001:db8::1", "2001::1", // documentation, Teredo
}

var allowed = []string{
	"8.8.8.8", "1.1.1.1", "93.184.215.14", "100.128.0.1", "172.32.0.1", "192.169.0.1", "169.255.0.1",
	"2606:4700:4700::1111", "2a00:1450:4001:82a::200e", "::ffff:8.8.8.8", "64:ff9b::808:808",
}

func TestForbiddenRanges(t *testing.T) {
	strict, open := ssrf.New(), ssrf.New(ssrf.AllowPrivate(true))
	for _, s := range forbidden {
		ip := netip.MustParseAddr(s)
		if err := strict.CheckAddr(ip); !errors.Is(err, ssrf.ErrForbiddenAddress) {
			t.Errorf("CheckAddr(%s) = %v, want ErrForbiddenAddress", s, err)
		}
		if err := open.CheckAddr(ip); err != nil {
			t.Errorf("AllowPrivate CheckAddr(%s) = %v", s, err)
		}
		host := s
		if strings.Contains(s, ":") {
			host = "[" + strings.ReplaceAll(s, "%", "%25") + "]"
		}
		if err := strict.CheckURL(context.Background(), "https://"+host+"/hook"); !errors.Is(err, ssrf.ErrForbiddenAddress) {
			t.Errorf("CheckURL(%s) = %v, want ErrForbiddenAddress", host, err)
		}
		if err := open.CheckURL(context.Background(), "https://"+host+"/hook"); err != nil {
			t.Errorf("AllowPrivate CheckURL(%s) = %v", host, err)
		}
	}
	for _, s := range allowed {
		if err := strict.CheckAddr(netip.MustParseAddr(s)); err != nil {
			t.Errorf("CheckAddr(%s) = %v, want nil", s, err)
		}
	}
}

func TestCheckURLShape(t *testing.T) {
	g := ssrf.New(ssrf.AllowPrivate(true))
	for _, u := range []string{"ftp://8.8.8.8/", "file:///etc/passwd", "https:///nohost", "/relative", "http://[::1", "gopher://x"} {
		if err := g.CheckURL(context.Background(), u); !errors.Is(err, ssrf.ErrBadURL) {
			t.Errorf("CheckURL(%q) = %v, want ErrBadURL", u, err)
		}
	}
	if err := g.CheckURL(context.Background(), "http://8.8.8.8:8080/x?y=1"); err != nil {
		t.Errorf("public IP literal: %v", err)
	}
}

// TestCheckURLResolvesHostname uses a hostname whose every resolution is
// loopback: the system resolver answers "localhost" from /etc/hosts.
func TestCheckURLResolvesHostname(t *testing.T) {
	if err := ssrf.New().CheckURL(context.Background(), "http://localhost:8080/hook"); !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Fatalf("localhost: %v, want ErrForbiddenAddress", err)
	}
	if err := ssrf.New(ssrf.AllowPrivate(true)).CheckURL(context.Background(), "http://localhost:8080/hook"); err != nil {
		t.Fatalf("AllowPrivate localhost: %v", err)
	}
	err := ssrf.New().CheckURL(context.Background(), "http://no-such-host.invalid/")
	if !errors.Is(err, ssrf.ErrUnresolvable) {
		t.Fatalf("unresolvable host: %v", err)
	}
}

// TestDialTimeRecheck dials a real listener through the guard by the name
// "localhost": the check must happen on the resolved IP at dial time (as it
// would after a DNS rebinding), so nothing reaches the server.
func TestDialTimeRecheck(t *testing.T) {
	hits := make(chan struct{}, 10)
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits <- struct{}{}
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	target := "http://localhost:" + port + "/"

	client := func(g *ssrf.Guard) *http.Client {
		return &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: g.DialContext}}
	}

	_, err := client(ssrf.New()).Get(target)
	if !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Fatalf("strict dial to localhost: %v, want ErrForbiddenAddress", err)
	}
	// A raw dial of an IP literal is refused the same way.
	if _, err := ssrf.New().DialContext(context.Background(), "tcp", srv.Listener.Addr().String()); !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Fatalf("strict dial to %s: %v", srv.Listener.Addr(), err)
	}
	if len(hits) != 0 {
		t.Fatalf("server saw %d requests through a strict guard", len(hits))
	}

	resp, err := client(ssrf.New(ssrf.AllowPrivate(true))).Get(target)
	if err != nil {
		t.Fatalf("AllowPrivate dial: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK || len(hits) != 1 {
		t.Fatalf("AllowPrivate: status %d, hits %d", resp.StatusCode, len(hits))
	}
}

func TestControlRejectsBadAddress(t *testing.T) {
	if err := ssrf.New().Control("tcp", "not-an-address", nil); !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Fatalf("Control(garbage) = %v", err)
	}
	if err := ssrf.New().Control("tcp4", "8.8.8.8:443", nil); err != nil {
		t.Fatalf("Control(public) = %v", err)
	}
}
