package clientip

import (
	"context"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
)

// HeaderXFF is the request header a trusted proxy appends its peer's
// address to.
const HeaderXFF = "X-Forwarded-For"

// Resolver finds a request's client address. It trusts X-Forwarded-For
// only as far as the chain of proxies in its trusted ranges reaches. The
// zero Resolver, and a nil *Resolver, trust no proxy and always answer
// with the socket peer.
type Resolver struct {
	trusted []netip.Prefix
}

// NewResolver returns a Resolver that believes X-Forwarded-For entries
// written by peers in trusted: the load balancers and reverse proxies in
// front of Vitals, and nothing else. A range that contains clients (or
// 0.0.0.0/0) lets those clients choose their address. Prefixes are masked
// and IPv4-mapped IPv6 prefixes (::ffff:10.0.0.0/104) become IPv4 ones;
// invalid prefixes match nothing.
func NewResolver(trusted []netip.Prefix) *Resolver {
	ps := make([]netip.Prefix, 0, len(trusted))
	for _, p := range trusted {
		ps = append(ps, normalize(p))
	}
	return &Resolver{trusted: ps}
}

// ParseTrusted parses trusted-proxy ranges for NewResolver: CIDRs
// ("10.0.0.0/8", "2001:db8::/32") or single addresses ("192.0.2.10",
// "::1"), IPv4 or IPv6. An error names the first bad entry by its 1-based
// position, e.g. `trusted-proxy entry 2 "10.0.0.300": ...`.
func ParseTrusted(entries []string) ([]netip.Prefix, error) {
	return parsePrefixes("trusted-proxy", entries)
}

// Addr returns the client address of r, never zoned and never
// IPv4-mapped IPv6:
//
//   - If the socket peer is not a trusted proxy, the peer, whatever the
//     request's headers say.
//   - Otherwise the X-Forwarded-For entries (all header lines, in order,
//     comma-separated) are walked from the right. Trusted entries are
//     proxies and are skipped; the first untrusted entry is the answer.
//     If every entry is trusted, the leftmost one is (a client inside a
//     trusted range).
//   - Empty list elements are skipped, as RFC 9110 §5.6.1 allows. Any other
//     entry that is not an IP address (optionally bracketed, optionally
//     with a port) stops the walk, and the last trusted hop read before it
//     is returned: a trusted proxy that wrote garbage tells nothing about
//     the client, and anything further left may be the client's own text.
//
// Addr returns the zero Addr when the peer is unknown (RemoteAddr is not an
// IP address, as on a Unix socket); AllowList.Allows denies it unless the
// list is empty.
func (res *Resolver) Addr(r *http.Request) netip.Addr {
	peer := parseRemote(r.RemoteAddr)
	if !res.trusts(peer) {
		return peer
	}
	last := peer
	lines := r.Header.Values(HeaderXFF)
	for i := len(lines) - 1; i >= 0; i-- {
		rest := lines[i]
		for rest != "" {
			var elem string
			if j := strings.LastIndexByte(rest, ','); j >= 0 {
				rest, elem = rest[:j], rest[j+1:]
			} else {
				rest, elem = "", rest
			}
			elem = strings.Trim(elem, " \t")
			if elem == "" {
				continue
			}
			a, ok := parseHop(elem)
			if !ok {
				return last
			}
			if !res.trusts(a) {
				return a
			}
			last = a
		}
	}
	return last
}

// Middleware stores the client address of each request (see Addr) in its
// context for FromContext, then calls next.
func (res *Resolver) Middleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		next.ServeHTTP(w, r.WithContext(NewContext(r.Context(), res.Addr(r))))
	})
}

// trusts reports whether a is a trusted proxy.
func (res *Resolver) trusts(a netip.Addr) bool {
	if res == nil || !a.IsValid() {
		return false
	}
	for _, p := range res.trusted {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// ctxKey keys the client address in a context.
type ctxKey struct{}

// NewContext returns a copy of ctx carrying addr as the client address.
func NewContext(ctx context.Context, addr netip.Addr) context.Context {
	return context.WithValue(ctx, ctxKey{}, addr)
}

// FromContext returns the client address stored by NewContext or
// Resolver.Middleware. ok is false when none was stored or it was unknown;
// the zero Addr returned then is denied by every non-empty AllowList, so
// a handler mounted without the middleware fails closed.
func FromContext(ctx context.Context) (addr netip.Addr, ok bool) {
	addr, _ = ctx.Value(ctxKey{}).(netip.Addr)
	return addr, addr.IsValid()
}

// parseRemote parses http.Request.RemoteAddr ("ip:port", "[ip6%zone]:port"
// or a bare IP) into an unzoned, unmapped address; the zero Addr if it is
// neither.
func parseRemote(s string) netip.Addr {
	if ap, err := netip.ParseAddrPort(s); err == nil {
		return ap.Addr().Unmap().WithZone("")
	}
	if a, err := netip.ParseAddr(s); err == nil {
		return a.Unmap().WithZone("")
	}
	return netip.Addr{}
}

// parseHop parses one X-Forwarded-For entry: "ip", "[ip6]", "ip4:port" or
// "[ip6]:port". Zoned addresses mean nothing off their host and are
// rejected.
func parseHop(s string) (netip.Addr, bool) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		ap, perr := netip.ParseAddrPort(s)
		switch {
		case perr == nil:
			a = ap.Addr()
		case len(s) > 2 && s[0] == '[' && s[len(s)-1] == ']':
			if a, err = netip.ParseAddr(s[1 : len(s)-1]); err != nil || !a.Is6() {
				return netip.Addr{}, false
			}
		default:
			return netip.Addr{}, false
		}
	}
	if a.Zone() != "" {
		return netip.Addr{}, false
	}
	return a.Unmap(), true
}

// parsePrefixes parses CIDRs or single addresses; kind names the list in
// errors.
func parsePrefixes(kind string, entries []string) ([]netip.Prefix, error) {
	if len(entries) == 0 {
		return nil, nil
	}
	ps := make([]netip.Prefix, 0, len(entries))
	for i, e := range entries {
		p, err := parsePrefix(e)
		if err != nil {
			return nil, fmt.Errorf("%s entry %d %q: %w", kind, i+1, e, err)
		}
		ps = append(ps, p)
	}
	return ps, nil
}

// parsePrefix parses a CIDR or a single address (as a /32 or /128).
func parsePrefix(s string) (netip.Prefix, error) {
	const want = "want a CIDR such as 10.0.0.0/8 or 2001:db8::/32, or one IP address"
	s = strings.TrimSpace(s)
	if s == "" {
		return netip.Prefix{}, fmt.Errorf("empty; %s", want)
	}
	if strings.Contains(s, "%") {
		return netip.Prefix{}, fmt.Errorf("IPv6 zones (%%) are not allowed; %s", want)
	}
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		if err != nil {
			return netip.Prefix{}, fmt.Errorf("%s: %w", want, err)
		}
		return normalize(p), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, fmt.Errorf("%s: %w", want, err)
	}
	return normalize(netip.PrefixFrom(a, a.BitLen())), nil
}

// normalize masks p and turns an IPv4-mapped IPv6 prefix into the IPv4
// prefix it covers, since addresses are unmapped before matching.
func normalize(p netip.Prefix) netip.Prefix {
	p = p.Masked()
	if a := p.Addr(); a.Is4In6() && p.Bits() >= 96 {
		return netip.PrefixFrom(a.Unmap(), p.Bits()-96)
	}
	return p
}
