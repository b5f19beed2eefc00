package auth

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/go-jose/go-jose/v4/jwt"
)

// Failure classes of access token checks; test them with errors.Is.
var (
	// ErrMissingToken: the request carries no Bearer credentials.
	ErrMissingToken = errors.New("auth: no bearer access token")
	// ErrInvalidToken: the token is malformed, forged, expired, not yet
	// valid, for another issuer or audience, or its client is disabled.
	ErrInvalidToken = errors.New("auth: invalid access token")
	// ErrTokenExpired: the token's exp has passed (also ErrInvalidToken).
	ErrTokenExpired = errors.New("auth: access token expired")
	// ErrInsufficientScope: the token is valid but lacks the route's scope.
	ErrInsufficientScope = errors.New("auth: insufficient scope")
	// ErrAddressNotAllowed: the request comes from outside its client's IP
	// allow-list.
	ErrAddressNotAllowed = errors.New("auth: client address not allowed")
	// ErrMFARequired: the route needs a person who signed in with a
	// one-time code recently (CheckMFA).
	ErrMFARequired = errors.New("auth: fresh MFA sign-in required")
	// ErrNotUser: the route is for people, the token is a machine
	// client's.
	ErrNotUser = errors.New("auth: a person's token is required")
	// ErrNotLocalUser: the route manages a Vitals account, the token is
	// an external issuer's.
	ErrNotLocalUser = errors.New("auth: a Vitals account is required")
)

// maxTokenLen bounds the tokens parsed; ours are well under 1 KiB.
const maxTokenLen = 8 << 10

// InvalidTokenError describes why a token was refused, in words fit for the
// client: Reason goes into error_description and the problem detail.
type InvalidTokenError struct {
	Reason string
	errs   []error // classes it belongs to
}

func (e *InvalidTokenError) Error() string   { return "auth: invalid access token: " + e.Reason }
func (e *InvalidTokenError) Unwrap() []error { return e.errs }

func invalid(format string, args ...any) *InvalidTokenError {
	return &InvalidTokenError{Reason: fmt.Sprintf(format, args...), errs: []error{ErrInvalidToken}}
}

// Principal is who an access token speaks for.
type Principal struct {
	// Issuer is the iss claim: this server's issuer, or an external
	// issuer's (WithExternalIssuer), whose subjects are not Vitals users.
	Issuer string
	// Subject is the sub claim: the client id for client-credentials
	// tokens, the user id for a person's token (code flow).
	Subject   string
	ClientID  string
	Scopes    []string
	TokenID   string // jti
	ExpiresAt time.Time
	// AuthTime and AMR are when and how the person authenticated (zero for
	// machine clients).
	AuthTime time.Time
	AMR      []string
}

// IsUser reports whether p is a person signed in through the code flow
// rather than a machine client.
func (p Principal) IsUser() bool { return p.Subject != p.ClientID }

// HasMFA reports whether p authenticated with a one-time code (amr "otp")
// no longer than maxAge before now.
func (p Principal) HasMFA(now time.Time, maxAge time.Duration) bool {
	return slices.Contains(p.AMR, AMROTP) && !p.AuthTime.IsZero() && now.Sub(p.AuthTime) <= maxAge
}

// HasScope reports whether p was granted scope.
func (p Principal) HasScope(scope string) bool { return slices.Contains(p.Scopes, scope) }

type principalKey struct{}

// ContextWithPrincipal returns ctx carrying p. Require does this; handlers
// and tests read it back with PrincipalFrom.
func ContextWithPrincipal(ctx context.Context, p Principal) context.Context {
	return context.WithValue(ctx, principalKey{}, p)
}

// PrincipalFrom returns the principal Require put in ctx.
func PrincipalFrom(ctx context.Context) (Principal, bool) {
	p, ok := ctx.Value(principalKey{}).(Principal)
	return p, ok
}

// VerifyAccessToken checks a compact JWT access token and returns its
// principal. The signature algorithm must be ES256 or EdDSA and match the
// stored key named by kid; typ must be at+jwt; iss, aud, sub, client_id,
// jti, iat, nbf and exp are required; iss and aud must be this server's;
// the time claims are checked with ClockSkew leeway; the client must still
// exist and be enabled. Failures are *InvalidTokenError wrapping
// ErrInvalidToken (and ErrTokenExpired for an expired token).
//
// A token whose iss names an external issuer (WithExternalIssuer) is
// checked against that issuer's published keys and rules instead: RS256,
// PS256, ES256 or EdDSA; typ JWT or at+jwt; iss, aud, exp, sub and nbf or
// iat required; the client is the IdP's, so only the revocation list
// applies (by jti, when present).
func (s *Server) VerifyAccessToken(raw string) (Principal, error) {
	if len(raw) > maxTokenLen {
		return Principal{}, invalid("the token is too long")
	}
	if x, err := s.externalFor(raw); err != nil {
		return Principal{}, err
	} else if x != nil {
		return s.verifyExternal(x, raw)
	}
	tok, err := jwt.ParseSigned(raw, acceptedAlgs())
	if err != nil {
		return Principal{}, invalid("the token is not a JWS signed with ES256 or EdDSA")
	}
	if len(tok.Headers) != 1 {
		return Principal{}, invalid("the token must carry exactly one signature")
	}
	h := tok.Headers[0]
	if typ, _ := h.ExtraHeaders[jose.HeaderType].(string); !isAccessTokenType(typ) {
		return Principal{}, invalid("the token is not an access token (typ %q, want at+jwt)", typ)
	}
	if h.KeyID == "" {
		return Principal{}, invalid("the token header has no kid")
	}
	key, ok := s.verificationKey(h.KeyID)
	if !ok {
		return Principal{}, invalid("the token is signed by unknown key %q; request a new token", h.KeyID)
	}
	if h.Algorithm != string(key.alg) {
		return Principal{}, invalid("the token's alg %s does not match key %s", h.Algorithm, key.kid)
	}
	var c accessClaims
	if err := tok.Claims(key.public, &c); err != nil {
		return Principal{}, invalid("the token signature does not verify")
	}

	switch {
	case c.Issuer == "":
		return Principal{}, invalid("the token has no iss claim")
	case len(c.Audience) == 0:
		return Principal{}, invalid("the token has no aud claim")
	case c.Expiry == nil:
		return Principal{}, invalid("the token has no exp claim")
	case c.NotBefore == nil:
		return Principal{}, invalid("the token has no nbf claim")
	case c.IssuedAt == nil:
		return Principal{}, invalid("the token has no iat claim")
	case c.ID == "":
		return Principal{}, invalid("the token has no jti claim")
	case c.ClientID == "" || c.Subject == "":
		return Principal{}, invalid("the token has no sub or client_id claim")
	case c.Subject != c.ClientID && (c.AuthTime == nil || len(c.AMR) == 0):
		return Principal{}, invalid("a user's token must carry auth_time and amr")
	}
	now := s.now()
	err = c.Claims.ValidateWithLeeway(jwt.Expected{
		Issuer:      s.issuer,
		AnyAudience: jwt.Audience{s.audience},
		Time:        now,
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
		return Principal{}, invalid("the token was issued by %q, not %q", c.Issuer, s.issuer)
	case errors.Is(err, jwt.ErrInvalidAudience):
		return Principal{}, invalid("the token is not meant for audience %q", s.audience)
	default:
		return Principal{}, invalid("the token's claims are invalid")
	}

	if s.revoked != nil && s.revoked.Revoked(c.ID) {
		return Principal{}, invalid("the token was revoked; request a new one")
	}
	client, ok := s.clients.Client(c.ClientID)
	if !ok || client.Disabled {
		return Principal{}, invalid("client %s is unknown or disabled", c.ClientID)
	}
	p := Principal{
		Issuer:    s.issuer,
		Subject:   c.Subject,
		ClientID:  c.ClientID,
		Scopes:    ParseScope(c.Scope),
		TokenID:   c.ID,
		ExpiresAt: c.Expiry.Time(),
		AMR:       c.AMR,
	}
	if c.AuthTime != nil {
		p.AuthTime = c.AuthTime.Time()
	}
	return p, nil
}

// isAccessTokenType accepts the RFC 9068 typ, with or without the
// "application/" prefix (RFC 7515 §4.1.9), in any case.
func isAccessTokenType(typ string) bool {
	typ = strings.ToLower(typ)
	return typ == TokenType || typ == "application/"+TokenType
}
