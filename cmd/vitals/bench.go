package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"time"

	"github.com/vitalshq/vitals/broker"
	"github.com/vitalshq/vitals/config"
	"github.com/vitalshq/vitals/loadtest"
)

// runBench is `vitals bench`: the end-to-end load harness (package
// loadtest). `vitals bench stage --pprof ADDR -- <command> [flags]` is how
// the harness starts each measured child: the vitals command unchanged,
// plus the pprof handlers on a loopback address of their own.
func runBench(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] == "stage" {
		return runBenchStage(ctx, args[1:], stdout, stderr)
	}
	var (
		cfg        loadtest.Config
		stages     string
		rates      string
		brokers    string
		logFormat  string
		noProfiles bool
	)
	fs := flag.NewFlagSet("vitals bench", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintln(stderr, "Usage: vitals bench [flags]\n\nStarts the pipeline (vitals api, processor, dispatcher, run as child processes) on an in-memory kfake broker\n"+
			"(or --kafka-brokers) with a local webhook receiver, drives load, and prints each stage's figures beside\n"+
			"baselines measured in the same run; writes <results-dir>/<timestamp>.json, profiles and child logs.\n\nFlags:")
		fs.PrintDefaults()
	}
	fs.DurationVar(&cfg.Duration, "duration", 10*time.Second, "measured window of each stage")
	fs.DurationVar(&cfg.Warmup, "warmup", 2*time.Second, "unmeasured warm-up before each window")
	fs.StringVar(&stages, "stages", strings.Join(loadtest.Stages(), ","), "stages to measure (the baselines always run)")
	fs.StringVar(&rates, "rates", "1000,5000", "offered end-to-end rates, events/s (open loop)")
	fs.Float64Var(&cfg.MaxRequestRate, "max-request-rate", 1000, "requests/s at most in the open-loop runs: a request carries ceil(rate/this) events")
	fs.IntVar(&cfg.IngestWorkers, "ingest-workers", 64, "concurrent single-event ingest clients")
	fs.IntVar(&cfg.BatchWorkers, "batch-workers", 8, "concurrent signed-batch ingest clients")
	fs.IntVar(&cfg.BatchSize, "batch-size", 5000, "events per signed batch (POST /v1/events/batch, at most 10000)")
	fs.IntVar(&cfg.DispatchInFlight, "in-flight", 64, "the endpoint's max_in_flight and the bare-POST baseline's concurrency")
	fs.IntVar(&cfg.StateCustomers, "state-customers", 100_000, "customers of the state and restore measurement (1M figures are extrapolated)")
	fs.DurationVar(&cfg.Soak, "soak", 0, "also run the pipeline at half its sustained rate this long and report the memory trend (e.g. 10m)")
	fs.StringVar(&brokers, "kafka-brokers", "", "external Kafka cluster, plaintext, dedicated to the run (default: in-memory kfake in this process)")
	fs.StringVar(&cfg.ClickHouseAddr, "clickhouse-addr", "", "send the attempt log to this ClickHouse (default: the fsync'd disk spool)")
	fs.StringVar(&cfg.ResultsDir, "results-dir", "bench/results", "where <timestamp>.json and <timestamp>/ (profiles, logs) go")
	fs.BoolVar(&noProfiles, "no-profiles", false, "do not capture pprof CPU and allocation profiles of the stages")
	fs.StringVar(&logFormat, "log-format", "auto", "log format: auto, text, json")
	if _, err := config.Parse(fs, args, os.Getenv); err != nil {
		return err
	}
	log, err := newLogger(stderr, logFormat, "warn")
	if err != nil {
		return err
	}
	self, err := os.Executable()
	if err != nil {
		return fmt.Errorf("bench: own executable: %w", err)
	}
	for _, r := range strings.Split(rates, ",") {
		var v float64
		if _, err := fmt.Sscan(strings.TrimSpace(r), &v); err != nil || v <= 0 {
			return fmt.Errorf("%w: --rates %q: want events/s such as 1000,5000", errUsage, rates)
		}
		cfg.Rates = append(cfg.Rates, v)
	}
	cfg.Stages = strings.Split(stages, ",")
	cfg.KafkaBrokers = broker.ParseList(brokers)
	cfg.Profile = !noProfiles
	cfg.Out, cfg.Progress, cfg.Logger, cfg.Version = stdout, stderr, log, version
	cfg.Launch = func(ctx context.Context, pprofAddr string, args ...string) *exec.Cmd {
		return exec.CommandContext(ctx, self, append([]string{"bench", "stage", "--pprof", pprofAddr, "--"}, args...)...)
	}
	_, err = loadtest.Run(ctx, cfg)
	return err
}

// runBenchStage runs one vitals command with the pprof handlers served on
// --pprof, for the harness to profile it.
func runBenchStage(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("vitals bench stage", flag.ContinueOnError)
	fs.SetOutput(stderr)
	addr := fs.String("pprof", "127.0.0.1:0", "loopback address of the pprof handlers")
	if err := fs.Parse(args); err != nil {
		return err
	}
	if fs.NArg() == 0 {
		return fmt.Errorf("%w: vitals bench stage --pprof ADDR -- <command> [flags]", errUsage)
	}
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("pprof listen: %w", err)
	}
	hs := &http.Server{Handler: loadtest.ProfileHandler(), ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	defer hs.Close()
	if code := Main(ctx, fs.Args(), stdout, stderr); code != 0 {
		return fmt.Errorf("%w: %s exited with %d", errBenchStage, fs.Arg(0), code)
	}
	return nil
}

var errBenchStage = errors.New("measured stage failed")
