package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"net/http"
	"slices"
	"time"

	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/problem"
	"github.com/vitalshq/vitals/webhook"
)

// endpointView is an endpoint as the API shows it: never a secret, except
// the new one in the responses that create or rotate it; sensitive custom
// header values are redacted.
type endpointView struct {
	ID               string            `json:"id"`
	URL              string            `json:"url"`
	EventTypes       []string          `json:"event_types"`
	Description      string            `json:"description,omitempty"`
	CustomerIDs      []string          `json:"customer_ids,omitempty"`
	Headers          map[string]string `json:"headers,omitempty"`
	RateLimit        float64           `json:"rate_limit"`
	MaxInFlight      int               `json:"max_in_flight"`
	Ordered          bool              `json:"ordered"`
	Signing          string            `json:"signing"` // "hmac" or "ed25519" (both signatures)
	Ed25519PublicKey string            `json:"ed25519_public_key,omitempty"`
	Secret           string            `json:"secret,omitempty"`
	PreviousUntil    *time.Time        `json:"previous_secret_expires_at,omitempty"`
	CreatedAt        time.Time         `json:"created_at"`
	UpdatedAt        *time.Time        `json:"updated_at,omitempty"`
	Disabled         bool              `json:"disabled"`
	DisabledReason   string            `json:"disabled_reason,omitempty"`
	DisabledAt       *time.Time        `json:"disabled_at,omitempty"`
}

// redacted replaces sensitive header values in views.
const redacted = "[redacted]"

func (s *Server) view(e endpoint.Endpoint) endpointView {
	v := endpointView{ID: e.ID, URL: e.URL, EventTypes: e.EventTypes, Description: e.Description,
		CustomerIDs: e.CustomerIDs, RateLimit: e.RateLimit, MaxInFlight: e.MaxInFlight, Ordered: e.Ordered,
		Signing: "hmac", CreatedAt: e.CreatedAt, Disabled: e.Disabled, DisabledReason: e.DisabledReason,
		UpdatedAt: timePtr(e.UpdatedAt), DisabledAt: timePtr(e.DisabledAt)}
	if len(e.Headers) > 0 {
		v.Headers = make(map[string]string, len(e.Headers))
		for k, val := range e.Headers {
			if endpoint.SensitiveHeader(k) {
				val = redacted
			}
			v.Headers[k] = val
		}
	}
	if e.SigningKeyEd25519 != "" {
		v.Signing = "ed25519"
		v.Ed25519PublicKey, _ = webhook.Ed25519PublicKey(e.SigningKeyEd25519)
	}
	if e.PreviousSecret != "" && s.now().Before(e.PreviousUntil) {
		v.PreviousUntil = timePtr(e.PreviousUntil)
	}
	return v
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	return &t
}

// endpointFields are the user-settable fields, shared by create and patch.
type endpointFields struct {
	URL            string            `json:"url"`
	EventTypes     []string          `json:"event_types"`
	Description    string            `json:"description"`
	CustomerIDs    []string          `json:"customer_ids"`
	Headers        map[string]string `json:"headers"`
	RateLimit      float64           `json:"rate_limit"`
	MaxInFlight    int               `json:"max_in_flight"`
	Ordered        bool              `json:"ordered"`
	Disabled       bool              `json:"disabled"`
	DisabledReason string            `json:"disabled_reason"`
}

type createEndpointReq struct {
	endpointFields
	// Signing is "hmac" (default: v1 signatures) or "ed25519" (v1 and v1a).
	Signing string `json:"signing"`
}

func (s *Server) createEndpoint(w http.ResponseWriter, r *http.Request) {
	var req createEndpointReq
	if !decodeJSON(w, r, &req, `{"url":…, "event_types":[…], "customer_ids":[…], "headers":{…}, "rate_limit":…, "max_in_flight":…, "ordered":…, "signing":"hmac"|"ed25519"}`) {
		return
	}
	now := s.now().UTC().Truncate(time.Second)
	f := req.endpointFields
	e := endpoint.Endpoint{ID: endpoint.NewID(), URL: f.URL, EventTypes: f.EventTypes, Description: f.Description,
		CustomerIDs: f.CustomerIDs, Headers: f.Headers, RateLimit: f.RateLimit, MaxInFlight: f.MaxInFlight,
		Ordered: f.Ordered, Disabled: f.Disabled, DisabledReason: f.DisabledReason, CreatedAt: now}
	if e.Disabled {
		e.DisabledAt = now
	}
	if p := s.validateEndpoint(r, &e, true); p != nil {
		problem.Write(w, r, p)
		return
	}
	switch req.Signing {
	case "", "hmac":
	case "ed25519":
		seed, _, err := s.d.NewSigningKey()
		if err != nil {
			problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal", "could not generate a signing key; retry"))
			return
		}
		e.SigningKeyEd25519 = seed
	default:
		problem.Write(w, r, invalidField("signing", fmt.Sprintf("signing %q is not supported; use \"hmac\" (v1 signatures) or \"ed25519\" (v1 and v1a)", req.Signing)))
		return
	}
	secret, err := s.d.NewSecret()
	if err != nil {
		problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal", "could not generate a signing secret; retry"))
		return
	}
	e.Secret = secret
	if !s.storeEndpoint(w, r, e) {
		return
	}
	v := s.view(e)
	v.Secret = e.Secret
	w.Header().Set("Location", "/v1/endpoints/"+e.ID)
	writeJSON(w, http.StatusCreated, v)
}

// validateEndpoint checks e's fields and, when urlChanged, its address.
func (s *Server) validateEndpoint(r *http.Request, e *endpoint.Endpoint, urlChanged bool) *problem.Details {
	if err := e.Validate(s.o.allowInsecureEndpoints); err != nil {
		var fe *endpoint.FieldError
		if errors.As(err, &fe) {
			return invalidField(fe.Field, fe.Detail)
		}
		return invalidField("", err.Error())
	}
	if urlChanged {
		if err := s.d.URLChecker.CheckURL(r.Context(), e.URL); err != nil {
			return invalidField("url", "url refused: "+err.Error())
		}
	}
	return nil
}

func invalidField(field, detail string) *problem.Details {
	p := problem.New(http.StatusBadRequest, "invalid-endpoint", detail)
	if field != "" {
		p = p.With("field", field)
	}
	return p
}

// storeEndpoint writes e, answering 503 when it cannot.
func (s *Server) storeEndpoint(w http.ResponseWriter, r *http.Request, e endpoint.Endpoint) bool {
	if err := s.d.Endpoints.Put(r.Context(), e); err != nil {
		s.d.Logger.Error("store endpoint", "id", e.ID, "err", err)
		w.Header().Set("Retry-After", "5")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "store-unavailable", "the endpoint could not be stored; retry the request"))
		return false
	}
	return true
}

// patchEndpoint applies a JSON merge patch (RFC 7396) to the updatable
// fields: a member set to null resets the field (url and event_types
// cannot be reset); "headers" merges name by name, null removing one.
// {"disabled":true,"disabled_reason":…} disables, {"disabled":false}
// enables (and clears the reason).
func (s *Server) patchEndpoint(w http.ResponseWriter, r *http.Request) {
	e, ok := s.endpointOr404(w, r)
	if !ok {
		return
	}
	var patch map[string]json.RawMessage
	if !decodeJSON(w, r, &patch, `a JSON merge patch object, e.g. {"rate_limit":5,"headers":{"X-Old":null}}`) {
		return
	}
	// The registry's value shares its slices and map: patch copies.
	e.EventTypes, e.CustomerIDs, e.Headers = slices.Clone(e.EventTypes), slices.Clone(e.CustomerIDs), maps.Clone(e.Headers)
	wasDisabled, oldURL := e.Disabled, e.URL
	if field, err := applyPatch(&e, patch); err != nil {
		problem.Write(w, r, invalidField(field, err.Error()))
		return
	}
	now := s.now().UTC().Truncate(time.Second)
	switch {
	case e.Disabled && !wasDisabled:
		e.DisabledAt = now
	case !e.Disabled && wasDisabled: // enabling clears why it was disabled
		e.DisabledAt, e.DisabledReason = time.Time{}, ""
	}
	if p := s.validateEndpoint(r, &e, e.URL != oldURL); p != nil {
		problem.Write(w, r, p)
		return
	}
	e.UpdatedAt = now
	if !s.storeEndpoint(w, r, e) {
		return
	}
	writeJSON(w, http.StatusOK, s.view(e))
}

// applyPatch merges patch into e. It returns the offending field on error.
func applyPatch(e *endpoint.Endpoint, patch map[string]json.RawMessage) (string, error) {
	for name, raw := range patch {
		isNull := bytes.Equal(bytes.TrimSpace(raw), []byte("null"))
		var target any
		switch name {
		case "url", "event_types":
			if isNull {
				return name, fmt.Errorf("%s cannot be removed; set a new value", name)
			}
			if name == "url" {
				target = &e.URL
			} else {
				target = &e.EventTypes
			}
		case "description":
			target = &e.Description
		case "customer_ids":
			target = &e.CustomerIDs
		case "rate_limit":
			target = &e.RateLimit
		case "max_in_flight":
			target = &e.MaxInFlight
		case "ordered":
			target = &e.Ordered
		case "disabled":
			target = &e.Disabled
		case "disabled_reason":
			target = &e.DisabledReason
		case "headers":
			if err := mergeHeaders(e, raw, isNull); err != nil {
				return "headers", err
			}
			continue
		default:
			return name, fmt.Errorf("%q cannot be patched; updatable fields: url, event_types, description, customer_ids, headers, rate_limit, max_in_flight, ordered, disabled, disabled_reason (rotate the secret with POST …/secret/rotate)", name)
		}
		if isNull {
			resetField(target)
			continue
		}
		dec := json.NewDecoder(bytes.NewReader(raw))
		dec.DisallowUnknownFields()
		if err := dec.Decode(target); err != nil {
			return name, fmt.Errorf("%s has the wrong type: %v", name, err)
		}
	}
	return "", nil
}

func resetField(target any) {
	switch p := target.(type) {
	case *string:
		*p = ""
	case *[]string:
		*p = nil
	case *float64:
		*p = 0
	case *int:
		*p = 0
	case *bool:
		*p = false
	}
}

// mergeHeaders applies RFC 7396 to the headers object.
func mergeHeaders(e *endpoint.Endpoint, raw json.RawMessage, isNull bool) error {
	if isNull {
		e.Headers = nil
		return nil
	}
	var m map[string]*string
	if err := json.Unmarshal(raw, &m); err != nil {
		return fmt.Errorf("headers must be an object of header name to string value (null removes one): %v", err)
	}
	out := maps.Clone(e.Headers)
	if out == nil {
		out = map[string]string{}
	}
	for k, v := range m {
		if v == nil {
			delete(out, k)
		} else {
			out[k] = *v
		}
	}
	if len(out) == 0 {
		out = nil
	}
	e.Headers = out
	return nil
}

// rotateSecret makes a new signing secret; the previous one keeps signing
// (a second signature) for the server's SecretOverlap, so receivers can
// switch without losing a message. A rotation during an overlap drops the
// oldest secret at once.
func (s *Server) rotateSecret(w http.ResponseWriter, r *http.Request) {
	e, ok := s.endpointOr404(w, r)
	if !ok {
		return
	}
	secret, err := s.d.NewSecret()
	if err != nil {
		problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal", "could not generate a signing secret; retry"))
		return
	}
	now := s.now().UTC()
	e.PreviousSecret, e.PreviousUntil, e.Secret, e.UpdatedAt = e.Secret, now.Add(s.o.secretOverlap), secret, now.Truncate(time.Second)
	if !s.storeEndpoint(w, r, e) {
		return
	}
	v := s.view(e)
	v.Secret = e.Secret
	writeJSON(w, http.StatusOK, v)
}

func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) {
	all := s.d.Endpoints.List()
	out := make([]endpointView, len(all))
	for i, e := range all {
		out[i] = s.view(e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}

func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request) {
	if e, ok := s.endpointOr404(w, r); ok {
		writeJSON(w, http.StatusOK, s.view(e))
	}
}

// endpointOr404 returns the endpoint named by the path, or answers 404.
func (s *Server) endpointOr404(w http.ResponseWriter, r *http.Request) (endpoint.Endpoint, bool) {
	e, ok := s.d.Endpoints.Get(r.PathValue("id"))
	if !ok {
		problem.Write(w, r, problem.New(http.StatusNotFound, "endpoint-not-found", fmt.Sprintf("no endpoint %q; list them with GET /v1/endpoints", r.PathValue("id"))))
	}
	return e, ok
}

func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request) {
	e, ok := s.endpointOr404(w, r)
	if !ok {
		return
	}
	if err := s.d.Endpoints.Delete(r.Context(), e.ID); err != nil {
		s.d.Logger.Error("delete endpoint", "id", e.ID, "err", err)
		w.Header().Set("Retry-After", "5")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "store-unavailable", "the endpoint could not be deleted; retry the request"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// decodeJSON reads one JSON object (at most 64 KiB, no unknown fields) into
// v, answering 415/413/400 problems; shape describes the expected body.
func decodeJSON(w http.ResponseWriter, r *http.Request, v any, shape string) bool {
	if !requireJSON(w, r) {
		return false
	}
	body, ok := readBody(w, r, 64<<10)
	if !ok {
		return false
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil || dec.Decode(new(any)) != io.EOF {
		detail := "the body must be one JSON object " + shape
		if err != nil {
			detail += ": " + err.Error()
		}
		problem.Write(w, r, problem.New(http.StatusBadRequest, "malformed-request", detail))
		return false
	}
	return true
}
