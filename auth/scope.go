package auth

import (
	"slices"
	"strings"
)

// Scopes a client may hold. Each API route requires exactly one; a token
// carries the subset its client asked for. Admin does not imply the others.
const (
	ScopeEventsWrite    = "events:write"
	ScopeEndpointsRead  = "endpoints:read"
	ScopeEndpointsWrite = "endpoints:write"
	ScopeCustomersRead  = "customers:read"
	ScopeAnalyticsRead  = "analytics:read"
	ScopeAuditRead      = "audit:read"
	ScopeAdmin          = "admin"
)

// Authentication method references (RFC 8176) in the amr claim of a
// person's token.
const (
	AMRPassword = "pwd" // username and password
	AMROTP      = "otp" // a TOTP code or a recovery code
	AMRMFA      = "mfa" // more than one factor
)

// NonAdminScopes returns every scope except ScopeAdmin: what the bootstrap
// client gets.
func NonAdminScopes() []string {
	return []string{
		ScopeEventsWrite, ScopeEndpointsRead, ScopeEndpointsWrite,
		ScopeCustomersRead, ScopeAnalyticsRead, ScopeAuditRead,
	}
}

// AllScopes returns every scope Vitals defines.
func AllScopes() []string { return append(NonAdminScopes(), ScopeAdmin) }

// KnownScope reports whether s is a scope Vitals defines.
func KnownScope(s string) bool { return slices.Contains(AllScopes(), s) }

// ParseScope splits an OAuth scope parameter (space-delimited, RFC 6749
// §3.3) into its distinct values, in order of first appearance.
func ParseScope(s string) []string {
	var out []string
	for _, f := range strings.Split(s, " ") {
		if f != "" && !slices.Contains(out, f) {
			out = append(out, f)
		}
	}
	return out
}

// FormatScope joins scopes into an OAuth scope parameter.
func FormatScope(scopes []string) string { return strings.Join(scopes, " ") }
