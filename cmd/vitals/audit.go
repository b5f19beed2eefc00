package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/audit"
	"github.com/vitalshq/vitals/config"
)

const auditUsage = `Usage: vitals audit <subcommand> [flags]

Subcommands:
  verify   check the hash chains of the audit log in ClickHouse (api_audit)

Run 'vitals audit verify -h' for its flags.
`

const auditVerifyHelp = `Usage: vitals audit verify [--since 24h] --clickhouse-addr HOST:PORT [flags]

Reads the audit log from ClickHouse table api_audit and checks every chain
(one per API process start): records numbered without gaps, each carrying
the hash of the one before, each hash recomputing from the record's
fields. Prints one line per chain, then every problem found with its chain
and sequence number, and exits 1 when there is any.

--since limits the check to records since then (a duration back from now,
e.g. 24h, or an RFC 3339 time); the record just before each chain's first
one in the window anchors it.

`

// runAudit is `vitals audit`: the API audit log.
func runAudit(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return errUsage
	}
	switch args[0] {
	case "verify":
		return runAuditVerify(ctx, args[1:], stdout, stderr)
	case "-h", "-help", "--help", "help":
		fmt.Fprint(stderr, auditUsage)
		return flag.ErrHelp
	}
	fmt.Fprintf(stderr, "vitals audit: unknown subcommand %q\n\n%s", args[0], auditUsage)
	return errUsage
}

// runAuditVerify is `vitals audit verify`.
func runAuditVerify(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	cfg := config.Default()
	fs := flag.NewFlagSet("vitals audit verify", flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprint(stderr, auditVerifyHelp)
		fs.PrintDefaults()
	}
	cfg.Register(fs, config.Common, config.Analytics)
	var sinceFlag string
	fs.StringVar(&sinceFlag, "since", "", "check records since then: a duration back from now (24h) or an RFC 3339 time (default: the whole log)")
	rest, err := config.Parse(fs, args, os.Getenv)
	if err != nil {
		if err == flag.ErrHelp {
			return err
		}
		return fmt.Errorf("%w: %v", errUsage, err)
	}
	if len(rest) > 0 {
		return fmt.Errorf("%w: unexpected arguments %q", errUsage, rest)
	}
	since, err := parseSince(sinceFlag, time.Now())
	if err != nil {
		return fmt.Errorf("%w: --since: %v", errUsage, err)
	}
	if cfg.ClickHouseAddr == "" {
		return fmt.Errorf("%w: --clickhouse-addr (or %s) is required", errUsage, config.EnvName("clickhouse-addr"))
	}
	log, err := newLogger(stderr, cfg.LogFormat, cfg.LogLevel)
	if err != nil {
		return err
	}
	store, err := analytics.NewAuditStore(cfg.ClickHouseAddr,
		analytics.WithDatabase(cfg.ClickHouseDatabase),
		analytics.WithAuth(cfg.ClickHouseUser, cfg.ClickHousePassword),
		analytics.WithTLS(analytics.TLS{Enabled: cfg.ClickHouseTLS, CAFile: cfg.ClickHouseTLSCA, ServerName: cfg.ClickHouseTLSServerName}),
		analytics.WithLogger(log.With("component", "analytics")))
	if err != nil {
		return err
	}
	defer store.Close()

	rep, err := audit.Verify(ctx, store, since)
	if err != nil {
		return err
	}
	if err := printAuditReport(stdout, rep); err != nil {
		return err
	}
	if !rep.OK() {
		return fmt.Errorf("%d problems in the audit log", len(rep.Problems))
	}
	return nil
}

// parseSince reads --since: empty (the whole log), a duration back from
// now, or an RFC 3339 time.
func parseSince(s string, now time.Time) (time.Time, error) {
	if s = strings.TrimSpace(s); s == "" {
		return time.Time{}, nil
	}
	if d, err := time.ParseDuration(s); err == nil {
		if d <= 0 {
			return time.Time{}, fmt.Errorf("%q: the duration must be positive", s)
		}
		return now.Add(-d), nil
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		return time.Time{}, fmt.Errorf("%q is neither a duration (24h) nor an RFC 3339 time", s)
	}
	return t, nil
}

// printAuditReport writes the per-chain table, the problems and a summary
// line.
func printAuditReport(w io.Writer, rep audit.Report) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "CHAIN\tFIRST SEQ\tLAST SEQ\tRECORDS\tFROM\tTO\tPROBLEMS")
	for _, c := range rep.Chains {
		fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%s\t%s\t%d\n", c.Instance, c.FirstSeq, c.LastSeq, c.Records,
			c.From.UTC().Format(time.RFC3339), c.To.UTC().Format(time.RFC3339), c.Problems)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(rep.Problems) > 0 {
		fmt.Fprintln(w)
		tw = tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "CHAIN\tSEQ\tPROBLEM\tDETAIL")
		for _, p := range rep.Problems {
			fmt.Fprintf(tw, "%s\t%d\t%s\t%s\n", p.Instance, p.Seq, p.Kind, p.Detail)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	window := "the whole log"
	if !rep.Since.IsZero() {
		window = "since " + rep.Since.UTC().Format(time.RFC3339)
	}
	verdict := "OK"
	if !rep.OK() {
		verdict = "FAILED"
	}
	_, err := fmt.Fprintf(w, "\n%s: %d chains, %d records (%d duplicate copies), %d problems, %s\n",
		verdict, len(rep.Chains), rep.Records, rep.Duplicates, len(rep.Problems), window)
	return err
}
