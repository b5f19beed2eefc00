package auth

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/vitalshq/vitals/httpsig"
)

// Defaults of a Server; override them with options.
const (
	DefaultTokenTTL = time.Hour
	DefaultAudience = "vitals-api"
	// ClockSkew is how far the clocks of two instances may disagree: a
	// token stays valid this long past exp and is accepted this long
	// before nbf and iat.
	ClockSkew = 30 * time.Second
	// Realm is the realm of every Bearer challenge.
	Realm = "vitals"
)

// ErrNoSigningKey is returned when a token must be signed but the key store
// holds no usable key (EnsureSigningKey was not called).
var ErrNoSigningKey = errors.New("auth: no signing key")

// Server is the authorization server (token endpoint, JWKS) and resource
// server (Require) of the Vitals API. It keeps no state of its own beyond
// a cache of decoded keys, so any number of instances can share the stores.
type Server struct {
	issuer   string
	audience string
	ttl      time.Duration
	now      func() time.Time
	log      *slog.Logger
	clients  ClientStore
	keys     KeyStore
	revoked  RevocationList
	// external holds the trusted external issuers, by issuer.
	external map[string]*ExternalIssuer

	mu     sync.Mutex
	parsed map[string]cachedKey // by kid
}

type cachedKey struct {
	der []byte // the PKCS #8 bytes it was parsed from
	key parsedKey
}

// Option configures a Server.
type Option func(*Server)

// WithTokenTTL sets how long access tokens are valid (default 1 h). Values
// under a second are ignored.
func WithTokenTTL(d time.Duration) Option {
	return func(s *Server) {
		if d >= time.Second {
			s.ttl = d
		}
	}
}

// WithAudience sets the aud claim of issued tokens and the audience Require
// accepts (default "vitals-api"). An empty value is ignored.
func WithAudience(aud string) Option {
	return func(s *Server) {
		if aud != "" {
			s.audience = aud
		}
	}
}

// WithClock sets the time source (default time.Now), for tests.
func WithClock(now func() time.Time) Option {
	return func(s *Server) {
		if now != nil {
			s.now = now
		}
	}
}

// RevocationList tells whether an access token id was revoked before its
// expiry. It runs on every verified token: it must read local memory.
type RevocationList interface {
	Revoked(jti string) bool
}

// WithRevocations makes VerifyAccessToken refuse tokens whose jti r lists
// (default: none is revoked).
func WithRevocations(r RevocationList) Option { return func(s *Server) { s.revoked = r } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option {
	return func(s *Server) {
		if l != nil {
			s.log = l
		}
	}
}

// NewServer returns a Server issuing tokens as issuer (the iss claim,
// usually the API's base URL) for the clients and keys in the stores.
func NewServer(issuer string, clients ClientStore, keys KeyStore, opts ...Option) *Server {
	s := &Server{
		issuer:   issuer,
		audience: DefaultAudience,
		ttl:      DefaultTokenTTL,
		now:      time.Now,
		log:      slog.Default(),
		clients:  clients,
		keys:     keys,
		parsed:   map[string]cachedKey{},
	}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Issuer returns the iss claim of the tokens s issues.
func (s *Server) Issuer() string { return s.issuer }

// TokenTTL returns how long the access tokens s issues are valid.
func (s *Server) TokenTTL() time.Duration { return s.ttl }

// Audience returns the aud claim of the tokens s issues and accepts.
func (s *Server) Audience() string { return s.audience }

// EnsureSigningKey creates and stores an ES256 signing key when the key
// store has none, and reports whether it did. Instances starting together
// may each create one; that is harmless, as every stored key verifies and
// the newest signs.
func (s *Server) EnsureSigningKey(ctx context.Context) (created bool, err error) {
	if len(s.keys.SigningKeys()) > 0 {
		return false, nil
	}
	k, err := NewSigningKey()
	if err != nil {
		return false, err
	}
	k.CreatedAt = s.now().UTC()
	if err := s.keys.PutSigningKey(ctx, k); err != nil {
		return false, fmt.Errorf("store signing key %s: %w", k.KID, err)
	}
	s.log.InfoContext(ctx, "auth: created token signing key", "kid", k.KID, "alg", k.Algorithm)
	return true, nil
}

// decode returns k parsed, from the cache when k's bytes are unchanged.
func (s *Server) decode(k SigningKey) (parsedKey, error) {
	s.mu.Lock()
	c, ok := s.parsed[k.KID]
	s.mu.Unlock()
	if ok && bytes.Equal(c.der, k.PrivateKey) && string(c.key.alg) == k.Algorithm {
		return c.key, nil
	}
	p, err := k.parse()
	if err != nil {
		return parsedKey{}, err
	}
	s.mu.Lock()
	s.parsed[k.KID] = cachedKey{der: bytes.Clone(k.PrivateKey), key: p}
	s.mu.Unlock()
	return p, nil
}

// signingKey returns the newest usable key.
func (s *Server) signingKey() (parsedKey, error) {
	var (
		best    parsedKey
		bestAt  time.Time
		found   bool
		lastErr error
	)
	for _, k := range s.keys.SigningKeys() {
		p, err := s.decode(k)
		if err != nil {
			lastErr = err
			continue
		}
		if !found || k.CreatedAt.After(bestAt) {
			best, bestAt, found = p, k.CreatedAt, true
		}
	}
	if !found {
		if lastErr != nil {
			return parsedKey{}, fmt.Errorf("%w: %w", ErrNoSigningKey, lastErr)
		}
		return parsedKey{}, ErrNoSigningKey
	}
	return best, nil
}

// verificationKey returns the stored key with the given kid.
func (s *Server) verificationKey(kid string) (parsedKey, bool) {
	for _, k := range s.keys.SigningKeys() {
		if k.KID != kid {
			continue
		}
		p, err := s.decode(k)
		if err != nil {
			s.log.Warn("auth: unusable signing key", "kid", kid, "err", err)
			return parsedKey{}, false
		}
		return p, true
	}
	return parsedKey{}, false
}

// BootstrapName is the Name of the client Bootstrap creates.
const BootstrapName = "bootstrap"

// BootstrapFile is the JSON written by Bootstrap.
type BootstrapFile struct {
	ClientID     string `json:"client_id"`
	ClientSecret string `json:"client_secret"`
	TokenURL     string `json:"token_url"`
	APIURL       string `json:"api_url"`
	// RequestKeyID and RequestKey (base64 of an ed25519 seed) sign the
	// client's high-value calls (RFC 9421): batch ingest, endpoint delete,
	// secret rotation, replays.
	RequestKeyID string `json:"request_key_id"`
	RequestKey   string `json:"request_key"`
}

// Bootstrap gives a fresh installation its first credentials: when the
// client store is empty it creates a client with NonAdminScopes and writes
// its id and secret, with tokenURL and apiURL, to path (mode 0600; missing
// directories 0700). With any client present it does nothing and returns
// false. The secret is never logged.
//
// The file is written before the client is stored, so a failure leaves
// either no client (and the next start tries again) or no file for a
// client nobody can use.
func (s *Server) Bootstrap(ctx context.Context, path, tokenURL, apiURL string) (created bool, err error) {
	if len(s.clients.Clients()) > 0 {
		return false, nil
	}
	c, secret := NewClient(BootstrapName, NonAdminScopes(), s.now())
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return false, fmt.Errorf("bootstrap client: %w", err)
	}
	rk, err := httpsig.NewRegisteredKey(c.ID, pub, s.now())
	if err != nil {
		return false, fmt.Errorf("bootstrap client: %w", err)
	}
	c.RequestKeys = []httpsig.RegisteredKey{rk}
	b, err := json.MarshalIndent(BootstrapFile{
		ClientID: c.ID, ClientSecret: secret, TokenURL: tokenURL, APIURL: apiURL,
		RequestKeyID: rk.ID, RequestKey: base64.StdEncoding.EncodeToString(priv.Seed()),
	}, "", "  ")
	if err != nil {
		return false, fmt.Errorf("bootstrap client: %w", err)
	}
	if err := writePrivateFile(path, append(b, '\n')); err != nil {
		return false, fmt.Errorf("bootstrap client: %w", err)
	}
	if err := s.clients.PutClient(ctx, c); err != nil {
		_ = os.Remove(path)
		return false, fmt.Errorf("bootstrap client %s: store: %w", c.ID, err)
	}
	s.log.InfoContext(ctx, "auth: created bootstrap client; credentials written to file",
		"client_id", c.ID, "path", path, "scopes", FormatScope(c.Scopes))
	return true, nil
}

// writePrivateFile writes data to path readable by its owner only, through
// a temporary file and a rename so no reader sees a partial file.
func writePrivateFile(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".tmp*") // mode 0600
	if err != nil {
		return fmt.Errorf("write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after the rename
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename to %s: %w", path, err)
	}
	return nil
}
