package api

import (
	"net/http"
	"strings"

	"github.com/vitalshq/vitals/admission"
	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/ratelimit"
)

// access is how a route is guarded.
type access int

const (
	// public routes authenticate by other means (the OAuth endpoints,
	// the JWKS, metadata) or need none.
	public access = iota
	// scoped routes need a token with the route's scope.
	scoped
	// admin routes need scope admin and a fresh TOTP sign-in.
	admin
	// person routes need any token of a person with a Vitals account.
	person
)

// routeSpec is one API route and everything that guards it: the one table
// of scopes, rate-limit classes, admission priorities and which requests
// must be signed (RFC 9421).
type routeSpec struct {
	pattern  string // ServeMux pattern: "METHOD /path"
	access   access
	scope    string
	class    ratelimit.Class
	priority admission.Priority
	// signed: high-value operations must carry an HTTP message signature
	// by a key registered for the client.
	signed  bool
	handler http.Handler
}

// routeTable returns every route the server serves, given its
// dependencies; a route whose dependency is nil is left out.
func (s *Server) routeTable() []routeSpec {
	d := s.d
	h := func(f http.HandlerFunc) http.Handler { return f }
	var t []routeSpec
	add := func(pattern string, acc access, scope string, class ratelimit.Class, prio admission.Priority, signed bool, handler http.Handler) {
		if handler != nil {
			t = append(t, routeSpec{pattern: pattern, access: acc, scope: scope, class: class, priority: prio, signed: signed, handler: handler})
		}
	}
	std, rt, bulk, adm := ratelimit.ClassStandard, ratelimit.ClassRealtime, ratelimit.ClassBulk, ratelimit.ClassAdmin
	const (
		critical = admission.Critical
		pAdmin   = admission.Admin
		realtime = admission.Realtime
		standard = admission.Standard
		pBulk    = admission.Bulk
	)
	// OAuth and discovery: authenticated by the handlers themselves; the
	// OAuth endpoints are rate limited per source address (class
	// standard), the public documents not at all (class "").
	add("POST /oauth/token", public, "", std, realtime, false, d.TokenHandler)
	add("GET /.well-known/jwks.json", public, "", "", realtime, false, d.JWKSHandler)
	add("GET /oauth/authorize", public, "", std, standard, false, d.AuthorizeHandler)
	add("POST /oauth/authorize", public, "", std, standard, false, d.AuthorizeHandler)
	add("POST /oauth/revoke", public, "", std, critical, false, d.RevokeHandler)
	add("POST /oauth/introspect", public, "", std, realtime, false, d.IntrospectHandler)
	add("GET /.well-known/oauth-authorization-server", public, "", "", realtime, false, d.MetadataHandler)
	add("GET /openapi.json", public, "", "", standard, false, h(s.serveOpenAPI))

	add("POST /v1/events", scoped, auth.ScopeEventsWrite, std, standard, false, h(s.postEvents))
	add("POST /v1/events/batch", scoped, auth.ScopeEventsWrite, bulk, pBulk, true, h(s.postEventsBatch))
	add("POST /v1/endpoints", scoped, auth.ScopeEndpointsWrite, std, standard, false, h(s.createEndpoint))
	add("GET /v1/endpoints", scoped, auth.ScopeEndpointsRead, std, standard, false, h(s.listEndpoints))
	add("GET /v1/endpoints/{id}", scoped, auth.ScopeEndpointsRead, std, standard, false, h(s.getEndpoint))
	// PATCH disables endpoints: a critical operation, never shed first.
	add("PATCH /v1/endpoints/{id}", scoped, auth.ScopeEndpointsWrite, std, critical, false, h(s.patchEndpoint))
	add("DELETE /v1/endpoints/{id}", scoped, auth.ScopeEndpointsWrite, std, critical, true, h(s.deleteEndpoint))
	add("POST /v1/endpoints/{id}/secret/rotate", scoped, auth.ScopeEndpointsWrite, std, critical, true, h(s.rotateSecret))
	if d.Replays != nil && d.Tasks != nil {
		add("POST /v1/endpoints/{id}/replay", scoped, auth.ScopeEndpointsWrite, bulk, pBulk, true, h(s.createReplay))
		add("GET /v1/replays/{id}", scoped, auth.ScopeEndpointsRead, std, standard, false, h(s.getReplay))
	}
	if d.Tasks != nil && d.Encoder != nil {
		add("POST /v1/endpoints/{id}/test", scoped, auth.ScopeEndpointsWrite, rt, realtime, false, h(s.testEndpoint))
	}
	if d.Health != nil {
		add("GET /v1/customers/{id}/health", scoped, auth.ScopeCustomersRead, rt, realtime, false, h(s.customerHealth))
	}
	// The live dashboard: the page holds no data (it signs in by itself
	// and polls the stats route) and is not rate limited.
	add("GET /dashboard", public, "", "", standard, false, d.Dashboard)
	add("GET /dashboard/", public, "", "", standard, false, d.Dashboard)
	add("GET /v1/dashboard/stats", scoped, auth.ScopeAnalyticsRead, std, standard, false, d.DashboardStats)
	if d.Analytics != nil {
		add("GET /v1/analytics/{report}", scoped, auth.ScopeAnalyticsRead, std, standard, false, h(s.getAnalytics))
	}
	if d.AuditQuery != nil {
		// The audit log is read by people with a fresh TOTP sign-in.
		add("GET /v1/audit", admin, auth.ScopeAuditRead, std, pAdmin, false, h(s.listAudit))
	}
	if d.Admin != nil {
		add("GET /v1/admin/clients", admin, auth.ScopeAdmin, adm, pAdmin, false, h(s.listClients))
		add("POST /v1/admin/clients", admin, auth.ScopeAdmin, adm, pAdmin, true, h(s.createClient))
		add("GET /v1/admin/clients/{id}", admin, auth.ScopeAdmin, adm, pAdmin, false, h(s.getClient))
		// PATCH disables clients: critical.
		add("PATCH /v1/admin/clients/{id}", admin, auth.ScopeAdmin, adm, critical, true, h(s.patchClient))
		add("GET /v1/admin/users", admin, auth.ScopeAdmin, adm, pAdmin, false, h(s.listUsers))
		add("POST /v1/admin/users", admin, auth.ScopeAdmin, adm, pAdmin, true, h(s.createUser))
		add("PATCH /v1/admin/users/{id}", admin, auth.ScopeAdmin, adm, critical, true, h(s.patchUser))
		add("POST /v1/admin/users/{id}/totp/reset", admin, auth.ScopeAdmin, adm, pAdmin, true, h(s.resetUserTOTP))
		add("GET /v1/admin/keys", admin, auth.ScopeAdmin, adm, pAdmin, false, h(s.listKeys))
		add("POST /v1/admin/keys/rotate", admin, auth.ScopeAdmin, adm, critical, true, h(s.rotateKey))
		add("GET /v1/admin/clients/{id}/rate-limits", admin, auth.ScopeAdmin, adm, pAdmin, false, h(s.getClientRateLimits))
		add("PUT /v1/admin/clients/{id}/rate-limits", admin, auth.ScopeAdmin, adm, pAdmin, true, h(s.putClientRateLimits))
		add("POST /v1/admin/clients/{id}/request-keys", admin, auth.ScopeAdmin, adm, pAdmin, true, h(s.addClientRequestKey))
		add("POST /v1/me/request-keys", person, "", std, standard, false, h(s.addMyRequestKey))
		add("POST /v1/me/totp", person, "", std, standard, false, h(s.beginTOTP))
		add("POST /v1/me/totp/confirm", person, "", std, standard, false, h(s.confirmTOTP))
	}
	return t
}

// mutating reports whether a request changes state: its audit record is
// acknowledged by Kafka before the response is sent.
func mutating(method string) bool {
	switch method {
	case http.MethodGet, http.MethodHead, http.MethodOptions:
		return false
	}
	return true
}

// opsPath reports whether a path is an operations endpoint, never queued
// nor rate limited.
func opsPath(path string) bool {
	return path == "/healthz" || path == "/readyz" || path == "/metrics" || strings.HasPrefix(path, "/debug/")
}
