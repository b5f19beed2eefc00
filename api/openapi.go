package api

import (
	"encoding/json"
	"net/http"
	"sort"
	"strings"
)

// openAPIDocument describes every route of the table as OpenAPI 3.1: the
// path and method, the scope it needs (security), its rate-limit class
// (x-rate-limit-class), its admission priority (x-priority), whether it must
// be signed (x-signed, RFC 9421), and problem+json errors. It is generated
// from the route table, so the document and the server cannot disagree on
// which routes exist or how they are guarded.
func (s *Server) openAPIDocument() map[string]any {
	paths := map[string]map[string]any{}
	specs := s.routeTable()
	sort.Slice(specs, func(i, j int) bool { return specs[i].pattern < specs[j].pattern })
	for _, rs := range specs {
		method, path, _ := strings.Cut(rs.pattern, " ")
		op := map[string]any{
			"operationId": operationID(method, path),
			"responses": map[string]any{
				"default": map[string]any{"$ref": "#/components/responses/Problem"},
			},
			"x-priority": rs.priority.String(),
		}
		if rs.class != "" {
			op["x-rate-limit-class"] = string(rs.class)
		}
		if rs.signed {
			op["x-signed"] = true
			op["description"] = "High-value operation: the request must carry an HTTP message signature (RFC 9421) over @method, @target-uri, content-digest and content-type by a key registered for the caller."
		}
		switch rs.access {
		case scoped:
			op["security"] = []map[string][]string{{"oauth2": {rs.scope}}}
		case admin:
			op["security"] = []map[string][]string{{"oauth2": {rs.scope}}}
			op["x-mfa"] = "a person signed in with a TOTP code within 12 h"
		case person:
			op["security"] = []map[string][]string{{"oauth2": {}}}
		}
		var params []map[string]any
		for _, seg := range strings.Split(path, "/") {
			if strings.HasPrefix(seg, "{") && strings.HasSuffix(seg, "}") {
				params = append(params, map[string]any{"name": strings.Trim(seg, "{}"), "in": "path", "required": true,
					"schema": map[string]string{"type": "string"}})
			}
		}
		if params != nil {
			op["parameters"] = params
		}
		if paths[path] == nil {
			paths[path] = map[string]any{}
		}
		paths[path][strings.ToLower(method)] = op
	}
	return map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]any{"title": "Vitals API", "version": "v1"},
		"paths":   paths,
		"components": map[string]any{
			"securitySchemes": map[string]any{
				"oauth2": map[string]any{
					"type": "oauth2",
					"flows": map[string]any{
						"clientCredentials": map[string]any{"tokenUrl": "/oauth/token", "scopes": scopeDescriptions()},
						"authorizationCode": map[string]any{"authorizationUrl": "/oauth/authorize", "tokenUrl": "/oauth/token",
							"refreshUrl": "/oauth/token", "scopes": scopeDescriptions()},
					},
				},
			},
			"responses": map[string]any{
				"Problem": map[string]any{
					"description": "An RFC 9457 problem: what went wrong and how to fix it.",
					"content": map[string]any{"application/problem+json": map[string]any{"schema": map[string]any{
						"type": "object",
						"properties": map[string]any{
							"type": map[string]string{"type": "string"}, "title": map[string]string{"type": "string"},
							"status": map[string]string{"type": "integer"}, "detail": map[string]string{"type": "string"},
							"instance": map[string]string{"type": "string"},
						},
					}}},
				},
			},
		},
	}
}

func scopeDescriptions() map[string]string {
	return map[string]string{
		"events:write":    "send customer activity",
		"endpoints:read":  "read webhook endpoints and replays",
		"endpoints:write": "manage webhook endpoints, replays and test sends",
		"customers:read":  "read customer health",
		"analytics:read":  "read analytics and the dashboard",
		"audit:read":      "read the audit log (with a TOTP sign-in)",
		"admin":           "administer clients, users and keys (with a TOTP sign-in)",
	}
}

// operationID names an operation from its method and path:
// "POST /v1/endpoints/{id}/replay" → "post_v1_endpoints_id_replay".
func operationID(method, path string) string {
	r := strings.NewReplacer("/", "_", "{", "", "}", "", ".", "_", "-", "_")
	return strings.ToLower(method) + r.Replace(path)
}

// serveOpenAPI serves GET /openapi.json.
func (s *Server) serveOpenAPI(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "public, max-age=300")
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(s.openAPIDocument())
}
