package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/vitalshq/vitals/processor/journey"
)

// TestDashboard opens /dashboard of a running pipeline in headless Debian
// Chromium: the page sends the browser to the sign-in page, the bootstrap
// administrator signs in with its password, the page comes back with an
// authorization code, exchanges it (PKCE) and shows live figures. Events
// sent through the API must then change the deliveries on screen and bring
// the churn alert in. A screenshot is saved in the test's artifact
// directory (go test -artifacts -outputdir DIR keeps it under
// DIR/_artifacts).
func TestDashboard(t *testing.T) {
	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Fatalf("Debian chromium is not installed (make deps installs it): %v", err)
	}
	pl := startPipeline(t)
	var admin struct{ Username, Password string }
	eventually(t, 30*time.Second, "bootstrap-admin.json", func() bool {
		b, err := os.ReadFile(filepath.Join(pl.dataDir, "bootstrap-admin.json"))
		return err == nil && json.Unmarshal(b, &admin) == nil && admin.Password != ""
	})
	if status, _, _ := pl.do(t, http.MethodGet, "/v1/dashboard/stats", "", "", nil); status != http.StatusUnauthorized {
		t.Fatalf("stats without a token: %d, want 401", status)
	}
	rcv := newReceiver(t)
	pl.register(t, rcv, "*")

	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium),
		chromedp.NoSandbox, // tests run as root
		// The pipeline's certificate is self-signed: trusted by this
		// browser only, for this test only.
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1280, 1000),
	)...)
	defer cancelAlloc()
	browser, cancelBrowser := chromedp.NewContext(alloc)
	defer cancelBrowser()
	if err := chromedp.Do(browser); err != nil { // start the browser
		t.Fatalf("start chromium: %v", err)
	}
	// Everything the pages write to the console, to fail on errors such as
	// a Content-Security-Policy refusal.
	consoleCtx, stopConsole := context.WithCancel(browser)
	messages := chromedp.Console(consoleCtx)
	console := make(chan []string, 1)
	go func() {
		var errs []string
		for m, err := range messages {
			if err != nil {
				break
			}
			if m.Type == chromedp.ConsoleError || m.IsException() {
				errs = append(errs, m.String())
			}
		}
		console <- errs
	}()
	defer func() { stopConsole(); <-console }()
	if err := chromedp.Do(browser, chromedp.Navigate(pl.apiURL+"/dashboard")); err != nil {
		t.Fatalf("open /dashboard: %v", err)
	}

	// The page starts the code flow by itself.
	waitPage(t, browser, 30*time.Second, "the sign-in page",
		`location.pathname === "/oauth/authorize" && !!document.getElementById("password")`)
	authorizeURL := evalPage[string](t, browser, "location.href")
	for _, p := range []string{"client_id=vitals-dashboard", "code_challenge_method=S256", "scope=analytics%3Aread", "redirect_uri="} {
		if !strings.Contains(authorizeURL, p) {
			t.Errorf("authorization request %s lacks %s", authorizeURL, p)
		}
	}
	step(t, browser, "sign in",
		chromedp.SendKeys(chromedp.ID("username"), admin.Username),
		chromedp.SendKeys(chromedp.ID("password"), admin.Password),
		chromedp.Click(chromedp.CSS(`button[type="submit"]`)),
	)
	waitPage(t, browser, 30*time.Second, "the dashboard's first update",
		`location.pathname === "/dashboard/" && Number(document.body.dataset.updates || 0) >= 1`)
	if search := evalPage[string](t, browser, "location.search"); search != "" {
		t.Errorf("the authorization code stayed in the address bar: %q", search)
	}
	if !evalPage[bool](t, browser, `!!sessionStorage.getItem("vitals.dashboard.access") && localStorage.length === 0`) {
		t.Error("the access token is not in sessionStorage only")
	}
	number := regexp.MustCompile(`^[0-9][0-9,]*$`)
	before := evalPage[string](t, browser, `document.getElementById("deliveries-total").textContent`)
	if !number.MatchString(before) {
		t.Fatalf("deliveries shown before any event: %q, want a number", before)
	}

	// Events in: deliveries happen, the figures on screen follow.
	cust := "cust_dash_" + randomSuffix()
	start := time.Now().UTC().Add(-61 * 24 * time.Hour).Truncate(24 * time.Hour)
	pl.sendJourney(t, pl.token(t, "events:write"), journey.Churning(cust, start))
	var after string
	waitPage(t, browser, 60*time.Second, "the deliveries on screen to change", `(() => {
		const t = document.getElementById("deliveries-total").textContent;
		return /^[0-9][0-9,]*$/.test(t) && t !== `+jsString(before)+`;
	})()`)
	after = evalPage[string](t, browser, `document.getElementById("deliveries-total").textContent`)
	waitPage(t, browser, 60*time.Second, "the churn alert of "+cust,
		`document.getElementById("churn-rows").textContent.includes(`+jsString(cust)+`)`)
	waitPage(t, browser, 30*time.Second, "a p95 latency row and a rate",
		`!document.querySelector("#latency-rows .empty") && document.getElementById("deliveries-rate").textContent !== "—"`)
	waitPage(t, browser, 30*time.Second, "the deliveries sparkline",
		`document.querySelector("#spark-deliveries polyline") !== null`)
	t.Logf("deliveries on screen: %s → %s", before, after)

	png, err := chromedp.Run(browser, chromedp.FullScreenshot(100))
	if err != nil || !bytes.HasPrefix(png, []byte("\x89PNG")) {
		t.Fatalf("screenshot: %v (%d bytes)", err, len(png))
	}
	shot := filepath.Join(t.ArtifactDir(), "dashboard.png")
	if err := os.WriteFile(shot, png, 0o644); err != nil {
		t.Fatal(err)
	}
	t.Logf("screenshot: %s", shot)

	stopConsole()
	if errs := <-console; len(errs) > 0 {
		t.Errorf("the pages wrote errors to the console:\n%s", strings.Join(errs, "\n"))
	}
	console <- nil // for the deferred stop

	// An access token about to expire is refreshed (refresh token
	// rotation) without leaving the page.
	oldAccess := evalPage[string](t, browser, `sessionStorage.getItem("vitals.dashboard.access")`)
	oldRefresh := evalPage[string](t, browser, `sessionStorage.getItem("vitals.dashboard.refresh") || ""`)
	updates := evalPage[int](t, browser, `Number(document.body.dataset.updates)`)
	evalPage[bool](t, browser, `(sessionStorage.setItem("vitals.dashboard.expires", "0"), true)`)
	waitPage(t, browser, 30*time.Second, "an update with a refreshed token", `location.pathname === "/dashboard/" &&
		Number(document.body.dataset.updates) > `+strconv.Itoa(updates)+` &&
		sessionStorage.getItem("vitals.dashboard.access") !== `+jsString(oldAccess)+` &&
		sessionStorage.getItem("vitals.dashboard.refresh") !== `+jsString(oldRefresh))
	refresh := evalPage[string](t, browser, `sessionStorage.getItem("vitals.dashboard.refresh")`)

	// Signing out revokes the refresh token, forgets the tokens and does
	// not sign in again by itself.
	step(t, browser, "sign out", chromedp.Click(chromedp.ID("signout")))
	waitPage(t, browser, 10*time.Second, "the signed-out notice",
		`!document.getElementById("signin").hidden && !sessionStorage.getItem("vitals.dashboard.access")`)
	// The page shows the notice once the revocation was answered: one try
	// (a second would fail anyway, as the reuse of a rotated token).
	resp, err := pl.http.PostForm(pl.creds.TokenURL,
		url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"vitals-dashboard"}})
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("the refresh token still works after sign-out: %s", resp.Status)
	}
}

// jsString quotes s as a JavaScript string literal.
func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// step runs browser actions within 30 s.
func step(t *testing.T, browser context.Context, what string, actions ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// evalPage evaluates expr in the page.
func evalPage[T any](t *testing.T, browser context.Context, expr string) T {
	t.Helper()
	ctx, cancel := context.WithTimeout(browser, 10*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr))
	if err != nil {
		t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// waitPage evaluates expr every 100 ms until it is true or d passes; an
// evaluation failing while the page navigates counts as false.
func waitPage(t *testing.T, browser context.Context, d time.Duration, what, expr string) {
	t.Helper()
	deadline := time.Now().Add(d)
	var lastErr error
	for {
		ctx, cancel := context.WithTimeout(browser, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		lastErr = err
		if time.Now().After(deadline) {
			where, _ := chromedp.Run(browser, chromedp.Location())
			status, _ := chromedp.Run(browser, chromedp.Evaluate[string](`(document.getElementById("status") || document.body || {}).textContent || ""`))
			t.Fatalf("timed out after %s waiting for %s (page %s, status %q, last error %v)", d, what, where, strings.TrimSpace(status), lastErr)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
