package replay

import (
	"context"
	"crypto/rand"
	"encoding/base32"
	"strings"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/ktable"
	"github.com/vitalshq/vitals/topics"
)

// Status is a job's state: pending → running → done or failed.
type Status string

// Job states.
const (
	StatusPending Status = "pending"
	StatusRunning Status = "running"
	StatusDone    Status = "done"
	StatusFailed  Status = "failed"
)

// Finished reports whether s is final.
func (s Status) Finished() bool { return s == StatusDone || s == StatusFailed }

// Job is one replay request and its progress.
type Job struct {
	ID         string `json:"id"` // "rp_…"
	EndpointID string `json:"endpoint_id"`
	// MessageID, when set, replays that one derived event (searched in
	// [Since, Until), by default the Runner's message window).
	MessageID string    `json:"message_id,omitempty"`
	Since     time.Time `json:"since,omitzero"`
	Until     time.Time `json:"until,omitzero"`
	// FailedOnly replays only deliveries to the endpoint that were
	// dead-lettered (topics.DLQ) in [Since, Until); otherwise every derived
	// event in the range that the endpoint subscribes to.
	FailedOnly bool `json:"failed_only,omitempty"`

	Status    Status    `json:"status"`
	Scanned   int64     `json:"scanned"` // records read
	Queued    int64     `json:"queued"`  // tasks queued for delivery
	Error     string    `json:"error,omitempty"`
	CreatedAt time.Time `json:"created_at"`
	UpdatedAt time.Time `json:"updated_at,omitzero"`
}

// NewID returns a new job id, "rp_" and 26 base32 characters.
func NewID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return "rp_" + strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// Store is the job registry: topics.Replays materialized in this process.
// The API writes new jobs and reads progress; the Runner writes progress.
type Store struct {
	table *ktable.Table[Job]
}

// NewStore returns a store over a client built from clientOpts. Run must be
// started before reads are meaningful.
func NewStore(clientOpts []kgo.Opt, opts ...ktable.Option[Job]) (*Store, error) {
	t, err := ktable.New[Job](topics.Replays, clientOpts, opts...)
	if err != nil {
		return nil, err
	}
	return &Store{table: t}, nil
}

// Run materializes the topic until ctx is done.
func (s *Store) Run(ctx context.Context) error { return s.table.Run(ctx) }

// WaitReady blocks until the store caught up with the topic.
func (s *Store) WaitReady(ctx context.Context) error { return s.table.WaitReady(ctx) }

// Put creates or replaces j; it returns once j is visible here.
func (s *Store) Put(ctx context.Context, j Job) error { return s.table.Put(ctx, j.ID, j) }

// Get returns the job with the given id.
func (s *Store) Get(id string) (Job, bool) { return s.table.Get(id) }
