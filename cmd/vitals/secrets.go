package main

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"time"

	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/config"
	"github.com/vitalshq/vitals/dashboard"
	"github.com/vitalshq/vitals/keyring"
	"github.com/vitalshq/vitals/oauth"
	"github.com/vitalshq/vitals/ratelimit"
	"github.com/vitalshq/vitals/user"
)

// masterKey loads the master key from VITALS_MASTER_KEY or
// --master-key-file. With generate (`vitals run`) and neither set, it
// uses <data-dir>/master.key, creating it on first start.
func (e *env) masterKey(generate bool) ([]byte, error) {
	key, err := keyring.LoadMaster(os.Getenv(keyring.MasterKeyEnv), e.cfg.MasterKeyFile)
	if !errors.Is(err, keyring.ErrNoMaster) {
		return key, err
	}
	if !generate {
		return nil, fmt.Errorf("%w: secrets at rest need a master key: set %s (base64 of 32 random bytes) or --master-key-file (%s)",
			errUsage, keyring.MasterKeyEnv, config.EnvName("master-key-file"))
	}
	path := filepath.Join(e.cfg.DataDir, "master.key")
	if key, err := keyring.LoadMaster("", path); err == nil {
		return key, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, err
	}
	key, err = keyring.GenerateMasterFile(path)
	if err != nil {
		return nil, err
	}
	e.log.Warn("generated a master key next to the data it protects; in production keep it elsewhere: set "+
		keyring.MasterKeyEnv+" or --master-key-file (a KMS can supply it)", "path", path)
	return key, nil
}

// keyring returns the process's keyring over topics.Keyring, started once,
// with a data key.
func (e *env) keyring(ctx context.Context) (*keyring.Keyring, error) {
	if e.keys != nil {
		return e.keys, nil
	}
	master, err := e.masterKey(e.generateMaster)
	if err != nil {
		return nil, err
	}
	e.master = master
	wrapper, err := keyring.NewLocalWrapper(master)
	if err != nil {
		return nil, err
	}
	store, err := keyring.NewKafkaStore(e.clientOpts("keyring"), e.log)
	if err != nil {
		return nil, err
	}
	if err := e.startTable(ctx, "keyring", store); err != nil {
		return nil, err
	}
	k, err := keyring.New(ctx, wrapper, store, keyring.WithLogger(e.log.With("component", "keyring")))
	if err != nil {
		return nil, err
	}
	if err := k.EnsureKey(ctx); err != nil {
		return nil, err
	}
	e.keys = k
	return k, nil
}

// authz is the API's authorization server: token issuer and verifier,
// OAuth provider, people.
type authz struct {
	tokens   *auth.Server
	provider *oauth.Provider
	users    *user.Service
}

// authorizationServer wires the token issuer (auth), the grant store, the
// users and the OAuth provider of the API, and starts the signing key
// rotation.
func (e *env) authorizationServer(ctx context.Context, publicURL string, clients *auth.KafkaStore) (*authz, error) {
	keys, err := e.keyring(ctx)
	if err != nil {
		return nil, err
	}
	grants, err := oauth.NewStore(e.clientOpts("oauth"), clients, e.log.With("component", "oauth"))
	if err != nil {
		return nil, err
	}
	if err := e.startTable(ctx, "oauth-grants", grants); err != nil {
		return nil, err
	}
	userStore, err := user.NewKafkaStore(e.clientOpts("users"), e.log)
	if err != nil {
		return nil, err
	}
	if err := e.startTable(ctx, "users", userStore); err != nil {
		return nil, err
	}
	users, err := user.New(userStore, keys)
	if err != nil {
		return nil, err
	}
	authOpts := []auth.Option{auth.WithRevocations(grants), auth.WithLogger(e.log.With("component", "auth"))}
	if iss, jwks := e.cfg.ExternalIssuer, e.cfg.ExternalJWKSURL; iss != "" || jwks != "" {
		if iss == "" || jwks == "" {
			return nil, fmt.Errorf("%w: --external-issuer and --external-jwks-url go together", errUsage)
		}
		x, err := auth.NewExternalIssuer(iss, jwks)
		if err != nil {
			return nil, fmt.Errorf("--external-issuer: %w", err)
		}
		authOpts = append(authOpts, auth.WithExternalIssuer(x))
		e.log.Info("also accepting access tokens of an external issuer", "issuer", iss, "jwks", jwks)
	}
	authSrv := auth.NewServer(publicURL, clients, clients, authOpts...)
	if _, err := authSrv.EnsureSigningKey(ctx); err != nil {
		return nil, err
	}
	// The HMAC secret of codes and refresh tokens is derived from the
	// master key, so every instance has the same one and none is stored.
	provider, err := oauth.New(publicURL, authSrv, grants, oauthSecret(e.master),
		oauth.WithUsers(users), oauth.WithLogger(e.log.With("component", "oauth")))
	if err != nil {
		return nil, err
	}
	e.g.Go("key-rotation", func(ctx context.Context) error {
		return authSrv.RunKeyRotation(ctx, e.cfg.TokenKeyRotation, 0)
	})
	return &authz{tokens: authSrv, provider: provider, users: users}, nil
}

// oauthSecret derives the authorization server's HMAC secret from the
// master key.
func oauthSecret(master []byte) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("vitals/oauth/hmac/v1"))
	return m.Sum(nil)
}

// CLIClientID is the public OAuth client `vitals admin login` signs in
// with: authorization code + PKCE to a loopback redirect (RFC 8252, any
// port).
const CLIClientID = "vitals-cli"

// bootstrapPeople registers the CLI's public client and, when there is
// no user yet, creates the first administrator with a random password,
// written to <data-dir>/bootstrap-admin.json (0600). The administrator
// signs in with it, enrols TOTP (vitals admin mfa) and signs in again with
// a code to reach the admin routes.
func (e *env) bootstrapPeople(ctx context.Context, az *authz, clients auth.ClientStore, publicURL string) error {
	if _, ok := clients.Client(CLIClientID); !ok {
		c := auth.Client{ID: CLIClientID, Name: "vitals CLI (vitals admin login)", AuthMethod: auth.AuthNone,
			Scopes: auth.AllScopes(), GrantTypes: []string{auth.GrantAuthorizationCode, auth.GrantRefreshToken},
			RedirectURIs: []string{"http://127.0.0.1/callback"}, CreatedAt: time.Now().UTC()}
		if err := clients.PutClient(ctx, c); err != nil {
			return fmt.Errorf("register the CLI client: %w", err)
		}
	}
	// The dashboard's public client: the page at <public URL>/dashboard/
	// signs in with it (code + PKCE) to read analytics only. A new public
	// URL is added to its redirect URIs. Its stats polls (every 2 s per
	// viewer) have a route limit of their own, so viewers do not use up
	// the class quota.
	if err := putDashboardClient(ctx, clients, publicURL+dashboard.Path); err != nil {
		return err
	}
	if len(az.users.Users()) > 0 {
		return nil
	}
	path := filepath.Join(e.cfg.DataDir, "bootstrap-admin.json")
	password := rand.Text() + rand.Text()
	u, err := az.users.Create(ctx, "admin", password, auth.AllScopes())
	if err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	b, _ := json.MarshalIndent(map[string]string{
		"username": u.Username, "password": password, "api_url": publicURL,
		"next": "vitals admin login; vitals admin mfa; vitals admin login (with your code) — then the admin routes are open",
	}, "", "  ")
	if err := writeNewPrivateFile(path, append(b, '\n')); err != nil {
		return fmt.Errorf("bootstrap admin: %w", err)
	}
	e.log.Info("created the first administrator; its password is in a 0600 file: sign in with `vitals admin login`, then enrol TOTP with `vitals admin mfa`",
		"username", u.Username, "path", path)
	return nil
}

// putDashboardClient registers the dashboard's public client with
// redirectURI, or adds redirectURI to it.
func putDashboardClient(ctx context.Context, clients auth.ClientStore, redirectURI string) error {
	c, ok := clients.Client(dashboard.ClientID)
	if ok && slices.Contains(c.RedirectURIs, redirectURI) {
		return nil
	}
	if !ok {
		c = auth.Client{ID: dashboard.ClientID, Name: "Vitals dashboard (/dashboard)", AuthMethod: auth.AuthNone,
			Scopes: []string{auth.ScopeAnalyticsRead}, GrantTypes: []string{auth.GrantAuthorizationCode, auth.GrantRefreshToken},
			CreatedAt: time.Now().UTC(),
			RateLimits: []ratelimit.Override{{ClientID: dashboard.ClientID, Class: ratelimit.ClassStandard, Route: dashboard.StatsRoute,
				Limit: ratelimit.Limit{Quota: 18000, Window: time.Hour, Burst: 60}}}} // ten viewers
	}
	c.RedirectURIs = append(c.RedirectURIs, redirectURI)
	if err := clients.PutClient(ctx, c); err != nil {
		return fmt.Errorf("register the dashboard client: %w", err)
	}
	return nil
}

// writeNewPrivateFile writes data to a new file of mode 0600 and syncs it.
func writeNewPrivateFile(path string, data []byte) error {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}
