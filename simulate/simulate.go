// Package simulate drives Vitals like a customer-success platform would:
// it generates realistic customer journeys (healthy, churning, expanding;
// see package processor/journey) and sends them through the public HTTPS
// API with an OAuth 2.0 client-credentials token, at a chosen rate.
//
// It is a client of the API only: it must never write to Kafka directly.
package simulate

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/journey"
)

// Config says what to simulate and where to send it.
type Config struct {
	APIURL       string       // base URL, e.g. https://127.0.0.1:8443
	TokenURL     string       // OAuth token endpoint
	ClientID     string       //
	ClientSecret string       //
	HTTPClient   *http.Client // transport to trust the API's certificate; nil = default

	Customers int      // number of simulated customers (default 3)
	Journeys  []string // journey names cycled over customers (default all)
	Rate      float64  // events per second; 0 = as fast as the API accepts
	BatchSize int      // events per request (default 50, at most 1000)
	Prefix    string   // customer id prefix (default "cust_sim")
	Start     time.Time
	Logger    *slog.Logger
}

// Stats summarises a simulation.
type Stats struct {
	Customers map[string]string // customer id → journey name
	Events    int               // accepted events
	Requests  int               // successful requests
	Retries   int               // requests retried after a failure
}

// Plan returns the events of cfg's customers in event-time order, and which
// journey each customer follows.
func Plan(cfg Config) ([]event.CustomerEvent, map[string]string, error) {
	cfg = withDefaults(cfg)
	names := cfg.Journeys
	customers := map[string]string{}
	var all []event.CustomerEvent
	for i := range cfg.Customers {
		name := names[i%len(names)]
		fn := journey.ByName(name)
		if fn == nil {
			return nil, nil, fmt.Errorf("unknown journey %q; use %s", name, strings.Join(journey.Names(), ", "))
		}
		id := fmt.Sprintf("%s_%s_%03d", cfg.Prefix, name, i)
		customers[id] = name
		all = append(all, fn(id, cfg.Start)...)
	}
	slices.SortStableFunc(all, func(a, b event.CustomerEvent) int { return a.OccurredAt.Compare(b.OccurredAt) })
	return all, customers, nil
}

func withDefaults(cfg Config) Config {
	if cfg.Customers <= 0 {
		cfg.Customers = 3
	}
	if len(cfg.Journeys) == 0 {
		cfg.Journeys = journey.Names()
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 50
	}
	cfg.BatchSize = min(cfg.BatchSize, 1000)
	if cfg.Prefix == "" {
		cfg.Prefix = "cust_sim"
	}
	if cfg.Start.IsZero() {
		cfg.Start = time.Now().UTC().Add(-61 * 24 * time.Hour).Truncate(24 * time.Hour)
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.Default()
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = http.DefaultClient
	}
	return cfg
}

// Run sends the planned events and returns when all were accepted, ctx is
// done, or the API refused a request for good (4xx).
func Run(ctx context.Context, cfg Config) (Stats, error) {
	cfg = withDefaults(cfg)
	evs, customers, err := Plan(cfg)
	if err != nil {
		return Stats{}, err
	}
	st := Stats{Customers: customers}
	cc := clientcredentials.Config{ClientID: cfg.ClientID, ClientSecret: cfg.ClientSecret, TokenURL: cfg.TokenURL,
		Scopes: []string{"events:write"}, AuthStyle: oauth2.AuthStyleInHeader}
	hc := cc.Client(context.WithValue(ctx, oauth2.HTTPClient, cfg.HTTPClient))
	url := strings.TrimSuffix(cfg.APIURL, "/") + "/v1/events"

	var interval time.Duration
	if cfg.Rate > 0 {
		interval = time.Duration(float64(cfg.BatchSize) / cfg.Rate * float64(time.Second))
	}
	next := time.Now()
	for start := 0; start < len(evs); start += cfg.BatchSize {
		batch := evs[start:min(start+cfg.BatchSize, len(evs))]
		if interval > 0 {
			if err := sleep(ctx, time.Until(next)); err != nil {
				return st, err
			}
			next = next.Add(interval)
		}
		body, err := json.Marshal(Ingest(batch))
		if err != nil {
			return st, err
		}
		retries, err := send(ctx, hc, url, body)
		st.Retries += retries
		if err != nil {
			return st, err
		}
		st.Requests++
		st.Events += len(batch)
		if st.Requests%20 == 0 {
			cfg.Logger.Info("simulate progress", "sent", st.Events, "of", len(evs))
		}
	}
	return st, nil
}

// ErrRejected wraps a 4xx answer: retrying the same request cannot help.
var ErrRejected = errors.New("API rejected the request")

func send(ctx context.Context, hc *http.Client, url string, body []byte) (retries int, err error) {
	backoff := 200 * time.Millisecond
	for {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := hc.Do(req)
		if err == nil {
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
			resp.Body.Close()
			switch {
			case resp.StatusCode == http.StatusAccepted:
				return retries, nil
			case resp.StatusCode >= 400 && resp.StatusCode < 500 && resp.StatusCode != http.StatusTooManyRequests:
				return retries, fmt.Errorf("%w: %s: %s", ErrRejected, resp.Status, msg)
			}
			err = fmt.Errorf("%s: %s", resp.Status, msg)
		}
		if ctx.Err() != nil {
			return retries, ctx.Err()
		}
		retries++
		if retries > 20 {
			return retries, fmt.Errorf("giving up after %d retries: %w", retries, err)
		}
		if serr := sleep(ctx, backoff); serr != nil {
			return retries, serr
		}
		backoff = min(backoff*2, 5*time.Second)
	}
}

func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return nil
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// IngestEvent is the JSON shape of one event in POST /v1/events.
type IngestEvent struct {
	EventID    string        `json:"event_id,omitempty"`
	Type       string        `json:"type"`
	CustomerID string        `json:"customer_id"`
	OccurredAt string        `json:"occurred_at"`
	Data       event.Payload `json:"data"`
}

// Ingest converts events to their ingest JSON shape.
func Ingest(evs []event.CustomerEvent) []IngestEvent {
	out := make([]IngestEvent, len(evs))
	for i, ev := range evs {
		out[i] = IngestEvent{EventID: ev.EventID, Type: ev.Type(), CustomerID: ev.CustomerID,
			OccurredAt: ev.OccurredAt.UTC().Format(time.RFC3339Nano), Data: ev.Data}
	}
	return out
}
