package ssrf_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"net/url"
	"sync"
	"testing"
	"time"

	"github.com/vitalshq/vitals/ssrf"
)

// rebinder is a DNS answer source that changes its mind: the first lookups
// of a name get first, later ones get then — a DNS rebinding attack.
type rebinder struct {
	mu          sync.Mutex
	lookups     int
	firstN      int
	first, then netip.Addr
}

func (r *rebinder) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.lookups++
	if r.lookups <= r.firstN {
		return []netip.Addr{r.first}, nil
	}
	return []netip.Addr{r.then}, nil
}

// TestRebindingRefusedAtDialTime: the host resolves to a public address at
// registration and to 127.0.0.1 at dial time; the dial is refused and the
// local server sees nothing. With AllowPrivate the same name reaches it,
// proving the dial used the second answer.
func TestRebindingRefusedAtDialTime(t *testing.T) {
	hits := 0
	var mu sync.Mutex
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits++
		mu.Unlock()
		_, _ = io.WriteString(w, "ok")
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	target := "http://rebind.example:" + port + "/hook"

	res := &rebinder{firstN: 1, first: netip.MustParseAddr("93.184.215.14"), then: netip.MustParseAddr("127.0.0.1")}
	g := ssrf.New(ssrf.Resolver(res))
	if err := g.CheckURL(context.Background(), target); err != nil {
		t.Fatalf("registration (public answer): %v", err)
	}
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: g.DialContext}}
	if _, err := client.Get(target); !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Fatalf("dial after rebinding: %v, want ErrForbiddenAddress", err)
	}
	mu.Lock()
	if hits != 0 {
		t.Fatalf("server saw %d requests", hits)
	}
	mu.Unlock()

	open := ssrf.New(ssrf.AllowPrivate(true), ssrf.Resolver(&rebinder{then: netip.MustParseAddr("127.0.0.1")}))
	client = &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DialContext: open.DialContext}}
	resp, err := client.Get(target)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if hits != 1 {
		t.Fatalf("AllowPrivate: hits %d", hits)
	}
}

// TestHostnamesInEveryRange: a host name resolving into each forbidden
// range is refused at registration and at dial time.
func TestHostnamesInEveryRange(t *testing.T) {
	for _, s := range forbidden {
		ip := netip.MustParseAddr(s).WithZone("")
		g := ssrf.New(ssrf.Resolver(&rebinder{first: ip, then: ip}))
		if err := g.CheckURL(context.Background(), "https://host.example/x"); !errors.Is(err, ssrf.ErrForbiddenAddress) {
			t.Errorf("CheckURL(host → %s) = %v", s, err)
		}
		if _, err := g.DialContext(context.Background(), "tcp", "host.example:443"); !errors.Is(err, ssrf.ErrForbiddenAddress) {
			t.Errorf("DialContext(host → %s) = %v", s, err)
		}
	}
}

// TestEgressProxy sends through a real forward proxy on loopback (allowed
// because it is the configured proxy) to a target that resolves publicly;
// a target resolving to a forbidden address never reaches the proxy.
func TestEgressProxy(t *testing.T) {
	var mu sync.Mutex
	var seen []string
	proxy := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		seen = append(seen, r.URL.String())
		mu.Unlock()
		_, _ = io.WriteString(w, "proxied")
	}))
	defer proxy.Close()
	pu, _ := url.Parse(proxy.URL)
	res := staticResolver{"hooks.example": "93.184.215.14", "internal.example": "10.0.0.7"}
	g := ssrf.New(ssrf.Resolver(res), ssrf.EgressProxy(pu))
	client := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{Proxy: g.Proxy, DialContext: g.DialContext}}

	resp, err := client.Post("http://hooks.example/in", "application/json", nil)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "proxied" || len(seen) != 1 || seen[0] != "http://hooks.example/in" {
		t.Fatalf("via proxy: %q, proxy saw %v", b, seen)
	}
	if _, err := client.Post("http://internal.example/in", "application/json", nil); !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Fatalf("forbidden target via proxy: %v", err)
	}
	if _, err := client.Post("http://127.0.0.1:1/in", "application/json", nil); !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Fatalf("loopback literal via proxy: %v", err)
	}
	if len(seen) != 1 {
		t.Fatalf("proxy saw forbidden targets: %v", seen)
	}
	// Only the proxy's address is exempt: other loopback dials are refused.
	if _, err := g.DialContext(context.Background(), "tcp", "127.0.0.1:1"); !errors.Is(err, ssrf.ErrForbiddenAddress) {
		t.Fatalf("non-proxy loopback dial: %v", err)
	}
	// Without EgressProxy, Proxy is nil (direct connections).
	if u, err := ssrf.New().Proxy(&http.Request{URL: &url.URL{Scheme: "https", Host: "x"}}); u != nil || err != nil {
		t.Fatalf("Proxy without EgressProxy: %v %v", u, err)
	}
}

type staticResolver map[string]string

func (s staticResolver) LookupNetIP(_ context.Context, _, host string) ([]netip.Addr, error) {
	a, ok := s[host]
	if !ok {
		return nil, fmt.Errorf("no such host %s", host)
	}
	return []netip.Addr{netip.MustParseAddr(a)}, nil
}
