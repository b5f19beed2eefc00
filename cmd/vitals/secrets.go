package main

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/config"
	"github.com/vitalshq/vitals/keyring"
	"github.com/vitalshq/vitals/oauth"
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

// authorizationServer wires the token issuer (auth), the grant store, the
// users and the OAuth provider of the API.
func (e *env) authorizationServer(ctx context.Context, publicURL string, clients *auth.KafkaStore) (*auth.Server, *oauth.Provider, error) {
	keys, err := e.keyring(ctx)
	if err != nil {
		return nil, nil, err
	}
	grants, err := oauth.NewStore(e.clientOpts("oauth"), clients, e.log.With("component", "oauth"))
	if err != nil {
		return nil, nil, err
	}
	if err := e.startTable(ctx, "oauth-grants", grants); err != nil {
		return nil, nil, err
	}
	userStore, err := user.NewKafkaStore(e.clientOpts("users"), e.log)
	if err != nil {
		return nil, nil, err
	}
	if err := e.startTable(ctx, "users", userStore); err != nil {
		return nil, nil, err
	}
	users, err := user.New(userStore, keys)
	if err != nil {
		return nil, nil, err
	}
	authSrv := auth.NewServer(publicURL, clients, clients,
		auth.WithRevocations(grants), auth.WithLogger(e.log.With("component", "auth")))
	if _, err := authSrv.EnsureSigningKey(ctx); err != nil {
		return nil, nil, err
	}
	// The HMAC secret of codes and refresh tokens is derived from the
	// master key, so every instance has the same one and none is stored.
	provider, err := oauth.New(publicURL, authSrv, grants, oauthSecret(e.master),
		oauth.WithUsers(users), oauth.WithLogger(e.log.With("component", "oauth")))
	if err != nil {
		return nil, nil, err
	}
	return authSrv, provider, nil
}

// oauthSecret derives the authorization server's HMAC secret from the
// master key.
func oauthSecret(master []byte) []byte {
	m := hmac.New(sha256.New, master)
	m.Write([]byte("vitals/oauth/hmac/v1"))
	return m.Sum(nil)
}
