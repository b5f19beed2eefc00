package auth

import (
	"cmp"
	"context"
	"slices"
	"sync"
)

// ClientStore holds the registered OAuth clients. Client and Clients read a
// local materialized view and must be cheap: Client runs on every token
// request and every authenticated API call. After PutClient returns nil,
// Client on the same instance must see the write.
type ClientStore interface {
	Client(id string) (Client, bool)
	PutClient(ctx context.Context, c Client) error
	Clients() []Client
}

// KeyStore holds the token signing keys. SigningKeys reads a local
// materialized view and runs on every token issued and verified. After
// PutSigningKey returns nil, SigningKeys on the same instance must include
// the key.
type KeyStore interface {
	SigningKeys() []SigningKey
	PutSigningKey(ctx context.Context, k SigningKey) error
}

// MemoryStore is a ClientStore and KeyStore held in process memory, for
// tests and single-process setups. Its zero value is ready to use; it is
// safe for concurrent use.
type MemoryStore struct {
	mu      sync.RWMutex
	clients map[string]Client
	keys    map[string]SigningKey
}

// NewMemoryStore returns an empty MemoryStore.
func NewMemoryStore() *MemoryStore { return &MemoryStore{} }

// Client returns the client with the given id.
func (m *MemoryStore) Client(id string) (Client, bool) {
	m.mu.RLock()
	defer m.mu.RUnlock()
	c, ok := m.clients[id]
	c.Scopes = slices.Clone(c.Scopes)
	return c, ok
}

// PutClient adds or replaces c.
func (m *MemoryStore) PutClient(_ context.Context, c Client) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.clients == nil {
		m.clients = map[string]Client{}
	}
	c.Scopes = slices.Clone(c.Scopes)
	m.clients[c.ID] = c
	return nil
}

// Clients returns every client, ordered by id.
func (m *MemoryStore) Clients() []Client {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]Client, 0, len(m.clients))
	for _, c := range m.clients {
		c.Scopes = slices.Clone(c.Scopes)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Client) int { return cmp.Compare(a.ID, b.ID) })
	return out
}

// SigningKeys returns every signing key, oldest first.
func (m *MemoryStore) SigningKeys() []SigningKey {
	m.mu.RLock()
	defer m.mu.RUnlock()
	out := make([]SigningKey, 0, len(m.keys))
	for _, k := range m.keys {
		k.PrivateKey = slices.Clone(k.PrivateKey)
		out = append(out, k)
	}
	slices.SortFunc(out, func(a, b SigningKey) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.KID, b.KID))
	})
	return out
}

// PutSigningKey adds or replaces k.
func (m *MemoryStore) PutSigningKey(_ context.Context, k SigningKey) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.keys == nil {
		m.keys = map[string]SigningKey{}
	}
	k.PrivateKey = slices.Clone(k.PrivateKey)
	m.keys[k.KID] = k
	return nil
}
