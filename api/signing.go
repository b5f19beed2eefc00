package api

import (
	"context"
	"encoding/base64"
	"fmt"
	"net/http"
	"strings"

	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/httpsig"
	"github.com/vitalshq/vitals/problem"
)

// requestKeys resolves the keyid of a request signature to the public key
// registered for its owner: a person (user id "usr_…") or an API client.
type requestKeys struct {
	clients AdminClients
	users   AdminUsers
	sealer  Sealer // opens hmac-sha256 secrets; nil: ed25519 keys only
}

// Sealer seals and opens secrets at rest (package keyring's Keyring).
type Sealer interface {
	Seal(plaintext, aad []byte) (string, error)
	Open(sealed string, aad []byte) ([]byte, error)
}

// Key implements httpsig.KeyResolver.
func (k requestKeys) Key(_ context.Context, keyID string) (httpsig.Key, error) {
	owner := httpsig.Owner(keyID)
	var keys []httpsig.RegisteredKey
	if strings.HasPrefix(owner, "usr_") {
		if u, ok := k.users.User(owner); ok && !u.Disabled {
			keys = u.RequestKeys
		}
	} else if c, ok := k.clients.Client(owner); ok && !c.Disabled {
		keys = c.RequestKeys
	}
	var open func(string, []byte) ([]byte, error)
	if k.sealer != nil {
		open = k.sealer.Open
	}
	for _, rk := range keys {
		if rk.ID == keyID {
			return rk.Key(open)
		}
	}
	return httpsig.Key{}, fmt.Errorf("keyid %q: %w", keyID, httpsig.ErrUnknownKey)
}

// signer is whose key must sign p's requests: the person, or the client.
func signer(p auth.Principal) string {
	if p.IsUser() {
		return p.Subject
	}
	return p.ClientID
}

type requestKeyReq struct {
	Alg       string `json:"alg"`        // "ed25519" (default) or "hmac-sha256"
	PublicKey string `json:"public_key"` // ed25519: base64 of the public key
}

func (r requestKeyReq) decode() ([]byte, *problem.Details) {
	b, err := base64.StdEncoding.DecodeString(r.PublicKey)
	if err != nil {
		if b, err = base64.RawURLEncoding.DecodeString(r.PublicKey); err != nil {
			return nil, invalidField("public_key", "public_key is the base64 of a 32-byte ed25519 public key")
		}
	}
	return b, nil
}

// addMyRequestKey registers a signing key for the signed-in person (the
// CLI does at sign-in), so their high-value calls can be signed.
func (s *Server) addMyRequestKey(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	var req requestKeyReq
	if !decodeJSON(w, r, &req, `{"public_key":"<base64 ed25519 public key>"}`) {
		return
	}
	pub, pd := req.decode()
	if pd != nil {
		problem.Write(w, r, pd)
		return
	}
	k, err := s.d.Admin.Users.AddRequestKey(r.Context(), p.Subject, pub)
	if err != nil {
		problem.Write(w, r, invalidField("public_key", err.Error()))
		return
	}
	writeJSON(w, http.StatusCreated, map[string]any{"key_id": k.ID, "alg": k.Alg})
}

// addClientRequestKey registers a signing key for an API client.
func (s *Server) addClientRequestKey(w http.ResponseWriter, r *http.Request) {
	c, ok := s.d.Admin.Clients.Client(r.PathValue("id"))
	if !ok {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "no client "+r.PathValue("id")))
		return
	}
	var req requestKeyReq
	if !decodeJSON(w, r, &req, `{"alg":"ed25519","public_key":"<base64 ed25519 public key>"} or {"alg":"hmac-sha256"}`) {
		return
	}
	var (
		k      httpsig.RegisteredKey
		secret []byte
		err    error
	)
	switch req.Alg {
	case "", httpsig.AlgEd25519:
		pub, pd := req.decode()
		if pd != nil {
			problem.Write(w, r, pd)
			return
		}
		if k, err = httpsig.NewRegisteredKey(c.ID, pub, s.now()); err != nil {
			problem.Write(w, r, invalidField("public_key", err.Error()))
			return
		}
	case httpsig.AlgHMACSHA256:
		if s.d.Sealer == nil {
			problem.Write(w, r, invalidField("alg", "this server has no keyring to keep HMAC secrets; register an ed25519 public key"))
			return
		}
		if k, secret, err = httpsig.NewRegisteredSecret(c.ID, s.now(), s.d.Sealer.Seal); err != nil {
			s.storeFailed(w, r, "request key", err)
			return
		}
	default:
		problem.Write(w, r, invalidField("alg", "alg is ed25519 or hmac-sha256"))
		return
	}
	c.RequestKeys = append(c.RequestKeys, k)
	if err := s.d.Admin.Clients.PutClient(r.Context(), c); err != nil {
		s.storeFailed(w, r, "client", err)
		return
	}
	s.d.Logger.InfoContext(r.Context(), "admin: request key registered", "client_id", c.ID, "key_id", k.ID, "alg", k.Alg, "by", principalSubject(r))
	out := map[string]any{"key_id": k.ID, "alg": k.Alg}
	if secret != nil {
		out["secret"] = base64.StdEncoding.EncodeToString(secret) // shown once
	}
	writeJSON(w, http.StatusCreated, out)
}
