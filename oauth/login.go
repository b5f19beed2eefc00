package oauth

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ory/fosite"

	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/user"
)

// Users authenticates the people who sign in through the code flow
// (user.Service).
type Users interface {
	Authenticate(ctx context.Context, username, password string) (user.User, error)
	HasMFA(u user.User) bool
	VerifyTOTP(ctx context.Context, id, code string) error
	UseRecoveryCode(ctx context.Context, id, code string) error
	User(id string) (user.User, bool)
}

// loginFields are the form fields of the login page; everything else in
// the form is the authorization request, passed through unchanged.
var loginFields = []string{"username", "password", "otp", "ticket", "step"}

// AuthorizeHandler serves GET and POST /oauth/authorize: the authorization
// code flow (PKCE S256 required). GET shows the sign-in form; POST with
// step=password checks the password and, for a user with TOTP, shows the
// code form carrying a short-lived signed ticket; POST with step=otp checks
// the code (or a recovery code) and redirects with the authorization code.
// Errors in the request itself (unknown client, bad redirect URI) are shown
// on the page; others go back to the client's redirect URI as OAuth errors.
func (p *Provider) AuthorizeHandler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		w.Header().Set("Cache-Control", "no-store")
		w.Header().Set("X-Frame-Options", "DENY")
		w.Header().Set("Content-Security-Policy", "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'")
		if p.users == nil {
			http.Error(w, "the authorization code flow is not enabled on this server", http.StatusNotFound)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodPost {
			w.Header().Set("Allow", "GET, POST")
			http.Error(w, "use GET or POST", http.StatusMethodNotAllowed)
			return
		}
		r.Body = http.MaxBytesReader(w, r.Body, 16<<10)
		if err := r.ParseForm(); err != nil {
			http.Error(w, "unreadable form: "+err.Error(), http.StatusBadRequest)
			return
		}
		login := url.Values{}
		for _, f := range loginFields {
			if v, ok := r.Form[f]; ok {
				login[f] = v
				delete(r.Form, f)
				delete(r.PostForm, f)
			}
		}
		ar, err := p.fosite.NewAuthorizeRequest(ctx, r)
		if err != nil {
			p.logRefusal(ctx, "authorization request refused", err)
			p.fosite.WriteAuthorizeError(ctx, w, ar, err)
			return
		}
		params := authorizeParams(r.Form)
		if r.Method == http.MethodGet {
			p.page(w, http.StatusOK, loginPage{Params: params, Client: ar.GetClient().GetID()})
			return
		}
		switch login.Get("step") {
		case "password":
			u, err := p.users.Authenticate(ctx, login.Get("username"), login.Get("password"))
			if err != nil {
				p.log.InfoContext(ctx, "oauth: sign-in failed", "username", login.Get("username"), "err", err)
				p.page(w, http.StatusUnauthorized, loginPage{Params: params, Client: ar.GetClient().GetID(),
					Error: "Wrong username or password, or the account is disabled."})
				return
			}
			if p.users.HasMFA(u) {
				t := p.ticket(u.ID, u.Username, p.now(), r.Form)
				p.page(w, http.StatusOK, loginPage{Params: params, Client: ar.GetClient().GetID(), Ticket: t, Username: u.Username})
				return
			}
			p.finish(w, r, ar, u, p.now(), []string{auth.AMRPassword})
		case "otp":
			id, username, at, ok := p.openTicket(login.Get("ticket"), r.Form)
			if !ok {
				p.page(w, http.StatusUnauthorized, loginPage{Params: params, Client: ar.GetClient().GetID(),
					Error: "The sign-in expired; enter your password again."})
				return
			}
			code := strings.TrimSpace(login.Get("otp"))
			err := p.users.VerifyTOTP(ctx, id, code)
			if err != nil && len(code) > 8 { // not a TOTP code: try it as a recovery code
				err = p.users.UseRecoveryCode(ctx, id, code)
			}
			if err != nil {
				p.log.InfoContext(ctx, "oauth: one-time code refused", "user_id", id, "err", err)
				p.page(w, http.StatusUnauthorized, loginPage{Params: params, Client: ar.GetClient().GetID(),
					Ticket: login.Get("ticket"), Username: username, Error: "That code is wrong or was already used."})
				return
			}
			u, found := p.users.User(id)
			if !found || u.Disabled {
				p.page(w, http.StatusUnauthorized, loginPage{Params: params, Client: ar.GetClient().GetID(),
					Error: "The account is disabled."})
				return
			}
			p.finish(w, r, ar, u, at, []string{auth.AMRPassword, auth.AMROTP, auth.AMRMFA})
		default:
			p.page(w, http.StatusBadRequest, loginPage{Params: params, Client: ar.GetClient().GetID(),
				Error: "Unknown sign-in step; start again."})
		}
	})
}

// finish grants the requested scopes the user holds and redirects with
// the authorization code.
func (p *Provider) finish(w http.ResponseWriter, r *http.Request, ar fosite.AuthorizeRequester, u user.User, authTime time.Time, amr []string) {
	ctx := r.Context()
	for _, s := range ar.GetRequestedScopes() {
		if slices.Contains(u.Scopes, s) {
			ar.GrantScope(s)
		}
	}
	sess := &Session{Subject: u.ID, Username: u.Username, AuthTime: authTime.UTC().Truncate(time.Second), AMR: amr}
	resp, err := p.fosite.NewAuthorizeResponse(ctx, ar, sess)
	if err != nil {
		p.logRefusal(ctx, "authorization response", err)
		p.fosite.WriteAuthorizeError(ctx, w, ar, err)
		return
	}
	p.log.InfoContext(ctx, "oauth: user signed in", "user_id", u.ID, "client_id", ar.GetClient().GetID(),
		"amr", strings.Join(amr, " "), "scope", strings.Join(ar.GetGrantedScopes(), " "))
	p.fosite.WriteAuthorizeResponse(ctx, w, ar, resp)
}

// ticket signs (user, time of the password check, authorization request)
// for the code step, valid loginTicketTTL.
func (p *Provider) ticket(id, username string, at time.Time, form url.Values) string {
	payload := strings.Join([]string{id, username, strconv.FormatInt(at.Unix(), 10)}, "|")
	return base64.RawURLEncoding.EncodeToString([]byte(payload)) + "." + p.mac(payload, form)
}

func (p *Provider) openTicket(t string, form url.Values) (id, username string, at time.Time, ok bool) {
	enc, sig, found := strings.Cut(t, ".")
	if !found {
		return "", "", time.Time{}, false
	}
	raw, err := base64.RawURLEncoding.DecodeString(enc)
	if err != nil || !hmac.Equal([]byte(sig), []byte(p.mac(string(raw), form))) {
		return "", "", time.Time{}, false
	}
	parts := strings.Split(string(raw), "|")
	if len(parts) != 3 {
		return "", "", time.Time{}, false
	}
	unix, err := strconv.ParseInt(parts[2], 10, 64)
	if err != nil {
		return "", "", time.Time{}, false
	}
	at = time.Unix(unix, 0)
	if p.now().Sub(at) > loginTicketTTL {
		return "", "", time.Time{}, false
	}
	return parts[0], parts[1], at, true
}

// mac binds a ticket to the exact authorization request it was issued in.
func (p *Provider) mac(payload string, form url.Values) string {
	m := hmac.New(sha256.New, p.secret)
	m.Write([]byte(payload))
	m.Write([]byte{0})
	m.Write([]byte(form.Encode()))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// param is a hidden form field carrying the authorization request.
type param struct{ Name, Value string }

func authorizeParams(form url.Values) []param {
	names := make([]string, 0, len(form))
	for k := range form {
		names = append(names, k)
	}
	sort.Strings(names)
	var out []param
	for _, k := range names {
		for _, v := range form[k] {
			out = append(out, param{k, v})
		}
	}
	return out
}

type loginPage struct {
	Params   []param
	Client   string
	Ticket   string // non-empty: the code step
	Username string
	Error    string
}

func (p *Provider) page(w http.ResponseWriter, status int, data loginPage) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(status)
	if err := loginTemplate.Execute(w, data); err != nil {
		p.log.Error("oauth: login page", "err", err)
	}
}

var loginTemplate = template.Must(template.New("login").Parse(`<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Sign in to Vitals</title>
<style>body{font-family:system-ui,sans-serif;max-width:22rem;margin:4rem auto}label,input,button{display:block;width:100%;margin:.4rem 0}.err{color:#b00}</style>
</head><body>
<h1>Sign in to Vitals</h1>
<p>Application <code>{{.Client}}</code> asks for access.</p>
{{if .Error}}<p class="err" role="alert">{{.Error}}</p>{{end}}
<form method="post" action="">
{{range .Params}}<input type="hidden" name="{{.Name}}" value="{{.Value}}">
{{end}}{{if .Ticket}}<input type="hidden" name="step" value="otp"><input type="hidden" name="ticket" value="{{.Ticket}}">
<p>Signed in as {{.Username}}.</p>
<label for="otp">Authenticator code (or a recovery code)</label>
<input id="otp" name="otp" autocomplete="one-time-code" inputmode="numeric" required autofocus>
{{else}}<input type="hidden" name="step" value="password">
<label for="username">Username</label><input id="username" name="username" autocomplete="username" required autofocus>
<label for="password">Password</label><input id="password" name="password" type="password" autocomplete="current-password" required>
{{end}}<button type="submit">Continue</button>
</form></body></html>
`))
