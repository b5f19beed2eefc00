package api

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"time"

	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/clientip"
	"github.com/vitalshq/vitals/httpsig"
	"github.com/vitalshq/vitals/problem"
	"github.com/vitalshq/vitals/ratelimit"
	"github.com/vitalshq/vitals/user"
)

// Admin is the back office of the authorization server, routed under
// /v1/admin (scope admin, and a person signed in with a one-time code within
// auth.DefaultMFAMaxAge) and /v1/me (any signed-in person).
type Admin struct {
	Clients AdminClients
	Users   AdminUsers
	Keys    AdminKeys
	// Issuer names Vitals in authenticator apps ("Vitals").
	Issuer string
}

// AdminClients is the OAuth client registry (auth.ClientStore).
type AdminClients interface {
	Client(id string) (auth.Client, bool)
	PutClient(ctx context.Context, c auth.Client) error
	Clients() []auth.Client
}

// AdminUsers manages people (user.Service).
type AdminUsers interface {
	Create(ctx context.Context, username, password string, scopes []string) (user.User, error)
	User(id string) (user.User, bool)
	Users() []user.User
	SetDisabled(ctx context.Context, id string, disabled bool) error
	ResetTOTP(ctx context.Context, id string) error
	BeginTOTP(ctx context.Context, id, issuer string) (user.Enrollment, error)
	ConfirmTOTP(ctx context.Context, id, code string) ([]string, error)
	HasMFA(u user.User) bool
	AddRequestKey(ctx context.Context, id string, public []byte) (httpsig.RegisteredKey, error)
}

// AdminKeys rotates and lists the token signing keys (auth.Server).
type AdminKeys interface {
	RotateSigningKey(ctx context.Context, alg string) (auth.SigningKey, error)
	SigningKeyStatus() []auth.KeyStatus
}

// clientView is a client as the admin API shows it: never a secret hash.
type clientView struct {
	ID           string             `json:"id"`
	Name         string             `json:"name"`
	Scopes       []string           `json:"scopes"`
	AuthMethod   string             `json:"auth_method"`
	GrantTypes   []string           `json:"grant_types"`
	RedirectURIs []string           `json:"redirect_uris,omitempty"`
	IPAllow      clientip.AllowList `json:"ip_allow"`
	Disabled     bool               `json:"disabled"`
	CreatedAt    time.Time          `json:"created_at"`
	// Secret is shown once, when the client is created.
	Secret string `json:"client_secret,omitempty"`
}

func viewClient(c auth.Client) clientView {
	return clientView{ID: c.ID, Name: c.Name, Scopes: c.Scopes, AuthMethod: cmpOr(c.AuthMethod, auth.AuthSecretBasic),
		GrantTypes: c.Grants(), RedirectURIs: c.RedirectURIs, IPAllow: c.IPAllow, Disabled: c.Disabled, CreatedAt: c.CreatedAt}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

func (s *Server) listClients(w http.ResponseWriter, _ *http.Request) {
	out := []clientView{}
	for _, c := range s.d.Admin.Clients.Clients() {
		out = append(out, viewClient(c))
	}
	writeJSON(w, http.StatusOK, map[string]any{"clients": out})
}

func (s *Server) getClient(w http.ResponseWriter, r *http.Request) {
	c, ok := s.d.Admin.Clients.Client(r.PathValue("id"))
	if !ok {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "no client "+r.PathValue("id")+"; list them with GET /v1/admin/clients"))
		return
	}
	writeJSON(w, http.StatusOK, viewClient(c))
}

type createClientReq struct {
	Name         string             `json:"name"`
	Scopes       []string           `json:"scopes"`
	AuthMethod   string             `json:"auth_method"`
	JWKS         map[string]any     `json:"jwks"`
	GrantTypes   []string           `json:"grant_types"`
	RedirectURIs []string           `json:"redirect_uris"`
	IPAllow      clientip.AllowList `json:"ip_allow"`
}

func (s *Server) createClient(w http.ResponseWriter, r *http.Request) {
	var req createClientReq
	if !decodeJSON(w, r, &req, `{"name":…, "scopes":[…], "auth_method":"client_secret_basic"|"private_key_jwt"|"none", "jwks":{…}, "grant_types":[…], "redirect_uris":[…], "ip_allow":["10.0.0.0/8"]}`) {
		return
	}
	c, secret := auth.NewClient(req.Name, req.Scopes, s.now())
	c.AuthMethod, c.GrantTypes, c.RedirectURIs, c.IPAllow = req.AuthMethod, req.GrantTypes, req.RedirectURIs, req.IPAllow
	if p := validateClient(&c, req.JWKS); p != nil {
		problem.Write(w, r, p)
		return
	}
	if c.AuthMethod != auth.AuthSecretBasic {
		c.SecretHash, secret = "", ""
	}
	if err := s.d.Admin.Clients.PutClient(r.Context(), c); err != nil {
		s.storeFailed(w, r, "client", err)
		return
	}
	s.d.Logger.InfoContext(r.Context(), "admin: client created", "client_id", c.ID, "by", principalSubject(r))
	v := viewClient(c)
	v.Secret = secret
	w.Header().Set("Location", "/v1/admin/clients/"+c.ID)
	writeJSON(w, http.StatusCreated, v)
}

// validateClient checks c and fills defaults; jwks is the client's public
// key set for private_key_jwt.
func validateClient(c *auth.Client, jwks map[string]any) *problem.Details {
	if c.Name == "" {
		return invalidField("name", "name is required: say what this client is (\"crm sync\")")
	}
	if len(c.Scopes) == 0 {
		return invalidField("scopes", "scopes is required; known scopes: "+auth.FormatScope(auth.AllScopes()))
	}
	for _, sc := range c.Scopes {
		if !auth.KnownScope(sc) {
			return invalidField("scopes", fmt.Sprintf("unknown scope %q; known scopes: %s", sc, auth.FormatScope(auth.AllScopes())))
		}
	}
	c.AuthMethod = cmpOr(c.AuthMethod, auth.AuthSecretBasic)
	switch c.AuthMethod {
	case auth.AuthSecretBasic:
	case auth.AuthPrivateKeyJWT:
		if len(jwks) == 0 {
			return invalidField("jwks", "private_key_jwt needs the client's public keys as a JWK Set: {\"keys\":[…]}")
		}
		b, err := json.Marshal(jwks)
		if err != nil {
			return invalidField("jwks", "jwks is not a JSON object")
		}
		c.JWKS = b
	case auth.AuthNone:
		if !slices.Contains(c.GrantTypes, auth.GrantAuthorizationCode) {
			return invalidField("auth_method", "a public client (none) may only use the authorization_code grant with PKCE")
		}
	default:
		return invalidField("auth_method", fmt.Sprintf("auth_method %q is not supported; use client_secret_basic, private_key_jwt or none", c.AuthMethod))
	}
	for _, g := range c.Grants() {
		switch g {
		case auth.GrantClientCredentials:
			if c.AuthMethod == auth.AuthNone {
				return invalidField("grant_types", "a public client cannot use client_credentials")
			}
		case auth.GrantAuthorizationCode, auth.GrantRefreshToken:
		default:
			return invalidField("grant_types", fmt.Sprintf("grant type %q is not supported; use client_credentials, authorization_code or refresh_token", g))
		}
	}
	if slices.Contains(c.GrantTypes, auth.GrantAuthorizationCode) && len(c.RedirectURIs) == 0 {
		return invalidField("redirect_uris", "the authorization_code grant needs at least one redirect URI")
	}
	return nil
}

type patchClientReq struct {
	Disabled *bool               `json:"disabled"`
	Scopes   []string            `json:"scopes"`
	IPAllow  *clientip.AllowList `json:"ip_allow"`
	Name     *string             `json:"name"`
}

func (s *Server) patchClient(w http.ResponseWriter, r *http.Request) {
	c, ok := s.d.Admin.Clients.Client(r.PathValue("id"))
	if !ok {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "no client "+r.PathValue("id")))
		return
	}
	var req patchClientReq
	if !decodeJSON(w, r, &req, `{"disabled":true|false, "scopes":[…], "ip_allow":[…], "name":…}`) {
		return
	}
	if req.Disabled != nil {
		c.Disabled = *req.Disabled
	}
	if req.Scopes != nil {
		c.Scopes = req.Scopes
	}
	if req.IPAllow != nil {
		c.IPAllow = *req.IPAllow
	}
	if req.Name != nil {
		c.Name = *req.Name
	}
	if p := validateClient(&c, nil); p != nil && c.AuthMethod != auth.AuthPrivateKeyJWT {
		problem.Write(w, r, p)
		return
	}
	if err := s.d.Admin.Clients.PutClient(r.Context(), c); err != nil {
		s.storeFailed(w, r, "client", err)
		return
	}
	s.d.Logger.InfoContext(r.Context(), "admin: client changed", "client_id", c.ID, "disabled", c.Disabled, "by", principalSubject(r))
	writeJSON(w, http.StatusOK, viewClient(c))
}

// userView is a user as the admin API shows it: never a hash or seed.
type userView struct {
	ID        string    `json:"id"`
	Username  string    `json:"username"`
	Scopes    []string  `json:"scopes"`
	MFA       bool      `json:"mfa"`
	Disabled  bool      `json:"disabled"`
	CreatedAt time.Time `json:"created_at"`
}

func (s *Server) viewUser(u user.User) userView {
	return userView{ID: u.ID, Username: u.Username, Scopes: u.Scopes, MFA: s.d.Admin.Users.HasMFA(u),
		Disabled: u.Disabled, CreatedAt: u.CreatedAt}
}

func (s *Server) listUsers(w http.ResponseWriter, _ *http.Request) {
	out := []userView{}
	for _, u := range s.d.Admin.Users.Users() {
		out = append(out, s.viewUser(u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

type createUserReq struct {
	Username string   `json:"username"`
	Password string   `json:"password"`
	Scopes   []string `json:"scopes"`
}

func (s *Server) createUser(w http.ResponseWriter, r *http.Request) {
	var req createUserReq
	if !decodeJSON(w, r, &req, `{"username":…, "password":…, "scopes":[…]}`) {
		return
	}
	for _, sc := range req.Scopes {
		if !auth.KnownScope(sc) {
			problem.Write(w, r, invalidField("scopes", fmt.Sprintf("unknown scope %q; known scopes: %s", sc, auth.FormatScope(auth.AllScopes()))))
			return
		}
	}
	u, err := s.d.Admin.Users.Create(r.Context(), req.Username, req.Password, req.Scopes)
	switch {
	case errors.Is(err, user.ErrExists):
		problem.Write(w, r, problem.New(http.StatusConflict, "user-exists", "username "+req.Username+" is taken"))
		return
	case errors.Is(err, user.ErrInvalidUsername):
		problem.Write(w, r, invalidField("username", err.Error()))
		return
	case errors.Is(err, user.ErrPasswordPolicy):
		problem.Write(w, r, invalidField("password", err.Error()))
		return
	case err != nil:
		s.storeFailed(w, r, "user", err)
		return
	}
	s.d.Logger.InfoContext(r.Context(), "admin: user created", "user_id", u.ID, "username", u.Username, "by", principalSubject(r))
	writeJSON(w, http.StatusCreated, s.viewUser(u))
}

func (s *Server) patchUser(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Disabled *bool `json:"disabled"`
	}
	if !decodeJSON(w, r, &req, `{"disabled":true|false}`) {
		return
	}
	id := r.PathValue("id")
	if req.Disabled != nil {
		if err := s.d.Admin.Users.SetDisabled(r.Context(), id, *req.Disabled); err != nil {
			s.userErr(w, r, id, err)
			return
		}
	}
	u, _ := s.d.Admin.Users.User(id)
	writeJSON(w, http.StatusOK, s.viewUser(u))
}

func (s *Server) resetUserTOTP(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	if err := s.d.Admin.Users.ResetTOTP(r.Context(), id); err != nil {
		s.userErr(w, r, id, err)
		return
	}
	s.d.Logger.InfoContext(r.Context(), "admin: TOTP reset", "user_id", id, "by", principalSubject(r))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) userErr(w http.ResponseWriter, r *http.Request, id string, err error) {
	if errors.Is(err, user.ErrNotFound) {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "no user "+id+"; list them with GET /v1/admin/users"))
		return
	}
	s.storeFailed(w, r, "user", err)
}

func (s *Server) listKeys(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]any{"keys": s.d.Admin.Keys.SigningKeyStatus()})
}

func (s *Server) rotateKey(w http.ResponseWriter, r *http.Request) {
	var req struct {
		Algorithm string `json:"alg"`
	}
	if r.ContentLength != 0 && !decodeJSON(w, r, &req, `{"alg":"ES256"|"EdDSA"} (or no body)`) {
		return
	}
	k, err := s.d.Admin.Keys.RotateSigningKey(r.Context(), req.Algorithm)
	if errors.Is(err, auth.ErrUnsupportedAlgorithm) {
		problem.Write(w, r, invalidField("alg", "alg must be ES256 or EdDSA"))
		return
	}
	if err != nil {
		s.storeFailed(w, r, "signing key", err)
		return
	}
	s.d.Logger.InfoContext(r.Context(), "admin: signing key rotated", "kid", k.KID, "by", principalSubject(r))
	writeJSON(w, http.StatusCreated, map[string]any{"kid": k.KID, "alg": k.Algorithm, "created_at": k.CreatedAt})
}

// beginTOTP starts the signed-in person's TOTP enrolment.
func (s *Server) beginTOTP(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	enr, err := s.d.Admin.Users.BeginTOTP(r.Context(), p.Subject, cmpOr(s.d.Admin.Issuer, "Vitals"))
	if errors.Is(err, user.ErrTOTPEnrolled) {
		problem.Write(w, r, problem.New(http.StatusConflict, "totp-enrolled",
			"TOTP is already set up for this account; an administrator can reset it (POST /v1/admin/users/{id}/totp/reset)"))
		return
	}
	if err != nil {
		s.userErr(w, r, p.Subject, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"otpauth_uri": enr.URI,
		"secret":      enr.Secret,
		"qr_png":      base64.StdEncoding.EncodeToString(enr.QRPNG),
		"next":        "scan the QR code (or enter the secret) in an authenticator app, then POST /v1/me/totp/confirm {\"code\":\"123456\"}",
	})
}

// confirmTOTP confirms the enrolment with a first code and returns the
// recovery codes, once.
func (s *Server) confirmTOTP(w http.ResponseWriter, r *http.Request) {
	p, _ := auth.PrincipalFrom(r.Context())
	var req struct {
		Code string `json:"code"`
	}
	if !decodeJSON(w, r, &req, `{"code":"123456"}`) {
		return
	}
	codes, err := s.d.Admin.Users.ConfirmTOTP(r.Context(), p.Subject, req.Code)
	switch {
	case errors.Is(err, user.ErrBadCode), errors.Is(err, user.ErrReplayed):
		problem.Write(w, r, problem.New(http.StatusUnprocessableEntity, "bad-code", "that code does not match; check the app's clock and enter the current code"))
		return
	case errors.Is(err, user.ErrNoTOTP):
		problem.Write(w, r, problem.New(http.StatusConflict, "totp-not-started", "start with POST /v1/me/totp"))
		return
	case err != nil:
		s.userErr(w, r, p.Subject, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"recovery_codes": codes,
		"next": "store the recovery codes safely; sign in again to get a token with MFA (amr otp) for admin routes"})
}

func (s *Server) storeFailed(w http.ResponseWriter, r *http.Request, what string, err error) {
	s.d.Logger.ErrorContext(r.Context(), "admin: store failed", "what", what, "err", err)
	problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "store-unavailable", "the "+what+" could not be stored; retry"))
}

func principalSubject(r *http.Request) string {
	p, _ := auth.PrincipalFrom(r.Context())
	return p.Subject
}

// rateLimitEntry is one override as the admin API reads and writes it.
type rateLimitEntry struct {
	Class  ratelimit.Class `json:"class"`
	Route  string          `json:"route,omitempty"` // a route pattern, "POST /v1/events"; empty: the whole class
	Quota  int             `json:"quota"`
	Window string          `json:"window"` // Go duration: "1h", "24h"
	Burst  int             `json:"burst,omitempty"`
}

func (s *Server) getClientRateLimits(w http.ResponseWriter, r *http.Request) {
	c, ok := s.d.Admin.Clients.Client(r.PathValue("id"))
	if !ok {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "no client "+r.PathValue("id")))
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"limits": rateLimitEntries(c.RateLimits), "defaults": defaultLimitEntries()})
}

// putClientRateLimits replaces a client's rate-limit overrides.
func (s *Server) putClientRateLimits(w http.ResponseWriter, r *http.Request) {
	c, ok := s.d.Admin.Clients.Client(r.PathValue("id"))
	if !ok {
		problem.Write(w, r, problem.New(http.StatusNotFound, "not-found", "no client "+r.PathValue("id")))
		return
	}
	var req struct {
		Limits []rateLimitEntry `json:"limits"`
	}
	if !decodeJSON(w, r, &req, `{"limits":[{"class":"standard","route":"POST /v1/events","quota":5000,"window":"1h","burst":250}]}`) {
		return
	}
	var ovs []ratelimit.Override
	for i, e := range req.Limits {
		win, err := time.ParseDuration(e.Window)
		if err != nil {
			problem.Write(w, r, invalidField(fmt.Sprintf("limits[%d].window", i), "window is a Go duration such as 1h or 24h"))
			return
		}
		if !slices.Contains(ratelimit.Classes(), e.Class) {
			problem.Write(w, r, invalidField(fmt.Sprintf("limits[%d].class", i), fmt.Sprintf("class %q is not one of %v", e.Class, ratelimit.Classes())))
			return
		}
		if e.Route != "" && !s.routeOfClass(e.Route, e.Class) {
			problem.Write(w, r, invalidField(fmt.Sprintf("limits[%d].route", i), fmt.Sprintf("no route %q of class %s; name it as METHOD /path", e.Route, e.Class)))
			return
		}
		o := ratelimit.Override{ClientID: c.ID, Class: e.Class, Route: e.Route, Limit: ratelimit.Limit{Quota: e.Quota, Window: win, Burst: e.Burst}}
		if err := o.Validate(); err != nil {
			problem.Write(w, r, invalidField(fmt.Sprintf("limits[%d]", i), err.Error()))
			return
		}
		ovs = append(ovs, o)
	}
	c.RateLimits = ovs
	if err := s.d.Admin.Clients.PutClient(r.Context(), c); err != nil {
		s.storeFailed(w, r, "client", err)
		return
	}
	s.d.Logger.InfoContext(r.Context(), "admin: rate limits set", "client_id", c.ID, "overrides", len(ovs), "by", principalSubject(r))
	writeJSON(w, http.StatusOK, map[string]any{"limits": rateLimitEntries(ovs)})
}

// routeOfClass reports whether pattern is a route of class.
func (s *Server) routeOfClass(pattern string, class ratelimit.Class) bool {
	rs, ok := s.specs[pattern]
	return ok && rs.class == class
}

func rateLimitEntries(ovs []ratelimit.Override) []rateLimitEntry {
	out := []rateLimitEntry{}
	for _, o := range ovs {
		out = append(out, rateLimitEntry{Class: o.Class, Route: o.Route, Quota: o.Limit.Quota, Window: o.Limit.Window.String(), Burst: o.Limit.BurstSize()})
	}
	return out
}

func defaultLimitEntries() []rateLimitEntry {
	out := []rateLimitEntry{}
	defaults := ratelimit.DefaultLimits()
	for _, c := range ratelimit.Classes() {
		l := defaults[c]
		out = append(out, rateLimitEntry{Class: c, Quota: l.Quota, Window: l.Window.String(), Burst: l.BurstSize()})
	}
	return out
}
