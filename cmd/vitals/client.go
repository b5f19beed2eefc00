package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"golang.org/x/oauth2"
	"golang.org/x/oauth2/clientcredentials"

	"github.com/vitalshq/vitals/httpsig"
	"github.com/vitalshq/vitals/receiver"
	"github.com/vitalshq/vitals/simulate"
)

// apiHTTPClient returns an HTTP client that trusts caFile for an https API.
func apiHTTPClient(apiURL, caFile string, insecure bool) (*http.Client, error) {
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.TLSClientConfig = &tls.Config{MinVersion: tls.VersionTLS13}
	if strings.HasPrefix(apiURL, "https://") {
		switch {
		case insecure:
			tr.TLSClientConfig.InsecureSkipVerify = true
		default:
			pem, err := os.ReadFile(caFile)
			if err == nil {
				pool, _ := x509.SystemCertPool()
				if pool == nil {
					pool = x509.NewCertPool()
				}
				if !pool.AppendCertsFromPEM(pem) {
					return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", caFile)
				}
				tr.TLSClientConfig.RootCAs = pool
			} else if !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("--ca-file: %w", err)
			}
		}
	}
	return &http.Client{Transport: tr, Timeout: 60 * time.Second}, nil
}

func simulateRun(ctx context.Context, log *slog.Logger, stdout io.Writer, cr credentials, hc *http.Client,
	customers int, rate float64, batch int, journeys []string, prefix string) error {
	start := time.Now()
	st, err := simulate.Run(ctx, simulate.Config{
		APIURL: cr.APIURL, TokenURL: cr.TokenURL, ClientID: cr.ClientID, ClientSecret: cr.ClientSecret,
		HTTPClient: hc, Customers: customers, Journeys: journeys, Rate: rate, BatchSize: batch,
		Prefix: prefix, Logger: log,
	})
	if err != nil {
		return fmt.Errorf("after %d events: %w", st.Events, err)
	}
	fmt.Fprintf(stdout, "sent %d events for %d customers in %d requests (%d retried) in %s\n",
		st.Events, len(st.Customers), st.Requests, st.Retries, time.Since(start).Round(time.Millisecond))
	return nil
}

// endpointsClient returns an HTTP client authenticated for endpoint
// management (scope endpoints:write) that signs its changes (RFC 9421)
// with the credentials' request key.
func endpointsClient(ctx context.Context, hc *http.Client, cr credentials) *http.Client {
	cc := clientcredentials.Config{ClientID: cr.ClientID, ClientSecret: cr.ClientSecret, TokenURL: cr.TokenURL,
		Scopes: []string{"endpoints:write"}, AuthStyle: oauth2.AuthStyleInHeader}
	c := cc.Client(context.WithValue(ctx, oauth2.HTTPClient, hc))
	if seed, err := base64.StdEncoding.DecodeString(cr.RequestKey); err == nil && len(seed) == ed25519.SeedSize {
		key := httpsig.Key{ID: cr.RequestKeyID, Alg: httpsig.AlgEd25519, Ed25519Private: ed25519.NewKeyFromSeed(seed)}
		c.Transport = &httpsig.Transport{Base: c.Transport, Key: key,
			ShouldSign: func(r *http.Request) bool { return r.Method != http.MethodGet }}
	}
	return c
}

// deleteEndpoint removes the endpoint with the given id.
func deleteEndpoint(ctx context.Context, client *http.Client, cr credentials, id string) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodDelete, strings.TrimSuffix(cr.APIURL, "/")+"/v1/endpoints/"+id, nil)
	resp, err := client.Do(req)
	if err != nil {
		return fmt.Errorf("delete endpoint %s: %w", id, err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent && resp.StatusCode != http.StatusNotFound {
		return fmt.Errorf("delete endpoint %s: %s", id, resp.Status)
	}
	return nil
}

// registerEndpoint creates an endpoint for url through the API and returns
// its id and signing secret.
func registerEndpoint(ctx context.Context, client *http.Client, cr credentials, url string, types []string) (id, secret string, err error) {
	body, _ := json.Marshal(map[string]any{"url": url, "event_types": types, "description": "vitals listen"})
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, strings.TrimSuffix(cr.APIURL, "/")+"/v1/endpoints", bytes.NewReader(body))
	req.Header.Set("Content-Type", "application/json")
	resp, err := client.Do(req)
	if err != nil {
		return "", "", fmt.Errorf("register endpoint: %w", err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusCreated {
		return "", "", fmt.Errorf("register endpoint: %s: %s", resp.Status, b)
	}
	var out struct {
		ID     string `json:"id"`
		Secret string `json:"secret"`
	}
	if err := json.Unmarshal(b, &out); err != nil {
		return "", "", fmt.Errorf("register endpoint: %w", err)
	}
	return out.ID, out.Secret, nil
}

// listenServe runs the verifying receiver on ln until ctx is done.
func listenServe(ctx context.Context, log *slog.Logger, stdout io.Writer, ln net.Listener, url, secret string) error {
	h, err := receiver.New(secret, receiver.Output(stdout), receiver.Logger(log))
	if err != nil {
		return err
	}
	hs := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("listening for webhooks", "url", url)
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = hs.Shutdown(sctx)
	<-errc
	return nil
}
