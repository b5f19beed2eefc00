package clientip

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/netip"
	"strings"

	"github.com/vitalshq/vitals/problem"
)

// ProblemSlug is the problem type slug of a request from outside a
// client's IP allow-list; ProblemType is its full type URI.
const (
	ProblemSlug = "ip-not-allowed"
	ProblemType = problem.TypeBase + ProblemSlug
)

// AllowList is the set of address ranges a client may call from. The zero
// AllowList is empty and allows any address. It marshals to JSON as an array
// of CIDR strings (`["10.0.0.0/8","2001:db8::/32"]`, `[]` when empty), as
// stored on a client record's "ip_allow".
type AllowList struct {
	prefixes []netip.Prefix // masked, unmapped; nil when empty
}

// ParseAllowList parses CIDRs ("10.0.0.0/8", "2001:db8::/32") and single
// addresses ("203.0.113.9", kept as 203.0.113.9/32), IPv4 or IPv6; host bits
// are cleared (10.1.2.3/8 is 10.0.0.0/8). An error names the first bad
// entry by its 1-based position, e.g.
// `allow-list entry 3 "10.0.0.300/8": ...`. No entries is an empty list,
// which allows any address.
func ParseAllowList(entries []string) (AllowList, error) {
	ps, err := parsePrefixes("allow-list", entries)
	if err != nil {
		return AllowList{}, err
	}
	return AllowList{prefixes: ps}, nil
}

// Allows reports whether addr may use the client: always when the list is
// empty; otherwise only a valid addr inside one of its ranges. IPv4-mapped
// IPv6 addresses match as the IPv4 address they carry.
func (l AllowList) Allows(addr netip.Addr) bool {
	if len(l.prefixes) == 0 {
		return true
	}
	if !addr.IsValid() {
		return false
	}
	addr = addr.Unmap().WithZone("")
	for _, p := range l.prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// Empty reports whether the list has no ranges, i.e. allows any address.
func (l AllowList) Empty() bool { return len(l.prefixes) == 0 }

// Prefixes returns a copy of the list's ranges.
func (l AllowList) Prefixes() []netip.Prefix {
	if len(l.prefixes) == 0 {
		return nil
	}
	return append([]netip.Prefix(nil), l.prefixes...)
}

// Strings returns the ranges in CIDR form, in order; ParseAllowList reads
// them back to an equal list.
func (l AllowList) Strings() []string {
	s := make([]string, len(l.prefixes))
	for i, p := range l.prefixes {
		s[i] = p.String()
	}
	return s
}

// String returns the ranges comma-separated, or "any" for an empty list,
// for logs and messages.
func (l AllowList) String() string {
	if len(l.prefixes) == 0 {
		return "any"
	}
	return strings.Join(l.Strings(), ", ")
}

// MarshalJSON writes the list as an array of CIDR strings.
func (l AllowList) MarshalJSON() ([]byte, error) {
	return json.Marshal(l.Strings())
}

// UnmarshalJSON reads an array of CIDR or address strings with
// ParseAllowList; null is an empty list.
func (l *AllowList) UnmarshalJSON(b []byte) error {
	var entries []string
	if err := json.Unmarshal(b, &entries); err != nil {
		return fmt.Errorf("allow-list: want a JSON array of CIDR strings such as [\"10.0.0.0/8\"]: %w", err)
	}
	parsed, err := ParseAllowList(entries)
	if err != nil {
		return err
	}
	*l = parsed
	return nil
}

// Problem returns the 403 problem for a request from addr, which is outside
// a client's allow-list, for callers that add members (such as the client
// ID) before writing it.
func Problem(addr netip.Addr) *problem.Details {
	if !addr.IsValid() {
		return problem.New(http.StatusForbidden, ProblemSlug,
			"the request's client address could not be determined, and this client only accepts requests from its IP allow-list; "+
				"call over TCP from an allowed address, directly or through a trusted proxy")
	}
	addr = addr.Unmap().WithZone("")
	return problem.New(http.StatusForbidden, ProblemSlug,
		fmt.Sprintf("request from %s is outside the client's IP allow-list; ask an admin to add it (or a range containing it) to the client's ip_allow", addr)).
		With("client_ip", addr.String())
}

// Deny answers r with Problem(addr): 403, application/problem+json.
func Deny(w http.ResponseWriter, r *http.Request, addr netip.Addr) {
	problem.Write(w, r, Problem(addr))
}
