package oauth

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"sync"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"
	"github.com/ory/fosite/handler/pkce"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/ktable"
	"github.com/vitalshq/vitals/topics"
)

// Kinds of stored grant records; a record's key is kind + "/" + id.
const (
	kindCode      = "code"      // authorization code, by HMAC signature
	kindPKCE      = "pkce"      // PKCE challenge of a code, by its signature
	kindAccess    = "access"    // access token session, by JWT signature
	kindRefresh   = "refresh"   // refresh token, by HMAC signature
	kindRevoked   = "revoked"   // revoked access token, by jti
	kindAssertion = "assertion" // used private_key_jwt assertion, by jti
)

// record is one stored grant.
type record struct {
	Kind    string         `json:"kind"`
	Request *storedRequest `json:"request,omitempty"`
	// Inactive marks a used code or a rotated or revoked refresh token:
	// kept, so that presenting it again is recognised as reuse.
	Inactive bool `json:"inactive,omitempty"`
	// ExpiresAt is when the record may be deleted.
	ExpiresAt time.Time `json:"expires_at"`
}

// storedRequest is the serializable part of a fosite.Request; the client
// is looked up again on load, so a disabled client's grants die with it.
type storedRequest struct {
	ID                string     `json:"id"`
	RequestedAt       time.Time  `json:"requested_at"`
	ClientID          string     `json:"client_id"`
	RequestedScope    []string   `json:"requested_scope,omitempty"`
	GrantedScope      []string   `json:"granted_scope,omitempty"`
	RequestedAudience []string   `json:"requested_audience,omitempty"`
	GrantedAudience   []string   `json:"granted_audience,omitempty"`
	Form              url.Values `json:"form,omitempty"`
	Session           *Session   `json:"session"`
}

// Store keeps the authorization server's grants in the compacted topic
// topics.OAuthTokens and implements the storage interfaces fosite's
// handlers need. It is also the auth.RevocationList of access tokens.
type Store struct {
	table   *ktable.Table[record]
	clients auth.ClientStore
	now     func() time.Time
	log     *slog.Logger

	mu        sync.Mutex
	byRequest map[string]map[string]struct{} // request id → keys of its access and refresh records
	keyReq    map[string]string              // key → request id
}

var (
	_ fosite.Storage                = (*Store)(nil)
	_ oauth2.CoreStorage            = (*Store)(nil)
	_ oauth2.TokenRevocationStorage = (*Store)(nil)
	_ pkce.PKCERequestStorage       = (*Store)(nil)
	_ auth.RevocationList           = (*Store)(nil)
)

// NewStore returns a Store over topics.OAuthTokens, read and written with a
// client built from clientOpts. Run it, and wait for WaitReady before
// serving.
func NewStore(clientOpts []kgo.Opt, clients auth.ClientStore, logger *slog.Logger) (*Store, error) {
	if logger == nil {
		logger = slog.Default()
	}
	s := &Store{clients: clients, now: time.Now, log: logger,
		byRequest: map[string]map[string]struct{}{}, keyReq: map[string]string{}}
	t, err := ktable.New(topics.OAuthTokens, clientOpts, ktable.WithLogger[record](logger), ktable.OnApply(s.index))
	if err != nil {
		return nil, fmt.Errorf("oauth store: %w", err)
	}
	s.table = t
	return s, nil
}

// Run materializes the topic and deletes expired records every
// sweepEvery, until ctx is done.
func (s *Store) Run(ctx context.Context) error {
	errc := make(chan error, 1)
	go func() { errc <- s.table.Run(ctx) }()
	tick := time.NewTicker(sweepEvery)
	defer tick.Stop()
	for {
		select {
		case err := <-errc:
			return err
		case <-tick.C:
			s.sweep(ctx)
		}
	}
}

// sweepEvery is how often expired grants are deleted.
const sweepEvery = time.Minute

// WaitReady blocks until the store holds every grant written before Run.
func (s *Store) WaitReady(ctx context.Context) error { return s.table.WaitReady(ctx) }

// sweep deletes records past their expiry. Instances sweep independently;
// deleting twice is harmless.
func (s *Store) sweep(ctx context.Context) {
	now := s.now()
	n := 0
	for _, key := range s.table.Keys() {
		r, ok := s.table.Get(key)
		if !ok || r.ExpiresAt.IsZero() || r.ExpiresAt.After(now) {
			continue
		}
		if err := s.table.Delete(ctx, key); err != nil {
			s.log.Warn("oauth: expired grant not deleted", "key", key, "err", err)
			return
		}
		n++
	}
	if n > 0 {
		s.log.Debug("oauth: deleted expired grants", "count", n)
	}
}

// index keeps byRequest current; ktable calls it for every applied record.
func (s *Store) index(key string, r record, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.keyReq[key]; ok {
		delete(s.byRequest[old], key)
		if len(s.byRequest[old]) == 0 {
			delete(s.byRequest, old)
		}
		delete(s.keyReq, key)
	}
	if deleted || r.Request == nil || (r.Kind != kindAccess && r.Kind != kindRefresh) {
		return
	}
	id := r.Request.ID
	if s.byRequest[id] == nil {
		s.byRequest[id] = map[string]struct{}{}
	}
	s.byRequest[id][key] = struct{}{}
	s.keyReq[key] = id
}

// family returns the keys of the access and refresh records of request id.
func (s *Store) family(id string) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	keys := make([]string, 0, len(s.byRequest[id]))
	for k := range s.byRequest[id] {
		keys = append(keys, k)
	}
	return keys
}

func key(kind, id string) string { return kind + "/" + id }

// put stores req under kind/id, expiring when the session says token kind
// tt expires (or after fallback).
func (s *Store) put(ctx context.Context, kind, id string, req fosite.Requester, tt fosite.TokenType, fallback time.Duration) error {
	sr, err := toStored(req)
	if err != nil {
		return err
	}
	exp := sr.Session.GetExpiresAt(tt)
	if exp.IsZero() {
		exp = s.now().Add(fallback)
	}
	if err := s.table.Put(ctx, key(kind, id), record{Kind: kind, Request: sr, ExpiresAt: exp}); err != nil {
		return fmt.Errorf("oauth: store %s: %w", kind, err)
	}
	return nil
}

// get loads kind/id as a fosite request; fosite.ErrNotFound when absent.
func (s *Store) get(ctx context.Context, kind, id string) (record, fosite.Requester, error) {
	r, ok := s.table.Get(key(kind, id))
	if !ok || r.Request == nil {
		return record{}, nil, fosite.ErrNotFound
	}
	req, err := s.fromStored(ctx, r.Request)
	if err != nil {
		return record{}, nil, err
	}
	return r, req, nil
}

func toStored(req fosite.Requester) (*storedRequest, error) {
	sess, ok := req.GetSession().(*Session)
	if !ok {
		return nil, fmt.Errorf("oauth: session is %T, not *oauth.Session", req.GetSession())
	}
	return &storedRequest{
		ID:                req.GetID(),
		RequestedAt:       req.GetRequestedAt(),
		ClientID:          req.GetClient().GetID(),
		RequestedScope:    req.GetRequestedScopes(),
		GrantedScope:      req.GetGrantedScopes(),
		RequestedAudience: req.GetRequestedAudience(),
		GrantedAudience:   req.GetGrantedAudience(),
		Form:              req.GetRequestForm(),
		Session:           sess.Clone().(*Session),
	}, nil
}

func (s *Store) fromStored(ctx context.Context, sr *storedRequest) (*fosite.Request, error) {
	c, err := s.GetClient(ctx, sr.ClientID)
	if err != nil {
		return nil, err
	}
	sess := sr.Session
	if sess == nil {
		sess = &Session{}
	}
	return &fosite.Request{
		ID:                sr.ID,
		RequestedAt:       sr.RequestedAt,
		Client:            c,
		RequestedScope:    sr.RequestedScope,
		GrantedScope:      sr.GrantedScope,
		RequestedAudience: sr.RequestedAudience,
		GrantedAudience:   sr.GrantedAudience,
		Form:              sr.Form,
		Session:           sess.Clone(),
	}, nil
}

// GetClient returns the enabled client id; fosite.ErrNotFound otherwise.
func (s *Store) GetClient(_ context.Context, id string) (fosite.Client, error) {
	c, ok := s.clients.Client(id)
	if !ok || c.Disabled {
		return nil, fosite.ErrNotFound
	}
	return fositeClient(c)
}

// ClientAssertionJWTValid refuses a private_key_jwt assertion id seen
// before (until its expiry).
func (s *Store) ClientAssertionJWTValid(_ context.Context, jti string) error {
	if r, ok := s.table.Get(key(kindAssertion, jti)); ok && r.ExpiresAt.After(s.now()) {
		return fosite.ErrJTIKnown
	}
	return nil
}

// SetClientAssertionJWT remembers an assertion id until exp.
func (s *Store) SetClientAssertionJWT(ctx context.Context, jti string, exp time.Time) error {
	return s.table.Put(ctx, key(kindAssertion, jti), record{Kind: kindAssertion, ExpiresAt: exp})
}

// CreateAuthorizeCodeSession stores an issued code.
func (s *Store) CreateAuthorizeCodeSession(ctx context.Context, sig string, req fosite.Requester) error {
	return s.put(ctx, kindCode, sig, req, fosite.AuthorizeCode, 10*time.Minute)
}

// GetAuthorizeCodeSession loads a code; a used one yields its request and
// fosite.ErrInvalidatedAuthorizeCode, so fosite revokes what it issued.
func (s *Store) GetAuthorizeCodeSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	r, req, err := s.get(ctx, kindCode, sig)
	if err != nil {
		return nil, err
	}
	if r.Inactive {
		return req, fosite.ErrInvalidatedAuthorizeCode
	}
	return req, nil
}

// InvalidateAuthorizeCodeSession marks a code used.
func (s *Store) InvalidateAuthorizeCodeSession(ctx context.Context, sig string) error {
	return s.deactivate(ctx, key(kindCode, sig))
}

// deactivate marks the record under k inactive (kept for reuse detection).
func (s *Store) deactivate(ctx context.Context, k string) error {
	r, ok := s.table.Get(k)
	if !ok {
		return fosite.ErrNotFound
	}
	if r.Inactive {
		return nil
	}
	r.Inactive = true
	return s.table.Put(ctx, k, r)
}

// CreatePKCERequestSession stores a code's PKCE challenge.
func (s *Store) CreatePKCERequestSession(ctx context.Context, sig string, req fosite.Requester) error {
	return s.put(ctx, kindPKCE, sig, req, fosite.AuthorizeCode, 10*time.Minute)
}

// GetPKCERequestSession loads a code's PKCE challenge.
func (s *Store) GetPKCERequestSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	_, req, err := s.get(ctx, kindPKCE, sig)
	return req, err
}

// DeletePKCERequestSession deletes a code's PKCE challenge.
func (s *Store) DeletePKCERequestSession(ctx context.Context, sig string) error {
	return s.table.Delete(ctx, key(kindPKCE, sig))
}

// CreateAccessTokenSession stores an issued access token's grant (its jti
// is in the session), so it can be introspected and revoked.
func (s *Store) CreateAccessTokenSession(ctx context.Context, sig string, req fosite.Requester) error {
	return s.put(ctx, kindAccess, sig, req, fosite.AccessToken, time.Hour)
}

// GetAccessTokenSession loads an access token's grant.
func (s *Store) GetAccessTokenSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	_, req, err := s.get(ctx, kindAccess, sig)
	return req, err
}

// DeleteAccessTokenSession forgets an access token's grant.
func (s *Store) DeleteAccessTokenSession(ctx context.Context, sig string) error {
	return s.table.Delete(ctx, key(kindAccess, sig))
}

// CreateRefreshTokenSession stores an issued refresh token.
func (s *Store) CreateRefreshTokenSession(ctx context.Context, sig, _ string, req fosite.Requester) error {
	return s.put(ctx, kindRefresh, sig, req, fosite.RefreshToken, 30*24*time.Hour)
}

// GetRefreshTokenSession loads a refresh token; a rotated or revoked one
// yields its request and fosite.ErrInactiveToken, which fosite treats as
// reuse: it revokes the family.
func (s *Store) GetRefreshTokenSession(ctx context.Context, sig string, _ fosite.Session) (fosite.Requester, error) {
	r, req, err := s.get(ctx, kindRefresh, sig)
	if err != nil {
		return nil, err
	}
	if r.Inactive {
		return req, fosite.ErrInactiveToken
	}
	return req, nil
}

// DeleteRefreshTokenSession deletes a refresh token.
func (s *Store) DeleteRefreshTokenSession(ctx context.Context, sig string) error {
	return s.table.Delete(ctx, key(kindRefresh, sig))
}

// RotateRefreshToken retires the family's current refresh token (kept
// inactive, so its reuse is detected) and revokes the access tokens issued
// with it: after a refresh only the new pair is valid.
func (s *Store) RotateRefreshToken(ctx context.Context, requestID, sig string) error {
	if err := s.deactivate(ctx, key(kindRefresh, sig)); err != nil && !errors.Is(err, fosite.ErrNotFound) {
		return err
	}
	return s.RevokeAccessToken(ctx, requestID)
}

// RevokeRefreshToken retires every refresh token of the family requestID.
func (s *Store) RevokeRefreshToken(ctx context.Context, requestID string) error {
	for _, k := range s.family(requestID) {
		if r, ok := s.table.Get(k); ok && r.Kind == kindRefresh {
			if err := s.deactivate(ctx, k); err != nil && !errors.Is(err, fosite.ErrNotFound) {
				return err
			}
		}
	}
	return nil
}

// RevokeAccessToken revokes every access token of the family requestID:
// their jtis go on the revocation list until they expire.
func (s *Store) RevokeAccessToken(ctx context.Context, requestID string) error {
	for _, k := range s.family(requestID) {
		r, ok := s.table.Get(k)
		if !ok || r.Kind != kindAccess || r.Request == nil || r.Request.Session == nil {
			continue
		}
		if jti := r.Request.Session.JTI; jti != "" {
			rev := record{Kind: kindRevoked, ExpiresAt: r.ExpiresAt.Add(auth.ClockSkew)}
			if err := s.table.Put(ctx, key(kindRevoked, jti), rev); err != nil {
				return fmt.Errorf("oauth: revoke %s: %w", jti, err)
			}
		}
		if err := s.table.Delete(ctx, k); err != nil {
			return fmt.Errorf("oauth: revoke: %w", err)
		}
	}
	return nil
}

// Revoked reports whether the access token jti was revoked.
func (s *Store) Revoked(jti string) bool {
	_, ok := s.table.Get(key(kindRevoked, jti))
	return ok
}
