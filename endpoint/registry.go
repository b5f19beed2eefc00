package endpoint

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/ktable"
	"github.com/vitalshq/vitals/topics"
)

// Registry is the endpoint registry: the compacted topic topics.Endpoints
// materialized in this process. Every API and dispatcher instance runs one,
// so a change made through any API instance reaches every dispatcher.
//
// With a Sealer (WithSealer), the secret fields (Secret, PreviousSecret,
// SigningKeyEd25519) are sealed in the topic and opened when read; records
// written in the clear before are still read, and sealed when written
// again. A record whose secrets do not open (tampered with, moved from
// another record, sealed under an unknown key, or sealed when this
// registry has no Sealer) is logged as an error and is not handed out: Get
// does not find it and it receives no deliveries.
type Registry struct {
	table *ktable.Table[*entry]
	codec codec
}

// Option configures a Registry.
type Option func(*registryConfig)

// registryConfig is what the Options of NewRegistry set.
type registryConfig struct {
	sealer Sealer
	logger *slog.Logger
}

// WithSealer seals the secret fields at rest with s (the process keyring).
// Without it they are stored in the clear, and sealed records are unusable.
func WithSealer(s Sealer) Option { return func(c *registryConfig) { c.sealer = s } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *registryConfig) { c.logger = l } }

// NewRegistry returns a registry over a client built from clientOpts. Run
// must be started before reads are meaningful; Ready tells when.
func NewRegistry(clientOpts []kgo.Opt, opts ...Option) (*Registry, error) {
	cfg := registryConfig{logger: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	c := codec{sealer: cfg.sealer, logger: cfg.logger}
	t, err := ktable.New(topics.Endpoints, clientOpts,
		ktable.WithCodec[*entry](c), ktable.WithLogger[*entry](cfg.logger))
	if err != nil {
		return nil, err
	}
	return &Registry{table: t, codec: c}, nil
}

// Run materializes the topic until ctx is done.
func (r *Registry) Run(ctx context.Context) error { return r.table.Run(ctx) }

// WaitReady blocks until the registry caught up with the topic.
func (r *Registry) WaitReady(ctx context.Context) error { return r.table.WaitReady(ctx) }

// Ready reports whether the registry caught up with the topic.
func (r *Registry) Ready() bool {
	select {
	case <-r.table.Ready():
		return true
	default:
		return false
	}
}

// Put creates or replaces e; it returns once e is visible in this instance.
func (r *Registry) Put(ctx context.Context, e Endpoint) error {
	return r.table.Put(ctx, e.ID, &entry{ep: e})
}

// Delete removes the endpoint with the given id.
func (r *Registry) Delete(ctx context.Context, id string) error { return r.table.Delete(ctx, id) }

// ErrNotFound means no endpoint has the given id.
var ErrNotFound = errors.New("endpoint not found")

// Disable marks the endpoint disabled with reason (e.g. "410 Gone"), so no
// instance delivers to it any more; it returns once the change is stored
// and visible here (every other instance applies it within about a second).
// Disabling an already disabled endpoint keeps its first reason and time.
// Like every registry write it is last-writer-wins: a concurrent PATCH of
// the same endpoint may overwrite it.
func (r *Registry) Disable(ctx context.Context, endpointID, reason string) error {
	e, ok := r.Get(endpointID)
	if !ok {
		return fmt.Errorf("disable %s: %w", endpointID, ErrNotFound)
	}
	if e.Disabled {
		return nil
	}
	now := time.Now().UTC()
	e.Disabled, e.DisabledReason, e.DisabledAt, e.UpdatedAt = true, reason, now, now
	if err := r.Put(ctx, e); err != nil {
		return fmt.Errorf("disable %s: %w", endpointID, err)
	}
	return nil
}

// Get returns the endpoint with the given id, with its secrets in the
// clear. An endpoint whose secrets do not open is not found.
func (r *Registry) Get(id string) (Endpoint, bool) {
	en, ok := r.table.Get(id)
	if !ok {
		return Endpoint{}, false
	}
	e, err := en.endpoint(r.codec)
	if err != nil || e.ID != id {
		return Endpoint{}, false
	}
	return e, true
}

// List returns every usable endpoint, ordered by id.
func (r *Registry) List() []Endpoint {
	all := r.table.All()
	out := make([]Endpoint, 0, len(all))
	for _, en := range all {
		if e, err := en.endpoint(r.codec); err == nil {
			out = append(out, e)
		}
	}
	return out
}

// Subscribed returns the enabled, usable endpoints that receive eventType.
func (r *Registry) Subscribed(eventType string) []Endpoint {
	var out []Endpoint
	for _, en := range r.table.All() {
		if e, err := en.endpoint(r.codec); err == nil && e.Subscribes(eventType) {
			out = append(out, e)
		}
	}
	return out
}

// NewID returns a new endpoint id, "ep_" and 26 base32 characters.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "ep_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}
