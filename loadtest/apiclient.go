package loadtest

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/vitalshq/vitals/auth"
	"github.com/vitalshq/vitals/httpsig"
)

// apiURL is the base URL of the API child (vitals api, then vitals run):
// the same port throughout, so the bootstrap client's URLs stay true.
func (h *harness) apiURL() string { return "https://127.0.0.1:" + strconv.Itoa(h.apiPort) }

// apiClient returns a client of the API as a customer-success platform
// would be one: TLS 1.3 verifying the API's certificate, an OAuth 2.0
// client-credentials access token (a JWT the API validates on every call)
// of the bootstrap client with scopes, and, when sign is set, an RFC 9421
// signature of every request by the client's request key. conns is the
// number of connections it keeps (HTTP/1.1, one per concurrent sender,
// like that many independent clients).
func (h *harness) apiClient(ctx context.Context, conns int, sign bool, scopes ...string) (*http.Client, error) {
	b, err := os.ReadFile(filepath.Join(h.dataDir, "bootstrap-client.json"))
	if err != nil {
		return nil, fmt.Errorf("bootstrap client: %w", err)
	}
	var bf auth.BootstrapFile
	if err := json.Unmarshal(b, &bf); err != nil {
		return nil, fmt.Errorf("bootstrap client: %w", err)
	}
	pem, err := os.ReadFile(filepath.Join(h.dataDir, "tls", "cert.pem"))
	if err != nil {
		return nil, fmt.Errorf("API certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("API certificate %s holds no PEM certificate", filepath.Join(h.dataDir, "tls", "cert.pem"))
	}
	tr := &http.Transport{
		TLSClientConfig:     &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool},
		TLSNextProto:        map[string]func(string, *tls.Conn) http.RoundTripper{}, // HTTP/1.1
		MaxIdleConns:        conns,
		MaxIdleConnsPerHost: conns,
		IdleConnTimeout:     90 * time.Second,
	}
	cc := clientcredentials.Config{ClientID: bf.ClientID, ClientSecret: bf.ClientSecret, TokenURL: h.apiURL() + "/oauth/token",
		Scopes: scopes, AuthStyle: oauth2.AuthStyleInHeader}
	tokens := cc.TokenSource(context.WithValue(context.WithoutCancel(ctx), oauth2.HTTPClient, &http.Client{Transport: tr, Timeout: 30 * time.Second}))
	if _, err := tokens.Token(); err != nil {
		return nil, fmt.Errorf("access token: %w", err)
	}
	var rt http.RoundTripper = &oauth2.Transport{Source: tokens, Base: tr}
	if sign {
		seed, err := base64.StdEncoding.DecodeString(bf.RequestKey)
		if err != nil || len(seed) != ed25519.SeedSize {
			return nil, fmt.Errorf("bootstrap client: request_key is not a base64 ed25519 seed")
		}
		// Signed before the token is added, as the vitals CLI does.
		rt = &httpsig.Transport{Base: rt, Key: httpsig.Key{ID: bf.RequestKeyID, Alg: httpsig.AlgEd25519, Ed25519Private: ed25519.NewKeyFromSeed(seed)}}
	}
	return &http.Client{Transport: rt, Timeout: 60 * time.Second}, nil
}

// post sends body to path and returns the status, or an error with the
// answer when it is not want.
func post(ctx context.Context, hc *http.Client, url string, body []byte, want int) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, url, bytes.NewReader(body))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != want {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return &statusError{code: resp.StatusCode, msg: string(bytes.TrimSpace(msg))}
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	return nil
}

// statusError is an unexpected HTTP answer.
type statusError struct {
	code int
	msg  string
}

func (e *statusError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.code, e.msg) }

// registerEndpoint registers the receiver as a webhook endpoint for every
// event type, with DispatchInFlight requests in flight at most (the
// bare-POST baseline's concurrency).
func (h *harness) registerEndpoint(ctx context.Context) error {
	hc, err := h.apiClient(ctx, 1, false, auth.ScopeEndpointsWrite)
	if err != nil {
		return err
	}
	body, _ := json.Marshal(map[string]any{"url": h.recv.url, "event_types": []string{"*"},
		"max_in_flight": h.cfg.DispatchInFlight, "description": "vitals bench receiver"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.apiURL()+"/v1/endpoints", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := hc.Do(req)
	if err != nil {
		return fmt.Errorf("register endpoint: %w", err)
	}
	defer resp.Body.Close()
	msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
	if resp.StatusCode != http.StatusCreated {
		return fmt.Errorf("register endpoint: %s: %s", resp.Status, msg)
	}
	h.endpointOK = true
	return nil
}
