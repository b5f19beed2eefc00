package endpoint

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/ktable"
	"github.com/vitalshq/vitals/topics"
)

// Registry is the endpoint registry: the compacted topic topics.Endpoints
// materialized in this process. Every API and dispatcher instance runs one,
// so a change made through any API instance reaches every dispatcher.
type Registry struct {
	table *ktable.Table[Endpoint]
}

// NewRegistry returns a registry over a client built from clientOpts. Run
// must be started before reads are meaningful; Ready tells when.
func NewRegistry(clientOpts []kgo.Opt, opts ...ktable.Option[Endpoint]) (*Registry, error) {
	t, err := ktable.New[Endpoint](topics.Endpoints, clientOpts, opts...)
	if err != nil {
		return nil, err
	}
	return &Registry{table: t}, nil
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
func (r *Registry) Put(ctx context.Context, e Endpoint) error { return r.table.Put(ctx, e.ID, e) }

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
	e, ok := r.table.Get(endpointID)
	if !ok {
		return fmt.Errorf("disable %s: %w", endpointID, ErrNotFound)
	}
	if e.Disabled {
		return nil
	}
	now := time.Now().UTC()
	e.Disabled, e.DisabledReason, e.DisabledAt, e.UpdatedAt = true, reason, now, now
	if err := r.table.Put(ctx, e.ID, e); err != nil {
		return fmt.Errorf("disable %s: %w", endpointID, err)
	}
	return nil
}

// Get returns the endpoint with the given id.
func (r *Registry) Get(id string) (Endpoint, bool) { return r.table.Get(id) }

// List returns every endpoint, ordered by id.
func (r *Registry) List() []Endpoint { return r.table.All() }

// Subscribed returns the enabled endpoints that receive eventType.
func (r *Registry) Subscribed(eventType string) []Endpoint {
	var out []Endpoint
	for _, e := range r.table.All() {
		if e.Subscribes(eventType) {
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
