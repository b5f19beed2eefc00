package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/vitalshq/vitals/httpsig"
)

// TestSecurity runs the authorization server's flows and the attack suite
// against a running `vitals run` over TLS 1.3: the CLI's sign-in (code +
// PKCE to a loopback redirect), TOTP enrolment, admin calls with MFA, IP
// allow-lists, revocation, refresh-token reuse, key rotation, and the
// forged and replayed credentials each refused with the right status.
func TestSecurity(t *testing.T) {
	pl := startPipeline(t, "--rate-limit", "standard=1000/1h") // the product's default: the token endpoint test needs it
	var admin struct{ Username, Password string }
	adminFile := filepath.Join(pl.dataDir, "bootstrap-admin.json")
	eventually(t, 30*time.Second, "bootstrap-admin.json", func() bool {
		b, err := os.ReadFile(adminFile)
		return err == nil && json.Unmarshal(b, &admin) == nil && admin.Password != ""
	})
	if st, _ := os.Stat(adminFile); st.Mode().Perm() != 0o600 {
		t.Fatalf("bootstrap-admin.json mode %v", st.Mode())
	}
	s := &secEnv{pl: pl, tokenFile: filepath.Join(t.TempDir(), "admin-token.json")}
	noRedirect := *pl.http
	noRedirect.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	s.browser = &noRedirect

	t.Run("TLS 1.2 handshake refused", func(t *testing.T) {
		host := strings.TrimPrefix(pl.apiURL, "https://")
		conn, err := tls.Dial("tcp", host, &tls.Config{InsecureSkipVerify: true, MaxVersion: tls.VersionTLS12})
		if err == nil {
			conn.Close()
			t.Fatal("the API accepted a TLS 1.2 handshake")
		}
	})

	t.Run("client credentials through the discovery document (golang.org/x/oauth2)", func(t *testing.T) {
		status, _, body := pl.do(t, http.MethodGet, "/.well-known/oauth-authorization-server", "", "", nil)
		var m map[string]any
		if status != 200 || json.Unmarshal(body, &m) != nil || m["issuer"] != pl.apiURL {
			t.Fatalf("metadata: %d %s", status, body)
		}
		cc := clientcredentials.Config{ClientID: pl.creds.ClientID, ClientSecret: pl.creds.ClientSecret,
			TokenURL: m["token_endpoint"].(string), Scopes: []string{"endpoints:read"}}
		c := cc.Client(context.WithValue(context.Background(), oauth2.HTTPClient, pl.http))
		resp, err := c.Get(pl.apiURL + "/v1/endpoints")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("GET /v1/endpoints with an x/oauth2 token: %d", resp.StatusCode)
		}
	})

	t.Run("forged tokens", func(t *testing.T) {
		good := pl.token(t, "endpoints:read")
		parts := strings.Split(good, ".")
		hdr := func(h string) string { return base64.RawURLEncoding.EncodeToString([]byte(h)) }
		for name, tok := range map[string]string{
			"alg none":    hdr(`{"alg":"none","typ":"at+jwt"}`) + "." + parts[1] + ".",
			"unknown kid": hdr(`{"alg":"ES256","kid":"k_0000000000000000","typ":"at+jwt"}`) + "." + parts[1] + "." + parts[2],
			"tampered":    parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(`{"scope":"admin"}`)) + "." + parts[2],
		} {
			status, ct, body := pl.do(t, http.MethodGet, "/v1/endpoints", tok, "", nil)
			if status != http.StatusUnauthorized || ct != "application/problem+json" {
				t.Errorf("%s: %d %s %s", name, status, ct, body)
			}
		}
	})

	t.Run("missing scope", func(t *testing.T) {
		status, ct, body := pl.do(t, http.MethodGet, "/v1/admin/clients", pl.token(t, ""), "", nil)
		if status != http.StatusForbidden || ct != "application/problem+json" || !strings.Contains(string(body), "admin") {
			t.Errorf("machine client on an admin route: %d %s", status, body)
		}
	})

	t.Run("revocation and introspection", func(t *testing.T) {
		tok := pl.token(t, "endpoints:read")
		if a := s.introspect(t, tok); a["active"] != true {
			t.Fatalf("introspection of a live token: %v", a)
		}
		if status := s.form(t, "/oauth/revoke", url.Values{"token": {tok}}, true); status != http.StatusOK {
			t.Fatalf("revoke: %d", status)
		}
		eventually(t, time.Second, "the revoked token refused", func() bool {
			status, _, _ := pl.do(t, http.MethodGet, "/v1/endpoints", tok, "", nil)
			return status == http.StatusUnauthorized
		})
		if a := s.introspect(t, tok); a["active"] != false {
			t.Errorf("introspection of a revoked token: %v", a)
		}
	})

	// The first administrator signs in with the CLI, password only.
	s.cliLogin(t, admin.Username, admin.Password, nil)
	pwdOnly := s.savedToken(t)

	t.Run("admin route without MFA", func(t *testing.T) {
		resp := s.get(t, "/v1/admin/clients", pwdOnly.AccessToken)
		if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(resp.Header.Get("WWW-Authenticate"), `error="insufficient_user_authentication"`) {
			t.Errorf("admin route with a password-only sign-in: %d %q", resp.StatusCode, resp.Header.Get("WWW-Authenticate"))
		}
	})

	// TOTP enrolment through the CLI, then a sign-in with a code.
	secret := s.cliMFA(t)
	code := totpAt(t, secret, time.Now().Add(30*time.Second)) // the confirming step is used
	s.cliLogin(t, admin.Username, admin.Password, func() string { return code })

	t.Run("TOTP code replay", func(t *testing.T) {
		if loc, status := s.signIn(t, "http://127.0.0.1:1/callback", admin.Username, admin.Password, func() string { return code }); loc != "" || status != http.StatusUnauthorized {
			t.Errorf("a used TOTP code signed in again: %d %q", status, loc)
		}
	})

	var limited map[string]any
	t.Run("admin calls with MFA (CLI)", func(t *testing.T) {
		out := s.cli(t, "", "admin", "clients", "create", "--name", "partner", "--scopes", "events:write",
			"--ip-allow", "203.0.113.0/24", "--output", "json")
		var rows []map[string]any
		if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 || rows[0]["client_secret"] == nil {
			t.Fatalf("clients create: %v %s", err, out)
		}
		limited = rows[0]
		if out := s.cli(t, "", "admin", "clients", "list"); !strings.Contains(out, limited["id"].(string)) {
			t.Errorf("clients list lacks the new client:\n%s", out)
		}
	})

	t.Run("high-value calls must be signed (RFC 9421)", func(t *testing.T) {
		person := s.savedToken(t).AccessToken
		for _, c := range []struct{ method, path, token, body string }{
			{http.MethodPost, "/v1/admin/keys/rotate", person, ""},
			{http.MethodPost, "/v1/admin/clients", person, `{"name":"x","scopes":["events:write"]}`},
			{http.MethodDelete, "/v1/endpoints/ep_missing", pl.token(t, "endpoints:write"), ""},
		} {
			req, _ := http.NewRequest(c.method, pl.apiURL+c.path, strings.NewReader(c.body))
			req.Header.Set("Authorization", "Bearer "+c.token)
			if c.body != "" {
				req.Header.Set("Content-Type", "application/json")
			}
			resp, err := pl.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized || !strings.Contains(string(b), "signature") {
				t.Errorf("unsigned %s %s: %d %s", c.method, c.path, resp.StatusCode, b)
			}
		}
		// Signed with the bootstrap client's key, the delete goes through
		// to the handler (404: no such endpoint).
		if status, _, b := pl.do(t, http.MethodDelete, "/v1/endpoints/ep_missing", pl.token(t, "endpoints:write"), "", nil); status != http.StatusNotFound {
			t.Errorf("signed delete: %d %s", status, b)
		}
	})

	t.Run("IP allow-list, with a spoofed X-Forwarded-For", func(t *testing.T) {
		if limited == nil {
			t.Fatal("no client: the previous subtest failed")
		}
		for _, xff := range []string{"", "203.0.113.7"} {
			req, _ := http.NewRequest(http.MethodPost, pl.apiURL+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(limited["id"].(string), limited["client_secret"].(string))
			if xff != "" {
				req.Header.Set("X-Forwarded-For", xff) // untrusted peer: ignored
			}
			resp, err := pl.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusForbidden || resp.Header.Get("Content-Type") != "application/problem+json" || !strings.Contains(string(b), "allow-list") {
				t.Errorf("token request from 127.0.0.1 (XFF %q): %d %s", xff, resp.StatusCode, b)
			}
		}
	})

	t.Run("rate-limit override per client (CLI)", func(t *testing.T) {
		tok := pl.token(t, "customers:read")
		// The default realtime burst is 5; the override lifts it for the
		// bootstrap client only.
		s.cli(t, "", "admin", "clients", "rate-limit", pl.creds.ClientID, "--class", "realtime", "--quota", "1000", "--window", "1h", "--burst", "50")
		for i := range 12 {
			if status, _, b := pl.do(t, http.MethodGet, "/v1/customers/cust_x/health", tok, "", nil); status == http.StatusTooManyRequests {
				t.Fatalf("call %d refused despite the override: %s", i+1, b)
			}
		}
		if out := s.cli(t, "", "admin", "clients", "limits", pl.creds.ClientID); !strings.Contains(out, "realtime") || !strings.Contains(out, "1000") {
			t.Errorf("clients limits:\n%s", out)
		}
	})

	t.Run("HMAC request key registered and used", func(t *testing.T) {
		out := s.cli(t, "", "admin", "clients", "add-key", pl.creds.ClientID, "--alg", "hmac-sha256", "--output", "json")
		var rows []map[string]any
		if err := json.Unmarshal([]byte(out), &rows); err != nil || len(rows) != 1 {
			t.Fatalf("add-key: %v %s", err, out)
		}
		secret, err := base64.StdEncoding.DecodeString(fmt.Sprint(rows[0]["secret"]))
		if err != nil || len(secret) != 32 {
			t.Fatalf("secret %v: %v", rows[0]["secret"], err)
		}
		key := httpsig.Key{ID: fmt.Sprint(rows[0]["key_id"]), Alg: httpsig.AlgHMACSHA256, HMAC: secret}
		for _, k := range []httpsig.Key{key, {ID: key.ID, Alg: httpsig.AlgHMACSHA256, HMAC: make([]byte, 32)}} {
			req, _ := http.NewRequest(http.MethodDelete, pl.apiURL+"/v1/endpoints/ep_missing", nil)
			req.Header.Set("Authorization", "Bearer "+pl.token(t, "endpoints:write"))
			if err := httpsig.Sign(req, nil, k, httpsig.SignParams{}); err != nil {
				t.Fatal(err)
			}
			resp, err := pl.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			right := bytes.Equal(k.HMAC, secret)
			want := http.StatusUnauthorized // a wrong secret
			if right {
				want = http.StatusNotFound // signature accepted; no such endpoint
			}
			if resp.StatusCode != want {
				t.Errorf("DELETE signed with the registered secret=%v: %d, want %d", right, resp.StatusCode, want)
			}
		}
	})

	t.Run("key rotation keeps old tokens valid", func(t *testing.T) {
		old := pl.token(t, "endpoints:read")
		s.cli(t, "", "admin", "keys", "rotate")
		fresh := pl.token(t, "endpoints:read")
		if kid(t, old) == kid(t, fresh) {
			t.Fatal("new tokens are signed by the old key")
		}
		for _, tok := range []string{old, fresh} {
			if status, _, body := pl.do(t, http.MethodGet, "/v1/endpoints", tok, "", nil); status != 200 {
				t.Errorf("token of kid %s after rotation: %d %s", kid(t, tok), status, body)
			}
		}
	})

	t.Run("refresh rotation; reuse revokes the family", func(t *testing.T) {
		first := s.savedToken(t)
		second := s.refresh(t, first.RefreshToken, http.StatusOK)
		if second["refresh_token"] == first.RefreshToken {
			t.Fatal("refresh token not rotated")
		}
		s.refresh(t, first.RefreshToken, http.StatusBadRequest) // reuse
		s.refresh(t, second["refresh_token"].(string), http.StatusBadRequest)
		if resp := s.get(t, "/v1/admin/keys", second["access_token"].(string)); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("access token of a revoked family: %d", resp.StatusCode)
		}
	})

	// Last: it exhausts this address's token-endpoint bucket.
	t.Run("secret guessing at the token endpoint is rate limited per address", func(t *testing.T) {
		for i := range 200 {
			req, _ := http.NewRequest(http.MethodPost, pl.apiURL+"/oauth/token", strings.NewReader("grant_type=client_credentials"))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth(pl.creds.ClientID, "guess-"+randomSuffix())
			resp, err := pl.http.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode == http.StatusTooManyRequests {
				if resp.Header.Get("Retry-After") == "" {
					t.Error("429 without Retry-After")
				}
				t.Logf("guess %d refused with 429", i+1)
				return
			}
		}
		t.Fatal("200 wrong secrets from one address, none refused with 429")
	})
}

// secEnv drives the sign-in pages as a browser would, and the CLI.
type secEnv struct {
	pl        *pipeline
	browser   *http.Client // does not follow redirects
	tokenFile string
}

func (s *secEnv) cliArgs() []string {
	return []string{"--api-url", s.pl.apiURL, "--ca-file", filepath.Join(s.pl.dataDir, "tls", "cert.pem"), "--token-file", s.tokenFile}
}

// cli runs `vitals <args> <connection flags>` with stdin and returns its
// standard output; a failure fails the test.
func (s *secEnv) cli(t *testing.T, stdin string, args ...string) string {
	t.Helper()
	cmd := exec.Command(vitalsBin, append(args, s.cliArgs()...)...)
	cmd.Stdin = strings.NewReader(stdin)
	var stderr strings.Builder
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("vitals %s: %v\n%s", strings.Join(args, " "), err, stderr.String())
	}
	return string(out)
}

var ticketRE = regexp.MustCompile(`name="ticket" value="([^"]+)"`)

// signIn posts the sign-in form of authURL's authorization request (the
// password, then the code when otp is set) and returns the redirect
// location, or "" and the status of a refused sign-in.
func (s *secEnv) signIn(t *testing.T, authURL, username, password string, otp func() string) (string, int) {
	t.Helper()
	u, err := url.Parse(authURL)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(authURL, "/oauth/authorize") {
		// A bare redirect URI: make a request of our own for the CLI client.
		q := url.Values{"response_type": {"code"}, "client_id": {"vitals-cli"}, "redirect_uri": {authURL},
			"scope": {"admin"}, "state": {"state-0123456789"}, "code_challenge_method": {"S256"},
			"code_challenge": {oauth2.S256ChallengeFromVerifier(oauth2.GenerateVerifier())}}
		u, _ = url.Parse(s.pl.apiURL + "/oauth/authorize?" + q.Encode())
	}
	form := u.Query()
	form.Set("step", "password")
	form.Set("username", username)
	form.Set("password", password)
	post := func(f url.Values) (*http.Response, string) {
		resp, err := s.browser.Post(s.pl.apiURL+"/oauth/authorize", "application/x-www-form-urlencoded", strings.NewReader(f.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, page := post(form)
	if otp != nil && resp.StatusCode == http.StatusOK {
		m := ticketRE.FindStringSubmatch(page)
		if m == nil {
			t.Fatalf("no code step: %s", page)
		}
		form.Del("username")
		form.Del("password")
		form.Set("step", "otp")
		form.Set("ticket", html.UnescapeString(m[1]))
		form.Set("otp", otp())
		resp, _ = post(form)
	}
	return resp.Header.Get("Location"), resp.StatusCode
}

// cliLogin runs `vitals admin login --no-browser`, signs in at the URL it
// prints and lets the redirect reach its loopback listener.
func (s *secEnv) cliLogin(t *testing.T, username, password string, otp func() string) {
	t.Helper()
	cmd := exec.Command(vitalsBin, append([]string{"admin", "login", "--no-browser"}, s.cliArgs()...)...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill() }()
	var log strings.Builder
	sc := bufio.NewScanner(stderr)
	authURL := ""
	for authURL == "" && sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		log.WriteString(line + "\n")
		if strings.HasPrefix(line, "https://") {
			authURL = line
		}
	}
	if authURL == "" {
		t.Fatalf("vitals admin login printed no URL:\n%s", log.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stderr) }()
	loc, status := s.signIn(t, authURL, username, password, otp)
	if loc == "" {
		t.Fatalf("sign-in refused: %d", status)
	}
	resp, err := http.Get(loc) // the CLI's loopback listener
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("vitals admin login: %v\n%s", err, log.String())
	}
}

// cliMFA runs `vitals admin mfa`, answering with the current code of the
// secret it prints, and returns the secret.
func (s *secEnv) cliMFA(t *testing.T) string {
	t.Helper()
	cmd := exec.Command(vitalsBin, append([]string{"admin", "mfa", "--code-stdin"}, s.cliArgs()...)...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stdout)
	secret := ""
	var out strings.Builder
	for sc.Scan() {
		line := sc.Text()
		out.WriteString(line + "\n")
		if v, ok := strings.CutPrefix(line, "secret: "); ok {
			secret = v
			_, _ = io.WriteString(stdin, totpAt(t, secret, time.Now())+"\n")
			stdin.Close()
		}
	}
	if err := cmd.Wait(); err != nil || secret == "" {
		t.Fatalf("vitals admin mfa: %v\n%s%s", err, out.String(), stderr.String())
	}
	if n := strings.Count(out.String(), "\n  "); n != 10 {
		t.Errorf("%d recovery codes printed, want 10:\n%s", n, out.String())
	}
	return secret
}

func totpAt(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCode(secret, at)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func (s *secEnv) savedToken(t *testing.T) *oauth2.Token {
	t.Helper()
	b, err := os.ReadFile(s.tokenFile)
	if err != nil {
		t.Fatal(err)
	}
	var saved struct{ Token *oauth2.Token }
	if err := json.Unmarshal(b, &saved); err != nil || saved.Token == nil {
		t.Fatalf("token file: %v %s", err, b)
	}
	return saved.Token
}

func (s *secEnv) get(t *testing.T, path, token string) *http.Response {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, s.pl.apiURL+path, nil)
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := s.pl.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp
}

// form posts to an OAuth endpoint, as the bootstrap client when asClient.
func (s *secEnv) form(t *testing.T, path string, f url.Values, asClient bool) int {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.pl.apiURL+path, strings.NewReader(f.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if asClient {
		req.SetBasicAuth(s.pl.creds.ClientID, s.pl.creds.ClientSecret)
	}
	resp, err := s.pl.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode
}

func (s *secEnv) introspect(t *testing.T, tok string) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.pl.apiURL+"/oauth/introspect", strings.NewReader(url.Values{"token": {tok}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(s.pl.creds.ClientID, s.pl.creds.ClientSecret)
	resp, err := s.pl.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	return m
}

func (s *secEnv) refresh(t *testing.T, rt string, want int) map[string]any {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPost, s.pl.apiURL+"/oauth/token", strings.NewReader(url.Values{
		"grant_type": {"refresh_token"}, "refresh_token": {rt}, "client_id": {"vitals-cli"}}.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	resp, err := s.pl.http.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&m)
	if resp.StatusCode != want {
		t.Fatalf("refresh: %d %v, want %d", resp.StatusCode, m, want)
	}
	return m
}

func kid(t *testing.T, tok string) string {
	t.Helper()
	b, err := base64.RawURLEncoding.DecodeString(strings.Split(tok, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var h struct{ Kid string }
	_ = json.Unmarshal(b, &h)
	return h.Kid
}
