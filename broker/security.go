package broker

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"strings"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/sasl"
	"github.com/twmb/franz-go/pkg/sasl/plain"
	"github.com/twmb/franz-go/pkg/sasl/scram"
)

// SASL mechanisms Security accepts.
const (
	SASLScramSHA256 = "SCRAM-SHA-256"
	SASLScramSHA512 = "SCRAM-SHA-512"
	// SASLPlain sends the password itself, so it is accepted only over
	// TLS.
	SASLPlain = "PLAIN"
)

// ErrInvalidSecurity classifies Kafka security settings that cannot work
// or would be unsafe: a client is never built from them.
var ErrInvalidSecurity = errors.New("broker: invalid Kafka security settings")

// Security is how Vitals's Kafka clients protect their connections to a
// production cluster: TLS (optionally with a client certificate) and SASL
// authentication. The zero value is plaintext without authentication,
// what the embedded broker on loopback speaks.
type Security struct {
	// TLS dials the brokers over TLS 1.2 or later (--kafka-tls).
	TLS bool
	// TLSCAFile is a PEM file of the CA certificates that sign the
	// brokers' certificates (--kafka-tls-ca); empty: the system roots.
	TLSCAFile string
	// TLSCertFile and TLSKeyFile are a PEM client certificate and its key,
	// for clusters that authenticate clients by certificate
	// (--kafka-tls-cert, --kafka-tls-key); both or neither.
	TLSCertFile string
	TLSKeyFile  string
	// TLSServerName is the name the brokers' certificates must carry
	// (--kafka-tls-server-name); empty: the host of each broker address.
	TLSServerName string
	// SASLMechanism is SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN (PLAIN only
	// with TLS); empty: no SASL (--kafka-sasl-mechanism).
	SASLMechanism string
	// SASLUser and SASLPassword are the SASL credentials
	// (--kafka-sasl-user, --kafka-sasl-password).
	SASLUser     string
	SASLPassword string
}

// Validate reports whether s can build clients, reading the certificate
// files it names: call it at start so a mistake stops the process with a
// clear error instead of failing every connection. Errors wrap
// ErrInvalidSecurity or name the file that could not be read.
func (s Security) Validate() error {
	_, err := s.ClientOpts()
	return err
}

// ClientOpts returns the client options that apply s: a TLS dialer and
// the SASL mechanism, none for the zero Security.
func (s Security) ClientOpts() ([]kgo.Opt, error) {
	var opts []kgo.Opt
	if s.TLS {
		cfg, err := s.tlsConfig()
		if err != nil {
			return nil, err
		}
		opts = append(opts, kgo.DialTLSConfig(cfg))
	} else if s.TLSCAFile != "" || s.TLSCertFile != "" || s.TLSKeyFile != "" || s.TLSServerName != "" {
		return nil, fmt.Errorf("%w: TLS CA, certificate or server name given but TLS is off: add --kafka-tls", ErrInvalidSecurity)
	}
	mech, err := s.saslMechanism()
	if err != nil {
		return nil, err
	}
	if mech != nil {
		opts = append(opts, kgo.SASL(mech))
	}
	return opts, nil
}

// tlsConfig builds the client TLS configuration of s.
func (s Security) tlsConfig() (*tls.Config, error) {
	// TLS 1.2 minimum, not the 1.3 the Vitals API requires: managed Kafka
	// services and brokers on older JVMs often offer only 1.2. Go's TLS 1.2
	// defaults (ECDHE key exchange, AEAD ciphers) keep that sound.
	cfg := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: s.TLSServerName}
	if s.TLSCAFile != "" {
		pool, err := loadCertPool(s.TLSCAFile)
		if err != nil {
			return nil, fmt.Errorf("kafka TLS CA: %w", err)
		}
		cfg.RootCAs = pool
	}
	switch {
	case s.TLSCertFile != "" && s.TLSKeyFile != "":
		cert, err := tls.LoadX509KeyPair(s.TLSCertFile, s.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("kafka TLS client certificate %s and key %s: %w", s.TLSCertFile, s.TLSKeyFile, err)
		}
		cfg.Certificates = []tls.Certificate{cert}
	case s.TLSCertFile != "" || s.TLSKeyFile != "":
		return nil, fmt.Errorf("%w: the TLS client certificate and key must be given together (--kafka-tls-cert, --kafka-tls-key)", ErrInvalidSecurity)
	}
	return cfg, nil
}

// saslMechanism returns the SASL mechanism of s, nil for none.
func (s Security) saslMechanism() (sasl.Mechanism, error) {
	mech := strings.ToUpper(strings.TrimSpace(s.SASLMechanism))
	if mech == "" {
		if s.SASLUser != "" || s.SASLPassword != "" {
			return nil, fmt.Errorf("%w: SASL user or password given without a mechanism: add --kafka-sasl-mechanism %s (or %s)",
				ErrInvalidSecurity, SASLScramSHA512, SASLScramSHA256)
		}
		return nil, nil
	}
	if s.SASLUser == "" || s.SASLPassword == "" {
		return nil, fmt.Errorf("%w: SASL %s needs a user and a password (--kafka-sasl-user, VITALS_KAFKA_SASL_PASSWORD)", ErrInvalidSecurity, mech)
	}
	switch mech {
	case SASLScramSHA256:
		return scram.Auth{User: s.SASLUser, Pass: s.SASLPassword}.AsSha256Mechanism(), nil
	case SASLScramSHA512:
		return scram.Auth{User: s.SASLUser, Pass: s.SASLPassword}.AsSha512Mechanism(), nil
	case SASLPlain:
		if !s.TLS {
			return nil, fmt.Errorf("%w: SASL PLAIN sends the password in clear text: enable TLS (--kafka-tls) or use %s",
				ErrInvalidSecurity, SASLScramSHA512)
		}
		return plain.Auth{User: s.SASLUser, Pass: s.SASLPassword}.AsMechanism(), nil
	default:
		return nil, fmt.Errorf("%w: SASL mechanism %q: want %s, %s or %s", ErrInvalidSecurity, s.SASLMechanism,
			SASLScramSHA256, SASLScramSHA512, SASLPlain)
	}
}

// loadCertPool reads a PEM file of CA certificates into a pool holding
// them only.
func loadCertPool(file string) (*x509.CertPool, error) {
	b, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", file, err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(b) {
		return nil, fmt.Errorf("%s holds no PEM certificate", file)
	}
	return pool, nil
}

// refusingDialer fails every connection with err: the client of settings
// that do not build never falls back to an unprotected connection.
func refusingDialer(err error) kgo.Opt {
	return kgo.Dialer(func(context.Context, string, string) (net.Conn, error) {
		return nil, err
	})
}
