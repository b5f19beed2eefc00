package oauth

import (
	"context"
	"errors"
	"strings"

	"github.com/ory/fosite"
	"github.com/ory/fosite/handler/oauth2"

	"github.com/vitalshq/vitals/auth"
)

// strategy makes fosite's tokens: JWT access tokens from auth.Server, and
// fosite's own HMAC authorization codes and refresh tokens.
type strategy struct {
	*oauth2.HMACSHAStrategy
	tokens *auth.Server
}

var _ oauth2.CoreStrategy = (*strategy)(nil)

// AccessTokenSignature is the JWT's signature segment: unique per token
// and useless without the rest.
func (s *strategy) AccessTokenSignature(_ context.Context, token string) string {
	if i := strings.LastIndexByte(token, '.'); i >= 0 {
		return token[i+1:]
	}
	return ""
}

// GenerateAccessToken signs the access token of req and notes its jti in
// the session, which is stored with the grant.
func (s *strategy) GenerateAccessToken(ctx context.Context, req fosite.Requester) (string, string, error) {
	sess, ok := req.GetSession().(*Session)
	if !ok {
		return "", "", errors.New("oauth: session is not *oauth.Session")
	}
	g := auth.Grant{
		Subject:  sess.Subject,
		ClientID: req.GetClient().GetID(),
		Scopes:   req.GetGrantedScopes(),
		AuthTime: sess.AuthTime,
		AMR:      sess.AMR,
	}
	iss, err := s.tokens.Issue(g)
	if err != nil {
		return "", "", err
	}
	sess.JTI = iss.JTI
	sess.SetExpiresAt(fosite.AccessToken, iss.ExpiresAt)
	return iss.Token, s.AccessTokenSignature(ctx, iss.Token), nil
}

// ValidateAccessToken checks an access token as the resource server does
// (signature, claims, revocation, client still enabled).
func (s *strategy) ValidateAccessToken(_ context.Context, _ fosite.Requester, token string) error {
	_, err := s.tokens.VerifyAccessToken(token)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, auth.ErrTokenExpired):
		return fosite.ErrTokenExpired.WithWrap(err)
	default:
		return fosite.ErrInactiveToken.WithWrap(err)
	}
}
