package analytics

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"os"
)

// TLS is how a Writer protects its ClickHouse connection. The zero value
// is plaintext, for a ClickHouse on the same host or network.
type TLS struct {
	// Enabled connects over TLS 1.2 or later: ClickHouse's secure native
	// port (tcp_port_secure, 9440 by default).
	Enabled bool
	// CAFile is a PEM file of the CA certificates that sign the server's
	// certificate; empty: the system roots.
	CAFile string
	// ServerName is the name the server's certificate must carry; empty:
	// the host of the address.
	ServerName string
}

// WithTLS sets how the Writer protects its ClickHouse connection (default:
// plaintext). NewWriter fails when the CA file cannot be read, or when a CA
// file or server name is given without Enabled.
func WithTLS(t TLS) Option { return func(c *config) { c.tls = t } }

// config returns the client TLS configuration of t, nil when disabled.
func (t TLS) config() (*tls.Config, error) {
	if !t.Enabled {
		if t.CAFile != "" || t.ServerName != "" {
			return nil, errors.New("analytics: ClickHouse TLS CA or server name given but TLS is off (--clickhouse-tls)")
		}
		return nil, nil
	}
	// TLS 1.2 minimum, not the 1.3 the Vitals API requires: managed
	// ClickHouse services and older builds may offer only 1.2. Go's TLS 1.2
	// defaults (ECDHE key exchange, AEAD ciphers) keep that sound.
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: t.ServerName}
	if t.CAFile != "" {
		b, err := os.ReadFile(t.CAFile)
		if err != nil {
			return nil, fmt.Errorf("analytics: ClickHouse TLS CA: %w", err)
		}
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(b) {
			return nil, fmt.Errorf("analytics: ClickHouse TLS CA: %s holds no PEM certificate", t.CAFile)
		}
		cfg.RootCAs = pool
	}
	return cfg, nil
}
