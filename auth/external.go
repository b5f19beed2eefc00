package auth

import (
	"cmp"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Defaults of an ExternalIssuer.
const (
	// DefaultJWKSRefresh is how old the cached key set of an external
	// issuer may grow before a verification fetches it again, so keys the
	// IdP retired stop being accepted.
	DefaultJWKSRefresh = 10 * time.Minute
	// JWKSRefetchInterval is the least time between two fetches of an
	// external issuer's key set. A token naming an unknown kid triggers a
	// fetch only when the last one is older, so forged kids cannot make
	// Vitals hammer the IdP.
	JWKSRefetchInterval = time.Minute
	// DefaultJWKSTimeout bounds one key set fetch.
	DefaultJWKSTimeout = 10 * time.Second
	// maxJWKSBytes bounds the key set read; real ones are a few KiB.
	maxJWKSBytes = 1 << 20
	// minRSABits is the smallest RSA modulus accepted from a key set.
	minRSABits = 2048
)

// externalAlgs is the allow-list of signature algorithms of external
// tokens: what Keycloak and Hydra sign with. "none" and HMAC are never
// accepted.
func externalAlgs() []jose.SignatureAlgorithm {
	return []jose.SignatureAlgorithm{jose.RS256, jose.PS256, jose.ES256, jose.EdDSA}
}

// ExternalIssuer is an OpenID Connect provider (Keycloak, Ory Hydra) whose
// access tokens the resource server accepts besides its own, verified with
// the public keys the provider publishes at its JWKS URL. The IdP owns its
// clients: such tokens are not checked against the ClientStore, only
// against the revocation list (by jti).
//
// The key set is fetched lazily by the verifications that need it and
// cached: it is fetched again when a token names an unknown kid (at most
// once per JWKSRefetchInterval) and when the cache is older than the
// refresh interval. A failed fetch keeps the cached keys. No goroutine is
// started.
type ExternalIssuer struct {
	issuer   string
	jwksURL  string
	audience string // "" = the Server's audience
	client   *http.Client
	refresh  time.Duration

	fetchMu sync.Mutex // serializes fetches

	mu          sync.Mutex // guards the fields below
	keys        map[string]jose.JSONWebKey
	fetchedAt   time.Time // last successful fetch
	attemptedAt time.Time // last fetch, successful or not
}

// ExternalOption configures an ExternalIssuer.
type ExternalOption func(*ExternalIssuer)

// ExternalAudience sets the audience the issuer's tokens must name in aud
// (default: the Server's audience, see WithAudience). An empty value is
// ignored.
func ExternalAudience(aud string) ExternalOption {
	return func(x *ExternalIssuer) {
		if aud != "" {
			x.audience = aud
		}
	}
}

// ExternalHTTPClient sets the client that fetches the key set (default: a
// client with DefaultJWKSTimeout, TLS 1.2 minimum and the system roots).
// Give it a timeout: verifications wait for the fetches they trigger.
func ExternalHTTPClient(c *http.Client) ExternalOption {
	return func(x *ExternalIssuer) {
		if c != nil {
			x.client = c
		}
	}
}

// ExternalRefreshInterval sets how old the cached key set may grow before
// it is fetched again (default DefaultJWKSRefresh). Values under
// JWKSRefetchInterval are raised to it.
func ExternalRefreshInterval(d time.Duration) ExternalOption {
	return func(x *ExternalIssuer) { x.refresh = max(d, JWKSRefetchInterval) }
}

// NewExternalIssuer returns an ExternalIssuer for the tokens whose iss claim
// is issuer, verified with the keys served at jwksURL, which must be an
// https URL.
func NewExternalIssuer(issuer, jwksURL string, opts ...ExternalOption) (*ExternalIssuer, error) {
	if issuer == "" {
		return nil, errors.New("auth: external issuer: empty issuer")
	}
	u, err := url.Parse(jwksURL)
	if err != nil {
		return nil, fmt.Errorf("auth: external issuer %s: JWKS URL: %w", issuer, err)
	}
	if u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("auth: external issuer %s: JWKS URL %q must be an absolute https URL", issuer, jwksURL)
	}
	x := &ExternalIssuer{
		issuer:  issuer,
		jwksURL: u.String(),
		refresh: DefaultJWKSRefresh,
		keys:    map[string]jose.JSONWebKey{},
	}
	for _, o := range opts {
		o(x)
	}
	if x.client == nil {
		x.client = defaultJWKSClient()
	}
	return x, nil
}

// defaultJWKSClient fetches key sets over TLS 1.2 or later (IdPs are not
// ours to require 1.3 of) and follows redirects to https URLs only.
func defaultJWKSClient() *http.Client {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS12}
	return &http.Client{
		Timeout:   DefaultJWKSTimeout,
		Transport: t,
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			if req.URL.Scheme != "https" {
				return fmt.Errorf("redirect to non-https URL %s", req.URL.Redacted())
			}
			if len(via) >= 5 {
				return errors.New("too many redirects")
			}
			return nil
		},
	}
}

// Issuer returns the iss claim of the tokens x verifies.
func (x *ExternalIssuer) Issuer() string { return x.issuer }

// WithExternalIssuer makes VerifyAccessToken accept the access tokens of
// x besides the server's own: a token whose (unverified) iss claim is x's
// issuer is verified with x's keys, every other token as before. An issuer
// equal to the server's own is ignored. The option may be given once per
// issuer.
func WithExternalIssuer(x *ExternalIssuer) Option {
	return func(s *Server) {
		if x == nil {
			return
		}
		if s.external == nil {
			s.external = map[string]*ExternalIssuer{}
		}
		s.external[x.issuer] = x
	}
}

// externalFor returns the external issuer named by raw's iss claim, read
// without verifying anything: it only chooses how raw is verified. With
// external issuers configured, a token naming neither the server nor one
// of them is refused here, with a reason that says so; nil, nil means raw
// is for the server's own checks.
func (s *Server) externalFor(raw string) (*ExternalIssuer, error) {
	if len(s.external) == 0 {
		return nil, nil
	}
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return nil, nil
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return nil, nil
	}
	var c struct {
		Issuer string `json:"iss"`
	}
	if json.Unmarshal(payload, &c) != nil || c.Issuer == "" || c.Issuer == s.issuer {
		return nil, nil
	}
	if x, ok := s.external[c.Issuer]; ok {
		return x, nil
	}
	return nil, invalid("the token was issued by %q, which this server does not trust", c.Issuer)
}

// externalClaims are the claims of an IdP's access token. Keycloak names
// the client in azp and Hydra in client_id; scopes come in scope or scp,
// as a space-separated string or an array.
type externalClaims struct {
	jwt.Claims
	ClientID string           `json:"client_id"`
	AZP      string           `json:"azp"`
	Scope    scopeClaim       `json:"scope"`
	SCP      scopeClaim       `json:"scp"`
	AuthTime *jwt.NumericDate `json:"auth_time"`
	AMR      []string         `json:"amr"`
	// Typ is Keycloak's token kind: "Bearer" for access tokens, "ID" for
	// ID tokens, which must not pass for access tokens.
	Typ string `json:"typ"`
}

// scopeClaim is a scope list sent as a space-separated string or as an
// array of strings.
type scopeClaim []string

func (s *scopeClaim) UnmarshalJSON(b []byte) error {
	var str string
	if err := json.Unmarshal(b, &str); err == nil {
		*s = ParseScope(str)
		return nil
	}
	var list []string
	if err := json.Unmarshal(b, &list); err != nil {
		return fmt.Errorf("scope claim is neither a string nor an array of strings: %w", err)
	}
	*s = list
	return nil
}

// verifyExternal checks raw, whose iss names x, as VerifyAccessToken does
// for external tokens.
func (s *Server) verifyExternal(x *ExternalIssuer, raw string) (Principal, error) {
	tok, err := jwt.ParseSigned(raw, externalAlgs())
	if err != nil {
		return Principal{}, invalid("the token is not a JWS signed with RS256, PS256, ES256 or EdDSA")
	}
	if len(tok.Headers) != 1 {
		return Principal{}, invalid("the token must carry exactly one signature")
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !isExternalTokenType(typ) {
		return Principal{}, invalid("the token is not an access token (typ %q, want JWT or at+jwt)", typ)
	}
	if h.KeyID == "" {
		return Principal{}, invalid("the token header has no kid")
	}
	key, err := x.key(h.KeyID, s.now(), s.log)
	if err != nil {
		return Principal{}, invalid("the token is signed by key %q, which issuer %s does not publish", h.KeyID, x.issuer)
	}
	if err := keyFits(key, h.Algorithm); err != nil {
		return Principal{}, invalid("the token's alg %s does not match key %s: %v", h.Algorithm, key.KeyID, err)
	}
	var c externalClaims
	if err := tok.Claims(key.Key, &c); err != nil {
		return Principal{}, invalid("the token signature does not verify")
	}

	switch {
	case c.Issuer == "":
		return Principal{}, invalid("the token has no iss claim")
	case len(c.Audience) == 0:
		return Principal{}, invalid("the token has no aud claim")
	case c.Expiry == nil:
		return Principal{}, invalid("the token has no exp claim")
	case c.NotBefore == nil && c.IssuedAt == nil:
		return Principal{}, invalid("the token has neither nbf nor iat claim")
	case c.Subject == "":
		return Principal{}, invalid("the token has no sub claim")
	case c.Typ != "" && !strings.EqualFold(c.Typ, "Bearer"):
		return Principal{}, invalid("the token is a %q token, not an access token", c.Typ)
	}
	aud := cmp.Or(x.audience, s.audience)
	err = c.Claims.ValidateWithLeeway(jwt.Expected{
		Issuer:      x.issuer,
		AnyAudience: jwt.Audience{aud},
		Time:        s.now(),
	}, ClockSkew)
	switch {
	case err == nil:
	case errors.Is(err, jwt.ErrExpired):
		e := invalid("the token expired at %s; request a new one", c.Expiry.Time().UTC().Format(time.RFC3339))
		e.errs = append(e.errs, ErrTokenExpired)
		return Principal{}, e
	case errors.Is(err, jwt.ErrNotValidYet):
		return Principal{}, invalid("the token is not valid before %s", c.NotBefore.Time().UTC().Format(time.RFC3339))
	case errors.Is(err, jwt.ErrIssuedInTheFuture):
		return Principal{}, invalid("the token is issued in the future")
	case errors.Is(err, jwt.ErrInvalidIssuer):
		return Principal{}, invalid("the token was issued by %q, not %q", c.Issuer, x.issuer)
	case errors.Is(err, jwt.ErrInvalidAudience):
		return Principal{}, invalid("the token is not meant for audience %q", aud)
	default:
		return Principal{}, invalid("the token's claims are invalid")
	}

	if c.ID != "" && s.revoked != nil && s.revoked.Revoked(c.ID) {
		return Principal{}, invalid("the token was revoked; request a new one")
	}
	p := Principal{
		Issuer:    x.issuer,
		Subject:   c.Subject,
		ClientID:  cmp.Or(c.ClientID, c.AZP),
		TokenID:   c.ID,
		ExpiresAt: c.Expiry.Time(),
		AMR:       c.AMR,
	}
	for _, sc := range slices.Concat(c.Scope, c.SCP) {
		if sc != "" && !slices.Contains(p.Scopes, sc) {
			p.Scopes = append(p.Scopes, sc)
		}
	}
	if c.AuthTime != nil {
		p.AuthTime = c.AuthTime.Time()
	}
	return p, nil
}

// isExternalTokenType accepts the typ headers IdPs put on access tokens:
// "JWT" (Keycloak, Hydra) and the RFC 9068 "at+jwt", with or without the
// "application/" prefix, in any case.
func isExternalTokenType(typ string) bool {
	typ = strings.TrimPrefix(strings.ToLower(typ), "application/")
	return typ == "jwt" || typ == TokenType
}

// keyFits checks a published key may verify alg: the key's own alg, when
// it names one, must be alg, and the key type must be alg's (RSA of at
// least 2048 bits for RS256 and PS256, P-256 for ES256, Ed25519 for
// EdDSA), so a token header never chooses how a key is used.
func keyFits(k jose.JSONWebKey, alg string) error {
	if k.Algorithm != "" && k.Algorithm != alg {
		return fmt.Errorf("the key is for %s", k.Algorithm)
	}
	switch pub := k.Key.(type) {
	case *rsa.PublicKey:
		if alg != string(jose.RS256) && alg != string(jose.PS256) {
			return errors.New("an RSA key verifies RS256 or PS256 only")
		}
	case *ecdsa.PublicKey:
		if alg != string(jose.ES256) || pub.Curve != elliptic.P256() {
			return errors.New("an ECDSA key verifies ES256 on P-256 only")
		}
	case ed25519.PublicKey:
		if alg != string(jose.EdDSA) {
			return errors.New("an Ed25519 key verifies EdDSA only")
		}
	default:
		return fmt.Errorf("key type %T", k.Key)
	}
	return nil
}

// errUnknownKey reports a kid the key set does not hold.
var errUnknownKey = errors.New("auth: unknown key id")

// key returns the published key kid, fetching the key set when kid is
// unknown or the cache is older than the refresh interval, never more than
// once per JWKSRefetchInterval. now is the Server's clock.
func (x *ExternalIssuer) key(kid string, now time.Time, log *slog.Logger) (jose.JSONWebKey, error) {
	x.mu.Lock()
	k, known := x.keys[kid]
	due := now.Sub(x.fetchedAt) >= x.refresh
	x.mu.Unlock()
	if known && !due {
		return k, nil
	}
	if err := x.fetchIfAllowed(now); err != nil && !errors.Is(err, errFetchTooSoon) {
		log.Warn("auth: fetching external issuer's JWKS failed; keeping the cached keys",
			"issuer", x.issuer, "url", x.jwksURL, "kid", kid, "err", err)
	}
	x.mu.Lock()
	k, known = x.keys[kid]
	x.mu.Unlock()
	if !known {
		return jose.JSONWebKey{}, fmt.Errorf("%w %q of issuer %s", errUnknownKey, kid, x.issuer)
	}
	return k, nil
}

// errFetchTooSoon reports a fetch skipped because the last one is more
// recent than JWKSRefetchInterval.
var errFetchTooSoon = errors.New("auth: JWKS fetched less than a minute ago")

// fetchIfAllowed fetches the key set unless a fetch (by this caller or a
// concurrent one) began less than JWKSRefetchInterval before now. A failed
// fetch keeps the cached keys.
func (x *ExternalIssuer) fetchIfAllowed(now time.Time) error {
	x.fetchMu.Lock()
	defer x.fetchMu.Unlock()
	x.mu.Lock()
	if !x.attemptedAt.IsZero() && now.Sub(x.attemptedAt) < JWKSRefetchInterval {
		x.mu.Unlock()
		return errFetchTooSoon
	}
	x.attemptedAt = now
	x.mu.Unlock()

	// Verifications carry no context; the client's timeout bounds the wait.
	keys, err := x.fetch(context.Background())
	if err != nil {
		return err
	}
	x.mu.Lock()
	x.keys, x.fetchedAt = keys, now
	x.mu.Unlock()
	return nil
}

// fetch reads the key set and keeps the public signature keys Vitals may
// verify with. Keys it cannot use (encryption keys, symmetric keys, other
// algorithms, unknown types) are left out; a set with none left is an
// error.
func (x *ExternalIssuer) fetch(ctx context.Context) (map[string]jose.JSONWebKey, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, x.jwksURL, nil)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", x.jwksURL, err)
	}
	req.Header.Set("Accept", "application/jwk-set+json, application/json")
	resp, err := x.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", x.jwksURL, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("JWKS %s: HTTP %s", x.jwksURL, resp.Status)
	}
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxJWKSBytes+1))
	if err != nil {
		return nil, fmt.Errorf("JWKS %s: read: %w", x.jwksURL, err)
	}
	if len(body) > maxJWKSBytes {
		return nil, fmt.Errorf("JWKS %s: larger than %d bytes", x.jwksURL, maxJWKSBytes)
	}
	// Decode key by key: one key of a type go-jose does not know must not
	// hide the others.
	var set struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &set); err != nil {
		return nil, fmt.Errorf("JWKS %s: %w", x.jwksURL, err)
	}
	keys := map[string]jose.JSONWebKey{}
	for _, rk := range set.Keys {
		var k jose.JSONWebKey
		if json.Unmarshal(rk, &k) != nil || !k.Valid() || k.KeyID == "" {
			continue
		}
		if k.Use != "" && k.Use != "sig" {
			continue
		}
		if k.Algorithm != "" && !slices.Contains(externalAlgs(), jose.SignatureAlgorithm(k.Algorithm)) {
			continue
		}
		switch pub := k.Key.(type) {
		case *rsa.PublicKey:
			if pub.N.BitLen() < minRSABits {
				continue
			}
		case *ecdsa.PublicKey, ed25519.PublicKey:
		default:
			continue // symmetric, private or another type: never used
		}
		if _, dup := keys[k.KeyID]; !dup {
			keys[k.KeyID] = k
		}
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("JWKS %s: no usable signature key (RS256, PS256, ES256 or EdDSA with a kid)", x.jwksURL)
	}
	return keys, nil
}
