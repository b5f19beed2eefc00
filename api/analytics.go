package api

import (
	"context"
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/problem"
)

// Analytics answers the analytics reports from ClickHouse (package
// analytics' Store).
type Analytics interface {
	EndpointStats(ctx context.Context, q analytics.Query) ([]analytics.EndpointStats, error)
	ErrorClasses(ctx context.Context, q analytics.Query) ([]analytics.ErrorClassCount, error)
	DeliverySeries(ctx context.Context, q analytics.Query) ([]analytics.DeliveryBucket, error)
	SlowestEndpoints(ctx context.Context, q analytics.Query) ([]analytics.EndpointLatency, error)
	DerivedEventCounts(ctx context.Context, q analytics.Query) ([]analytics.DerivedCount, error)
	RecentDerivedEvents(ctx context.Context, q analytics.Query) ([]analytics.DerivedEvent, error)
	APIUsage(ctx context.Context, q analytics.Query) ([]analytics.APIUsage, error)
	RateLimitRejections(ctx context.Context, q analytics.Query) ([]analytics.RateLimitRejections, error)
	SecurityEvents(ctx context.Context, q analytics.Query) ([]analytics.SecurityEvent, error)
}

// report runs one named report.
func (s *Server) report(ctx context.Context, name string, q analytics.Query) (any, error) {
	a := s.d.Analytics
	switch name {
	case "endpoints":
		return a.EndpointStats(ctx, q)
	case "errors":
		return a.ErrorClasses(ctx, q)
	case "deliveries":
		return a.DeliverySeries(ctx, q)
	case "slowest":
		return a.SlowestEndpoints(ctx, q)
	case "events":
		return a.DerivedEventCounts(ctx, q)
	case "recent-events":
		return a.RecentDerivedEvents(ctx, q)
	case "api":
		return a.APIUsage(ctx, q)
	case "rate-limits":
		return a.RateLimitRejections(ctx, q)
	case "security":
		return a.SecurityEvents(ctx, q)
	}
	return nil, errUnknownReport
}

var errUnknownReport = errors.New("unknown report")

// getAnalytics serves GET /v1/analytics/{report}?since=1h&until=&step=&limit=
// &endpoint_id=&event_type=&client_id=.
func (s *Server) getAnalytics(w http.ResponseWriter, r *http.Request) {
	qs := r.URL.Query()
	now := s.now()
	since := qs.Get("since")
	if since == "" {
		since = "1h"
	}
	q := analytics.Query{EndpointID: qs.Get("endpoint_id"), EventType: qs.Get("event_type"), ClientID: qs.Get("client_id")}
	var err error
	if q.Since, err = parseSince(since, now); err != nil {
		problem.Write(w, r, invalidField("since", "since is RFC 3339 (2026-12-01T00:00:00Z) or a duration back from now (1h)"))
		return
	}
	if q.Until, err = parseSince(qs.Get("until"), now); err != nil {
		problem.Write(w, r, invalidField("until", "until is RFC 3339 or a duration back from now"))
		return
	}
	if v := qs.Get("step"); v != "" {
		if q.Step, err = time.ParseDuration(v); err != nil {
			problem.Write(w, r, invalidField("step", "step is a duration of at least 1m"))
			return
		}
	}
	if v := qs.Get("limit"); v != "" {
		if q.Limit, err = strconv.Atoi(v); err != nil || q.Limit < 1 {
			problem.Write(w, r, invalidField("limit", "limit is a positive integer"))
			return
		}
	}
	name := r.PathValue("report")
	rows, err := s.report(r.Context(), name, q)
	switch {
	case errors.Is(err, errUnknownReport):
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "no report "+name+"; reports: endpoints, errors, deliveries, slowest, events, recent-events, api, rate-limits, security"))
		return
	case errors.Is(err, analytics.ErrBadQuery):
		problem.Write(w, r, problem.New(http.StatusBadRequest, "bad-query", err.Error()))
		return
	case err != nil:
		s.d.Logger.ErrorContext(r.Context(), "analytics query", "report", name, "err", err)
		w.Header().Set("Retry-After", "5")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "analytics-unavailable", "the report could not be read from ClickHouse; retry"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"report": name, "since": q.Since.UTC(), "rows": rows})
}
