package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/oauth2"

	"github.com/vitalshq/vitals/config"
	"github.com/vitalshq/vitals/httpsig"
)

// adminFlags are the flags of every `vitals admin` command.
type adminFlags struct {
	clientFlags
	tokenFile string
	output    string
}

func (f *adminFlags) register(fs *flag.FlagSet) {
	f.clientFlags.register(fs)
	dir, err := os.UserConfigDir()
	if err != nil {
		dir = "."
	}
	fs.StringVar(&f.tokenFile, "token-file", filepath.Join(dir, "vitals", "admin-token.json"), "where `vitals admin login` keeps the signed-in person's tokens (0600)")
	fs.StringVar(&f.output, "output", "table", "output format: table or json")
}

// savedLogin is the token file: the API it is for, the OAuth token, and
// the person's request-signing key (ed25519 seed, registered at sign-in)
// that signs admin mutations (RFC 9421).
type savedLogin struct {
	APIURL      string        `json:"api_url"`
	Token       *oauth2.Token `json:"token"`
	SignKeyID   string        `json:"sign_key_id,omitempty"`
	SignKeySeed []byte        `json:"sign_key_seed,omitempty"`
}

const adminUsage = `usage: vitals admin <command> [flags]

  login                      sign in as a person (browser, code flow + PKCE, loopback redirect)
  mfa                        set up TOTP for the signed-in person; prints recovery codes once
  clients list|create|disable|enable|limits|rate-limit|add-key
  users list|create|disable|enable|reset-totp
  keys list|rotate

Admin commands need a sign-in with a TOTP code within the last 12 hours.
The first administrator's password is in <data-dir>/bootstrap-admin.json.`

// runAdmin is `vitals admin …`.
func runAdmin(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		fmt.Fprintln(stderr, adminUsage)
		return errUsage
	}
	cmd, args := args[0], args[1:]
	var verb string
	if cmd == "clients" || cmd == "users" || cmd == "keys" {
		if len(args) == 0 || strings.HasPrefix(args[0], "-") {
			fmt.Fprintf(stderr, "vitals admin %s: name the action, e.g. vitals admin %s list\n", cmd, cmd)
			return errUsage
		}
		verb, args = args[0], args[1:]
	}
	var (
		af                       adminFlags
		noBrowser                bool
		name, scopes, ipAllow    string
		username, authMethod     string
		redirects, grants, alg   string
		passwordStdin, codeStdin bool
		qrFile                   string
		class, route, window     string
		quota, burst             int
		clearLimit               bool
		publicKey                string
	)
	fs := flag.NewFlagSet("vitals admin "+cmd, flag.ContinueOnError)
	fs.SetOutput(stderr)
	af.register(fs)
	switch cmd {
	case "login":
		fs.BoolVar(&noBrowser, "no-browser", false, "print the sign-in URL instead of opening a browser")
	case "mfa":
		fs.StringVar(&qrFile, "qr-file", "", "also write the QR code PNG to this file")
		fs.BoolVar(&codeStdin, "code-stdin", false, "read the confirming code from standard input without a prompt")
	case "clients":
		fs.StringVar(&name, "name", "", "create: what the client is")
		fs.StringVar(&scopes, "scopes", "", "create: comma-separated scopes")
		fs.StringVar(&ipAllow, "ip-allow", "", "create: comma-separated CIDRs the client may call from (empty: any)")
		fs.StringVar(&authMethod, "auth-method", "client_secret_basic", "create: client_secret_basic, private_key_jwt or none")
		fs.StringVar(&grants, "grant-types", "client_credentials", "create: comma-separated grant types")
		fs.StringVar(&redirects, "redirect-uris", "", "create: comma-separated redirect URIs (code flow)")
		fs.StringVar(&class, "class", "", "rate-limit: standard, realtime, bulk or admin")
		fs.StringVar(&route, "route", "", "rate-limit: one route (\"POST /v1/events\") instead of the whole class")
		fs.IntVar(&quota, "quota", 0, "rate-limit: requests per window")
		fs.StringVar(&window, "window", "1h", "rate-limit: window (Go duration)")
		fs.IntVar(&burst, "burst", 0, "rate-limit: token-bucket size (default 5 % of the quota)")
		fs.BoolVar(&clearLimit, "clear", false, "rate-limit: remove the override, back to the default")
		fs.StringVar(&alg, "alg", "ed25519", "add-key: ed25519 (with --public-key) or hmac-sha256 (the server makes the secret and shows it once)")
		fs.StringVar(&publicKey, "public-key", "", "add-key: base64 ed25519 public key")
	case "users":
		fs.StringVar(&username, "username", "", "create: the person's username")
		fs.StringVar(&scopes, "scopes", "", "create: comma-separated scopes")
		fs.BoolVar(&passwordStdin, "password-stdin", false, "create: read the password from standard input")
	case "keys":
		fs.StringVar(&alg, "alg", "", "rotate: ES256 (default) or EdDSA")
	default:
		fmt.Fprintf(stderr, "vitals admin: unknown command %q\n\n%s\n", cmd, adminUsage)
		return errUsage
	}
	// Positional arguments (an id) may come before or after the flags.
	var lead []string
	for len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		lead, args = append(lead, args[0]), args[1:]
	}
	rest, err := config.Parse(fs, args, os.Getenv)
	if err != nil {
		return err
	}
	rest = append(lead, rest...)
	if cmd != "clients" && cmd != "users" || verb == "list" || verb == "create" || verb == "rotate" {
		if len(rest) > 0 {
			return fmt.Errorf("%w: unexpected arguments %q", errUsage, rest)
		}
	}
	if cmd == "login" {
		return adminLogin(ctx, af, noBrowser, stderr)
	}
	c, err := af.session(ctx)
	if err != nil {
		return err
	}
	defer c.save()
	split := func(s string) []string {
		var out []string
		for _, p := range strings.Split(s, ",") {
			if p = strings.TrimSpace(p); p != "" {
				out = append(out, p)
			}
		}
		return out
	}
	one := func() (string, error) {
		if len(rest) != 1 {
			return "", fmt.Errorf("%w: name one id: vitals admin %s %s <id>", errUsage, cmd, verb)
		}
		return rest[0], nil
	}
	switch cmd + " " + verb {
	case "mfa ":
		return adminMFA(ctx, c, qrFile, codeStdin, stdout, stderr)
	case "clients list":
		var out struct{ Clients []map[string]any }
		if err := c.call(ctx, http.MethodGet, "/v1/admin/clients", nil, &out); err != nil {
			return err
		}
		return af.print(stdout, out.Clients, "id", "name", "auth_method", "scopes", "ip_allow", "disabled")
	case "clients create":
		body := map[string]any{"name": name, "scopes": split(scopes), "auth_method": authMethod,
			"grant_types": split(grants), "redirect_uris": split(redirects), "ip_allow": split(ipAllow)}
		var out map[string]any
		if err := c.call(ctx, http.MethodPost, "/v1/admin/clients", body, &out); err != nil {
			return err
		}
		return af.print(stdout, []map[string]any{out}, "id", "name", "scopes", "ip_allow", "client_secret")
	case "clients disable", "clients enable":
		id, err := one()
		if err != nil {
			return err
		}
		var out map[string]any
		if err := c.call(ctx, http.MethodPatch, "/v1/admin/clients/"+id, map[string]any{"disabled": verb == "disable"}, &out); err != nil {
			return err
		}
		return af.print(stdout, []map[string]any{out}, "id", "name", "disabled")
	case "clients limits":
		id, err := one()
		if err != nil {
			return err
		}
		var out struct{ Limits, Defaults []map[string]any }
		if err := c.call(ctx, http.MethodGet, "/v1/admin/clients/"+id+"/rate-limits", nil, &out); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "overrides:")
		if err := af.print(stdout, out.Limits, "class", "route", "quota", "window", "burst"); err != nil {
			return err
		}
		fmt.Fprintln(stdout, "defaults:")
		return af.print(stdout, out.Defaults, "class", "quota", "window", "burst")
	case "clients rate-limit":
		id, err := one()
		if err != nil {
			return err
		}
		var cur struct{ Limits []map[string]any }
		if err := c.call(ctx, http.MethodGet, "/v1/admin/clients/"+id+"/rate-limits", nil, &cur); err != nil {
			return err
		}
		limits := []map[string]any{}
		for _, l := range cur.Limits { // keep the other overrides
			if r, _ := l["route"].(string); l["class"] != class || r != route {
				limits = append(limits, l)
			}
		}
		if !clearLimit {
			limits = append(limits, map[string]any{"class": class, "route": route, "quota": quota, "window": window, "burst": burst})
		}
		var out struct{ Limits []map[string]any }
		if err := c.call(ctx, http.MethodPut, "/v1/admin/clients/"+id+"/rate-limits", map[string]any{"limits": limits}, &out); err != nil {
			return err
		}
		return af.print(stdout, out.Limits, "class", "route", "quota", "window", "burst")
	case "clients add-key":
		id, err := one()
		if err != nil {
			return err
		}
		var out map[string]any
		if err := c.call(ctx, http.MethodPost, "/v1/admin/clients/"+id+"/request-keys", map[string]string{"alg": alg, "public_key": publicKey}, &out); err != nil {
			return err
		}
		return af.print(stdout, []map[string]any{out}, "key_id", "alg", "secret")
	case "users list":
		var out struct{ Users []map[string]any }
		if err := c.call(ctx, http.MethodGet, "/v1/admin/users", nil, &out); err != nil {
			return err
		}
		return af.print(stdout, out.Users, "id", "username", "scopes", "mfa", "disabled")
	case "users create":
		pw, err := readPassword(passwordStdin, stderr)
		if err != nil {
			return err
		}
		var out map[string]any
		if err := c.call(ctx, http.MethodPost, "/v1/admin/users", map[string]any{"username": username, "password": pw, "scopes": split(scopes)}, &out); err != nil {
			return err
		}
		return af.print(stdout, []map[string]any{out}, "id", "username", "scopes", "mfa")
	case "users disable", "users enable":
		id, err := one()
		if err != nil {
			return err
		}
		var out map[string]any
		if err := c.call(ctx, http.MethodPatch, "/v1/admin/users/"+id, map[string]any{"disabled": verb == "disable"}, &out); err != nil {
			return err
		}
		return af.print(stdout, []map[string]any{out}, "id", "username", "disabled")
	case "users reset-totp":
		id, err := one()
		if err != nil {
			return err
		}
		return c.call(ctx, http.MethodPost, "/v1/admin/users/"+id+"/totp/reset", nil, nil)
	case "keys list":
		var out struct{ Keys []map[string]any }
		if err := c.call(ctx, http.MethodGet, "/v1/admin/keys", nil, &out); err != nil {
			return err
		}
		return af.print(stdout, out.Keys, "kid", "alg", "active", "created_at", "remove_after")
	case "keys rotate":
		var body any
		if alg != "" {
			body = map[string]string{"alg": alg}
		}
		var out map[string]any
		if err := c.call(ctx, http.MethodPost, "/v1/admin/keys/rotate", body, &out); err != nil {
			return err
		}
		return af.print(stdout, []map[string]any{out}, "kid", "alg", "created_at")
	}
	return fmt.Errorf("%w: vitals admin %s: unknown action %q", errUsage, cmd, verb)
}

func readPassword(fromStdin bool, stderr io.Writer) (string, error) {
	if !fromStdin {
		return "", fmt.Errorf("%w: pass the new user's password on standard input with --password-stdin (never as a flag)", errUsage)
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	return strings.TrimRight(line, "\r\n"), nil
}

// adminSession is a signed-in person's API client; save persists rotated
// tokens.
type adminSession struct {
	af    adminFlags
	hc    *http.Client
	api   string
	ts    oauth2.TokenSource
	saved savedLogin
}

func (f adminFlags) oauthConfig(api string, redirect string) *oauth2.Config {
	return &oauth2.Config{ClientID: CLIClientID, RedirectURL: redirect,
		Endpoint: oauth2.Endpoint{AuthURL: api + "/oauth/authorize", TokenURL: api + "/oauth/token", AuthStyle: oauth2.AuthStyleInParams}}
}

// apiClient returns the API URL and an HTTP client trusting its
// certificate; the URL comes from --api-url, the token file or the
// credentials file.
func (f adminFlags) apiClient() (string, *http.Client, error) {
	api := strings.TrimSuffix(f.apiURL, "/")
	if api == "" {
		if b, err := os.ReadFile(f.tokenFile); err == nil {
			var s savedLogin
			if json.Unmarshal(b, &s) == nil {
				api = s.APIURL
			}
		}
	}
	if api == "" {
		if b, err := os.ReadFile(f.credentials); err == nil {
			var cr credentials
			if json.Unmarshal(b, &cr) == nil {
				api = cr.APIURL
			}
		}
	}
	if api == "" {
		return "", nil, fmt.Errorf("%w: which API? pass --api-url https://host:8443", errUsage)
	}
	ca := f.caFile
	if ca == "" {
		ca = filepath.Join(filepath.Dir(f.credentials), "tls", "cert.pem")
	}
	hc, err := apiHTTPClient(api, ca, f.insecureTLS)
	return api, hc, err
}

func (f adminFlags) session(ctx context.Context) (*adminSession, error) {
	b, err := os.ReadFile(f.tokenFile)
	if err != nil {
		return nil, fmt.Errorf("not signed in (%v): run `vitals admin login` first", err)
	}
	var s savedLogin
	if err := json.Unmarshal(b, &s); err != nil || s.Token == nil {
		return nil, fmt.Errorf("token file %s is damaged: run `vitals admin login` again", f.tokenFile)
	}
	if f.apiURL == "" {
		f.apiURL = s.APIURL
	}
	api, hc, err := f.apiClient()
	if err != nil {
		return nil, err
	}
	ts := f.oauthConfig(api, "").TokenSource(context.WithValue(ctx, oauth2.HTTPClient, hc), s.Token)
	if len(s.SignKeySeed) == ed25519.SeedSize {
		// Mutations are signed with the person's key.
		key := httpsig.Key{ID: s.SignKeyID, Alg: httpsig.AlgEd25519, Ed25519Private: ed25519.NewKeyFromSeed(s.SignKeySeed)}
		signed := *hc
		signed.Transport = &httpsig.Transport{Base: hc.Transport, Key: key,
			ShouldSign: func(r *http.Request) bool { return r.Method != http.MethodGet && r.Method != http.MethodHead }}
		hc = &signed
	}
	return &adminSession{af: f, hc: hc, api: api, ts: ts, saved: s}, nil
}

// save writes the token back when a refresh rotated it.
func (c *adminSession) save() {
	t, err := c.ts.Token()
	if err != nil || t.AccessToken == c.saved.Token.AccessToken {
		return
	}
	s := c.saved
	s.Token = t
	_ = writeLogin(c.af.tokenFile, s)
}

func writeLogin(path string, s savedLogin) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	b, _ := json.MarshalIndent(s, "", "  ")
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, b, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// call sends a JSON request with the person's token and decodes the
// answer into out; a problem+json answer becomes an error with its detail.
func (c *adminSession) call(ctx context.Context, method, path string, body, out any) error {
	t, err := c.ts.Token()
	if err != nil {
		return fmt.Errorf("the sign-in expired (%v): run `vitals admin login` again", err)
	}
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, c.api+path, rd)
	if err != nil {
		return err
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	t.SetAuthHeader(req)
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if resp.StatusCode >= 300 {
		var p struct{ Title, Detail string }
		if json.Unmarshal(b, &p) == nil && p.Detail != "" {
			return fmt.Errorf("%s %s: %d %s: %s", method, path, resp.StatusCode, p.Title, p.Detail)
		}
		return fmt.Errorf("%s %s: %d %s", method, path, resp.StatusCode, strings.TrimSpace(string(b)))
	}
	if out != nil && len(b) > 0 {
		return json.Unmarshal(b, out)
	}
	return nil
}

// print writes rows as an aligned table of cols, or as JSON.
func (f adminFlags) print(w io.Writer, rows []map[string]any, cols ...string) error {
	if f.output == "json" {
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(rows)
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.ToUpper(strings.Join(cols, "\t")))
	for _, r := range rows {
		vals := make([]string, len(cols))
		for i, c := range cols {
			switch v := r[c].(type) {
			case nil:
				vals[i] = "-"
			case []any:
				parts := make([]string, len(v))
				for j, x := range v {
					parts[j] = fmt.Sprint(x)
				}
				vals[i] = strings.Join(parts, ",")
			default:
				vals[i] = fmt.Sprint(v)
			}
		}
		fmt.Fprintln(tw, strings.Join(vals, "\t"))
	}
	return tw.Flush()
}

// adminLogin runs the authorization code flow with PKCE to a loopback
// redirect (RFC 8252): it listens on 127.0.0.1, sends the person to the
// sign-in page and waits for the code.
func adminLogin(ctx context.Context, af adminFlags, noBrowser bool, stderr io.Writer) error {
	api, hc, err := af.apiClient()
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return fmt.Errorf("loopback listener: %w", err)
	}
	defer ln.Close()
	redirect := "http://" + ln.Addr().String() + "/callback"
	cfg := af.oauthConfig(api, redirect)
	verifier, state := oauth2.GenerateVerifier(), oauth2.GenerateVerifier()
	authURL := cfg.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier),
		oauth2.SetAuthURLParam("scope", "admin events:write endpoints:read endpoints:write customers:read analytics:read audit:read"))

	type result struct {
		code string
		err  error
	}
	got := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		var res result
		switch {
		case r.URL.Path != "/callback":
			http.NotFound(w, r)
			return
		case q.Get("state") != state:
			res.err = errors.New("the sign-in answered with a wrong state; start again")
		case q.Get("error") != "":
			res.err = fmt.Errorf("sign-in refused: %s: %s", q.Get("error"), q.Get("error_description"))
		default:
			res.code = q.Get("code")
		}
		if res.err != nil {
			http.Error(w, res.err.Error(), http.StatusBadRequest)
		} else {
			fmt.Fprintln(w, "Signed in to Vitals. You can close this window.")
		}
		select {
		case got <- res:
		default:
		}
	})}
	go func() { _ = srv.Serve(ln) }()
	defer srv.Close()

	fmt.Fprintf(stderr, "Sign in to Vitals at:\n\n  %s\n\nWaiting for the browser (5 minutes)…\n", authURL)
	if !noBrowser {
		openBrowser(authURL)
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	var res result
	select {
	case res = <-got:
	case <-wctx.Done():
		return errors.New("no sign-in within 5 minutes; run `vitals admin login` again")
	}
	if res.err != nil {
		return res.err
	}
	tok, err := cfg.Exchange(context.WithValue(ctx, oauth2.HTTPClient, hc), res.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return fmt.Errorf("exchange the code: %w", err)
	}
	login := savedLogin{APIURL: api, Token: tok}
	// A fresh request-signing key for this sign-in: admin mutations must be
	// signed (RFC 9421) by a key registered for the person.
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return err
	}
	sess := &adminSession{af: af, hc: hc, api: api, ts: oauth2.StaticTokenSource(tok), saved: login}
	var reg struct {
		KeyID string `json:"key_id"`
	}
	if err := sess.call(ctx, http.MethodPost, "/v1/me/request-keys",
		map[string]string{"public_key": base64.StdEncoding.EncodeToString(pub)}, &reg); err != nil {
		return fmt.Errorf("register the request-signing key: %w", err)
	}
	login.SignKeyID, login.SignKeySeed = reg.KeyID, priv.Seed()
	if err := writeLogin(af.tokenFile, login); err != nil {
		return fmt.Errorf("save the sign-in: %w", err)
	}
	fmt.Fprintf(stderr, "Signed in; tokens saved to %s (valid until %s, refreshed automatically)\n", af.tokenFile, tok.Expiry.Format(time.RFC3339))
	return nil
}

// openBrowser tries the desktop's opener; failure is fine, the URL is
// printed.
func openBrowser(u string) {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", u)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", u)
	default:
		cmd = exec.Command("xdg-open", u)
	}
	if cmd.Start() == nil {
		go func() { _ = cmd.Wait() }()
	}
}

// adminMFA enrols TOTP for the signed-in person.
func adminMFA(ctx context.Context, c *adminSession, qrFile string, codeStdin bool, stdout, stderr io.Writer) error {
	var enr struct {
		URI    string `json:"otpauth_uri"`
		Secret string `json:"secret"`
		QRPNG  string `json:"qr_png"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/me/totp", nil, &enr); err != nil {
		return err
	}
	if qrFile != "" {
		png, err := base64.StdEncoding.DecodeString(enr.QRPNG)
		if err != nil {
			return fmt.Errorf("QR code: %w", err)
		}
		if err := os.WriteFile(qrFile, png, 0o600); err != nil {
			return fmt.Errorf("write %s: %w", qrFile, err)
		}
	}
	fmt.Fprintf(stdout, "otpauth_uri: %s\nsecret: %s\n", enr.URI, enr.Secret)
	if !codeStdin {
		fmt.Fprint(stderr, "Add it to an authenticator app (scan the QR code file or type the secret), then enter the current code: ")
	}
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("read code: %w", err)
	}
	var out struct {
		RecoveryCodes []string `json:"recovery_codes"`
	}
	if err := c.call(ctx, http.MethodPost, "/v1/me/totp/confirm", map[string]string{"code": strings.TrimSpace(line)}, &out); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "recovery codes (each works once; store them safely, they are not shown again):")
	for _, rc := range out.RecoveryCodes {
		fmt.Fprintln(stdout, "  "+rc)
	}
	fmt.Fprintln(stderr, "TOTP is set up. Run `vitals admin login` again and enter a code to use the admin commands.")
	return nil
}
