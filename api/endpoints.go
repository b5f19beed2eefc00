package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/problem"
)

// endpointView is an endpoint as the API shows it: never the secret, except
// in the response that creates it.
type endpointView struct {
	ID             string    `json:"id"`
	URL            string    `json:"url"`
	EventTypes     []string  `json:"event_types"`
	Description    string    `json:"description,omitempty"`
	Secret         string    `json:"secret,omitempty"`
	CreatedAt      time.Time `json:"created_at"`
	Disabled       bool      `json:"disabled"`
	DisabledReason string    `json:"disabled_reason,omitempty"`
}

func view(e endpoint.Endpoint) endpointView {
	return endpointView{ID: e.ID, URL: e.URL, EventTypes: e.EventTypes, Description: e.Description,
		CreatedAt: e.CreatedAt, Disabled: e.Disabled, DisabledReason: e.DisabledReason}
}

type createEndpointReq struct {
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description"`
}

func (s *Server) createEndpoint(w http.ResponseWriter, r *http.Request) {
	if !requireJSON(w, r) {
		return
	}
	body, ok := readBody(w, r, 64<<10)
	if !ok {
		return
	}
	var req createEndpointReq
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil || dec.Decode(new(any)) != io.EOF {
		detail := "the body must be one JSON object {\"url\":…, \"event_types\":[…], \"description\":…}"
		if err != nil {
			detail += ": " + err.Error()
		}
		problem.Write(w, r, problem.New(http.StatusBadRequest, "malformed-request", detail))
		return
	}
	if p := s.validateEndpoint(r, &req); p != nil {
		problem.Write(w, r, p)
		return
	}
	secret, err := s.d.NewSecret()
	if err != nil {
		problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal", "could not generate a signing secret; retry"))
		return
	}
	e := endpoint.Endpoint{ID: endpoint.NewID(), URL: req.URL, EventTypes: req.EventTypes,
		Description: req.Description, Secret: secret, CreatedAt: s.now().UTC().Truncate(time.Second)}
	if err := s.d.Endpoints.Put(r.Context(), e); err != nil {
		s.d.Logger.Error("store endpoint", "err", err)
		w.Header().Set("Retry-After", "5")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "store-unavailable", "the endpoint could not be stored; retry the request"))
		return
	}
	v := view(e)
	v.Secret = e.Secret
	w.Header().Set("Location", "/v1/endpoints/"+e.ID)
	writeJSON(w, http.StatusCreated, v)
}

func (s *Server) validateEndpoint(r *http.Request, req *createEndpointReq) *problem.Details {
	bad := func(field, detail string) *problem.Details {
		return problem.New(http.StatusBadRequest, "invalid-endpoint", detail).With("field", field)
	}
	if req.URL == "" {
		return bad("url", "url is required: the absolute https URL that receives the webhooks")
	}
	if len(req.URL) > 2048 {
		return bad("url", "url must be at most 2048 characters")
	}
	if len(req.EventTypes) == 0 {
		return bad("event_types", fmt.Sprintf("event_types is required: a list of %s, or [\"*\"] for all", strings.Join(event.DerivedTypes(), ", ")))
	}
	for i, t := range req.EventTypes {
		if t != "*" && !slices.Contains(event.DerivedTypes(), t) {
			return bad(fmt.Sprintf("event_types[%d]", i), fmt.Sprintf("%q is not an event type; use %s or \"*\"", t, strings.Join(event.DerivedTypes(), ", ")))
		}
	}
	slices.Sort(req.EventTypes)
	req.EventTypes = slices.Compact(req.EventTypes)
	if len(req.Description) > 512 {
		return bad("description", "description must be at most 512 characters")
	}
	if err := s.d.URLChecker.CheckURL(r.Context(), req.URL); err != nil {
		return bad("url", "url refused: "+err.Error())
	}
	return nil
}

func (s *Server) listEndpoints(w http.ResponseWriter, r *http.Request) {
	all := s.d.Endpoints.List()
	out := make([]endpointView, len(all))
	for i, e := range all {
		out[i] = view(e)
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": out})
}

func (s *Server) getEndpoint(w http.ResponseWriter, r *http.Request) {
	e, ok := s.d.Endpoints.Get(r.PathValue("id"))
	if !ok {
		problem.Write(w, r, problem.New(http.StatusNotFound, "endpoint-not-found", fmt.Sprintf("no endpoint %q; list them with GET /v1/endpoints", r.PathValue("id"))))
		return
	}
	writeJSON(w, http.StatusOK, view(e))
}

func (s *Server) deleteEndpoint(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if _, ok := s.d.Endpoints.Get(id); !ok {
		problem.Write(w, r, problem.New(http.StatusNotFound, "endpoint-not-found", fmt.Sprintf("no endpoint %q; list them with GET /v1/endpoints", id)))
		return
	}
	if err := s.d.Endpoints.Delete(r.Context(), id); err != nil {
		s.d.Logger.Error("delete endpoint", "id", id, "err", errors.Unwrap(err))
		w.Header().Set("Retry-After", "5")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "store-unavailable", "the endpoint could not be deleted; retry the request"))
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
