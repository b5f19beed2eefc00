package auth

import (
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
	"time"

	"github.com/vitalshq/vitals/clientip"
	"github.com/vitalshq/vitals/problem"
)

// Require returns a handler that lets a request reach next only with a
// valid Bearer access token (see VerifyAccessToken) granted scope, and puts
// its Principal in the request context. Otherwise it answers with a Bearer
// challenge (RFC 6750 §3) and an RFC 9457 problem: 401 without or with an
// invalid token, 403 insufficient_scope when the scope is missing.
func (s *Server) Require(scope string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.Authorize(r, scope)
		if err != nil {
			s.Deny(w, r, scope, p, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(ContextWithPrincipal(r.Context(), p)))
	})
}

// Deny answers a request that Authorize, CheckMFA or CheckUser refused
// with err: 401 with a Bearer challenge for a missing or invalid token and
// for missing MFA (RFC 9470), 403 for a missing scope, an address outside
// the client's allow-list or a route for people; all problem+json. scope
// is the route's scope, p the principal when the token was valid.
func (s *Server) Deny(w http.ResponseWriter, r *http.Request, scope string, p Principal, err error) {
	switch {
	case errors.Is(err, ErrInsufficientScope):
		s.insufficientScope(w, r, scope, p)
	case errors.Is(err, ErrAddressNotAllowed):
		s.log.WarnContext(r.Context(), "auth: request from outside the client's IP allow-list",
			"client_id", p.ClientID, "addr", ClientAddr(r), "path", r.URL.Path)
		problem.Write(w, r, clientip.Problem(ClientAddr(r)).With("client_id", p.ClientID))
	case errors.Is(err, ErrMFARequired):
		s.mfaRequired(w, r, p)
	case errors.Is(err, ErrNotLocalUser):
		problem.Write(w, r, problem.New(http.StatusForbidden, "local-user-required",
			"this route manages a Vitals account; "+p.Issuer+" signs in its own users: use its self-service instead"))
	case errors.Is(err, ErrNotUser):
		problem.Write(w, r, problem.New(http.StatusForbidden, "user-token-required",
			"this route is for a person signed in through "+AuthorizePath+" (vitals admin login); client "+p.ClientID+" is a machine client"))
	default:
		s.unauthorized(w, r, scope, err)
	}
}

// DenyReason names why err refused a request, for the audit log:
// missing_token, invalid_token, insufficient_scope, ip_denied,
// mfa_required, user_required.
func DenyReason(err error) string {
	switch {
	case err == nil:
		return ""
	case errors.Is(err, ErrMissingToken):
		return "missing_token"
	case errors.Is(err, ErrInsufficientScope):
		return "insufficient_scope"
	case errors.Is(err, ErrAddressNotAllowed):
		return "ip_denied"
	case errors.Is(err, ErrMFARequired):
		return "mfa_required"
	case errors.Is(err, ErrNotLocalUser), errors.Is(err, ErrNotUser):
		return "user_required"
	}
	return "invalid_token"
}

// CheckMFA is nil when p is a person who signed in with a one-time code
// within maxAge (amr "otp", auth_time); ErrMFARequired otherwise.
func (s *Server) CheckMFA(p Principal, maxAge time.Duration) error {
	if p.IsUser() && p.HasMFA(s.now(), maxAge) {
		return nil
	}
	return ErrMFARequired
}

// CheckUser is nil when p is a person with a Vitals account (signed in
// here, not at an external issuer); ErrNotLocalUser or ErrNotUser
// otherwise.
func (s *Server) CheckUser(p Principal) error {
	switch {
	case p.Issuer != s.issuer:
		return ErrNotLocalUser
	case !p.IsUser():
		return ErrNotUser
	}
	return nil
}

// Authorize checks the request's Bearer token for scope and returns its
// principal. It fails with ErrMissingToken, an *InvalidTokenError
// (ErrInvalidToken), or ErrInsufficientScope together with the valid
// token's principal.
func (s *Server) Authorize(r *http.Request, scope string) (Principal, error) {
	p, err := s.Authenticate(r)
	if err != nil {
		return p, err
	}
	if !p.HasScope(scope) {
		return p, fmt.Errorf("client %s lacks scope %s: %w", p.ClientID, scope, ErrInsufficientScope)
	}
	return p, nil
}

// RequireUser returns a handler that lets a request reach next only with
// a valid access token of a person with a Vitals account, signed in
// through the code flow (any scope), with its Principal in the context:
// self-service routes such as TOTP enrolment. Others get 401 or 403.
func (s *Server) RequireUser(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, err := s.Authenticate(r)
		if err == nil {
			err = s.CheckUser(p)
		}
		if err != nil {
			s.Deny(w, r, "(any: sign in as a person)", p, err)
			return
		}
		next.ServeHTTP(w, r.WithContext(ContextWithPrincipal(r.Context(), p)))
	})
}

// Authenticate checks the request's Bearer token and the client's IP
// allow-list, whatever the scope.
func (s *Server) Authenticate(r *http.Request) (Principal, error) {
	raw, err := bearerToken(r)
	if err != nil {
		return Principal{}, err
	}
	p, err := s.VerifyAccessToken(raw)
	if err != nil {
		return Principal{}, err
	}
	if c, ok := s.clients.Client(p.ClientID); ok && !c.IPAllow.Empty() && !c.IPAllow.Allows(ClientAddr(r)) {
		return p, fmt.Errorf("client %s: %s: %w", p.ClientID, ClientAddr(r), ErrAddressNotAllowed)
	}
	return p, nil
}

// ClientAddr is the address a request comes from: the one clientip's
// middleware resolved (X-Forwarded-For through trusted proxies only), or
// else the socket peer.
func ClientAddr(r *http.Request) netip.Addr {
	if a, ok := clientip.FromContext(r.Context()); ok {
		return a
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// DefaultMFAMaxAge is how recent a person's one-time-code authentication
// must be for admin routes.
const DefaultMFAMaxAge = 12 * time.Hour

// RequireMFA returns a handler that lets a request reach next only when
// its principal (put there by Require, which must run first) authenticated
// with a one-time code within maxAge: amr contains "otp" and auth_time is
// recent. Otherwise it answers 401 with the RFC 9470 challenge
// error="insufficient_user_authentication", so the client signs the user
// in again with a code. Machine clients never pass: admin routes are for
// people.
func (s *Server) RequireMFA(maxAge time.Duration, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, _ := PrincipalFrom(r.Context())
		if err := s.CheckMFA(p, maxAge); err != nil {
			s.Deny(w, r, ScopeAdmin, p, err)
			return
		}
		next.ServeHTTP(w, r)
	})
}

// mfaRequired answers 401 with the RFC 9470 step-up challenge.
func (s *Server) mfaRequired(w http.ResponseWriter, r *http.Request, p Principal) {
	maxAge := DefaultMFAMaxAge
	reason := fmt.Sprintf("this route needs a person signed in with a one-time code within the last %s", maxAge)
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+Realm+`", error="insufficient_user_authentication", error_description="`+
		quotable(reason)+`", max_age="`+strconv.Itoa(int(maxAge/time.Second))+`", acr_values="mfa"`)
	detail := reason + "; sign in again through " + AuthorizePath + " with your password and authenticator code (vitals admin login)"
	s.log.InfoContext(r.Context(), "auth: admin route refused without fresh MFA", "sub", p.Subject, "path", r.URL.Path)
	problem.Write(w, r, problem.New(http.StatusUnauthorized, "mfa-required", detail).With("max_age", int(maxAge/time.Second)))
}

// RequireScope returns Require as middleware, for routers that compose
// func(http.Handler) http.Handler.
func (s *Server) RequireScope(scope string) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler { return s.Require(scope, next) }
}

// bearerToken returns the token of an "Authorization: Bearer" header.
func bearerToken(r *http.Request) (string, error) {
	h := r.Header.Get("Authorization")
	scheme, tok, _ := strings.Cut(h, " ")
	if h == "" || !strings.EqualFold(scheme, "Bearer") {
		return "", ErrMissingToken
	}
	tok = strings.TrimSpace(tok)
	if tok == "" {
		return "", invalid("the Bearer credentials are empty")
	}
	return tok, nil
}

// unauthorized answers 401. Without credentials the challenge carries no
// error code (RFC 6750 §3.1); with a bad token it says invalid_token.
func (s *Server) unauthorized(w http.ResponseWriter, r *http.Request, scope string, err error) {
	howTo := "request a token with POST " + TokenPath + " (grant_type=client_credentials&scope=" + scope +
		") and send it as Authorization: Bearer <access_token>"
	var (
		challenge = `Bearer realm="` + Realm + `"`
		p         *problem.Details
	)
	var ite *InvalidTokenError
	if errors.As(err, &ite) {
		challenge += `, error="invalid_token", error_description="` + quotable(ite.Reason) + `"`
		p = problem.New(http.StatusUnauthorized, "invalid-token", ite.Reason+"; "+howTo)
		s.log.InfoContext(r.Context(), "auth: refused access token", "path", r.URL.Path, "reason", ite.Reason)
	} else {
		p = problem.New(http.StatusUnauthorized, "missing-token", "this route needs an access token with scope "+scope+"; "+howTo)
	}
	w.Header().Set("WWW-Authenticate", challenge)
	problem.Write(w, r, p.With("required_scope", scope))
}

// insufficientScope answers 403 insufficient_scope (RFC 6750 §3.1).
func (s *Server) insufficientScope(w http.ResponseWriter, r *http.Request, scope string, p Principal) {
	reason := "this route needs scope " + scope
	w.Header().Set("WWW-Authenticate", `Bearer realm="`+Realm+`", error="insufficient_scope", error_description="`+
		quotable(reason)+`", scope="`+quotable(scope)+`"`)
	detail := reason + "; request a token with scope=" + scope + " (this token has: " + FormatScope(p.Scopes) +
		"); if client " + p.ClientID + " is refused that scope, an administrator must grant it first"
	problem.Write(w, r, problem.New(http.StatusForbidden, "insufficient-scope", detail).
		With("required_scope", scope).
		With("token_scope", FormatScope(p.Scopes)))
}

// quotable keeps only the characters RFC 6750 §3 allows inside
// error_description and scope: printable ASCII without '"' and '\'.
func quotable(s string) string {
	return strings.Map(func(r rune) rune {
		if r < 0x20 || r > 0x7e || r == '"' || r == '\\' {
			return '\''
		}
		return r
	}, s)
}
