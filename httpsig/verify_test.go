package httpsig

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vitalshq/vitals/problem"
)

// sigServer is an httptest server whose handler reads the body, verifies
// the signature and answers 200 with the Result as JSON or the problem
// WriteProblem writes.
type sigServer struct {
	*httptest.Server
	clock  *testClock
	edKey  Key // ed25519, signing half included
	macKey Key // hmac-sha256
}

func newSigServer(t *testing.T, opts ...VerifierOption) *sigServer {
	t.Helper()
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	s := &sigServer{
		clock:  newTestClock(time.Unix(1_800_000_000, 0)),
		edKey:  Key{ID: "client-a-ed", ClientID: "client-a", Alg: AlgEd25519, Ed25519Private: priv},
		macKey: Key{ID: "client-b-mac", ClientID: "client-b", Alg: AlgHMACSHA256, HMAC: secret},
	}
	keys := StaticKeys{
		s.edKey.ID:  {ID: s.edKey.ID, ClientID: "client-a", Alg: AlgEd25519, Ed25519Public: pub},
		s.macKey.ID: s.macKey,
	}
	v := NewVerifier(keys, append([]VerifierOption{WithClock(s.clock.Now)}, opts...)...)
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		res, err := v.Verify(r.Context(), r, body)
		if err != nil {
			WriteProblem(w, r, err)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(res)
	}))
	t.Cleanup(s.Close)
	return s
}

// signedRequest builds a request to path on s, signed by key with p.
func (s *sigServer) signedRequest(t *testing.T, method, path string, body []byte, key Key, p SignParams) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	r, err := http.NewRequest(method, s.URL+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if p.Now == nil && p.Created.IsZero() {
		p.Now = s.clock.Now
	}
	if err := Sign(r, body, key, p); err != nil {
		t.Fatal(err)
	}
	return r
}

// reply is what the test server answered.
type reply struct {
	status  int
	result  Result
	problem map[string]any
}

func (s *sigServer) send(t *testing.T, r *http.Request) reply {
	t.Helper()
	resp, err := s.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	out := reply{status: resp.StatusCode}
	if resp.StatusCode == http.StatusOK {
		if err := json.NewDecoder(resp.Body).Decode(&out.result); err != nil {
			t.Fatal(err)
		}
		return out
	}
	if ct := resp.Header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("status %d with Content-Type %q, want %s", resp.StatusCode, ct, problem.ContentType)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out.problem); err != nil {
		t.Fatal(err)
	}
	return out
}

// wantRefused checks a 401 whose signature_error is reason and whose
// detail contains every fragment.
func wantRefused(t *testing.T, got reply, reason string, fragments ...string) {
	t.Helper()
	if got.status != http.StatusUnauthorized {
		t.Fatalf("status %d (%v), want 401 %s", got.status, got.problem, reason)
	}
	if got.problem["signature_error"] != reason {
		t.Errorf("signature_error %v, want %s (detail: %v)", got.problem["signature_error"], reason, got.problem["detail"])
	}
	detail, _ := got.problem["detail"].(string)
	for _, f := range fragments {
		if !strings.Contains(detail, f) {
			t.Errorf("detail %q does not mention %q", detail, f)
		}
	}
}

// resend builds a fresh request with r's method, URL, headers and body.
func resend(t *testing.T, r *http.Request, body []byte) *http.Request {
	t.Helper()
	var rd io.Reader
	if body != nil {
		rd = bytes.NewReader(body)
	}
	c, err := http.NewRequest(r.Method, r.URL.String(), rd)
	if err != nil {
		t.Fatal(err)
	}
	c.Header = r.Header.Clone()
	return c
}

func TestRoundTripOverHTTP(t *testing.T) {
	s := newSigServer(t)
	body := []byte(`{"events":[{"type":"login"}]}`)

	// Ed25519 over a POST with a body, through Transport, as the Go
	// client does it.
	client := &http.Client{Transport: &Transport{Base: s.Client().Transport, Key: s.edKey, Params: SignParams{Now: s.clock.Now}}}
	resp, err := client.Post(s.URL+"/v1/events/batch?dry_run=true", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	var res Result
	if err := json.NewDecoder(resp.Body).Decode(&res); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	want := []string{"@method", "@target-uri", "content-digest", "content-type"}
	if res.KeyID != s.edKey.ID || res.ClientID != "client-a" || res.Alg != AlgEd25519 ||
		strings.Join(res.Components, " ") != strings.Join(want, " ") || len(res.Nonce) < 16 {
		t.Errorf("result %+v", res)
	}

	// A second request through the same transport gets a fresh nonce.
	resp, err = client.Post(s.URL+"/v1/events/batch?dry_run=true", "application/json", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("second request through Transport: status %d", resp.StatusCode)
	}

	// HMAC over a DELETE without a body: only @method and @target-uri are
	// required.
	got := s.send(t, s.signedRequest(t, http.MethodDelete, "/v1/endpoints/ep_1", nil, s.macKey, SignParams{}))
	if got.status != http.StatusOK || got.result.ClientID != "client-b" || len(got.result.Components) != 2 {
		t.Fatalf("DELETE: %+v", got)
	}
}

func TestMissingSignature(t *testing.T) {
	s := newSigServer(t)
	r, _ := http.NewRequest(http.MethodPost, s.URL+"/v1/events/batch", strings.NewReader(`{}`))
	r.Header.Set("Content-Type", "application/json")
	resp, err := s.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got, want := resp.Header.Get("Accept-Signature"), `sig1=("@method" "@target-uri" "content-digest" "content-type");created;nonce;keyid`; got != want {
		t.Errorf("Accept-Signature %q, want %q", got, want)
	}
	r, _ = http.NewRequest(http.MethodPost, s.URL+"/v1/events/batch", strings.NewReader(`{}`))
	r.Header.Set("Content-Type", "application/json")
	wantRefused(t, s.send(t, r), "signature_missing", "no Signature-Input and Signature",
		"covering @method @target-uri content-digest content-type")

	r = s.signedRequest(t, http.MethodDelete, "/v1/endpoints/ep_1", nil, s.edKey, SignParams{})
	r.Header.Del("Signature")
	wantRefused(t, s.send(t, r), "signature_missing", "no Signature")
}

func TestReplayedNonce(t *testing.T) {
	s := newSigServer(t)
	body := []byte(`{"a":1}`)
	r := s.signedRequest(t, http.MethodPost, "/v1/events/batch", body, s.edKey, SignParams{Nonce: "n-0123456789"})
	if got := s.send(t, resend(t, r, body)); got.status != http.StatusOK {
		t.Fatalf("first: %+v", got)
	}
	wantRefused(t, s.send(t, resend(t, r, body)), "signature_replayed", `nonce "n-0123456789" was already used`, "fresh random nonce")

	// A new signature with the same nonce is a replay too, even later.
	s.clock.Advance(200 * time.Second)
	wantRefused(t, s.send(t, s.signedRequest(t, http.MethodPost, "/v1/events/batch", body, s.edKey, SignParams{Nonce: "n-0123456789"})),
		"signature_replayed")

	// The same nonce under another key is another nonce.
	r2 := s.signedRequest(t, http.MethodPost, "/v1/events/batch", body, s.macKey, SignParams{Nonce: "n-0123456789"})
	if got := s.send(t, r2); got.status != http.StatusOK {
		t.Fatalf("same nonce, other key: %+v", got)
	}
}

func TestConcurrentReplayAdmitsOne(t *testing.T) {
	s := newSigServer(t)
	body := []byte(`{"a":1}`)
	r := s.signedRequest(t, http.MethodPost, "/v1/events/batch", body, s.edKey, SignParams{})
	const n = 16
	statuses := make([]int, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			resp, err := s.Client().Do(resend(t, r, body))
			if err != nil {
				t.Error(err)
				return
			}
			resp.Body.Close()
			statuses[i] = resp.StatusCode
		})
	}
	wg.Wait()
	ok := 0
	for _, st := range statuses {
		if st == http.StatusOK {
			ok++
		} else if st != http.StatusUnauthorized {
			t.Errorf("status %d", st)
		}
	}
	if ok != 1 {
		t.Fatalf("%d of %d identical requests admitted, want exactly 1", ok, n)
	}
}

func TestRefusedRequestDoesNotUseUpNonce(t *testing.T) {
	s := newSigServer(t)
	body := []byte(`{"a":1}`)
	r := s.signedRequest(t, http.MethodPost, "/v1/events/batch", body, s.edKey, SignParams{})
	wantRefused(t, s.send(t, resend(t, r, []byte(`{"a":2}`))), "digest_mismatch")
	if got := s.send(t, resend(t, r, body)); got.status != http.StatusOK {
		t.Fatalf("the genuine request after a tampered copy: %+v", got)
	}
}

func TestStaleCreated(t *testing.T) {
	s := newSigServer(t)
	now := s.clock.Now()
	for _, tc := range []struct {
		name    string
		created time.Time
		expires time.Time
		reason  string
		detail  string
	}{
		{"301 s old", now.Add(-301 * time.Second), time.Time{}, "signature_stale", "created is 301 s in the past"},
		{"301 s ahead", now.Add(301 * time.Second), time.Time{}, "signature_stale", "created is 301 s in the future"},
		{"expired", now.Add(-10 * time.Second), now.Add(-time.Second), "signature_stale", "expired 1 s ago"},
		{"299 s old", now.Add(-299 * time.Second), time.Time{}, "", ""},
		{"299 s ahead", now.Add(299 * time.Second), time.Time{}, "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := s.send(t, s.signedRequest(t, http.MethodDelete, "/v1/endpoints/ep_1", nil, s.edKey,
				SignParams{Created: tc.created, Expires: tc.expires}))
			if tc.reason == "" {
				if got.status != http.StatusOK {
					t.Fatalf("%+v", got)
				}
				return
			}
			wantRefused(t, got, tc.reason, tc.detail, "NTP")
		})
	}
}

func TestDigestMismatch(t *testing.T) {
	s := newSigServer(t)
	r := s.signedRequest(t, http.MethodPost, "/v1/events/batch", []byte(`{"amount":1}`), s.edKey, SignParams{})
	wantRefused(t, s.send(t, resend(t, r, []byte(`{"amount":9}`))), "digest_mismatch", "does not match the Content-Digest sha-256")

	// Rewriting Content-Digest to match the new body breaks the signature.
	r2 := resend(t, r, []byte(`{"amount":9}`))
	r2.Header.Set("Content-Digest", ContentDigest([]byte(`{"amount":9}`)))
	wantRefused(t, s.send(t, r2), "signature_invalid")
}

func TestCheckContentDigest(t *testing.T) {
	body := []byte(`{"hello": "world"}`)
	for _, tc := range []struct {
		lines []string
		want  error
	}{
		{[]string{ContentDigest(body)}, nil},
		{[]string{"sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:"}, nil}, // RFC 9530 §B
		{[]string{"md5=:AAAA:", ContentDigest(body)}, nil},                        // unknown algorithms are ignored
		{[]string{ContentDigest([]byte("other"))}, ErrDigestMismatch},
		{[]string{ContentDigest(body) + ", sha-512=:AAAA:"}, ErrDigestMismatch}, // every supported digest must match
		{[]string{"md5=:AAAA:"}, ErrMalformed},
		{[]string{"sha-256=abc"}, ErrMalformed},
		{[]string{"sha-256=:AAAA"}, ErrMalformed},
		{nil, ErrMissingComponent},
	} {
		err := checkContentDigest(tc.lines, body)
		if (tc.want == nil) != (err == nil) || (tc.want != nil && !errors.Is(err, tc.want)) {
			t.Errorf("%q: %v, want %v", tc.lines, err, tc.want)
		}
	}
}

func TestMissingComponent(t *testing.T) {
	s := newSigServer(t)
	body := []byte(`{}`)

	// Not covered: the brief's example detail, verbatim.
	r := s.signedRequest(t, http.MethodPost, "/v1/events/batch", body, s.edKey,
		SignParams{Components: []string{"@method", "@target-uri", "content-type"}})
	got := s.send(t, resend(t, r, body))
	wantRefused(t, got, "signature_missing_component",
		"the signature does not cover content-digest; sign @method @target-uri content-digest content-type")
	if got.problem["component"] != "content-digest" {
		t.Errorf("component %v", got.problem["component"])
	}

	// Without a body, @target-uri is still required.
	r = s.signedRequest(t, http.MethodDelete, "/v1/endpoints/ep_1", nil, s.edKey, SignParams{Components: []string{"@method", "@path"}})
	wantRefused(t, s.send(t, r), "signature_missing_component", "does not cover @target-uri; sign @method @target-uri")

	// Covered but absent from the request.
	signed, _ := http.NewRequest(http.MethodDelete, s.URL+"/v1/endpoints/ep_1", nil)
	signed.Header.Set("X-Request-Id", "req_1")
	if err := Sign(signed, nil, s.edKey, SignParams{Components: []string{"@method", "@target-uri", "x-request-id"}, Now: s.clock.Now}); err != nil {
		t.Fatal(err)
	}
	signed.Header.Del("X-Request-Id")
	got = s.send(t, signed)
	wantRefused(t, got, "signature_missing_component", "has no x-request-id header", "send it")
}

func TestSignRefusesMissingComponent(t *testing.T) {
	r, _ := http.NewRequest(http.MethodPost, "https://api.example/v1/events/batch", strings.NewReader("{}"))
	// No Content-Type: the default components for a body cover it.
	err := Sign(r, []byte("{}"), Key{ID: "k", Alg: AlgHMACSHA256, HMAC: make([]byte, 32)}, SignParams{})
	if !errors.Is(err, ErrMissingComponent) || !strings.Contains(err.Error(), "content-type") {
		t.Fatalf("Sign without Content-Type: %v", err)
	}
}

func TestUnknownKey(t *testing.T) {
	s := newSigServer(t)
	stranger := s.macKey
	stranger.ID = "who-is-this"
	wantRefused(t, s.send(t, s.signedRequest(t, http.MethodDelete, "/v1/endpoints/ep_1", nil, stranger, SignParams{})),
		"signature_unknown_key", `keyid "who-is-this" is not registered`)
}

func TestTamperedSignature(t *testing.T) {
	s := newSigServer(t)
	for _, key := range []Key{s.edKey, s.macKey} {
		t.Run(key.Alg, func(t *testing.T) {
			// A flipped bit in the signature.
			r := s.signedRequest(t, http.MethodDelete, "/v1/endpoints/ep_1", nil, key, SignParams{})
			sig := r.Header.Get("Signature")
			i := strings.Index(sig, ":") + 5
			c := byte('A')
			if sig[i] == 'A' {
				c = 'B'
			}
			r.Header.Set("Signature", sig[:i]+string(c)+sig[i+1:])
			wantRefused(t, s.send(t, r), "signature_invalid", "does not verify with key")

			// A signature moved to another target.
			r = s.signedRequest(t, http.MethodDelete, "/v1/endpoints/ep_1", nil, key, SignParams{})
			moved := resend(t, r, nil)
			moved.URL.Path = "/v1/endpoints/ep_2"
			wantRefused(t, s.send(t, moved), "signature_invalid")

			// Another method.
			r = s.signedRequest(t, http.MethodDelete, "/v1/endpoints/ep_1", nil, key, SignParams{})
			moved = resend(t, r, nil)
			moved.Method = http.MethodGet
			wantRefused(t, s.send(t, moved), "signature_invalid")

			// An alg parameter that names another algorithm.
			other := AlgHMACSHA256
			if key.Alg == AlgHMACSHA256 {
				other = AlgEd25519
			}
			r = s.signedRequest(t, http.MethodDelete, "/v1/endpoints/ep_1", nil, key, SignParams{})
			r.Header.Set("Signature-Input", strings.Replace(r.Header.Get("Signature-Input"), ";keyid=", `;alg="`+other+`";keyid=`, 1))
			wantRefused(t, s.send(t, r), "signature_invalid", "does not match the algorithm")
		})
	}
}

func TestMalformedHeaders(t *testing.T) {
	s := newSigServer(t)
	good := s.signedRequest(t, http.MethodDelete, "/v1/endpoints/ep_1", nil, s.edKey, SignParams{})
	goodInput, goodSig := good.Header.Get("Signature-Input"), good.Header.Get("Signature")
	created := s.clock.Now().Unix()
	base := `sig1=("@method" "@target-uri")`
	for _, tc := range []struct{ input, sig, detail string }{
		{`sig1=("@method" "@target-uri"`, goodSig, "Signature-Input is not a structured dictionary"},
		{goodInput, `sig1=:not base64!:`, "Signature is not a structured dictionary"},
		{goodInput, `sig1="a string"`, "not a byte sequence"},
		{goodInput, `other=:AAAA:`, "no label in common"},
		{`sig1="@method"`, goodSig, "not an inner list"},
		{`sig1=(method "@target-uri");keyid="k";nonce="n";created=` + itoa(created), goodSig, "component identifiers must be quoted strings"},
		{`sig1=("@method" "@method" "@target-uri");keyid="k";nonce="n";created=` + itoa(created), goodSig, "twice"},
		{`sig1=("@method" "@target-uri" "Content-Type");keyid="k";nonce="n";created=` + itoa(created), goodSig, "not a lower-case field name"},
		{`sig1=("@method" "@target-uri" "@query-param";name="x");keyid="k";nonce="n";created=` + itoa(created), goodSig, "component parameters"},
		{`sig1=("@method" "@target-uri" "@status");keyid="k";nonce="n";created=` + itoa(created), goodSig, "not supported"},
		{base + `;keyid="k";nonce="n"`, goodSig, "no created parameter"},
		{base + `;created="now";keyid="k";nonce="n"`, goodSig, "created must be a non-negative integer"},
		{base + `;created=` + itoa(created) + `;keyid=k;nonce="n"`, goodSig, "keyid must be a quoted string"},
		{base + `;created=` + itoa(created) + `;nonce="n"`, goodSig, "no keyid parameter"},
		{base + `;created=` + itoa(created) + `;keyid="client-a-ed"`, goodSig, "no nonce parameter"},
		{base + `;created=` + itoa(created) + `;keyid="client-a-ed";nonce="` + strings.Repeat("n", 300) + `"`, goodSig, "longer than 256"},
	} {
		r := resend(t, good, nil)
		r.Header.Set("Signature-Input", tc.input)
		r.Header.Set("Signature", tc.sig)
		wantRefused(t, s.send(t, r), "signature_malformed", tc.detail)
	}
}

func TestWithLabel(t *testing.T) {
	s := newSigServer(t, WithLabel("vitals"))
	r := s.signedRequest(t, http.MethodDelete, "/v1/endpoints/ep_1", nil, s.edKey, SignParams{})
	wantRefused(t, s.send(t, r), "signature_missing", "labeled vitals")
	r = s.signedRequest(t, http.MethodDelete, "/v1/endpoints/ep_1", nil, s.edKey, SignParams{Label: "vitals"})
	if got := s.send(t, r); got.status != http.StatusOK || got.result.Label != "vitals" {
		t.Fatalf("%+v", got)
	}
}

// failingKeys is a key store that is down.
type failingKeys struct{}

func (failingKeys) Key(context.Context, string) (Key, error) {
	return Key{}, errors.New("store unreachable")
}

func TestInfrastructureFailureIs503(t *testing.T) {
	v := NewVerifier(failingKeys{})
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, err := v.Verify(r.Context(), r, nil)
		WriteProblem(w, r, err)
	}))
	defer srv.Close()
	r, _ := http.NewRequest(http.MethodDelete, srv.URL+"/v1/endpoints/ep_1", nil)
	if err := Sign(r, nil, Key{ID: "k", Alg: AlgHMACSHA256, HMAC: make([]byte, 32)}, SignParams{}); err != nil {
		t.Fatal(err)
	}
	resp, err := srv.Client().Do(r)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" {
		t.Fatalf("status %d, Retry-After %q; want 503 with Retry-After", resp.StatusCode, resp.Header.Get("Retry-After"))
	}
}

func TestTargetURIBehindTLSProxy(t *testing.T) {
	// The client signs https://api.example/...; the server sees plain HTTP
	// from its proxy and must be told the scheme.
	key := Key{ID: "k", Alg: AlgHMACSHA256, HMAC: make([]byte, 32)}
	clock := newTestClock(time.Unix(1_800_000_000, 0))
	signed, _ := http.NewRequest(http.MethodDelete, "https://api.example/v1/endpoints/ep_1?force=true", nil)
	if err := Sign(signed, nil, key, SignParams{Now: clock.Now}); err != nil {
		t.Fatal(err)
	}
	received := httptest.NewRequest(http.MethodDelete, "/v1/endpoints/ep_1?force=true", nil)
	received.Host = "api.example"
	received.Header = signed.Header.Clone()

	plain := NewVerifier(StaticKeys{"k": key}, WithClock(clock.Now))
	if _, err := plain.Verify(context.Background(), received, nil); !errors.Is(err, ErrBadSignature) {
		t.Fatalf("http scheme: %v, want ErrBadSignature", err)
	}
	behindProxy := NewVerifier(StaticKeys{"k": key}, WithClock(clock.Now), WithScheme("https"))
	if _, err := behindProxy.Verify(context.Background(), received, nil); err != nil {
		t.Fatalf("WithScheme(https): %v", err)
	}
}

func TestDerivedComponents(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/a%2Fb/c?x=1&y=%20", nil)
	r.Host = "API.Example:443"
	m := newMessage(r, "HTTPS")
	want := map[string]string{
		"@method":         "POST",
		"@target-uri":     "https://API.Example:443/a%2Fb/c?x=1&y=%20",
		"@authority":      "api.example",
		"@scheme":         "https",
		"@request-target": "/a%2Fb/c?x=1&y=%20",
		"@path":           "/a%2Fb/c",
		"@query":          "?x=1&y=%20",
		"host":            "API.Example:443",
	}
	for name, w := range want {
		got, err := m.value(name)
		if err != nil || got != w {
			t.Errorf("%s = %q, %v; want %q", name, got, err, w)
		}
	}
	r = httptest.NewRequest(http.MethodGet, "/", nil)
	r.Header.Add("X-Multi", "  a ")
	r.Header.Add("X-Multi", "b,c\t")
	m = newMessage(r, "")
	if got, _ := m.value("@query"); got != "?" {
		t.Errorf("@query without a query = %q, want ?", got)
	}
	if got, _ := m.value("x-multi"); got != "a, b,c" {
		t.Errorf("x-multi = %q, want %q", got, "a, b,c")
	}
	if got, _ := m.value("@authority"); got != "example.com" {
		t.Errorf("@authority = %q", got)
	}
}

func TestKeyFormatsWithoutMaterial(t *testing.T) {
	k := Key{ID: "k1", ClientID: "c", Alg: AlgHMACSHA256, HMAC: []byte("super-secret-value-0123456789abcdef")}
	for _, s := range []string{k.String(), k.GoString(), k.LogValue().String()} {
		if strings.Contains(s, "super-secret") || !strings.Contains(s, "k1") {
			t.Errorf("formatted key %q", s)
		}
	}
	if err := (Key{ID: "short", Alg: AlgHMACSHA256, HMAC: []byte("x")}).Validate(); err == nil {
		t.Error("Validate accepted a 1-byte HMAC secret")
	}
	if err := (Key{ID: "e", Alg: AlgEd25519, Ed25519Public: []byte{1, 2}}).Validate(); err == nil {
		t.Error("Validate accepted a 2-byte ed25519 key")
	}
	if err := (Key{ID: "r", Alg: "rsa-v1_5-sha256"}).Validate(); err == nil {
		t.Error("Validate accepted an unsupported algorithm")
	}
}
