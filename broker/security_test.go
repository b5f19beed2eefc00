package broker_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"io"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/broker"
	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/tlsconfig"
)

// testPKI is a broker certificate (self-signed, for 127.0.0.1) and a
// client certificate, as PEM files.
type testPKI struct {
	serverCA              string // the broker's self-signed certificate: its own CA
	server                tls.Certificate
	clientCA              *x509.CertPool
	clientCert, clientKey string
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	dir := t.TempDir()
	scfg, err := tlsconfig.Server("", "", dir, nil)
	if err != nil {
		t.Fatal(err)
	}
	caFile, _ := tlsconfig.SelfSignedPaths(dir)
	certFile, keyFile, leaf := writeClientCert(t, dir)
	pool := x509.NewCertPool()
	pool.AddCert(leaf)
	return testPKI{serverCA: caFile, server: scfg.Certificates[0], clientCA: pool, clientCert: certFile, clientKey: keyFile}
}

// writeClientCert writes a self-signed certificate for client
// authentication and its key.
func writeClientCert(t *testing.T, dir string) (certFile, keyFile string, leaf *x509.Certificate) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(2),
		Subject:               pkix.Name{CommonName: "vitals-test-client"},
		NotBefore:             time.Now().Add(-time.Hour),
		NotAfter:              time.Now().Add(time.Hour),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	if leaf, err = x509.ParseCertificate(der); err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "client.pem"), filepath.Join(dir, "client-key.pem")
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	return certFile, keyFile, leaf
}

// tlsVersions records the TLS version of every broker connection.
type tlsVersions struct {
	mu   sync.Mutex
	seen []uint16
}

func (h *tlsVersions) OnBrokerConnect(_ kgo.BrokerMetadata, _ time.Duration, conn net.Conn, err error) {
	if err != nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if tc, ok := conn.(*tls.Conn); ok {
		h.seen = append(h.seen, tc.ConnectionState().Version)
	} else {
		h.seen = append(h.seen, 0)
	}
}

func (h *tlsVersions) all() []uint16 {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]uint16(nil), h.seen...)
}

// secureCluster starts a one-broker kfake cluster that speaks only TLS 1.2
// (as many managed clusters do), requires the PKI's client certificate and
// authenticates with SASL user "vitals" by mech.
func secureCluster(t *testing.T, pki testPKI, mech string) []string {
	t.Helper()
	return testenv.Kfake(t,
		kfake.NumBrokers(1),
		kfake.TLS(&tls.Config{
			Certificates: []tls.Certificate{pki.server},
			MinVersion:   tls.VersionTLS12,
			MaxVersion:   tls.VersionTLS12,
			ClientAuth:   tls.RequireAndVerifyClientCert,
			ClientCAs:    pki.clientCA,
		}),
		kfake.EnableSASL(),
		kfake.Superuser(mech, "vitals", "s3cret"),
		kfake.SeedTopics(1, "t"),
	)
}

func (p testPKI) security(mech, password string) broker.Security {
	return broker.Security{
		TLS: true, TLSCAFile: p.serverCA, TLSCertFile: p.clientCert, TLSKeyFile: p.clientKey,
		SASLMechanism: mech, SASLUser: "vitals", SASLPassword: password,
	}
}

func TestTLSAndSASLProduceConsume(t *testing.T) {
	pki := newTestPKI(t)
	for _, mech := range []string{broker.SASLScramSHA256, broker.SASLScramSHA512, broker.SASLPlain} {
		t.Run(mech, func(t *testing.T) {
			brokers := secureCluster(t, pki, mech)
			sec := pki.security(strings.ToLower(mech), "s3cret") // the mechanism is case-insensitive
			if err := sec.Validate(); err != nil {
				t.Fatal(err)
			}
			hook := &tlsVersions{}
			cl, err := kgo.NewClient(append(broker.Options(brokers, "test", sec),
				kgo.WithHooks(hook), kgo.ConsumeTopics("t"), kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))...)
			if err != nil {
				t.Fatal(err)
			}
			defer cl.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			if err := cl.ProduceSync(ctx, &kgo.Record{Topic: "t", Value: []byte("over TLS")}).FirstErr(); err != nil {
				t.Fatalf("produce: %v", err)
			}
			fs := cl.PollFetches(ctx)
			if recs := fs.Records(); len(recs) != 1 || string(recs[0].Value) != "over TLS" {
				t.Fatalf("consume: %v %v", recs, fs.Errors())
			}
			versions := hook.all()
			if len(versions) == 0 {
				t.Fatal("no broker connection seen")
			}
			for _, v := range versions {
				if v != tls.VersionTLS12 {
					t.Fatalf("connection TLS version %x, want TLS 1.2 (%x)", v, tls.VersionTLS12)
				}
			}
		})
	}
}

// pingErr pings brokers with a client of sec and returns the error and how
// long it took.
func pingErr(t *testing.T, brokers []string, sec broker.Security) (error, time.Duration) {
	t.Helper()
	cl, err := kgo.NewClient(broker.Options(brokers, "test", sec)...)
	if err != nil {
		t.Fatal(err)
	}
	defer cl.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	start := time.Now()
	err = cl.Ping(ctx)
	return err, time.Since(start)
}

func TestTLSAndSASLFailuresAreClear(t *testing.T) {
	pki := newTestPKI(t)
	brokers := secureCluster(t, pki, broker.SASLScramSHA256)

	// Apache Kafka answers a wrong password with SASL_AUTHENTICATION_FAILED
	// ("Authentication failed during authentication due to invalid
	// credentials with SASL mechanism SCRAM-SHA-256"); kfake closes the
	// connection instead, which the client reports as EOF.
	err, _ := pingErr(t, brokers, pki.security(broker.SASLScramSHA256, "wrong"))
	if !errors.Is(err, kerr.SaslAuthenticationFailed) && !errors.Is(err, io.EOF) {
		t.Fatalf("wrong password: %v, want SASL_AUTHENTICATION_FAILED or the connection closed", err)
	}

	other := newTestPKI(t)
	sec := pki.security(broker.SASLScramSHA256, "s3cret")
	sec.TLSCAFile = other.serverCA
	var unknownCA x509.UnknownAuthorityError
	if err, _ := pingErr(t, brokers, sec); !errors.As(err, &unknownCA) {
		t.Fatalf("broker certificate from another CA: %v, want x509.UnknownAuthorityError", err)
	}

	sec = pki.security(broker.SASLScramSHA256, "s3cret")
	sec.TLSServerName = "kafka.elsewhere.example"
	var badName x509.HostnameError
	if err, _ := pingErr(t, brokers, sec); !errors.As(err, &badName) {
		t.Fatalf("broker certificate for another name: %v, want x509.HostnameError", err)
	}

	sec = pki.security(broker.SASLScramSHA256, "s3cret")
	sec.TLSCertFile, sec.TLSKeyFile = "", ""
	if err, _ := pingErr(t, brokers, sec); err == nil {
		t.Fatal("a broker requiring a client certificate accepted a client without one")
	}
}

func TestSecuritySettingsRefusedAtConfiguration(t *testing.T) {
	pki := newTestPKI(t)
	missing := filepath.Join(t.TempDir(), "missing.pem")
	tests := []struct {
		name    string
		sec     broker.Security
		invalid bool // wraps ErrInvalidSecurity (else: a file problem)
		want    string
	}{
		{"PLAIN without TLS", broker.Security{SASLMechanism: "PLAIN", SASLUser: "u", SASLPassword: "p"}, true,
			"SASL PLAIN sends the password in clear text: enable TLS (--kafka-tls)"},
		{"unknown mechanism", broker.Security{SASLMechanism: "GSSAPI", SASLUser: "u", SASLPassword: "p"}, true,
			`SASL mechanism "GSSAPI": want SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN`},
		{"user without mechanism", broker.Security{SASLUser: "u", SASLPassword: "p"}, true,
			"without a mechanism"},
		{"mechanism without password", broker.Security{SASLMechanism: "SCRAM-SHA-512", SASLUser: "u"}, true,
			"needs a user and a password"},
		{"CA without TLS", broker.Security{TLSCAFile: pki.serverCA}, true, "TLS is off: add --kafka-tls"},
		{"certificate without key", broker.Security{TLS: true, TLSCertFile: pki.clientCert}, true,
			"certificate and key must be given together"},
		{"missing CA file", broker.Security{TLS: true, TLSCAFile: missing}, false, missing},
		{"CA file without certificates", broker.Security{TLS: true, TLSCAFile: pki.clientKey}, false, "holds no PEM certificate"},
		{"key not matching the certificate", broker.Security{TLS: true, TLSCertFile: pki.clientCert, TLSKeyFile: newTestPKI(t).clientKey}, false,
			"client certificate"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.sec.Validate()
			if err == nil || !strings.Contains(err.Error(), tc.want) || errors.Is(err, broker.ErrInvalidSecurity) != tc.invalid {
				t.Fatalf("Validate: %v, want an error mentioning %q (ErrInvalidSecurity: %v)", err, tc.want, tc.invalid)
			}
		})
	}

	// A client built from such settings anyway never talks to the broker:
	// here a PLAIN broker without TLS, which would receive the password in
	// clear text. The first request fails at once with the settings' error.
	brokers := testenv.Kfake(t, kfake.NumBrokers(1), kfake.EnableSASL(), kfake.Superuser("PLAIN", "u", "p"))
	err, took := pingErr(t, brokers, tests[0].sec)
	if !errors.Is(err, broker.ErrInvalidSecurity) || !strings.Contains(err.Error(), "PLAIN") {
		t.Fatalf("client from refused settings: %v", err)
	}
	if took > 5*time.Second {
		t.Errorf("the refused settings took %v to surface; they must fail fast", took)
	}

	// The zero Security is plaintext without SASL: the embedded broker.
	if opts, err := (broker.Security{}).ClientOpts(); err != nil || len(opts) != 0 {
		t.Fatalf("zero Security: %d options, %v", len(opts), err)
	}
}
