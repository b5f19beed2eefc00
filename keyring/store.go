package keyring

import (
	"context"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/ktable"
	"github.com/vitalshq/vitals/topics"
)

// DataKey is a data-encryption key as stored: wrapped by the master key
// named MasterID. The newest by CreatedAt is a Keyring's primary key.
type DataKey struct {
	ID        string    `json:"id"`
	Wrapped   []byte    `json:"wrapped"`
	CreatedAt time.Time `json:"created_at"`
	MasterID  string    `json:"master_id"`
}

// Store keeps the wrapped data keys that every instance shares. Data keys
// are only ever added: removing one makes whatever it sealed unreadable.
type Store interface {
	// DataKeys returns every data key, in no particular order.
	DataKeys() []DataKey
	// PutDataKey stores k; once it returns, DataKeys includes k.
	PutDataKey(ctx context.Context, k DataKey) error
}

// MemoryStore is a Store in process memory, for tests and single-process
// setups. The zero value is ready to use.
type MemoryStore struct {
	mu   sync.Mutex
	keys map[string]DataKey
}

// DataKeys implements Store.
func (s *MemoryStore) DataKeys() []DataKey {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Collect(maps.Values(s.keys))
}

// PutDataKey implements Store.
func (s *MemoryStore) PutDataKey(_ context.Context, k DataKey) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.keys == nil {
		s.keys = map[string]DataKey{}
	}
	s.keys[k.ID] = k
	return nil
}

// KafkaStore is the Store every instance shares: the compacted topic
// topics.Keyring, keyed by data key id, materialized in this process. Puts
// are visible to the writer when they return, and to other instances a
// moment later.
type KafkaStore struct {
	keys *ktable.Table[DataKey]
}

// NewKafkaStore returns a store over a client built from clientOpts (seed
// brokers and the like), logging to logger (nil: slog.Default). Start Run
// and wait for WaitReady before building a Keyring on it.
func NewKafkaStore(clientOpts []kgo.Opt, logger *slog.Logger) (*KafkaStore, error) {
	if logger == nil {
		logger = slog.Default()
	}
	t, err := ktable.New(topics.Keyring, clientOpts, ktable.WithLogger[DataKey](logger))
	if err != nil {
		return nil, err
	}
	return &KafkaStore{keys: t}, nil
}

// Run materializes the topic until ctx is done.
func (s *KafkaStore) Run(ctx context.Context) error { return s.keys.Run(ctx) }

// WaitReady blocks until the topic is caught up or ctx is done.
func (s *KafkaStore) WaitReady(ctx context.Context) error { return s.keys.WaitReady(ctx) }

// DataKeys implements Store.
func (s *KafkaStore) DataKeys() []DataKey { return s.keys.All() }

// PutDataKey implements Store.
func (s *KafkaStore) PutDataKey(ctx context.Context, k DataKey) error {
	return s.keys.Put(ctx, k.ID, k)
}
