package auth

import (
	"cmp"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Paths the lead mounts the handlers on.
const (
	TokenPath     = "/oauth/token"
	AuthorizePath = "/oauth/authorize"
	JWKSPath      = "/.well-known/jwks.json"
)

// GrantClientCredentials is the grant type of machine clients (RFC 6749
// §4.4); package oauth serves it and the others.
const GrantClientCredentials = "client_credentials"

// TokenType is the typ header of access tokens (RFC 9068 §2.1).
const TokenType = "at+jwt"

// accessClaims are the claims of an access token (RFC 9068 §2.2), with
// the authentication context of a user's token (RFC 9068 §2.2.1: auth_time
// and amr, RFC 8176 values).
type accessClaims struct {
	jwt.Claims
	ClientID string           `json:"client_id"`
	Scope    string           `json:"scope"`
	AuthTime *jwt.NumericDate `json:"auth_time,omitempty"`
	AMR      []string         `json:"amr,omitempty"`
}

// Grant is what an access token says: who it speaks for and what it may do.
type Grant struct {
	// Subject is the sub claim: the client id for a machine client, the
	// user id for a person signed in through the code flow.
	Subject  string
	ClientID string
	Scopes   []string
	// AuthTime is when the person authenticated, and AMR how (RFC 8176:
	// "pwd", "otp", "mfa"); both are zero for machine clients.
	AuthTime time.Time
	AMR      []string
	// JTI is the token id; empty means a fresh random one.
	JTI string
}

// Issued is a signed access token.
type Issued struct {
	Token     string
	JTI       string
	ExpiresAt time.Time
}

// NewTokenID returns a fresh random jti: 32 hex digits (128 bits).
func NewTokenID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

// Issue signs an access token for g with the newest signing key, valid for
// the server's token TTL from now. It does not authenticate anyone or
// check scopes: the grant handlers do.
func (s *Server) Issue(g Grant) (Issued, error) {
	key, err := s.signingKey()
	if err != nil {
		return Issued{}, err
	}
	signer, err := jose.NewSigner(
		jose.SigningKey{Algorithm: key.alg, Key: key.priv},
		(&jose.SignerOptions{}).WithType(TokenType).WithHeader("kid", key.kid),
	)
	if err != nil {
		return Issued{}, fmt.Errorf("issue token for %s: signer %s: %w", g.ClientID, key.kid, err)
	}
	now := s.now().UTC().Truncate(time.Second)
	expires := now.Add(s.ttl)
	if g.JTI == "" {
		g.JTI = NewTokenID()
	}
	claims := accessClaims{
		Claims: jwt.Claims{
			Issuer:    s.issuer,
			Subject:   cmp.Or(g.Subject, g.ClientID),
			Audience:  jwt.Audience{s.audience},
			Expiry:    jwt.NewNumericDate(expires),
			NotBefore: jwt.NewNumericDate(now),
			IssuedAt:  jwt.NewNumericDate(now),
			ID:        g.JTI,
		},
		ClientID: g.ClientID,
		Scope:    FormatScope(g.Scopes),
		AMR:      g.AMR,
	}
	if !g.AuthTime.IsZero() {
		claims.AuthTime = jwt.NewNumericDate(g.AuthTime)
	}
	token, err := jwt.Signed(signer).Claims(claims).Serialize()
	if err != nil {
		return Issued{}, fmt.Errorf("issue token for %s: sign: %w", g.ClientID, err)
	}
	return Issued{Token: token, JTI: g.JTI, ExpiresAt: expires}, nil
}

// IssueAccessToken signs a machine client's access token: Issue with
// sub = client_id.
func (s *Server) IssueAccessToken(clientID string, scopes []string) (token string, expires time.Time, err error) {
	iss, err := s.Issue(Grant{ClientID: clientID, Scopes: scopes})
	return iss.Token, iss.ExpiresAt, err
}
