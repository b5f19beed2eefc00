package auth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/ktable"
	"github.com/vitalshq/vitals/topics"
)

// KafkaStore is the ClientStore and KeyStore every API instance shares: the
// compacted topics topics.Clients and topics.SigningKeys, materialized in
// this process. Writes are visible to the writer when they return.
//
// Client secrets are stored only as hashes. Signing keys are PKCS #8; with
// a Sealer (WithKeySealer) the private key is sealed in the topic and
// opened when read. Keys written in the clear before are still read, and
// sealed by Reseal. A key whose private key does not open is logged as an
// error and left out of SigningKeys: it neither signs nor verifies.
type KafkaStore struct {
	clients *ktable.Table[Client]
	keys    *ktable.Table[*keyEntry]
	codec   keyCodec
}

// StoreOption configures a KafkaStore.
type StoreOption func(*keyCodec)

// WithKeySealer seals the signing keys' private keys at rest with s (the
// process keyring). Without it they are stored in the clear, and sealed
// ones are unusable.
func WithKeySealer(s Sealer) StoreOption { return func(c *keyCodec) { c.sealer = s } }

// NewKafkaStore returns a store over clients built from clientOpts, logging
// to logger (nil: slog.Default()).
func NewKafkaStore(clientOpts []kgo.Opt, logger *slog.Logger, opts ...StoreOption) (*KafkaStore, error) {
	if logger == nil {
		logger = slog.Default()
	}
	kc := keyCodec{logger: logger}
	for _, o := range opts {
		o(&kc)
	}
	c, err := ktable.New(topics.Clients, clientOpts, ktable.WithLogger[Client](logger))
	if err != nil {
		return nil, err
	}
	k, err := ktable.New(topics.SigningKeys, clientOpts,
		ktable.WithCodec[*keyEntry](kc), ktable.WithLogger[*keyEntry](logger))
	if err != nil {
		return nil, err
	}
	return &KafkaStore{clients: c, keys: k, codec: kc}, nil
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

// SigningKeys implements KeyStore: every key whose private key opens,
// ordered by kid.
func (s *KafkaStore) SigningKeys() []SigningKey {
	all := s.keys.All()
	out := make([]SigningKey, 0, len(all))
	for _, en := range all {
		if k, err := en.signingKey(s.codec); err == nil {
			out = append(out, k)
		}
	}
	return out
}

// PutSigningKey implements KeyStore.
func (s *KafkaStore) PutSigningKey(ctx context.Context, k SigningKey) error {
	return s.keys.Put(ctx, k.KID, &keyEntry{key: k})
}

// ResealStats counts what one Reseal pass did.
type ResealStats struct {
	Records    int // records read
	Resealed   int // records written again, sealed under the current data key
	Unreadable int // records whose private key does not open; left as they are
}

// Reseal writes again every signing key whose private key is not sealed
// under the Sealer's current data key (after keyring.Keyring.Rotate, or
// stored in the clear before encryption at rest), so that afterwards every
// record carries the current key id. It is what `vitals keys rotate` runs
// for topics.SigningKeys; a second run finds nothing to do. Keys that do
// not open are counted, left as they are, and reported in the error.
// Signing keys never change once written (rotation adds a key, pruning
// deletes one), so rewriting them races with nothing but a prune, which a
// rewrite of a just-deleted key would undo until the next prune.
func (s *KafkaStore) Reseal(ctx context.Context) (ResealStats, error) {
	var st ResealStats
	if s.codec.sealer == nil {
		return st, errors.New("reseal signing keys: the store has no Sealer (auth.WithKeySealer)")
	}
	var errs []error
	kids := s.keys.Keys()
	slices.Sort(kids)
	for _, kid := range kids {
		if err := ctx.Err(); err != nil {
			return st, errors.Join(append(errs, fmt.Errorf("reseal signing keys: %w", err))...)
		}
		en, ok := s.keys.Get(kid)
		if !ok {
			continue // deleted meanwhile
		}
		st.Records++
		k, err := en.signingKey(s.codec)
		if err == nil && k.KID != kid {
			err = fmt.Errorf("signing key record %s holds key %s", kid, k.KID)
		}
		var stale bool
		if err == nil {
			stale, err = s.stale(en)
		}
		if err != nil {
			st.Unreadable++
			errs = append(errs, err)
			continue
		}
		if !stale {
			continue
		}
		if err := s.PutSigningKey(ctx, k); err != nil {
			return st, errors.Join(append(errs, fmt.Errorf("reseal signing key %s: %w", kid, err))...)
		}
		st.Resealed++
	}
	return st, errors.Join(errs...)
}

// stale reports whether en's private key is stored in the clear or sealed
// under another data key than the current one.
func (s *KafkaStore) stale(en *keyEntry) (bool, error) {
	r := en.stored
	if r.SealedPrivateKey == "" {
		return len(r.PrivateKey) > 0, nil
	}
	now, err := s.codec.sealer.Reseal(r.SealedPrivateKey, signingKeyAAD(r.KID))
	if err != nil {
		return false, fmt.Errorf("signing key %s: reseal: %w", r.KID, err)
	}
	return now != r.SealedPrivateKey, nil
}
