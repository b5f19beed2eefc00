package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"time"

	"github.com/ory/fosite"
	"github.com/ory/fosite/compose"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/clientip"
)

// Paths the handlers are served on.
const (
	TokenPath      = "/oauth/token"
	AuthorizePath  = "/oauth/authorize"
	RevokePath     = "/oauth/revoke"
	IntrospectPath = "/oauth/introspect"
	MetadataPath   = "/.well-known/oauth-authorization-server"
)

// Default lifetimes (the brief's contract).
const (
	DefaultRefreshTTL = 30 * 24 * time.Hour
	DefaultCodeTTL    = 5 * time.Minute
	// loginTicketTTL bounds the time between the password and the code step
	// of a sign-in.
	loginTicketTTL = 5 * time.Minute
)

// MinSecretLen is the least length of the HMAC secret of codes and
// refresh tokens.
const MinSecretLen = 32

// Provider is the authorization server: its handlers serve the OAuth
// endpoints, sharing one fosite instance, one Store and one token issuer.
type Provider struct {
	issuer string
	tokens *auth.Server
	store  *Store
	users  Users
	fosite fosite.OAuth2Provider
	cfg    *fosite.Config
	secret []byte // login tickets (derived from the HMAC secret)
	log    *slog.Logger
	now    func() time.Time
}

// Option configures a Provider.
type Option func(*Provider)

// WithUsers enables the authorization code flow's login page for the
// people in u; without it only client credentials are served.
func WithUsers(u Users) Option { return func(p *Provider) { p.users = u } }

// WithLogger sets the logger.
func WithLogger(l *slog.Logger) Option { return func(p *Provider) { p.log = l } }

// WithRefreshTTL sets how long refresh tokens live (default 30 days).
func WithRefreshTTL(d time.Duration) Option {
	return func(p *Provider) { p.cfg.RefreshTokenLifespan = d }
}

// New returns the authorization server of issuer (the API's base URL).
// tokens signs access tokens and its TTL is theirs; secret (at least
// MinSecretLen bytes, the same on every instance) keys the HMAC of codes and
// refresh tokens.
func New(issuer string, tokens *auth.Server, store *Store, secret []byte, opts ...Option) (*Provider, error) {
	if len(secret) < MinSecretLen {
		return nil, fmt.Errorf("oauth: secret is %d bytes, want at least %d", len(secret), MinSecretLen)
	}
	cfg := &fosite.Config{
		AccessTokenLifespan:            tokens.TokenTTL(),
		RefreshTokenLifespan:           DefaultRefreshTTL,
		AuthorizeCodeLifespan:          DefaultCodeTTL,
		EnforcePKCE:                    true,
		EnablePKCEPlainChallengeMethod: false,
		TokenURL:                       issuer + TokenPath,
		AccessTokenIssuer:              issuer,
		GlobalSecret:                   derive(secret, "fosite-hmac"),
		ScopeStrategy:                  fosite.ExactScopeStrategy,
		AudienceMatchingStrategy:       fosite.DefaultAudienceMatchingStrategy,
		ClientSecretsHasher:            secretHasher{},
		RefreshTokenScopes:             []string{}, // every refresh-capable grant gets one
		SendDebugMessagesToClients:     false,
	}
	p := &Provider{
		issuer: issuer, tokens: tokens, store: store, cfg: cfg,
		secret: derive(secret, "login-ticket"),
		log:    slog.Default(), now: time.Now,
	}
	for _, o := range opts {
		o(p)
	}
	st := &strategy{HMACSHAStrategy: compose.NewOAuth2HMACStrategy(cfg), tokens: tokens}
	p.fosite = compose.Compose(cfg, store, st,
		compose.OAuth2AuthorizeExplicitFactory,
		compose.OAuth2ClientCredentialsGrantFactory,
		compose.OAuth2RefreshTokenGrantFactory,
		compose.OAuth2PKCEFactory,
		func(config fosite.Configurator, storage, _ any) any {
			// Introspection answers for our JWTs (checked like the
			// resource server does) and for refresh tokens.
			return &oauth2.CoreValidator{CoreStrategy: st, CoreStorage: store, Config: config}
		},
		compose.OAuth2TokenRevocationFactory,
	)
	return p, nil
}

// derive returns HMAC-SHA256(secret, purpose): independent keys from one
// secret.
func derive(secret []byte, purpose string) []byte {
	m := hmac.New(sha256.New, secret)
	m.Write([]byte(purpose))
	return m.Sum(nil)
}

// TokenHandler serves POST /oauth/token.
func (p *Provider) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		ar, err := p.fosite.NewAccessRequest(ctx, r, &Session{})
		if err != nil {
			p.logRefusal(ctx, "token request refused", err)
			p.fosite.WriteAccessError(ctx, w, ar, err)
			return
		}
		if !p.allowed(w, r, ar.GetClient().GetID()) {
			return
		}
		if ar.GetGrantTypes().ExactOne("client_credentials") {
			scopes := ar.GetRequestedScopes()
			if len(scopes) == 0 {
				scopes = ar.GetClient().GetScopes()
			}
			for _, s := range scopes {
				ar.GrantScope(s)
			}
		}
		resp, err := p.fosite.NewAccessResponse(ctx, ar)
		if err != nil {
			p.logRefusal(ctx, "token not issued", err)
			p.fosite.WriteAccessError(ctx, w, ar, err)
			return
		}
		p.fosite.WriteAccessResponse(ctx, w, ar, resp)
	})
}

// allowed enforces the client's IP allow-list, answering 403 when the
// request comes from elsewhere. The address is the one clientip's
// middleware resolved, or the socket peer.
func (p *Provider) allowed(w http.ResponseWriter, r *http.Request, clientID string) bool {
	c, ok := p.store.clients.Client(clientID)
	if !ok || c.IPAllow.Empty() {
		return true
	}
	addr := auth.ClientAddr(r)
	if c.IPAllow.Allows(addr) {
		return true
	}
	p.log.WarnContext(r.Context(), "oauth: token request from outside the client's IP allow-list",
		"client_id", clientID, "addr", addr)
	clientip.Deny(w, r, addr)
	return false
}

// logRefusal logs a refused request with fosite's debug detail, which is
// never sent to the client.
func (p *Provider) logRefusal(ctx context.Context, msg string, err error) {
	var rfc *fosite.RFC6749Error
	if errors.As(err, &rfc) {
		p.log.InfoContext(ctx, "oauth: "+msg, "error", rfc.ErrorField, "hint", rfc.HintField, "debug", rfc.DebugField)
		return
	}
	p.log.InfoContext(ctx, "oauth: "+msg, "err", err)
}

// RevokeHandler serves POST /oauth/revoke (RFC 7009).
func (p *Provider) RevokeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		err := p.fosite.NewRevocationRequest(ctx, r)
		if err != nil {
			p.logRefusal(ctx, "revocation refused", err)
		}
		p.fosite.WriteRevocationResponse(ctx, w, err)
	})
}

// IntrospectHandler serves POST /oauth/introspect (RFC 7662) to
// authenticated clients.
func (p *Provider) IntrospectHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		ir, err := p.fosite.NewIntrospectionRequest(ctx, r, &Session{})
		if err != nil {
			p.logRefusal(ctx, "introspection", err)
			p.fosite.WriteIntrospectionError(ctx, w, err)
			return
		}
		p.fosite.WriteIntrospectionResponse(ctx, w, ir)
	})
}

// Metadata is the authorization server metadata document (RFC 8414).
type Metadata struct {
	Issuer                            string   `json:"issuer"`
	AuthorizationEndpoint             string   `json:"authorization_endpoint,omitempty"`
	TokenEndpoint                     string   `json:"token_endpoint"`
	JWKSURI                           string   `json:"jwks_uri"`
	RevocationEndpoint                string   `json:"revocation_endpoint"`
	IntrospectionEndpoint             string   `json:"introspection_endpoint"`
	ScopesSupported                   []string `json:"scopes_supported"`
	ResponseTypesSupported            []string `json:"response_types_supported"`
	GrantTypesSupported               []string `json:"grant_types_supported"`
	TokenEndpointAuthMethodsSupported []string `json:"token_endpoint_auth_methods_supported"`
	TokenEndpointAuthSigningAlgs      []string `json:"token_endpoint_auth_signing_alg_values_supported"`
	CodeChallengeMethodsSupported     []string `json:"code_challenge_methods_supported"`
}

// Metadata returns the metadata document.
func (p *Provider) Metadata() Metadata {
	m := Metadata{
		Issuer:                            p.issuer,
		TokenEndpoint:                     p.issuer + TokenPath,
		JWKSURI:                           p.issuer + auth.JWKSPath,
		RevocationEndpoint:                p.issuer + RevokePath,
		IntrospectionEndpoint:             p.issuer + IntrospectPath,
		ScopesSupported:                   auth.AllScopes(),
		ResponseTypesSupported:            []string{},
		GrantTypesSupported:               []string{auth.GrantClientCredentials, auth.GrantRefreshToken},
		TokenEndpointAuthMethodsSupported: []string{auth.AuthSecretBasic, "client_secret_post", auth.AuthPrivateKeyJWT, auth.AuthNone},
		TokenEndpointAuthSigningAlgs:      []string{"ES256", "RS256"},
		CodeChallengeMethodsSupported:     []string{"S256"},
	}
	if p.users != nil {
		m.AuthorizationEndpoint = p.issuer + AuthorizePath
		m.ResponseTypesSupported = []string{"code"}
		m.GrantTypesSupported = slices.Insert(m.GrantTypesSupported, 0, auth.GrantAuthorizationCode)
	}
	return m
}

// MetadataHandler serves the metadata document.
func (p *Provider) MetadataHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_ = json.NewEncoder(w).Encode(p.Metadata())
	})
}
