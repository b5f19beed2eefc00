package auth

import (
	"encoding/json"
	"net/http"

	"github.com/go-jose/go-jose/v4"

	"github.com/vitalshq/vitals/problem"
)

// JWKS returns the public half of every stored signing key, with kid, alg
// and use "sig". Keys that cannot be decoded are left out and logged.
func (s *Server) JWKS() jose.JSONWebKeySet {
	set := jose.JSONWebKeySet{Keys: []jose.JSONWebKey{}}
	for _, k := range s.keys.SigningKeys() {
		p, err := s.decode(k)
		if err != nil {
			s.log.Warn("auth: signing key left out of JWKS", "kid", k.KID, "err", err)
			continue
		}
		set.Keys = append(set.Keys, p.jwk())
	}
	return set
}

// JWKSHandler serves GET /.well-known/jwks.json: the JWKS, never a private
// key. Caches may keep it five minutes.
func (s *Server) JWKSHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			problem.Write(w, r, problem.New(http.StatusMethodNotAllowed, "method-not-allowed",
				"the key set is read with GET "+JWKSPath))
			return
		}
		b, err := json.Marshal(s.JWKS())
		if err != nil {
			s.log.ErrorContext(r.Context(), "auth: encode JWKS", "err", err)
			problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal",
				"the key set could not be encoded; retry later"))
			return
		}
		w.Header().Set("Content-Type", "application/jwk-set+json")
		w.Header().Set("Cache-Control", "public, max-age=300")
		_, _ = w.Write(append(b, '\n'))
	})
}
