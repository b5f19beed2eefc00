package analytics_test

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/tlsconfig"
)

// handshake is what a TLS listener saw of one client connection.
type handshake struct {
	serverName string
	versions   []uint16
	err        error // nil: the handshake completed
}

// tlsProbe is a TLS listener standing in for ClickHouse's secure port: it
// records each client's handshake and hangs up (speaking the ClickHouse
// protocol is out of scope; the handshake is what WithTLS decides).
type tlsProbe struct {
	addr   string
	caFile string
	seen   chan handshake
}

func newTLSProbe(t *testing.T) *tlsProbe {
	t.Helper()
	dir := t.TempDir()
	cfg, err := tlsconfig.Server("", "", dir, nil) // self-signed for localhost, 127.0.0.1
	if err != nil {
		t.Fatal(err)
	}
	cfg.MinVersion = tls.VersionTLS12
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &tlsProbe{addr: ln.Addr().String(), seen: make(chan handshake, 64)}
	p.caFile, _ = tlsconfig.SelfSignedPaths(dir)
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Go(func() {
		for {
			conn, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Go(func() {
				defer conn.Close()
				var h handshake
				c := cfg.Clone()
				c.GetConfigForClient = func(hello *tls.ClientHelloInfo) (*tls.Config, error) {
					h.serverName, h.versions = hello.ServerName, hello.SupportedVersions
					return nil, nil
				}
				tc := tls.Server(conn, c)
				_ = tc.SetDeadline(time.Now().Add(5 * time.Second))
				h.err = tc.Handshake()
				select {
				case p.seen <- h:
				default:
				}
			})
		}
	})
	return p
}

// handshakeOf runs a Writer with the options tlsOpt returns for a fresh
// probe (given its CA file) until the probe saw a handshake, and returns
// it.
func handshakeOf(t *testing.T, tlsOpt func(caFile string) []analytics.Option) handshake {
	t.Helper()
	p := newTLSProbe(t)
	opts := append([]analytics.Option{
		analytics.WithSpoolDir(filepath.Join(t.TempDir(), "spool")),
		analytics.WithWriteTimeout(2 * time.Second),
	}, tlsOpt(p.caFile)...)
	w, err := analytics.NewWriter(p.addr, opts...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
		w.Close()
	}()
	select {
	case h := <-p.seen:
		return h
	case <-time.After(10 * time.Second):
		t.Fatal("the writer never connected")
		return handshake{}
	}
}

// withTLS returns the options of t, with the probe's CA file when ca.
func withTLS(t analytics.TLS, ca bool) func(string) []analytics.Option {
	return func(caFile string) []analytics.Option {
		if ca {
			t.CAFile = caFile
		}
		return []analytics.Option{analytics.WithTLS(t)}
	}
}

func TestWriterTLSToClickHouse(t *testing.T) {
	h := handshakeOf(t, withTLS(analytics.TLS{Enabled: true}, true))
	if h.err != nil {
		t.Fatalf("TLS handshake with the CA trusted: %v", h.err)
	}
	if !slices.Contains(h.versions, tls.VersionTLS12) || !slices.Contains(h.versions, tls.VersionTLS13) {
		t.Errorf("client offers %x, want TLS 1.2 and 1.3", h.versions)
	}
	if h.serverName != "" {
		t.Errorf("server name %q sent for an IP address", h.serverName)
	}

	h = handshakeOf(t, withTLS(analytics.TLS{Enabled: true, ServerName: "localhost"}, true))
	if h.err != nil || h.serverName != "localhost" {
		t.Fatalf("with server name localhost: %q %v", h.serverName, h.err)
	}

	// The certificate is checked: another name, or the system roots only,
	// make the client abort the handshake.
	if h = handshakeOf(t, withTLS(analytics.TLS{Enabled: true, ServerName: "clickhouse.elsewhere.example"}, true)); h.err == nil {
		t.Error("the client accepted a certificate for another name")
	}
	if h = handshakeOf(t, withTLS(analytics.TLS{Enabled: true}, false)); h.err == nil {
		t.Error("the client accepted a self-signed certificate without its CA")
	}

	// Without WithTLS the writer speaks plaintext.
	var rh tls.RecordHeaderError
	if h = handshakeOf(t, func(string) []analytics.Option { return nil }); !errors.As(h.err, &rh) {
		t.Errorf("without TLS: %v, want a plaintext client", h.err)
	}
}

func TestWriterTLSSettingsRefused(t *testing.T) {
	spool := func() analytics.Option { return analytics.WithSpoolDir(filepath.Join(t.TempDir(), "spool")) }
	missing := filepath.Join(t.TempDir(), "missing.pem")
	for _, tc := range []struct {
		name string
		tls  analytics.TLS
		want string
	}{
		{"CA without TLS", analytics.TLS{CAFile: "ca.pem"}, "TLS is off (--clickhouse-tls)"},
		{"server name without TLS", analytics.TLS{ServerName: "ch"}, "TLS is off"},
		{"missing CA file", analytics.TLS{Enabled: true, CAFile: missing}, missing},
	} {
		t.Run(tc.name, func(t *testing.T) {
			w, err := analytics.NewWriter("127.0.0.1:9440", spool(), analytics.WithTLS(tc.tls))
			if err == nil {
				w.Close()
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("%v, want it to mention %q", err, tc.want)
			}
		})
	}
}
