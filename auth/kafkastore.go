package auth

import (
	"context"
	"errors"
	"log/slog"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/ktable"
	"github.com/vitalshq/vitals/topics"
)

// KafkaStore is the ClientStore and KeyStore every API instance shares: the
// compacted topics topics.Clients and topics.SigningKeys, materialized in
// this process. Writes are visible to the writer when they return.
//
// Client secrets are stored only as hashes. Signing keys are stored as
// PKCS #8 in the topic; sealing them with the master key is issue [4/9]'s
// keyring, through ktable.WithCodec.
type KafkaStore struct {
	clients *ktable.Table[Client]
	keys    *ktable.Table[SigningKey]
}

// NewKafkaStore returns a store over clients built from clientOpts.
func NewKafkaStore(clientOpts []kgo.Opt, logger *slog.Logger) (*KafkaStore, error) {
	c, err := ktable.New(topics.Clients, clientOpts, ktable.WithLogger[Client](logger))
	if err != nil {
		return nil, err
	}
	k, err := ktable.New(topics.SigningKeys, clientOpts, ktable.WithLogger[SigningKey](logger))
	if err != nil {
		return nil, err
	}
	return &KafkaStore{clients: c, keys: k}, nil
}

// Run materializes both topics until ctx is done.
func (s *KafkaStore) Run(ctx context.Context) error {
	errc := make(chan error, 2)
	go func() { errc <- s.clients.Run(ctx) }()
	go func() { errc <- s.keys.Run(ctx) }()
	return errors.Join(<-errc, <-errc)
}

// WaitReady blocks until both topics are caught up.
func (s *KafkaStore) WaitReady(ctx context.Context) error {
	return errors.Join(s.clients.WaitReady(ctx), s.keys.WaitReady(ctx))
}

// Client implements ClientStore.
func (s *KafkaStore) Client(id string) (Client, bool) { return s.clients.Get(id) }

// PutClient implements ClientStore.
func (s *KafkaStore) PutClient(ctx context.Context, c Client) error {
	return s.clients.Put(ctx, c.ID, c)
}

// Clients implements ClientStore.
func (s *KafkaStore) Clients() []Client { return s.clients.All() }

// SigningKeys implements KeyStore.
func (s *KafkaStore) SigningKeys() []SigningKey { return s.keys.All() }

// PutSigningKey implements KeyStore.
func (s *KafkaStore) PutSigningKey(ctx context.Context, k SigningKey) error {
	return s.keys.Put(ctx, k.KID, k)
}
