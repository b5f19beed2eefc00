// Command crashdisp runs one dispatcher against the given brokers until it
// receives SIGINT or SIGTERM (or is killed). It exists for the dispatcher's
// crash test, which kills it with SIGKILL at random moments under load and
// starts it again; it is never shipped.
//
// Endpoints come from a JSON file (-endpoints, an array of
// endpoint.Endpoint) or from one -url and -secret; the registry is static
// for the life of the process. Private and loopback addresses are allowed:
// the test's receivers listen on 127.0.0.1.
package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/dispatcher"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/schemas"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "crashdisp:", err)
		os.Exit(1)
	}
}

func run() error {
	// Signals are caught from the start: a SIGTERM that arrives while the
	// process is still starting ends it cleanly too.
	ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	brokers := flag.String("brokers", "", "comma-separated Kafka brokers")
	endpointsFile := flag.String("endpoints", "", "JSON file holding an array of endpoints")
	url := flag.String("url", "", "single endpoint URL (instead of -endpoints)")
	secret := flag.String("secret", "", "single endpoint secret (whsec_…)")
	eventTypes := flag.String("event-types", "*", "single endpoint's comma-separated event types")
	group := flag.String("group", dispatcher.DefaultGroup, "consumer group of the derived topics")
	retryGroup := flag.String("retry-group", dispatcher.DefaultRetryGroup, "consumer group of the retry tiers")
	schedule := flag.String("retry-schedule", "200ms,500ms,1s,2s,2s,2s", "comma-separated waits after the first attempt")
	jitter := flag.Float64("retry-jitter", dispatcher.DefaultRetryJitter, "relative jitter of each wait, in [0, 1)")
	breakerFailures := flag.Uint("breaker-failures", 5, "consecutive failures that open an endpoint's breaker")
	breakerOpen := flag.Duration("breaker-open", 30*time.Second, "how long a breaker stays open")
	session := flag.Duration("session-timeout", 6*time.Second, "group session timeout")
	clientID := flag.String("client-id", "crashdisp", "Kafka client id of every client (shows in the groups' member list)")
	attempts := flag.String("attempts", "", "file to append attempt rows to (JSON lines); empty discards them")
	level := flag.String("log-level", "warn", "log level: debug, info, warn or error")
	flag.Parse()

	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*level)); err != nil {
		return fmt.Errorf("-log-level: %w", err)
	}
	log := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: lvl}))

	eps, err := loadEndpoints(*endpointsFile, *url, *secret, *eventTypes)
	if err != nil {
		return err
	}
	waits, err := parseSchedule(*schedule)
	if err != nil {
		return err
	}
	codec, err := schemas.New()
	if err != nil {
		return err
	}
	opts := []dispatcher.Option{
		dispatcher.WithGroup(*group),
		dispatcher.WithRetryGroup(*retryGroup),
		dispatcher.WithAllowPrivate(true),
		dispatcher.WithRetrySchedule(waits...),
		dispatcher.WithRetryJitter(*jitter),
		dispatcher.WithBreaker(uint32(*breakerFailures), *breakerOpen),
		dispatcher.WithLogger(log),
		dispatcher.WithKafkaOptions(kgo.ClientID(*clientID), kgo.SessionTimeout(*session), kgo.HeartbeatInterval(*session/6),
			kgo.FetchMaxWait(100*time.Millisecond), kgo.WithLogger(kgoLogger{log.With("component", "kgo")})),
	}
	if *attempts != "" {
		f, err := os.OpenFile(*attempts, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
		if err != nil {
			return fmt.Errorf("open attempts file: %w", err)
		}
		defer f.Close()
		opts = append(opts, dispatcher.WithSink(&fileSink{enc: json.NewEncoder(f)}))
	}
	d, err := dispatcher.New(strings.Split(*brokers, ","), codec, eps, opts...)
	if err != nil {
		return err
	}
	return d.Run(ctx)
}

// loadEndpoints reads the endpoints file, or builds the one endpoint of
// url and secret.
func loadEndpoints(file, url, secret, types string) (staticEndpoints, error) {
	if file != "" {
		b, err := os.ReadFile(file)
		if err != nil {
			return nil, fmt.Errorf("read endpoints: %w", err)
		}
		var eps staticEndpoints
		if err := json.Unmarshal(b, &eps); err != nil {
			return nil, fmt.Errorf("parse endpoints %s: %w", file, err)
		}
		return eps, nil
	}
	if url == "" || secret == "" {
		return nil, errors.New("either -endpoints or -url and -secret are required")
	}
	return staticEndpoints{{ID: "ep_crash", URL: url, Secret: secret,
		EventTypes: strings.Split(types, ","), CreatedAt: time.Now().UTC()}}, nil
}

func parseSchedule(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, part := range strings.Split(s, ",") {
		d, err := time.ParseDuration(strings.TrimSpace(part))
		if err != nil {
			return nil, fmt.Errorf("-retry-schedule %q: %w", s, err)
		}
		out = append(out, d)
	}
	return out, nil
}

// staticEndpoints is a fixed endpoint registry (dispatcher.Endpoints).
type staticEndpoints []endpoint.Endpoint

func (s staticEndpoints) Get(id string) (endpoint.Endpoint, bool) {
	for _, e := range s {
		if e.ID == id {
			return e, true
		}
	}
	return endpoint.Endpoint{}, false
}

func (s staticEndpoints) Subscribed(eventType string) []endpoint.Endpoint {
	var out []endpoint.Endpoint
	for _, e := range s {
		if e.Subscribes(eventType) {
			out = append(out, e)
		}
	}
	return out
}

// fileSink appends attempt rows to a file as JSON lines
// (dispatcher.AttemptSink).
type fileSink struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (s *fileSink) Append(_ context.Context, a analytics.WebhookAttempt) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.enc.Encode(a)
}

// kgoLogger is a kgo.Logger writing to a slog logger: kgo's info messages
// (the group lifecycle: joins, syncs, assignments, heartbeat errors) at
// debug level, so -log-level debug shows them next to the dispatcher's own
// records, and its warnings and errors at their own levels.
type kgoLogger struct{ log *slog.Logger }

func (l kgoLogger) Level() kgo.LogLevel {
	ctx := context.Background()
	switch {
	case l.log.Enabled(ctx, slog.LevelDebug):
		return kgo.LogLevelInfo
	case l.log.Enabled(ctx, slog.LevelWarn):
		return kgo.LogLevelWarn
	case l.log.Enabled(ctx, slog.LevelError):
		return kgo.LogLevelError
	}
	return kgo.LogLevelNone
}

func (l kgoLogger) Log(level kgo.LogLevel, msg string, keyvals ...any) {
	lvl := slog.LevelDebug
	switch level {
	case kgo.LogLevelError:
		lvl = slog.LevelError
	case kgo.LogLevelWarn:
		lvl = slog.LevelWarn
	}
	l.log.Log(context.Background(), lvl, msg, keyvals...)
}
