package auth

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"mime"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Paths the lead mounts the handlers on.
const (
	TokenPath = "/oauth/token"
	JWKSPath  = "/.well-known/jwks.json"
)

// Grant types. Only client credentials is served for now; the others are
// answered with unsupported_grant_type.
const (
	GrantClientCredentials = "client_credentials"
)

// TokenType is the typ header of access tokens (RFC 9068 §2.1).
const TokenType = "at+jwt"

// maxTokenRequest bounds a token request body.
const maxTokenRequest = 16 << 10

// TokenResponse is the successful token endpoint response (RFC 6749 §5.1).
type TokenResponse struct {
	AccessToken string `json:"access_token"`
	TokenType   string `json:"token_type"` // "Bearer"
	ExpiresIn   int64  `json:"expires_in"` // seconds
	Scope       string `json:"scope"`
}

// TokenError is an error response of the token endpoint (RFC 6749 §5.2).
type TokenError struct {
	Code        string `json:"error"`
	Description string `json:"error_description,omitempty"`
	status      int
}

func (e *TokenError) Error() string { return "oauth " + e.Code + ": " + e.Description }

func tokenErr(status int, code, format string, args ...any) *TokenError {
	return &TokenError{Code: code, Description: fmt.Sprintf(format, args...), status: status}
}

// accessClaims are the claims of an access token (RFC 9068 §2.2).
type accessClaims struct {
	jwt.Claims
	ClientID string `json:"client_id"`
	Scope    string `json:"scope"`
}

// IssueAccessToken signs an access token for clientID with scopes, valid
// for the server's token TTL from now. It does not authenticate the client
// or check its scopes: the grant handlers do.
func (s *Server) IssueAccessToken(clientID string, scopes []string) (token string, expires time.Time, err error) {
	key, err := s.signingKey()
	if err != nil {
		return "", time.Time{}, err
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: key.alg, Key: key.priv},
		(&jose.SignerOptions{}).WithType(TokenType).WithHeader("kid", key.kid),
	)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue token for %s: signer %s: %w", clientID, key.kid, err)
	}
	now := s.now().UTC().Truncate(time.Second)
	expires = now.Add(s.ttl)
	jti := make([]byte, 16)
	_, _ = rand.Read(jti) // never fails
	claims := accessClaims{
		Claims: jwt.Claims{
			Issuer:    s.issuer,
			Subject:   clientID,
			Audience:  jwt.Audience{s.audience},
			Expiry:    jwt.NewNumericDate(expires),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        hex.EncodeToString(jti),
		},
		ClientID: clientID,
		Scope:    FormatScope(scopes),
	}
	token, err = jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return "", time.Time{}, fmt.Errorf("issue token for %s: sign: %w", clientID, err)
	}
	return token, expires, nil
}

// TokenHandler serves POST /oauth/token: the client-credentials grant
// (RFC 6749 §4.4) with client_secret_basic or client_secret_post
// authentication. Responses are never cacheable.
func (s *Server) TokenHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("Pragma", "no-cache")
		resp, err := s.token(w, r)
		if err != nil {
			var te *TokenError
			if !errors.As(err, &te) {
				s.log.ErrorContext(r.Context(), "auth: token request failed", "err", err)
				te = tokenErr(http.StatusInternalServerError, "server_error",
					"the server could not issue a token; retry later")
			}
			writeTokenError(w, te)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(resp)
	})
}

func writeTokenError(w http.ResponseWriter, te *TokenError) {
	switch te.status {
	case http.StatusUnauthorized:
		w.Header().Set("WWW-Authenticate", `Basic realm="`+Realm+`", charset="UTF-8"`)
	case http.StatusMethodNotAllowed:
		w.Header().Set("Allow", http.MethodPost)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(te.status)
	_ = json.NewEncoder(w).Encode(te)
}

// token runs one token request and returns the response or a *TokenError.
func (s *Server) token(w http.ResponseWriter, r *http.Request) (*TokenResponse, error) {
	if r.Method != http.MethodPost {
		return nil, tokenErr(http.StatusMethodNotAllowed, "invalid_request",
			"the token endpoint takes POST with a form-encoded body")
	}
	if mt, _, _ := mime.ParseMediaType(r.Header.Get("Content-Type")); mt != "application/x-www-form-urlencoded" {
		return nil, tokenErr(http.StatusBadRequest, "invalid_request",
			"send the token request as Content-Type: application/x-www-form-urlencoded")
	}
	if q := r.URL.Query(); q.Has("client_secret") {
		return nil, tokenErr(http.StatusBadRequest, "invalid_request",
			"client_secret must never be sent in the URL; use HTTP Basic authentication or the form body")
	}
	r.Body = http.MaxBytesReader(w, r.Body, maxTokenRequest)
	if err := r.ParseForm(); err != nil {
		return nil, tokenErr(http.StatusBadRequest, "invalid_request", "unreadable form body: %v", err)
	}
	form := r.PostForm
	for k, v := range form {
		if len(v) > 1 {
			return nil, tokenErr(http.StatusBadRequest, "invalid_request", "parameter %s is repeated; send it once", k)
		}
	}

	switch gt := form.Get("grant_type"); gt {
	case "":
		return nil, tokenErr(http.StatusBadRequest, "invalid_request",
			"grant_type is missing; use grant_type=%s", GrantClientCredentials)
	case GrantClientCredentials:
	default:
		return nil, tokenErr(http.StatusBadRequest, "unsupported_grant_type",
			"grant_type %q is not supported; use grant_type=%s", gt, GrantClientCredentials)
	}

	c, err := s.authenticateClient(r, form)
	if err != nil {
		var te *TokenError
		if errors.As(err, &te) && te.Code == "invalid_client" {
			s.log.InfoContext(r.Context(), "auth: client authentication failed", "reason", te.Description)
		}
		return nil, err
	}

	scopes := c.Scopes
	if form.Has("scope") && strings.TrimSpace(form.Get("scope")) != "" {
		scopes = ParseScope(form.Get("scope"))
		var refused []string
		for _, sc := range scopes {
			if !c.HasScope(sc) {
				refused = append(refused, sc)
			}
		}
		if len(refused) > 0 {
			return nil, tokenErr(http.StatusBadRequest, "invalid_scope",
				"client %s may not request %s; request a subset of its scopes: %s",
				c.ID, FormatScope(refused), FormatScope(c.Scopes))
		}
	}
	if len(scopes) == 0 {
		return nil, tokenErr(http.StatusBadRequest, "invalid_scope",
			"client %s holds no scopes; an administrator must grant it some", c.ID)
	}

	tok, _, err := s.IssueAccessToken(c.ID, scopes)
	if err != nil {
		return nil, err
	}
	s.log.DebugContext(r.Context(), "auth: issued access token", "client_id", c.ID, "scope", FormatScope(scopes))
	return &TokenResponse{
		AccessToken: tok,
		TokenType:   "Bearer",
		ExpiresIn:   int64(s.ttl / time.Second), // exp is iat + ttl exactly
		Scope:       FormatScope(scopes),
	}, nil
}

// authenticateClient checks client_secret_basic or client_secret_post
// credentials (RFC 6749 §2.3.1) and returns the enabled client.
func (s *Server) authenticateClient(r *http.Request, form url.Values) (Client, error) {
	postID, postSecret := form.Get("client_id"), form.Get("client_secret")
	var id, secret string
	if r.Header.Get("Authorization") != "" {
		u, p, ok := r.BasicAuth()
		if !ok {
			return Client{}, tokenErr(http.StatusUnauthorized, "invalid_client",
				"the Authorization header is not HTTP Basic; send Basic base64(client_id:client_secret)")
		}
		// RFC 6749 §2.3.1: both parts are form-urlencoded before base64.
		var err1, err2 error
		id, err1 = url.QueryUnescape(u)
		secret, err2 = url.QueryUnescape(p)
		if err1 != nil || err2 != nil {
			return Client{}, tokenErr(http.StatusUnauthorized, "invalid_client", "malformed Basic credentials")
		}
		if form.Has("client_secret") {
			return Client{}, tokenErr(http.StatusBadRequest, "invalid_request",
				"use one client authentication method: HTTP Basic or client_secret in the body, not both")
		}
		if postID != "" && postID != id {
			return Client{}, tokenErr(http.StatusBadRequest, "invalid_request",
				"client_id in the body differs from the one in the Authorization header")
		}
	} else {
		if postID == "" || postSecret == "" {
			return Client{}, tokenErr(http.StatusUnauthorized, "invalid_client",
				"client authentication is missing; send HTTP Basic base64(client_id:client_secret), or client_id and client_secret in the form body")
		}
		id, secret = postID, postSecret
	}

	c, found := s.clients.Client(id)
	// Hash and compare even for unknown clients, so timing does not reveal
	// which client ids exist.
	if !c.VerifySecret(secret) || !found {
		return Client{}, tokenErr(http.StatusUnauthorized, "invalid_client",
			"unknown client or wrong secret; check client_id and client_secret")
	}
	if c.Disabled {
		return Client{}, tokenErr(http.StatusUnauthorized, "invalid_client",
			"client %s is disabled", c.ID)
	}
	return c, nil
}
