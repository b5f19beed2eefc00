package tlsconfig

import (
	"bytes"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// serve starts a real HTTPS server with cfg and returns its URL.
func serve(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	srv := httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.WriteString(w, r.TLS.ServerName+"|"+tls.VersionName(r.TLS.Version))
	}))
	srv.TLS = cfg
	srv.StartTLS()
	t.Cleanup(srv.Close)
	return srv.URL
}

func clientFor(cfg *tls.Config) *http.Client {
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: cfg}}
}

func TestGeneratedCertificateServesTLS13(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Server("", "", dir, []string{"vitals.internal:8443"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.MinVersion != tls.VersionTLS13 {
		t.Fatalf("MinVersion = %x, want TLS 1.3", cfg.MinVersion)
	}
	url := serve(t, cfg)

	ccfg, err := Client(dir)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := clientFor(ccfg).Get(url)
	if err != nil {
		t.Fatalf("GET over generated cert: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.HasSuffix(string(body), "|TLS 1.3") {
		t.Fatalf("negotiated %q, want TLS 1.3", body)
	}
	if resp.TLS.Version != tls.VersionTLS13 {
		t.Fatalf("client saw version %x", resp.TLS.Version)
	}

	// The certificate names the extra host (port stripped) and the defaults.
	leaf := resp.TLS.PeerCertificates[0]
	for _, h := range []string{"localhost", "127.0.0.1", "::1", "vitals.internal"} {
		if err := leaf.VerifyHostname(h); err != nil {
			t.Errorf("certificate does not cover %s: %v", h, err)
		}
	}
	if got := leaf.NotAfter.Sub(leaf.NotBefore); got < Validity || got > Validity+2*time.Hour {
		t.Errorf("validity %v, want about a year", got)
	}

	// A client without the pool must refuse the self-signed certificate.
	plain := clientFor(&tls.Config{MinVersion: tls.VersionTLS13})
	if _, err := plain.Get(url); err == nil {
		t.Fatal("client without the CertPool accepted the self-signed certificate")
	}
}

func TestTLS12ClientRefused(t *testing.T) {
	dir := t.TempDir()
	cfg, err := Server("", "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	url := serve(t, cfg)
	pool, err := CertPool(dir)
	if err != nil {
		t.Fatal(err)
	}
	old := clientFor(&tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS12})
	_, err = old.Get(url)
	if err == nil {
		t.Fatal("TLS 1.2-max client completed a handshake")
	}
	if !strings.Contains(err.Error(), "protocol version") {
		t.Fatalf("want a protocol version alert, got %v", err)
	}
}

func TestGeneratedFilesReusedAndKeyPrivate(t *testing.T) {
	dir := t.TempDir()
	if _, err := Server("", "", dir, nil); err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := SelfSignedPaths(dir)
	fi, err := os.Stat(keyFile)
	if err != nil {
		t.Fatal(err)
	}
	if perm := fi.Mode().Perm(); perm != 0o600 {
		t.Fatalf("key file mode %o, want 600", perm)
	}
	di, err := os.Stat(filepath.Dir(keyFile))
	if err != nil {
		t.Fatal(err)
	}
	if perm := di.Mode().Perm(); perm != 0o700 {
		t.Fatalf("tls dir mode %o, want 700", perm)
	}
	cert1, _ := os.ReadFile(certFile)
	key1, _ := os.ReadFile(keyFile)

	cfg, err := Server("", "", dir, []string{"127.0.0.1:9000"}) // already covered
	if err != nil {
		t.Fatal(err)
	}
	cert2, _ := os.ReadFile(certFile)
	key2, _ := os.ReadFile(keyFile)
	if !bytes.Equal(cert1, cert2) || !bytes.Equal(key1, key2) {
		t.Fatal("second call regenerated the certificate instead of reusing it")
	}
	if !bytes.Equal(cfg.Certificates[0].Certificate[0], mustLeaf(t, cert1).Raw) {
		t.Fatal("config does not serve the stored certificate")
	}

	// A host the stored certificate lacks forces a new one.
	if _, err := Server("", "", dir, []string{"api.example.test"}); err != nil {
		t.Fatal(err)
	}
	cert3, _ := os.ReadFile(certFile)
	if bytes.Equal(cert1, cert3) {
		t.Fatal("certificate not regenerated for a new host")
	}
	if err := mustLeaf(t, cert3).VerifyHostname("api.example.test"); err != nil {
		t.Fatal(err)
	}
}

func TestExpiredCertificateRegenerated(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := SelfSignedPaths(dir)
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		t.Fatal(err)
	}
	past := time.Now().Add(-2 * Validity)
	certPEM, keyPEM, err := generate(normalizeHosts(nil), past)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := Server("", "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	leaf := cfg.Certificates[0].Leaf
	if !time.Now().Before(leaf.NotAfter) {
		t.Fatalf("served certificate expired at %v", leaf.NotAfter)
	}
	stored, _ := os.ReadFile(certFile)
	if bytes.Equal(stored, certPEM) {
		t.Fatal("expired certificate left on disk")
	}
	// The regenerated certificate still completes a verified handshake.
	ccfg, err := Client(dir)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := clientFor(ccfg).Get(serve(t, cfg))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
}

func TestGivenFilesLoaded(t *testing.T) {
	dir := t.TempDir()
	certPEM, keyPEM, err := generate([]string{"files.example.test"}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile := filepath.Join(dir, "c.pem"), filepath.Join(dir, "k.pem")
	if err := os.WriteFile(certFile, certPEM, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, keyPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	cfg, err := Server(certFile, keyFile, dataDir, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(cfg.Certificates[0].Certificate[0], mustLeaf(t, certPEM).Raw) {
		t.Fatal("config does not serve the given certificate")
	}
	if _, err := os.Stat(filepath.Join(dataDir, "tls")); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("generated a certificate although files were given: %v", err)
	}
	if _, err := Server(certFile, "", dataDir, nil); !errors.Is(err, ErrIncompleteKeyPair) {
		t.Fatalf("cert without key: %v, want ErrIncompleteKeyPair", err)
	}
}

func mustLeaf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	block, _ := pem.Decode(certPEM)
	if block == nil {
		t.Fatal("no PEM block")
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}
