// Command vitals runs the Vitals customer-signal pipeline. Each subcommand
// is a thin wiring of the packages that do the work:
//
//	vitals run         all-in-one: embedded Kafka (or --kafka-brokers), API, processor, dispatcher
//	vitals api         the HTTPS API alone, against external Kafka
//	vitals processor   the processor alone (consumer group; run several)
//	vitals dispatcher  the webhook dispatcher alone (consumer group; run several)
//	vitals simulate    send realistic customer journeys through the API
//	vitals listen      a local webhook receiver that verifies signatures
//	vitals admin       sign in as an administrator; clients, users, keys, rate limits
//	vitals analytics   delivery, event, API and security reports from ClickHouse
//	vitals keys        re-encrypt stored secrets under a new data key (keys rotate)
//	vitals audit       check the audit log's hash chains (audit verify)
//	vitals bench       the end-to-end load harness (see docs/PERFORMANCE.md)
//
// Settings come from flags, VITALS_* environment variables and a YAML file
// (--config); see package config and README.md.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/mattn/go-isatty"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdout, stderr io.Writer) error
}

func commands() []command {
	return []command{
		{"run", "all-in-one pipeline: embedded Kafka (or --kafka-brokers), API, processor, dispatcher", runAll},
		{"api", "the HTTPS API alone, against an external Kafka cluster", runAPI},
		{"processor", "the processor alone, against an external Kafka cluster", runProcessor},
		{"dispatcher", "the webhook dispatcher alone, against an external Kafka cluster", runDispatcher},
		{"simulate", "send realistic customer journeys through the API", runSimulate},
		{"listen", "a local webhook receiver that verifies Standard Webhooks signatures", runListen},
		{"keys", "data-encryption keys of secrets at rest: `keys rotate` re-encrypts them under a new key", runKeys},
		{"admin", "sign in as an administrator; manage OAuth clients, users and signing keys", runAdmin},
		{"analytics", "delivery, event, API and security reports from ClickHouse", runAnalytics},
		{"audit", "the API audit log: `audit verify` checks its hash chains in ClickHouse", runAudit},
		{"bench", "end-to-end load harness: each stage's throughput, latency and cost beside same-run baselines", runBench},
		{"version", "print the version", func(_ context.Context, _ []string, stdout, _ io.Writer) error {
			_, err := fmt.Fprintln(stdout, "vitals", version)
			return err
		}},
	}
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	os.Exit(Main(ctx, os.Args[1:], os.Stdout, os.Stderr))
}

// Main runs the subcommand named by args[0] and returns the exit code.
func Main(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stderr)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdout, stderr)
			switch {
			case err == nil, errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			default:
				fmt.Fprintf(stderr, "vitals %s: %v\n", c.name, err)
				return 1
			}
		}
	}
	fmt.Fprintf(stderr, "vitals: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

var errUsage = errors.New("usage")

func usage(w io.Writer) {
	fmt.Fprintln(w, "Vitals — customer-signal pipeline with secure webhook delivery.")
	fmt.Fprintln(w, "\nUsage: vitals <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-11s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'vitals <command> -h' for its flags. Every flag also reads VITALS_<FLAG_NAME> and the YAML file given by --config.")
}

// newLogger returns the process logger: text on a terminal, JSON otherwise
// (or as --log-format says).
func newLogger(w io.Writer, format, level string) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: use debug, info, warn or error", level)
	}
	opts := &slog.HandlerOptions{Level: lv}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	case "auto", "":
		if f, ok := w.(*os.File); ok && isatty.IsTerminal(f.Fd()) {
			return slog.New(slog.NewTextHandler(w, opts)), nil
		}
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: use auto, text or json", format)
}
