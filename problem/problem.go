// Package problem writes RFC 9457 problem details (application/problem+json)
// responses. Every error a Vitals HTTP API returns goes through it, so that
// clients see one shape with an actionable Detail.
package problem

import (
	"encoding/json"
	"net/http"
)

// ContentType is the media type of problem details documents.
const ContentType = "application/problem+json"

// TypeBase prefixes every problem type URI Vitals defines.
const TypeBase = "https://vitals.dev/problems/"

// Details is an RFC 9457 problem details object. Extension members (such as
// the index and field of an invalid event) go in Extra and are written at the
// top level of the JSON object.
type Details struct {
	Type     string         `json:"type"`
	Title    string         `json:"title"`
	Status   int            `json:"status"`
	Detail   string         `json:"detail,omitempty"`
	Instance string         `json:"instance,omitempty"`
	Extra    map[string]any `json:"-"`
}

// New returns a problem of the given type slug (appended to TypeBase),
// status and actionable detail; the title is the status text.
func New(status int, slug, detail string) *Details {
	return &Details{Type: TypeBase + slug, Title: http.StatusText(status), Status: status, Detail: detail}
}

// With sets an extension member and returns p.
func (p *Details) With(key string, value any) *Details {
	if p.Extra == nil {
		p.Extra = map[string]any{}
	}
	p.Extra[key] = value
	return p
}

// Error implements error so a problem can travel as one.
func (p *Details) Error() string { return p.Title + ": " + p.Detail }

// MarshalJSON flattens Extra into the object.
func (p *Details) MarshalJSON() ([]byte, error) {
	m := make(map[string]any, len(p.Extra)+5)
	for k, v := range p.Extra {
		m[k] = v
	}
	m["type"], m["title"], m["status"] = p.Type, p.Title, p.Status
	if p.Detail != "" {
		m["detail"] = p.Detail
	}
	if p.Instance != "" {
		m["instance"] = p.Instance
	}
	return json.Marshal(m)
}

// Write sends p as the response. Instance defaults to the request path.
func Write(w http.ResponseWriter, r *http.Request, p *Details) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	b, err := json.Marshal(p)
	if err != nil {
		http.Error(w, p.Detail, p.Status)
		return
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(p.Status)
	_, _ = w.Write(append(b, '\n'))
}
