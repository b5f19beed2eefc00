package auth

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// DefaultKeyRotation is how often RunKeyRotation replaces the signing key.
const DefaultKeyRotation = 30 * 24 * time.Hour

// KeyRetirer is a KeyStore that can delete keys: PruneSigningKeys needs it.
type KeyRetirer interface {
	DeleteSigningKey(ctx context.Context, kid string) error
}

// KeyStatus describes a stored signing key for operators.
type KeyStatus struct {
	KID       string    `json:"kid"`
	Algorithm string    `json:"alg"`
	CreatedAt time.Time `json:"created_at"`
	// Active: this key signs new tokens. Otherwise it was retired at
	// RetiredAt (when a newer key was created) and stays in the JWKS until
	// RemoveAfter, when every token it signed has expired.
	Active      bool      `json:"active"`
	RetiredAt   time.Time `json:"retired_at,omitzero"`
	RemoveAfter time.Time `json:"remove_after,omitzero"`
}

// SigningKeyStatus lists the stored keys, newest first.
func (s *Server) SigningKeyStatus() []KeyStatus {
	keys := s.keys.SigningKeys()
	slices.SortFunc(keys, func(a, b SigningKey) int { return b.CreatedAt.Compare(a.CreatedAt) })
	out := make([]KeyStatus, len(keys))
	for i, k := range keys {
		st := KeyStatus{KID: k.KID, Algorithm: k.Algorithm, CreatedAt: k.CreatedAt, Active: i == 0}
		if i > 0 {
			st.RetiredAt = keys[i-1].CreatedAt
			st.RemoveAfter = st.RetiredAt.Add(s.ttl + ClockSkew)
		}
		out[i] = st
	}
	return out
}

// RotateSigningKey creates a signing key of alg (AlgES256 when empty) that
// signs every token from now on. Older keys keep verifying the tokens they
// signed and stay in the JWKS until those have expired (PruneSigningKeys).
func (s *Server) RotateSigningKey(ctx context.Context, alg string) (SigningKey, error) {
	if alg == "" {
		alg = AlgES256
	}
	k, err := NewSigningKeyFor(alg)
	if err != nil {
		return SigningKey{}, err
	}
	k.CreatedAt = s.now().UTC()
	if err := s.keys.PutSigningKey(ctx, k); err != nil {
		return SigningKey{}, fmt.Errorf("rotate signing key: store %s: %w", k.KID, err)
	}
	s.log.InfoContext(ctx, "auth: rotated token signing key", "kid", k.KID, "alg", k.Algorithm)
	return k, nil
}

// PruneSigningKeys deletes retired keys whose tokens have all expired
// (retired longer than the token TTL plus ClockSkew ago) and returns their
// kids. The active key is never deleted.
func (s *Server) PruneSigningKeys(ctx context.Context) ([]string, error) {
	del, ok := s.keys.(KeyRetirer)
	if !ok {
		return nil, nil
	}
	now := s.now()
	var gone []string
	for _, st := range s.SigningKeyStatus() {
		if st.Active || now.Before(st.RemoveAfter) {
			continue
		}
		if err := del.DeleteSigningKey(ctx, st.KID); err != nil {
			return gone, fmt.Errorf("prune signing key %s: %w", st.KID, err)
		}
		s.log.InfoContext(ctx, "auth: removed retired signing key from the JWKS", "kid", st.KID)
		gone = append(gone, st.KID)
	}
	return gone, nil
}

// RunKeyRotation rotates the signing key once the active one is older than
// every, and prunes expired retired keys, checking every tick (an hour
// when zero) until ctx is done. Instances running it together may each
// rotate once at the same moment: harmless, the newest key signs.
func (s *Server) RunKeyRotation(ctx context.Context, every, tick time.Duration) error {
	if every <= 0 {
		return nil
	}
	if tick <= 0 {
		tick = time.Hour
	}
	t := time.NewTicker(tick)
	defer t.Stop()
	for {
		if st := s.SigningKeyStatus(); len(st) > 0 && s.now().Sub(st[0].CreatedAt) >= every {
			if _, err := s.RotateSigningKey(ctx, st[0].Algorithm); err != nil {
				s.log.ErrorContext(ctx, "auth: scheduled key rotation failed; retrying at the next tick", "err", err)
			}
		}
		if _, err := s.PruneSigningKeys(ctx); err != nil {
			s.log.ErrorContext(ctx, "auth: pruning retired keys failed", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// DeleteSigningKey removes a key from the MemoryStore.
func (m *MemoryStore) DeleteSigningKey(_ context.Context, kid string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	delete(m.keys, kid)
	return nil
}

// DeleteSigningKey removes a key from the topic (a tombstone).
func (s *KafkaStore) DeleteSigningKey(ctx context.Context, kid string) error {
	return s.keys.Delete(ctx, kid)
}
