package loadtest

import (
	"context"
	"fmt"
	"strings"
	"sync"

	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/event"
)

// apiArgs are the flags of an API child: the harness's port, webhooks to
// the loopback receiver allowed, and the rate limiter set not to bind.
func (h *harness) apiArgs() []string {
	args := []string{"--listen", h.apiURL()[len("https://"):],
		"--allow-private-endpoints", "--allow-insecure-endpoints",
		"--rate-limit", strings.Join(benchRateLimits, ",")}
	return args
}

// runIngest starts `vitals api` alone and measures single-event requests
// and signed batches; it also registers the receiver as the endpoint the
// later stages deliver to. The events stay in the input topic for the
// processor stage.
func (h *harness) runIngest(ctx context.Context, base *baselines) (err error) {
	h.progress.Stage("ingest: starting vitals api")
	api, err := h.startChild(ctx, "api", h.apiURL(), append([]string{"api"}, h.apiArgs()...)...)
	if err != nil {
		return err
	}
	defer func() {
		if serr := api.stop(); err == nil {
			err = serr
		}
	}()
	if err := h.registerEndpoint(ctx); err != nil {
		return err
	}
	if !h.has(StageIngest) {
		return nil
	}

	// Single events: POST /v1/events, one event per request.
	h.progress.Stage("ingest: single-event requests (TLS 1.3, JWT)")
	hc, err := h.apiClient(ctx, h.cfg.IngestWorkers, false, auth.ScopeEventsWrite)
	if err != nil {
		return err
	}
	url := h.apiURL() + "/v1/events"
	single := func(ctx context.Context) (int, error) {
		i := h.stream.take(1)
		body, err := ingestJSON([]event.CustomerEvent{h.stream.event(i)})
		if err != nil {
			return 0, err
		}
		return 1, post(ctx, hc, url, body, 202)
	}
	r, err := h.measureLoad(ctx, api, "ingest single", h.cfg.IngestWorkers, single)
	if err != nil {
		return err
	}
	h.report.add(Figure{ID: "ingest.single.requests_per_s", Stage: "ingest", Name: fmt.Sprintf("POST /v1/events, 1 event/request (= events/s), %d clients", h.cfg.IngestWorkers),
		Value: ptr(r.opRate()), Unit: "requests/s", Baseline: base.postFigure(), Target: &Target{Text: ">= 20,000/s", Min: ptr(20_000.0)}})
	h.loopNote("ingest single", r)

	// Batches: POST /v1/events/batch, signed (RFC 9421).
	h.progress.Stage("ingest: signed batches")
	bc, err := h.apiClient(ctx, h.cfg.BatchWorkers, true, auth.ScopeEventsWrite)
	if err != nil {
		return err
	}
	burl := h.apiURL() + "/v1/events/batch"
	n := h.cfg.BatchSize
	bufs := sync.Pool{New: func() any { return make([]event.CustomerEvent, n) }}
	batch := func(ctx context.Context) (int, error) {
		evs := bufs.Get().([]event.CustomerEvent)
		defer bufs.Put(evs)
		first := h.stream.take(n)
		for j := range evs {
			evs[j] = h.stream.event(first + int64(j))
		}
		body, err := ingestJSON(evs)
		if err != nil {
			return 0, err
		}
		return n, post(ctx, bc, burl, body, 202)
	}
	r, err = h.measureLoad(ctx, api, "ingest batch", h.cfg.BatchWorkers, batch)
	if err != nil {
		return err
	}
	h.report.add(Figure{ID: "ingest.batch.events_per_s", Stage: "ingest", Name: fmt.Sprintf("POST /v1/events/batch, signed, %d events/request, %d clients", n, h.cfg.BatchWorkers),
		Value: ptr(r.rate()), Unit: "events/s", Baseline: base.produceFigure(), Target: &Target{Text: ">= 250,000/s", Min: ptr(250_000.0)}})
	h.report.add(Figure{ID: "ingest.batch.requests_per_s", Stage: "ingest", Name: "  of which requests", Value: ptr(r.opRate()), Unit: "requests/s"})
	h.loopNote("ingest batch", r)
	return nil
}

// measureLoad runs a closed loop of op against child c and records its
// resources over the window and, with profiling on, its profiles.
func (h *harness) measureLoad(ctx context.Context, c *child, stage string, workers int, op func(context.Context) (int, error)) (loopResult, error) {
	var before usage
	var berr error
	var waitProfiles func()
	r := closedLoop(ctx, workers, h.cfg.Warmup, h.cfg.Duration, op, func() {
		before, berr = c.usage(ctx)
		waitProfiles = h.captureProfiles(ctx, stage, c, h.cfg.Duration)
	})
	after, aerr := c.usage(ctx)
	if waitProfiles != nil {
		waitProfiles()
	}
	if r.units == 0 {
		return r, fmt.Errorf("%s: nothing completed in the window: %v", stage, r.firstErr)
	}
	if berr == nil && aerr == nil {
		h.report.Resources = append(h.report.Resources, c.resources(stage, before, after, r.units))
	}
	return r, nil
}

// loopNote records a closed loop's failures, if any.
func (h *harness) loopNote(stage string, r loopResult) {
	if r.errs > 0 {
		h.report.note("%s: %d requests failed in the window (first: %v)", stage, r.errs, r.firstErr)
	}
}
