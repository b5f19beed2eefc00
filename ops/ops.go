// Package ops serves the operational endpoints every Vitals process has:
// /healthz (the process is alive), /readyz (its dependencies answer and it
// can do its work) and /metrics (Prometheus).
//
// It must never serve anything a client of the product uses; those routes
// belong to package api.
package ops

import (
	"context"
	"encoding/json"
	"net/http"
	"sort"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
)

// Check reports whether one dependency is ready; nil means ready.
type Check func(ctx context.Context) error

// Checks is a named set of readiness checks, safe to add to while serving.
type Checks struct {
	mu     sync.Mutex
	checks map[string]Check
}

// Add registers a check under name, replacing one of the same name.
func (c *Checks) Add(name string, fn Check) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.checks == nil {
		c.checks = map[string]Check{}
	}
	c.checks[name] = fn
}

// Run runs every check with a shared deadline and returns the failures by
// name (empty when ready).
func (c *Checks) Run(ctx context.Context) map[string]string {
	c.mu.Lock()
	names := make([]string, 0, len(c.checks))
	for n := range c.checks {
		names = append(names, n)
	}
	fns := make(map[string]Check, len(c.checks))
	for n, f := range c.checks {
		fns[n] = f
	}
	c.mu.Unlock()
	sort.Strings(names)
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	failed := map[string]string{}
	for _, n := range names {
		if err := fns[n](ctx); err != nil {
			failed[n] = err.Error()
		}
	}
	return failed
}

// NewRegistry returns a Prometheus registry with the Go runtime and process
// collectors, the one every Vitals process registers its metrics on.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return reg
}

// Register adds /healthz, /readyz and /metrics to mux.
func Register(mux *http.ServeMux, reg *prometheus.Registry, checks *Checks) {
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"status":"ok"}` + "\n"))
	})
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) {
		failed := checks.Run(r.Context())
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		body := map[string]any{"status": "ready"}
		if len(failed) > 0 {
			body = map[string]any{"status": "not_ready", "failed": failed}
			w.WriteHeader(http.StatusServiceUnavailable)
		}
		_ = json.NewEncoder(w).Encode(body)
	})
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{Registry: reg}))
}
