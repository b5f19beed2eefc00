package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/broker"
	"github.com/vitalshq/vitals/keyring"
	"github.com/vitalshq/vitals/schemas"
)

// Launcher returns the command that runs one vitals subcommand (args[0],
// with its flags) as a measured child process serving the pprof handlers
// (ProfileHandler) at pprofAddr. `vitals bench` passes one that starts its
// own executable.
type Launcher func(ctx context.Context, pprofAddr string, args ...string) *exec.Cmd

// Stages a run can measure, in the order they run.
const (
	StageBaseline   = "baseline"
	StageIngest     = "ingest"
	StageProcessor  = "processor"
	StageDispatcher = "dispatcher"
	StageE2E        = "e2e"
)

// Stages lists every stage in run order.
func Stages() []string {
	return []string{StageBaseline, StageIngest, StageProcessor, StageDispatcher, StageE2E}
}

// Config says what a run measures and where it writes.
type Config struct {
	// Launch starts the vitals children (required).
	Launch Launcher
	// KafkaBrokers names an external cluster (plaintext); empty starts an
	// in-memory kfake broker in this process, over TCP. The cluster should
	// be dedicated to the run: the harness moves the pipeline's consumer
	// groups past what earlier stages left behind.
	KafkaBrokers []string
	// Stages to run (default all, see Stages). The baselines always run.
	Stages []string
	// Duration is each stage's measured window (default 10s); Warmup
	// runs before it, unmeasured (default 2s).
	Duration, Warmup time.Duration
	// Rates are the offered end-to-end rates in events per second
	// (default 1000 and 5000). MaxRequestRate bounds the requests per
	// second of those runs: a request carries ⌈rate/MaxRequestRate⌉
	// events (default 1000, so 1 event per request at 1k/s).
	Rates          []float64
	MaxRequestRate float64
	// IngestWorkers send single-event requests concurrently (default
	// 64); BatchWorkers send BatchSize-event signed batches (default 8 of
	// 5000).
	IngestWorkers, BatchWorkers, BatchSize int
	// DispatchInFlight is the endpoint's max_in_flight and the bare-POST
	// baseline's concurrency (default 64).
	DispatchInFlight int
	// StateCustomers is how many customers the state and restore
	// measurement builds (default 100 000); figures at 1M customers are
	// extrapolated from it, and say so.
	StateCustomers int
	// Soak, when set, runs the pipeline at half its sustained rate for
	// this long and reports the memory trend.
	Soak time.Duration
	// ClickHouseAddr sends the dispatcher's attempt log to ClickHouse;
	// empty leaves analytics on its fsync'd disk spool.
	ClickHouseAddr string
	// Profile captures CPU and allocation profiles of every stage while
	// it is measured (the pprof overhead is small but not zero).
	Profile bool
	// ResultsDir receives <timestamp>.json and, with Profile, the
	// profiles and child logs in <timestamp>/ (default bench/results).
	ResultsDir string
	// Out receives the table; Progress the progress bar (drawn only on a
	// terminal). Logger logs what the harness does.
	Out, Progress io.Writer
	Logger        *slog.Logger
	// Version is the vitals version recorded in the report.
	Version string
}

func (c Config) withDefaults() Config {
	if len(c.Stages) == 0 {
		c.Stages = Stages()
	}
	if c.Duration <= 0 {
		c.Duration = 10 * time.Second
	}
	if c.Warmup < 0 {
		c.Warmup = 0
	} else if c.Warmup == 0 {
		c.Warmup = 2 * time.Second
	}
	if len(c.Rates) == 0 {
		c.Rates = []float64{1000, 5000}
	}
	if c.MaxRequestRate <= 0 {
		c.MaxRequestRate = 1000
	}
	if c.IngestWorkers <= 0 {
		c.IngestWorkers = 64
	}
	if c.BatchWorkers <= 0 {
		c.BatchWorkers = 8
	}
	if c.BatchSize <= 0 {
		c.BatchSize = 5000
	}
	if c.DispatchInFlight <= 0 {
		c.DispatchInFlight = 64
	}
	if c.StateCustomers <= 0 {
		c.StateCustomers = 100_000
	}
	if c.ResultsDir == "" {
		c.ResultsDir = filepath.Join("bench", "results")
	}
	if c.Out == nil {
		c.Out = io.Discard
	}
	if c.Progress == nil {
		c.Progress = io.Discard
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return c
}

// benchRateLimits replace every rate-limit class's default for the run:
// the limiter runs on every call, as in production, but never binds.
// 1e8 an hour (the limiter accepts up to ~3e8) is far more than a run sends.
var benchRateLimits = []string{
	"standard=100000000/1h/100000000", "bulk=100000000/1h/100000000",
	"realtime=100000000/1h/100000000", "admin=100000000/1h/100000000",
}

// harness is one run: the broker, the receiver, the data directory the
// children share, and the report being filled in.
type harness struct {
	cfg      Config
	log      *slog.Logger
	brokers  []string
	kcl      *kgo.Client // admin and raw-produce client of the harness
	adm      *kadm.Client
	codec    *schemas.Codec
	recv     *receiver
	dataDir  string // shared by every child: TLS certificate, bootstrap client, spool
	outDir   string // <results>/<timestamp>: profiles and child logs
	apiPort  int
	report   *Report
	progress *Progress
	stream   *stream
	// endpointOK is set once the receiver is registered as an endpoint.
	endpointOK bool
}

func (h *harness) has(stage string) bool { return slices.Contains(h.cfg.Stages, stage) }

// Run measures the stages of cfg, writes the JSON report and the table,
// and returns the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	if cfg.Launch == nil {
		return nil, errors.New("loadtest: Config.Launch is required")
	}
	for _, s := range cfg.Stages {
		if !slices.Contains(Stages(), s) {
			return nil, fmt.Errorf("loadtest: unknown stage %q (known: %s)", s, strings.Join(Stages(), ", "))
		}
	}
	started := time.Now().UTC()
	stamp := started.Format("20060102T150405Z")
	h := &harness{cfg: cfg, log: cfg.Logger, outDir: filepath.Join(cfg.ResultsDir, stamp),
		report: &Report{SchemaVersion: SchemaVersion, StartedAt: started, Machine: machine(cfg.Version)}}
	h.report.Settings = Settings{DurationS: cfg.Duration.Seconds(), WarmupS: cfg.Warmup.Seconds(), E2ERates: cfg.Rates,
		IngestWorkers: cfg.IngestWorkers, BatchWorkers: cfg.BatchWorkers, BatchSize: cfg.BatchSize,
		StateCustomers: cfg.StateCustomers, SoakS: cfg.Soak.Seconds(), RateLimits: benchRateLimits, Analytics: "disk spool (fsync'd)"}
	if cfg.ClickHouseAddr != "" {
		h.report.Settings.Analytics = "ClickHouse " + cfg.ClickHouseAddr
	}
	h.progress = NewProgress(cfg.Progress, h.estimate())
	h.progress.Start()
	err := h.run(ctx)
	h.progress.Stop()
	h.report.ElapsedS = time.Since(started).Seconds()
	h.report.Machine.LoadAvgEnd = loadAvg()
	path := filepath.Join(cfg.ResultsDir, stamp+".json")
	if werr := h.report.WriteJSON(path); werr != nil {
		err = errors.Join(err, werr)
	} else {
		h.report.note("results: %s (compare runs by figure id)", path)
	}
	if terr := h.report.WriteTable(cfg.Out); terr != nil {
		err = errors.Join(err, terr)
	}
	return h.report, err
}

// estimate is the expected length of the run, for the progress bar.
func (h *harness) estimate() time.Duration {
	c := h.cfg
	win := c.Warmup + c.Duration
	var d time.Duration
	d += 2 * win // baselines
	if h.has(StageIngest) {
		d += 10*time.Second + 2*win
	}
	if h.has(StageProcessor) {
		d += 40*time.Second + win
	}
	if h.has(StageDispatcher) {
		d += 10*time.Second + win
	}
	if h.has(StageE2E) {
		d += 10*time.Second + time.Duration(len(c.Rates)+1)*(win+5*time.Second) + c.Soak
	}
	return d
}

func (h *harness) run(ctx context.Context) (err error) {
	if err := os.MkdirAll(filepath.Join(h.outDir, "logs"), 0o755); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	if h.dataDir, err = os.MkdirTemp("", "vitals-bench-"); err != nil {
		return fmt.Errorf("data dir: %w", err)
	}
	defer os.RemoveAll(h.dataDir)
	if _, err := keyring.GenerateMasterFile(h.masterKeyFile()); err != nil {
		return err
	}
	if h.codec, err = schemas.New(); err != nil {
		return err
	}
	h.progress.Stage("starting the broker and the receiver")
	if len(h.cfg.KafkaBrokers) == 0 {
		emb, err := broker.StartEmbedded("127.0.0.1:0", "", slog.New(slog.NewTextHandler(io.Discard, nil)))
		if err != nil {
			return err
		}
		defer emb.Close()
		h.brokers = emb.Addrs()
		h.report.Settings.Broker = "kfake in the harness process (in memory, TCP " + strings.Join(h.brokers, ",") + ")"
	} else {
		h.brokers = h.cfg.KafkaBrokers
		h.report.Settings.Broker = "external Kafka " + strings.Join(h.brokers, ",")
	}
	if h.kcl, err = kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.MaxBufferedRecords(1<<20)); err != nil {
		return fmt.Errorf("kafka client: %w", err)
	}
	defer h.kcl.Close()
	h.adm = kadm.NewClient(h.kcl)
	pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err = h.kcl.Ping(pctx)
	cancel()
	if err != nil {
		return fmt.Errorf("kafka %v unreachable: %w", h.brokers, err)
	}
	if h.recv, err = startReceiver(); err != nil {
		return err
	}
	defer h.recv.close()
	if h.apiPort, err = freePort(); err != nil {
		return err
	}
	h.stream = newStream(time.Now())
	h.report.note("rate limits: every class set to 1e8 requests an hour with a burst of 1e8 (--rate-limit %s): the limiter runs on every call but never binds", strings.Join(benchRateLimits, ","))
	h.report.note("each stage runs as its own vitals process against the same broker; the load generator, the receiver and (by default) the kfake broker run in the harness process, all on the same %d CPUs", h.report.Machine.CPUs)

	base := &baselines{} // every stage's figures are printed beside them
	if err := h.measureBaselines(ctx, base); err != nil {
		return fmt.Errorf("baseline: %w", err)
	}
	if h.has(StageIngest) || h.has(StageDispatcher) || h.has(StageE2E) {
		if err := h.runIngest(ctx, base); err != nil {
			return fmt.Errorf("ingest: %w", err)
		}
	}
	if h.has(StageProcessor) {
		if err := h.runProcessor(ctx, base); err != nil {
			return fmt.Errorf("processor: %w", err)
		}
	}
	if h.has(StageDispatcher) {
		if err := h.runDispatcher(ctx, base); err != nil {
			return fmt.Errorf("dispatcher: %w", err)
		}
	}
	if h.has(StageE2E) {
		if err := h.runE2E(ctx, base); err != nil {
			return fmt.Errorf("end to end: %w", err)
		}
	}
	return nil
}

func (h *harness) masterKeyFile() string { return filepath.Join(h.dataDir, "master.key") }
