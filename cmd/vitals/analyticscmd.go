package main

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/vitalshq/vitals/config"
)

// analyticsColumns are the table columns of each report, in order.
var analyticsColumns = map[string][]string{
	"endpoints":     {"endpoint_id", "url_host", "attempts", "delivered", "success_rate", "p50_ms", "p95_ms", "p99_ms", "retries", "dead_lettered", "circuit_open"},
	"errors":        {"endpoint_id", "error_class", "attempts"},
	"deliveries":    {"time", "endpoint_id", "attempts", "delivered", "failed", "p95_ms"},
	"slowest":       {"endpoint_id", "sent", "p50_ms", "p95_ms", "p99_ms"},
	"events":        {"time", "event_type", "reason", "events"},
	"recent-events": {"time", "event_type", "customer_id", "reason"},
	"api":           {"client_id", "method", "route", "status", "calls", "denied", "p50_ms", "p95_ms"},
	"rate-limits":   {"client_id", "route", "class", "rejections", "first", "last"},
	"security":      {"category", "reason", "events", "clients", "source_ips", "first", "last"},
}

const analyticsUsage = `usage: vitals analytics <report> [--since 1h] [--until …] [--step 1m] [--limit N] [--json]

reports: endpoints (success rate, p50/p95/p99 per endpoint), errors (error classes),
deliveries (per-minute series), slowest (endpoints by p95), events (derived events by type
and reason), recent-events, api (calls by client/route/status), rate-limits (429s),
security (denials, failed logins, MFA and signature failures)`

// runAnalytics is `vitals analytics <report>`: the API's analytics reports
// as an aligned table or JSON, with the credentials of `vitals run`.
func runAnalytics(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || analyticsColumns[args[0]] == nil {
		fmt.Fprintln(stderr, analyticsUsage)
		return errUsage
	}
	report, args := args[0], args[1:]
	var (
		cf                                  clientFlags
		since, until, step, limit, endpoint string
		eventType, client                   string
		asJSON                              bool
	)
	fs := flag.NewFlagSet("vitals analytics "+report, flag.ContinueOnError)
	fs.SetOutput(stderr)
	cf.register(fs)
	fs.StringVar(&since, "since", "1h", "start: a duration back from now or RFC 3339")
	fs.StringVar(&until, "until", "", "end (default now)")
	fs.StringVar(&step, "step", "", "bucket size of series (deliveries, events), at least 1m")
	fs.StringVar(&limit, "limit", "", "rows at most")
	fs.StringVar(&endpoint, "endpoint-id", "", "one endpoint only")
	fs.StringVar(&eventType, "event-type", "", "one derived event type only")
	fs.StringVar(&client, "client-id", "", "one API client only")
	fs.BoolVar(&asJSON, "json", false, "print JSON instead of a table")
	if _, err := config.Parse(fs, args, os.Getenv); err != nil {
		return err
	}
	cr, hc, err := cf.load()
	if err != nil {
		return err
	}
	cc := clientcredentials.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, TokenURL: cr.TokenURL,
		Scopes: []string{"analytics:read"}, AuthStyle: oauth2.AuthStyleInHeader}
	client2 := cc.Client(context.WithValue(ctx, oauth2.HTTPClient, hc))
	q := url.Values{}
	for k, v := range map[string]string{"since": since, "until": until, "step": step, "limit": limit,
		"endpoint_id": endpoint, "event_type": eventType, "client_id": client} {
		if v != "" {
			q.Set(k, v)
		}
	}
	resp, err := client2.Get(strings.TrimSuffix(cr.APIURL, "/") + "/v1/analytics/" + report + "?" + q.Encode())
	if err != nil {
		return fmt.Errorf("analytics %s: %w", report, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 16<<20))
	if resp.StatusCode != http.StatusOK {
		var p struct{ Detail string }
		_ = json.Unmarshal(b, &p)
		return fmt.Errorf("analytics %s: %s: %s", report, resp.Status, p.Detail)
	}
	var out struct{ Rows []map[string]any }
	if err := json.Unmarshal(b, &out); err != nil {
		return fmt.Errorf("analytics %s: %w", report, err)
	}
	if out.Rows == nil {
		out.Rows = []map[string]any{}
	}
	return adminFlags{output: map[bool]string{true: "json", false: "table"}[asJSON]}.print(stdout, out.Rows, analyticsColumns[report]...)
}
