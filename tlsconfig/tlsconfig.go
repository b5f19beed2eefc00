package tlsconfig

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"time"
)

// Self-signed certificate settings.
const (
	// Validity is how long a generated certificate is valid.
	Validity = 365 * 24 * time.Hour
	// RenewBefore is how close to its expiry a generated certificate is
	// replaced at start, so a process does not begin serving a certificate
	// that is about to lapse.
	RenewBefore = 24 * time.Hour
)

// ErrIncompleteKeyPair is returned when only one of the certificate and key
// files is given.
var ErrIncompleteKeyPair = errors.New("tlsconfig: certificate and key files must be given together")

// SelfSignedPaths returns where the generated certificate and its private
// key live under dataDir.
func SelfSignedPaths(dataDir string) (certFile, keyFile string) {
	dir := filepath.Join(dataDir, "tls")
	return filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
}

// Server returns the TLS configuration for a listener: TLS 1.3 minimum and
// one certificate. With certFile and keyFile it loads them. Without them it
// uses the self-signed certificate in <dataDir>/tls/, generating it (key
// file mode 0600, directory 0700) when it is missing, unreadable, expires
// within RenewBefore, or does not cover every host in localhost, 127.0.0.1,
// ::1 and hosts. Entries of hosts may carry a port, which is ignored.
func Server(certFile, keyFile, dataDir string, hosts []string) (*tls.Config, error) {
	var (
		cert tls.Certificate
		err  error
	)
	switch {
	case certFile != "" && keyFile != "":
		cert, err = tls.LoadX509KeyPair(certFile, keyFile)
		if err != nil {
			return nil, fmt.Errorf("tlsconfig: load %s and %s: %w", certFile, keyFile, err)
		}
	case certFile != "" || keyFile != "":
		return nil, ErrIncompleteKeyPair
	default:
		if dataDir == "" {
			return nil, errors.New("tlsconfig: no certificate files and no data dir to keep a generated one")
		}
		cert, err = selfSigned(dataDir, normalizeHosts(hosts), time.Now())
		if err != nil {
			return nil, err
		}
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{cert},
	}, nil
}

// CertPool returns a pool holding the generated certificate in
// <dataDir>/tls/, for clients of a local Vitals that serves it.
func CertPool(dataDir string) (*x509.CertPool, error) {
	certFile, _ := SelfSignedPaths(dataDir)
	b, err := os.ReadFile(certFile)
	if err != nil {
		return nil, fmt.Errorf("tlsconfig: read %s: %w", certFile, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("tlsconfig: %s holds no PEM certificate", certFile)
	}
	return pool, nil
}

// Client returns a TLS 1.3 client configuration that trusts the generated
// certificate in <dataDir>/tls/ (and nothing else).
func Client(dataDir string) (*tls.Config, error) {
	pool, err := CertPool(dataDir)
	if err != nil {
		return nil, err
	}
	return &tls.Config{MinVersion: tls.VersionTLS13, RootCAs: pool}, nil
}

// normalizeHosts returns the default hosts plus hosts, without ports,
// blanks, unspecified addresses or duplicates.
func normalizeHosts(hosts []string) []string {
	out := []string{"localhost", "127.0.0.1", "::1"} // always covered
	seen := map[string]bool{}
	for _, h := range out {
		seen[h] = true
	}
	for _, h := range hosts {
		if host, _, err := net.SplitHostPort(h); err == nil {
			h = host
		}
		if h == "" || seen[h] {
			continue
		}
		if ip := net.ParseIP(h); ip != nil && ip.IsUnspecified() {
			continue // 0.0.0.0 or :: names no host a client can dial
		}
		seen[h] = true
		out = append(out, h)
	}
	return out
}

// selfSigned loads the generated certificate or makes a new one.
func selfSigned(dataDir string, hosts []string, now time.Time) (tls.Certificate, error) {
	certFile, keyFile := SelfSignedPaths(dataDir)
	if cert, ok := loadUsable(certFile, keyFile, hosts, now); ok {
		return cert, nil
	}
	if err := os.MkdirAll(filepath.Dir(certFile), 0o700); err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconfig: create %s: %w", filepath.Dir(certFile), err)
	}
	certPEM, keyPEM, err := generate(hosts, now)
	if err != nil {
		return tls.Certificate{}, err
	}
	// The key goes first: a reader that sees the new certificate must find
	// its key. Concurrent generators can still interleave; loadUsable then
	// finds a mismatched pair and the next start regenerates.
	if err := writeFileAtomic(keyFile, keyPEM, 0o600); err != nil {
		return tls.Certificate{}, err
	}
	if err := writeFileAtomic(certFile, certPEM, 0o644); err != nil {
		return tls.Certificate{}, err
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("tlsconfig: generated key pair: %w", err)
	}
	return cert, nil
}

// loadUsable returns the stored pair when it parses, matches, is not near
// expiry and covers every host.
func loadUsable(certFile, keyFile string, hosts []string, now time.Time) (tls.Certificate, bool) {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil || cert.Leaf == nil {
		return tls.Certificate{}, false
	}
	if now.Before(cert.Leaf.NotBefore) || now.Add(RenewBefore).After(cert.Leaf.NotAfter) {
		return tls.Certificate{}, false
	}
	for _, h := range hosts {
		if cert.Leaf.VerifyHostname(h) != nil {
			return tls.Certificate{}, false
		}
	}
	// Tighten a key file someone loosened; the key must stay private.
	if fi, err := os.Stat(keyFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
		if os.Chmod(keyFile, 0o600) != nil {
			return tls.Certificate{}, false
		}
	}
	return cert, true
}

// generate makes a self-signed ECDSA P-256 server certificate for hosts,
// valid from an hour before now (clock skew) for Validity.
func generate(hosts []string, now time.Time) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconfig: generate key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconfig: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{Organization: []string{"Vitals"}, CommonName: "Vitals self-signed"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(Validity),
		KeyUsage:              x509.KeyUsageDigitalSignature,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		BasicConstraintsValid: true,
	}
	for _, h := range hosts {
		if ip := net.ParseIP(h); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, h)
		}
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconfig: create certificate: %w", err)
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, fmt.Errorf("tlsconfig: marshal key: %w", err)
	}
	certPEM = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	keyPEM = pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})
	return certPEM, keyPEM, nil
}

// writeFileAtomic writes data to path with mode through a temporary file
// and a rename, so a reader never sees a partial file.
func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return fmt.Errorf("tlsconfig: write %s: %w", path, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	if err := f.Chmod(mode); err != nil {
		f.Close()
		return fmt.Errorf("tlsconfig: chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		return fmt.Errorf("tlsconfig: write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("tlsconfig: sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("tlsconfig: close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("tlsconfig: rename %s: %w", path, err)
	}
	return nil
}
