package loadtest

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// ProfileHandler serves the runtime profiles a child exposes to the
// harness (/debug/pprof/…, as net/http/pprof), on a mux of its own: the
// child's product listeners never serve them.
func ProfileHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

// child is one vitals process of the pipeline under measurement.
type child struct {
	name    string
	cmd     *exec.Cmd
	pprof   string // base URL of its pprof listener
	ready   string // URL of its /readyz
	metrics string // URL of its /metrics
	hc      *http.Client
	cancel  context.CancelFunc
	exited  chan struct{}
	err     error // of Wait, once exited is closed
	logPath string
}

// startChild runs `vitals <args>` with the flags every child shares and
// waits until its /readyz answers 200. opsURL is the base URL of its
// /readyz and /metrics.
func (h *harness) startChild(ctx context.Context, name, opsURL string, args ...string) (*child, error) {
	pport, err := freePort()
	if err != nil {
		return nil, err
	}
	paddr := net.JoinHostPort("127.0.0.1", strconv.Itoa(pport))
	args = append(args,
		"--kafka-brokers", strings.Join(h.brokers, ","),
		"--data-dir", h.dataDir,
		"--master-key-file", h.masterKeyFile(),
		"--log-format", "json")
	cctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	cmd := h.cfg.Launch(cctx, paddr, args...)
	cmd.Env = childEnv()
	cmd.Cancel = func() error { return cmd.Process.Signal(syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	logPath := filepath.Join(h.outDir, "logs", name+".log")
	logf, err := os.Create(logPath)
	if err != nil {
		cancel()
		return nil, fmt.Errorf("child log: %w", err)
	}
	cmd.Stdout, cmd.Stderr = logf, logf
	if err := cmd.Start(); err != nil {
		cancel()
		logf.Close()
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	c := &child{name: name, cmd: cmd, pprof: "http://" + paddr, ready: opsURL + "/readyz", metrics: opsURL + "/metrics",
		hc: opsClient(), cancel: cancel, exited: make(chan struct{}), logPath: logPath}
	go func() {
		c.err = cmd.Wait()
		logf.Close()
		close(c.exited)
	}()
	h.log.Info("started", "child", name, "pid", cmd.Process.Pid, "log", logPath)
	if err := c.waitReady(ctx, 3*time.Minute); err != nil {
		_ = c.stop()
		return nil, err
	}
	return c, nil
}

// childEnv is this process's environment without VITALS_* settings, so a
// child reads only the flags the harness gives it.
func childEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "VITALS_") {
			env = append(env, kv)
		}
	}
	return env
}

func (c *child) pid() int { return c.cmd.Process.Pid }

// waitReady polls /readyz until it answers 200.
func (c *child) waitReady(ctx context.Context, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.ready, nil)
		resp, err := c.hc.Do(req)
		if err == nil {
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case <-c.exited:
			return fmt.Errorf("%s exited before it was ready (%v); see %s", c.name, c.err, c.logPath)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s not ready after %s; see %s", c.name, timeout, c.logPath)
		}
	}
}

// stop ends the child with SIGTERM (SIGKILL after 30 s) and waits for it.
func (c *child) stop() error {
	c.cancel()
	<-c.exited
	var ee *exec.ExitError
	if errors.Is(c.err, context.Canceled) || (errors.As(c.err, &ee) && !ee.Exited()) {
		return nil // exited cleanly on our SIGTERM, or was killed after WaitDelay
	}
	if c.err != nil {
		return fmt.Errorf("%s: %w; see %s", c.name, c.err, c.logPath)
	}
	return nil
}

// usage is a child's cumulative resource use at one moment, and the
// harness's own CPU time then.
type usage struct {
	cpu     float64 // CPU seconds of the child
	mallocs float64 // heap objects the child allocated
	harness float64 // CPU seconds of this process: load generator, receiver, embedded broker
	at      time.Time
}

func (c *child) usage(ctx context.Context) (usage, error) {
	cpu, err := procCPU(c.pid())
	if err != nil {
		return usage{}, err
	}
	m, err := scrape(ctx, c.hc, c.metrics, "go_memstats_mallocs_total")
	if err != nil {
		return usage{}, err
	}
	return usage{cpu: cpu, mallocs: m["go_memstats_mallocs_total"], harness: selfCPU(), at: time.Now()}, nil
}

// selfCPU returns the user + system CPU seconds of this process.
func selfCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return float64(ru.Utime.Nano()+ru.Stime.Nano()) / 1e9
}

// resources turns two usage readings and the events handled between them
// into a Resources row.
func (c *child) resources(stage string, from, to usage, events int64) Resources {
	r := Resources{Stage: stage, Process: c.name, Events: events, CPUSeconds: to.cpu - from.cpu, Allocs: to.mallocs - from.mallocs,
		HarnessCPUSeconds: to.harness - from.harness, WindowS: to.at.Sub(from.at).Seconds()}
	if events > 0 {
		r.CPUPer1k = ptr(r.CPUSeconds / float64(events) * 1000)
		r.AllocsPerEvent = ptr(r.Allocs / float64(events))
		if r.CPUSeconds > 0 {
			r.CeilingPerS = ptr(float64(runtime.NumCPU()) * float64(events) / r.CPUSeconds)
		}
	}
	if _, peak, err := procMemory(c.pid()); err == nil {
		r.PeakRSSMiB = peak
	}
	return r
}

// freePort returns a TCP port free on loopback right now.
func freePort() (int, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("free port: %w", err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port, nil
}

// opsClient reads children's /readyz and /metrics. The API serves them on
// its TLS listener with a self-signed certificate on loopback, which this
// client does not verify: it carries no credentials.
func opsClient() *http.Client {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{InsecureSkipVerify: true, MinVersion: tls.VersionTLS13} //nolint:gosec // loopback ops endpoints, no credentials sent
	return &http.Client{Transport: tr, Timeout: 10 * time.Second}
}
