package user

import (
	"context"
	"fmt"
	"log/slog"
	"sync"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/ktable"
	"github.com/vitalshq/vitals/topics"
)

// KafkaStore is the Store every API instance shares: the compacted topic
// topics.Users materialized in this process, with an index by username.
// Writes are visible to the writer when PutUser returns.
//
// Usernames are unique per instance (PutUser checks its view), but two
// instances creating the same username at the same moment can both
// succeed; ByUsername then returns the user created first (ties broken by
// id), the same on every instance.
type KafkaStore struct {
	users *ktable.Table[User]

	mu     sync.RWMutex
	byName map[string]map[string]struct{} // username → user ids
	nameOf map[string]string              // user id → username
}

// NewKafkaStore returns a store over topics.Users using a client built from
// clientOpts (seed brokers and the like); a nil logger means
// slog.Default(). Start Run in a goroutine you own and WaitReady before
// serving reads.
func NewKafkaStore(clientOpts []kgo.Opt, logger *slog.Logger) (*KafkaStore, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &KafkaStore{byName: map[string]map[string]struct{}{}, nameOf: map[string]string{}}
	t, err := ktable.New(topics.Users, clientOpts,
		ktable.WithLogger[User](logger),
		ktable.OnApply(func(id string, u User, deleted bool) { s.index(id, u.Username, deleted) }),
	)
	if err != nil {
		return nil, fmt.Errorf("user store: %w", err)
	}
	s.users = t
	return s, nil
}

// Run materializes the topic until ctx is done.
func (s *KafkaStore) Run(ctx context.Context) error { return s.users.Run(ctx) }

// WaitReady blocks until the topic is caught up or ctx is done.
func (s *KafkaStore) WaitReady(ctx context.Context) error { return s.users.WaitReady(ctx) }

// index records that user id now has username (or is gone).
func (s *KafkaStore) index(id, username string, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.nameOf[id]; ok {
		delete(s.byName[old], id)
		if len(s.byName[old]) == 0 {
			delete(s.byName, old)
		}
		delete(s.nameOf, id)
	}
	if deleted {
		return
	}
	if s.byName[username] == nil {
		s.byName[username] = map[string]struct{}{}
	}
	s.byName[username][id] = struct{}{}
	s.nameOf[id] = username
}

// User implements Store.
func (s *KafkaStore) User(id string) (User, bool) {
	u, ok := s.users.Get(id)
	return u.clone(), ok
}

// ByUsername implements Store. The table is authoritative: an index entry
// whose row no longer has the username is ignored.
func (s *KafkaStore) ByUsername(username string) (User, bool) {
	s.mu.RLock()
	ids := make([]string, 0, len(s.byName[username]))
	for id := range s.byName[username] {
		ids = append(ids, id)
	}
	s.mu.RUnlock()
	var best User
	found := false
	for _, id := range ids {
		u, ok := s.users.Get(id)
		if !ok || u.Username != username {
			continue
		}
		if !found || u.CreatedAt.Before(best.CreatedAt) || (u.CreatedAt.Equal(best.CreatedAt) && u.ID < best.ID) {
			best, found = u, true
		}
	}
	return best.clone(), found
}

// PutUser implements Store.
func (s *KafkaStore) PutUser(ctx context.Context, u User) error {
	if other, ok := s.ByUsername(u.Username); ok && other.ID != u.ID {
		return fmt.Errorf("put user %s: username %q: %w", u.ID, u.Username, ErrExists)
	}
	if err := s.users.Put(ctx, u.ID, u); err != nil {
		return fmt.Errorf("put user %s: %w", u.ID, err)
	}
	// The table applied the record before Put returned, but its OnApply
	// callbacks may not have run yet: index now for read-your-writes.
	s.index(u.ID, u.Username, false)
	return nil
}

// Users implements Store: every user, ordered by id.
func (s *KafkaStore) Users() []User {
	all := s.users.All()
	for i := range all {
		all[i] = all[i].clone()
	}
	return all
}
