package loadtest

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/http"
	"strconv"
	"sync/atomic"
	"time"

	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/event"
)

// e2eTargets are the p99 targets of the offered rates the issue names.
var e2eTargets = map[float64]float64{1000: 50, 5000: 100}

// sustainedTarget is the sustained webhooks/s target: ten times the
// ~1,500/s Outpost sustains on the same kind of machine.
const sustainedTarget = 15_000

// Traffic shapes of the end-to-end stage.
const (
	maxOpenInFlight  = 1024   // requests in flight at most in an open-loop run
	sustainedWorkers = 4      // senders of the sustained run
	sustainedBatch   = 500    // events per request of the sustained run
	sustainedWindow  = 50_000 // events accepted but not yet delivered, at most
	soakPool         = 20_000 // customers of the soak
	soakSampleEvery  = 5 * time.Second
)

// runE2E starts `vitals run` (API, processor and dispatcher in one process,
// as deployed by default) and measures open-loop latency at each offered
// rate, the sustained webhooks/s, and with Soak the memory trend.
func (h *harness) runE2E(ctx context.Context, base *baselines) (err error) {
	if !h.endpointOK {
		return errors.New("the receiver is not registered as an endpoint")
	}
	h.progress.Stage("end to end: starting vitals run")
	args := append([]string{"run"}, h.apiArgs()...)
	if h.cfg.ClickHouseAddr != "" {
		args = append(args, "--clickhouse-addr", h.cfg.ClickHouseAddr)
	}
	run, err := h.startChild(ctx, "run", h.apiURL(), args...)
	if err != nil {
		return err
	}
	defer func() {
		if serr := run.stop(); err == nil {
			err = serr
		}
	}()
	hc, err := h.apiClient(ctx, 256, false, auth.ScopeEventsWrite)
	if err != nil {
		return err
	}
	tag := strconv.FormatInt(time.Now().Unix()%1_000_000, 36)
	for i, rate := range h.cfg.Rates {
		name := "e2e " + num(rate) + "/s"
		h.progress.Stage(fmt.Sprintf("end to end: %s events/s offered (open loop)", num(rate)))
		// The same rate, unmeasured, first: connections opened, the
		// pipeline's buffers and consumers at that rate.
		warm := newChurnLoad(fmt.Sprintf("warm%d-%s", i, tag), 0, 0, time.Now())
		if _, err := h.openLoop(ctx, run, hc, "warm-up", warm, rate, h.cfg.Warmup, false); err != nil {
			return err
		}
		n := int(rate * h.cfg.Duration.Seconds())
		w := newChurnLoad(fmt.Sprintf("e2e%d-%s", i, tag), 0, n, time.Now())
		lr, err := h.openLoop(ctx, run, hc, name, w, rate, h.cfg.Duration, true)
		if err != nil {
			return err
		}
		h.report.Latency = append(h.report.Latency, lr)
		f := Figure{ID: "e2e." + strconv.FormatFloat(rate, 'f', -1, 64) + ".p99_ms", Stage: "end to end",
			Name: fmt.Sprintf("p99 latency at %s events/s offered (%d/request)", num(rate), lr.EventsPerRequest), Value: lr.Latency.P99, Unit: "ms"}
		if lr.Latency.P99 == nil {
			f.Note = fmt.Sprintf("lost: %d of %d accepted events never produced a webhook", lr.Latency.Missing, lr.Accepted)
		}
		if t, ok := e2eTargets[rate]; ok {
			f.Target = &Target{Text: "<= " + num(t) + " ms", Max: ptr(t)}
			if f.Value == nil {
				f.Met = ptr(false)
			}
		}
		h.report.add(f)
	}
	sustained, err := h.sustained(ctx, run, hc, base, tag)
	if err != nil {
		return err
	}
	if h.cfg.Soak > 0 {
		return h.soak(ctx, run, hc, sustained/2, tag)
	}
	h.report.add(Figure{ID: "soak.rss_growth_pct", Stage: "soak", Name: "memory flat over 10 min at 50% of peak", Unit: "%",
		Target: &Target{Text: "flat (<= 10% growth)", Max: ptr(10.0)}, Note: "not run: vitals bench --stages e2e --soak 10m"})
	h.report.note("the soak is off by default; run it with: vitals bench --stages e2e --soak 10m")
	return nil
}

// openLoop offers w's events at rate for d, on a schedule fixed before the
// run, and measures each event's latency from its scheduled time to its
// webhook at the receiver. A request carries ⌈rate/MaxRequestRate⌉ events
// and is sent when its last event is due; every event's latency counts
// from its own due time, so the batching wait is in the figures too. An
// unmeasured run (a warm-up) records no resources, profiles or notes.
func (h *harness) openLoop(ctx context.Context, c *child, hc *http.Client, name string, w churnLoad, rate float64, d time.Duration, measured bool) (LatencyRun, error) {
	b := max(1, int(math.Ceil(rate/h.cfg.MaxRequestRate)))
	nreq := int(d.Seconds() * rate / float64(b))
	n := nreq * b
	lr := LatencyRun{Name: name, OfferedPerS: rate, EventsPerRequest: b, DurationS: d.Seconds(), Scheduled: n}
	arrived := make([]atomic.Int64, n) // unix nanos of the first webhook of each event
	accepted := make([]atomic.Bool, n)
	var delivered atomic.Int64
	h.recv.watch(func(typ, customer string, ts, at time.Time) {
		if typ != event.ChurnRiskDetected {
			return
		}
		if i, ok := w.Seq(customer, ts); ok && i < n && arrived[i].CompareAndSwap(0, at.UnixNano()) {
			delivered.Add(1)
		}
	})
	defer h.recv.watch(nil)

	start := time.Now().Add(100 * time.Millisecond)
	due := func(i int) time.Time { return start.Add(time.Duration(float64(i) / rate * float64(time.Second))) }
	sched := Schedule{Start: due(b - 1), Rate: rate / float64(b)}
	url := h.apiURL() + "/v1/events"
	var refused atomic.Int64
	var firstErr atomic.Pointer[error]
	before, uerr := c.usage(ctx)
	waitProfiles := func() {}
	if measured {
		waitProfiles = h.captureProfiles(ctx, name, c, d)
		defer waitProfiles()
	}
	st := RunOpenLoop(ctx, sched, nreq, maxOpenInFlight, func(ctx context.Context, k int, _ time.Time) {
		evs := make([]event.CustomerEvent, b)
		for j := range evs {
			evs[j] = w.Event(k*b + j)
		}
		body, err := ingestJSON(evs)
		if err == nil {
			err = post(ctx, hc, url, body, http.StatusAccepted)
		}
		if err != nil {
			refused.Add(int64(b))
			firstErr.CompareAndSwap(nil, &err)
			return
		}
		for j := range b {
			accepted[k*b+j].Store(true)
		}
	})
	waitProfiles()
	if err := ctx.Err(); err != nil {
		return lr, err
	}
	var want int64 // accepted events that yield a webhook
	for i := range n {
		if accepted[i].Load() {
			lr.Accepted++
			if w.Emits(i) {
				want++
			}
		}
	}
	// Wait for the stragglers: what has not arrived by then is lost.
	drain := max(10*time.Second, d)
	deadline := time.Now().Add(drain)
	for delivered.Load() < want && time.Now().Before(deadline) {
		if err := sleep(ctx, 20*time.Millisecond); err != nil {
			return lr, err
		}
	}
	after, aerr := c.usage(ctx)
	var rec Recorder
	for i := range n {
		if !accepted[i].Load() || !w.Emits(i) {
			continue
		}
		if at := arrived[i].Load(); at != 0 {
			rec.Record(time.Unix(0, at).Sub(due(i)))
		} else {
			rec.Missing(1)
		}
	}
	lr.Refused = int(refused.Load())
	lr.Latency = rec.Summary()
	lr.SenderLate, lr.SenderMaxLagMs = st.Late, float64(st.MaxStartLag)/float64(time.Millisecond)
	if !measured {
		return lr, nil
	}
	if p := firstErr.Load(); p != nil {
		h.report.note("%s: %d events refused (first: %v)", name, lr.Refused, *p)
	}
	if uerr == nil && aerr == nil {
		h.report.Resources = append(h.report.Resources, c.resources(name, before, after, int64(lr.Accepted)))
	}
	return lr, nil
}

// sustained drives `vitals run` as fast as it delivers: senders post
// batches of sustainedBatch events while fewer than sustainedWindow
// accepted events wait for their webhook, and the rate of webhooks at the
// receiver over the window is the pipeline's sustained rate, every stage
// and the load generator sharing the machine.
func (h *harness) sustained(ctx context.Context, c *child, hc *http.Client, base *baselines, tag string) (float64, error) {
	h.progress.Stage("end to end: sustained webhooks/s")
	w := newChurnLoad("sus-"+tag, 0, 0, time.Now())
	var next, accepted, delivered atomic.Int64
	h.recv.watch(func(typ, customer string, ts, _ time.Time) {
		if typ == event.ChurnRiskDetected {
			if _, ok := w.Seq(customer, ts); ok {
				delivered.Add(1)
			}
		}
	})
	defer h.recv.watch(nil)
	url := h.apiURL() + "/v1/events"
	evs := func() []event.CustomerEvent {
		first := int(next.Add(sustainedBatch)) - sustainedBatch
		out := make([]event.CustomerEvent, sustainedBatch)
		for j := range out {
			out[j] = w.Event(first + j)
		}
		return out
	}
	var from int64
	var before usage
	var berr error
	var waitProfiles func()
	var t0 time.Time
	r := closedLoop(ctx, sustainedWorkers, h.cfg.Warmup+2*time.Second, h.cfg.Duration, func(ctx context.Context) (int, error) {
		for accepted.Load()-delivered.Load() > sustainedWindow {
			if err := sleep(ctx, 5*time.Millisecond); err != nil {
				return 0, err
			}
		}
		body, err := ingestJSON(evs())
		if err != nil {
			return 0, err
		}
		if err := post(ctx, hc, url, body, http.StatusAccepted); err != nil {
			return 0, err
		}
		accepted.Add(sustainedBatch)
		return sustainedBatch, nil
	}, func() {
		from, t0 = delivered.Load(), time.Now()
		before, berr = c.usage(ctx)
		waitProfiles = h.captureProfiles(ctx, "e2e sustained", c, h.cfg.Duration)
	})
	to, el := delivered.Load(), time.Since(t0)
	after, aerr := c.usage(ctx)
	if waitProfiles != nil {
		waitProfiles()
	}
	if t0.IsZero() || to == from {
		return 0, fmt.Errorf("sustained: no webhook in the window (%v)", r.firstErr)
	}
	rate := float64(to-from) / el.Seconds()
	h.report.add(Figure{ID: "e2e.sustained.webhooks_per_s", Stage: "end to end", Name: "sustained webhooks/s, whole pipeline (vitals run) + load generator",
		Value: ptr(rate), Unit: "webhooks/s", Baseline: base.postFigure(), Target: &Target{Text: ">= 15,000/s", Min: ptr(float64(sustainedTarget))}})
	h.report.add(Figure{ID: "e2e.sustained.ingest_events_per_s", Stage: "end to end", Name: "  of which events accepted/s", Value: ptr(r.rate()), Unit: "events/s"})
	h.loopNote("e2e sustained", r)
	if berr == nil && aerr == nil {
		h.report.Resources = append(h.report.Resources, c.resources("e2e sustained", before, after, to-from))
	}
	// Let the pipeline empty before what comes next.
	dctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for delivered.Load() < accepted.Load() {
		if err := sleep(dctx, 50*time.Millisecond); err != nil {
			h.report.note("sustained: %d events still undelivered a minute after the run", accepted.Load()-delivered.Load())
			break
		}
	}
	return rate, nil
}

// soak offers rate events/s of bounded-state traffic for Config.Soak,
// sampling the process's RSS and heap, and reports their trend.
func (h *harness) soak(ctx context.Context, c *child, hc *http.Client, rate float64, tag string) error {
	h.progress.Stage(fmt.Sprintf("soak: %s events/s for %s", num(rate), h.cfg.Soak))
	n := int(rate * h.cfg.Soak.Seconds())
	w := newChurnLoad("soak-"+tag, soakPool, n, time.Now())
	mt := &MemoryTrend{OfferedPerS: rate, DurationS: h.cfg.Soak.Seconds(), SampleEveryS: soakSampleEvery.Seconds()}
	sctx, stop := context.WithCancel(ctx)
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		t := time.NewTicker(soakSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-sctx.Done():
				return
			case <-t.C:
			}
			rss, _, err := procMemory(c.pid())
			if err != nil {
				continue
			}
			m, err := scrape(sctx, c.hc, c.metrics, "go_memstats_heap_inuse_bytes")
			if err != nil {
				continue
			}
			mt.RSSMiB = append(mt.RSSMiB, rss)
			mt.HeapMiB = append(mt.HeapMiB, m["go_memstats_heap_inuse_bytes"]/(1<<20))
		}
	}()
	lr, err := h.openLoop(ctx, c, hc, "soak", w, rate, h.cfg.Soak, true)
	stop()
	<-sampled
	if err != nil {
		return err
	}
	h.report.Latency = append(h.report.Latency, lr)
	skip := len(mt.RSSMiB) / 5 // warm-up
	var mean float64
	mt.SlopeMiBPerMin, mean = slope(mt.RSSMiB[skip:], soakSampleEvery)
	mt.HeapSlope, _ = slope(mt.HeapMiB[skip:], soakSampleEvery)
	span := time.Duration(max(0, len(mt.RSSMiB)-skip-1)) * soakSampleEvery
	if mean > 0 {
		mt.GrowthPct = mt.SlopeMiBPerMin * span.Minutes() / mean * 100
	}
	h.report.Memory = mt
	h.report.add(Figure{ID: "soak.rss_growth_pct", Stage: "soak", Name: fmt.Sprintf("RSS growth over %s at %s events/s (50%% of sustained)", h.cfg.Soak, num(rate)),
		Value: ptr(mt.GrowthPct), Unit: "%", Target: &Target{Text: "flat (<= 10% growth)", Max: ptr(10.0)},
		Note: fmt.Sprintf("least-squares fit after the first fifth; slope %.2f MiB/min", mt.SlopeMiBPerMin)})
	return nil
}

// slope returns the least-squares slope of samples taken every interval,
// per minute, and their mean.
func slope(ys []float64, every time.Duration) (perMin, mean float64) {
	n := float64(len(ys))
	if n < 2 {
		return 0, 0
	}
	var sx, sy, sxx, sxy float64
	for i, y := range ys {
		x := float64(i) * every.Minutes()
		sx += x
		sy += y
		sxx += x * x
		sxy += x * y
	}
	return (n*sxy - sx*sy) / (n*sxx - sx*sx), sy / n
}
