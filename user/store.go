package user

import (
	"cmp"
	"context"
	"fmt"
	"slices"
	"sync"
)

// Store holds the users. User, ByUsername and Users read a local
// materialized view and must be cheap. After PutUser returns nil, reads on
// the same instance must see the write. Values returned are the caller's
// to change. PutUser refuses (ErrExists) a user whose username another
// user id already has, as far as this instance can see.
type Store interface {
	User(id string) (User, bool)
	ByUsername(username string) (User, bool)
	PutUser(ctx context.Context, u User) error
	Users() []User
}

// MemoryStore is a Store held in process memory, for tests and
// single-process setups. Its zero value is ready to use; it is safe for
// concurrent use.
type MemoryStore struct {
	mu    sync.RWMutex
	users map[string]User
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

// User implements Store.
func (m *MemoryStore) User(id string) (User, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	u, ok := m.users[id]
	return u.clone(), ok
}

// ByUsername implements Store.
func (m *MemoryStore) ByUsername(username string) (User, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	for _, u := range m.users {
		if u.Username == username {
			return u.clone(), true
		}
	}
	return User{}, false
}

// PutUser implements Store.
func (m *MemoryStore) PutUser(_ context.Context, u User) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, other := range m.users {
		if other.Username == u.Username && other.ID != u.ID {
			return fmt.Errorf("put user %s: username %q: %w", u.ID, u.Username, ErrExists)
		}
	}
	if m.users == nil {
		m.users = map[string]User{}
	}
	m.users[u.ID] = u.clone()
	return nil
}

// Users implements Store: every user, ordered by id.
func (m *MemoryStore) Users() []User {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]User, 0, len(m.users))
	for _, u := range m.users {
		out = append(out, u.clone())
	}
	slices.SortFunc(out, func(a, b User) int { return cmp.Compare(a.ID, b.ID) })
	return out
}
