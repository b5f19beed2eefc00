package ssrf

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"syscall"
	"time"
)

// Named failure classes; test with errors.Is.
var (
	// ErrForbiddenAddress means a URL's host or a dialled address is in a
	// range webhooks must not reach.
	ErrForbiddenAddress = errors.New("ssrf: forbidden address")
	// ErrBadURL means a URL is not an absolute http or https URL with a host.
	ErrBadURL = errors.New("ssrf: bad endpoint URL")
	// ErrUnresolvable means the URL's host has no address.
	ErrUnresolvable = errors.New("ssrf: host does not resolve")
)

// DefaultDialTimeout bounds connection set-up by DialContext.
const DefaultDialTimeout = 5 * time.Second

// Guard refuses forbidden addresses at registration and at dial time. The
// zero value is not usable; build one with New. A Guard is safe for
// concurrent use.
type Guard struct {
	allowPrivate bool
	resolver     HostResolver
	dialTimeout  time.Duration
	proxy        *url.URL
}

// HostResolver resolves host names (*net.Resolver implements it).
type HostResolver interface {
	LookupNetIP(ctx context.Context, network, host string) ([]netip.Addr, error)
}

// Option configures a Guard.
type Option func(*Guard)

// AllowPrivate, when true, lets every address through (scheme and host
// checks remain). Only for local development and tests, where receivers run
// on loopback or a private network.
func AllowPrivate(allow bool) Option { return func(g *Guard) { g.allowPrivate = allow } }

// Resolver sets the resolver CheckURL and DialContext use (default
// net.DefaultResolver).
func Resolver(r HostResolver) Option {
	return func(g *Guard) {
		if r != nil {
			g.resolver = r
		}
	}
}

// DialTimeout sets the connect timeout of DialContext (default
// DefaultDialTimeout).
func DialTimeout(d time.Duration) Option {
	return func(g *Guard) {
		if d > 0 {
			g.dialTimeout = d
		}
	}
}

// EgressProxy sends deliveries through an HTTP(S) forward proxy, for static
// outbound IPs. With a proxy, Vitals never connects to endpoints itself, so
// what is checked changes:
//
//   - Proxy (the http.Transport.Proxy function) resolves each request's
//     target host with the Guard's resolver and refuses the request unless
//     every address is allowed, before anything is sent to the proxy;
//   - DialContext lets through connections to the proxy's own host and
//     port, even when that is a private address (it usually is), and
//     refuses every other forbidden address as without a proxy.
//
// The proxy resolves the target again itself, so DNS rebinding between the
// two resolutions is the proxy's to refuse: configure its egress policy to
// deny the same ranges (e.g. squid "acl to_localnet dst …; http_access
// deny to_localnet"). AllowPrivate still turns the target checks off.
func EgressProxy(u *url.URL) Option { return func(g *Guard) { g.proxy = u } }

// New returns a Guard that refuses forbidden addresses unless AllowPrivate.
func New(opts ...Option) *Guard {
	g := &Guard{resolver: net.DefaultResolver, dialTimeout: DefaultDialTimeout}
	for _, o := range opts {
		o(g)
	}
	return g
}

// CheckURL validates an endpoint URL at registration: scheme http or https,
// a host, and (unless AllowPrivate) no forbidden address among everything
// the host resolves to.
func (g *Guard) CheckURL(ctx context.Context, rawURL string) error {
	u, err := url.Parse(rawURL)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadURL, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return fmt.Errorf("%w: scheme %q, want http or https", ErrBadURL, u.Scheme)
	}
	host := u.Hostname()
	if host == "" {
		return fmt.Errorf("%w: no host", ErrBadURL)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return g.CheckAddr(ip)
	}
	addrs, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrUnresolvable, host, err)
	}
	if len(addrs) == 0 {
		return fmt.Errorf("%w: %s", ErrUnresolvable, host)
	}
	for _, ip := range addrs {
		if err := g.CheckAddr(ip); err != nil {
			return fmt.Errorf("%s: %w", host, err)
		}
	}
	return nil
}

// CheckAddr returns an error wrapping ErrForbiddenAddress when ip is in a
// forbidden range and the Guard does not AllowPrivate.
func (g *Guard) CheckAddr(ip netip.Addr) error {
	if g.allowPrivate {
		return nil
	}
	if reason := Forbidden(ip); reason != "" {
		return fmt.Errorf("%w: %s is %s", ErrForbiddenAddress, ip, reason)
	}
	return nil
}

// Proxy is an http.Transport.Proxy function: nil without EgressProxy;
// otherwise it checks the request's target (see EgressProxy) and returns
// the proxy URL.
func (g *Guard) Proxy(req *http.Request) (*url.URL, error) {
	if g.proxy == nil {
		return nil, nil
	}
	if err := g.CheckURL(req.Context(), req.URL.String()); err != nil {
		return nil, err
	}
	return g.proxy, nil
}

// isProxy reports whether address (host:port as dialled) is the proxy's.
func (g *Guard) isProxy(address string) bool {
	if g.proxy == nil {
		return false
	}
	port := g.proxy.Port()
	if port == "" {
		port = map[string]string{"http": "80", "https": "443"}[g.proxy.Scheme]
	}
	return address == net.JoinHostPort(g.proxy.Hostname(), port)
}

// Control is a net.Dialer Control function: it refuses the connection when
// the address about to be dialled (an IP, after resolution) is forbidden.
func (g *Guard) Control(network, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("%w: unparsable dial address %q", ErrForbiddenAddress, address)
	}
	return g.CheckAddr(ap.Addr())
}

// Dialer returns a net.Dialer whose connections are checked by Control, with
// the Guard's connect timeout and TCP keep-alive.
func (g *Guard) Dialer() *net.Dialer {
	return &net.Dialer{Timeout: g.dialTimeout, KeepAlive: 30 * time.Second, Control: g.Control}
}

// DialContext dials like net.Dialer.DialContext, refusing forbidden
// addresses: it resolves a host name with the Guard's resolver at dial time
// (not the one CheckURL saw at registration, which defeats DNS rebinding),
// refuses if any address is forbidden, and dials the addresses it got;
// Control checks each again. Use it as http.Transport.DialContext. The
// EgressProxy's own address is let through.
func (g *Guard) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if g.isProxy(address) {
		return (&net.Dialer{Timeout: g.dialTimeout, KeepAlive: 30 * time.Second}).DialContext(ctx, network, address)
	}
	host, port, err := net.SplitHostPort(address)
	if err != nil {
		return nil, fmt.Errorf("%w: unparsable dial address %q", ErrForbiddenAddress, address)
	}
	if _, err := netip.ParseAddr(host); err == nil {
		return g.Dialer().DialContext(ctx, network, address)
	}
	addrs, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return nil, fmt.Errorf("%w: %s: %v", ErrUnresolvable, host, err)
	}
	for _, ip := range addrs {
		if err := g.CheckAddr(ip); err != nil {
			return nil, fmt.Errorf("dial %s: %w", host, err)
		}
	}
	var firstErr error
	for _, ip := range addrs {
		c, err := g.Dialer().DialContext(ctx, network, net.JoinHostPort(ip.Unmap().String(), port))
		if err == nil {
			return c, nil
		}
		if firstErr == nil {
			firstErr = err
		}
	}
	return nil, firstErr
}

// Forbidden names the forbidden range ip belongs to, or returns "" when ip
// may be reached. IPv4-mapped, IPv4-compatible, NAT64 and 6to4 addresses are
// judged by the IPv4 address they embed.
func Forbidden(ip netip.Addr) string {
	ip = ip.WithZone("")
	if !ip.IsValid() {
		return "invalid"
	}
	if ip.Is4In6() {
		return Forbidden(ip.Unmap())
	}
	for _, r := range forbiddenRanges {
		if r.prefix.Contains(ip) {
			return r.name
		}
	}
	if v4, ok := embeddedIPv4(ip); ok {
		if r := Forbidden(v4); r != "" {
			return r + " (embedded IPv4)"
		}
	}
	return ""
}

// embeddedIPv4 returns the IPv4 address carried by an IPv4-compatible
// (::a.b.c.d), NAT64 (64:ff9b::/96) or 6to4 (2002::/16) IPv6 address.
func embeddedIPv4(ip netip.Addr) (netip.Addr, bool) {
	b := ip.As16()
	switch {
	case nat64.Contains(ip), v4compat.Contains(ip):
		return netip.AddrFrom4([4]byte{b[12], b[13], b[14], b[15]}), true
	case sixToFour.Contains(ip):
		return netip.AddrFrom4([4]byte{b[2], b[3], b[4], b[5]}), true
	}
	return netip.Addr{}, false
}

var (
	nat64     = netip.MustParsePrefix("64:ff9b::/96")
	v4compat  = netip.MustParsePrefix("::/96")
	sixToFour = netip.MustParsePrefix("2002::/16")
)

type namedPrefix struct {
	prefix netip.Prefix
	name   string
}

// forbiddenRanges is read-only after package initialisation.
var forbiddenRanges = func() []namedPrefix {
	list := []struct{ cidr, name string }{
		{"0.0.0.0/8", "unspecified (this network)"},
		{"10.0.0.0/8", "private (RFC 1918)"},
		{"100.64.0.0/10", "carrier-grade NAT (RFC 6598)"},
		{"127.0.0.0/8", "loopback"},
		{"169.254.0.0/16", "link-local (incl. cloud metadata)"},
		{"172.16.0.0/12", "private (RFC 1918)"},
		{"192.0.0.0/24", "IETF protocol assignments"},
		{"192.0.2.0/24", "documentation"},
		{"192.88.99.0/24", "6to4 relay anycast"},
		{"192.168.0.0/16", "private (RFC 1918)"},
		{"198.18.0.0/15", "benchmarking"},
		{"198.51.100.0/24", "documentation"},
		{"203.0.113.0/24", "documentation"},
		{"224.0.0.0/4", "multicast"},
		{"240.0.0.0/4", "reserved (incl. broadcast)"},
		{"::/128", "unspecified"},
		{"::1/128", "loopback"},
		{"::ffff:0:0/96", "IPv4-mapped"},
		{"64:ff9b:1::/48", "local-use NAT64"},
		{"100::/64", "discard-only"},
		{"2001::/32", "Teredo"},
		{"2001:db8::/32", "documentation"},
		{"fc00::/7", "unique local (ULA)"},
		{"fe80::/10", "link-local"},
		{"fec0::/10", "site-local (deprecated)"},
		{"ff00::/8", "multicast"},
	}
	out := make([]namedPrefix, len(list))
	for i, e := range list {
		out[i] = namedPrefix{netip.MustParsePrefix(e.cidr), e.name}
	}
	return out
}()
