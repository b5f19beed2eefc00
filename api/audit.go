package api

import (
	"context"
	"net/http"
	"strconv"
	"time"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/audit"
	"github.com/vitalshq/vitals/problem"
)

// AuditQuerier reads the audit log from ClickHouse (package analytics'
// AuditStore).
type AuditQuerier interface {
	QueryAudit(ctx context.Context, q analytics.AuditQuery) ([]audit.Record, error)
}

// listAudit serves GET /v1/audit: records newest first, filtered by
// since/until (RFC 3339 or a duration back from now), client_id, user_id,
// request_id, decision, reason, route and method; paged by cursor.
func (s *Server) listAudit(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	aq := analytics.AuditQuery{ClientID: q.Get("client_id"), UserID: q.Get("user_id"), RequestID: q.Get("request_id"),
		Decision: q.Get("decision"), Reason: q.Get("reason"), Route: q.Get("route"), Method: q.Get("method")}
	var err error
	if aq.Since, err = parseSince(q.Get("since"), s.now()); err != nil {
		problem.Write(w, r, invalidField("since", "since is RFC 3339 (2026-12-01T00:00:00Z) or a duration back from now (24h)"))
		return
	}
	if aq.Until, err = parseSince(q.Get("until"), s.now()); err != nil {
		problem.Write(w, r, invalidField("until", "until is RFC 3339 or a duration back from now"))
		return
	}
	if v := q.Get("limit"); v != "" {
		if aq.Limit, err = strconv.Atoi(v); err != nil || aq.Limit < 1 {
			problem.Write(w, r, invalidField("limit", "limit is a positive integer (at most 1000)"))
			return
		}
	}
	if v := q.Get("cursor"); v != "" {
		c, err := analytics.ParseAuditCursor(v)
		if err != nil {
			problem.Write(w, r, invalidField("cursor", "cursor is the next_cursor of a previous page"))
			return
		}
		aq.Before = &c
	}
	recs, err := s.d.AuditQuery.QueryAudit(r.Context(), aq)
	if err != nil {
		s.d.Logger.ErrorContext(r.Context(), "audit query", "err", err)
		w.Header().Set("Retry-After", "5")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "audit-unavailable", "the audit log could not be read from ClickHouse; retry"))
		return
	}
	out := map[string]any{"records": recs}
	if len(recs) > 0 {
		out["next_cursor"] = analytics.AuditCursorOf(recs[len(recs)-1]).String()
	}
	writeJSON(w, http.StatusOK, out)
}

// parseSince reads "" (zero), an RFC 3339 time or a duration back from now.
func parseSince(v string, now time.Time) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(v); err == nil {
		return now.Add(-d), nil
	}
	return time.Parse(time.RFC3339, v)
}
