package testenv

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"
)

// ClickHouseAddrEnv names the environment variable that points tests at an
// already running ClickHouse (native protocol, "host:port"). `make test` sets
// it so that the whole suite shares one server.
const ClickHouseAddrEnv = "VITALS_TEST_CLICKHOUSE_ADDR"

// clickHouseScript is the local-service script, relative to the repo root.
const clickHouseScript = "deploy/clickhouse/clickhouse.sh"

// ClickHouse returns the native-protocol address ("127.0.0.1:port") of a
// ClickHouse server for t. When VITALS_TEST_CLICKHOUSE_ADDR is set it returns
// that (the server is shared: use a database of your own); otherwise it starts
// a private server in a temporary directory and stops it when t ends.
// It fails t when no ClickHouse can be had; it never skips.
func ClickHouse(t testing.TB) string {
	t.Helper()
	if addr := os.Getenv(ClickHouseAddrEnv); addr != "" {
		return addr
	}
	return StartClickHouse(t).Addr()
}

// ClickHouseServer is a private ClickHouse server owned by one test, started
// by deploy/clickhouse/clickhouse.sh. Stop and Start let outage tests take it
// down and bring it back on the same address with the same data.
type ClickHouseServer struct {
	t        testing.TB
	script   string
	dir      string
	tcpPort  int
	httpPort int
}

// StartClickHouse starts a private ClickHouse server on free loopback ports
// (never the shared one from VITALS_TEST_CLICKHOUSE_ADDR) and stops it when t
// ends. It fails t when the server cannot be started.
func StartClickHouse(t testing.TB) *ClickHouseServer {
	t.Helper()
	script, err := clickHouseScriptPath()
	if err != nil {
		t.Fatalf("testenv: clickhouse: %v", err)
	}
	s := &ClickHouseServer{
		t:      t,
		script: script,
		dir:    t.TempDir(), // registered first, so removed after Stop below
	}
	// Free ports are picked by binding and releasing them, so another
	// process can take one in between: retry with new ports when start fails.
	var lastErr error
	for range 3 {
		s.tcpPort, s.httpPort, err = clickHouseFreePorts()
		if err != nil {
			t.Fatalf("testenv: clickhouse: %v", err)
		}
		if lastErr = s.run("start"); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("testenv: start clickhouse: %v", lastErr)
	}
	t.Cleanup(func() {
		if err := s.run("stop"); err != nil {
			t.Errorf("testenv: stop clickhouse: %v", err)
		}
	})
	return s
}

// Addr returns the server's native-protocol address, "127.0.0.1:port". It
// stays the same across Stop and Start.
func (s *ClickHouseServer) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.tcpPort))
}

// Dir returns the server's instance directory (config, data, logs).
func (s *ClickHouseServer) Dir() string { return s.dir }

// Stop stops the server and waits until it has exited. Call it from the test
// goroutine: it fails the test on error.
func (s *ClickHouseServer) Stop() {
	s.t.Helper()
	if err := s.run("stop"); err != nil {
		s.t.Fatalf("testenv: stop clickhouse: %v", err)
	}
}

// Start starts the server again on the same ports and data and waits until it
// answers. Call it from the test goroutine: it fails the test on error.
func (s *ClickHouseServer) Start() {
	s.t.Helper()
	if err := s.run("start"); err != nil {
		s.t.Fatalf("testenv: start clickhouse: %v", err)
	}
}

// run runs the local-service script for this server's directory and ports.
func (s *ClickHouseServer) run(command string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", s.script, command)
	cmd.Env = append(os.Environ(),
		"CLICKHOUSE_DIR="+s.dir,
		"CLICKHOUSE_PORT="+strconv.Itoa(s.tcpPort),
		"CLICKHOUSE_HTTP_PORT="+strconv.Itoa(s.httpPort),
	)
	var out bytes.Buffer
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("%s %s: %w\n%s", clickHouseScript, command, err, strings.TrimSpace(out.String()))
	}
	return nil
}

// clickHouseFreePorts returns two distinct TCP ports that were free on 127.0.0.1.
func clickHouseFreePorts() (int, int, error) {
	var ports [2]int
	var listeners [2]net.Listener
	for i := range listeners {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return 0, 0, fmt.Errorf("find free port: %w", err)
		}
		defer l.Close()
		listeners[i] = l
		ports[i] = l.Addr().(*net.TCPAddr).Port
	}
	return ports[0], ports[1], nil
}

// clickHouseScriptPath returns the local-service script's path under the
// repository root: the nearest directory holding go.mod, walking up from the
// working directory (go test runs in the package directory), or else from
// this source file.
func clickHouseScriptPath() (string, error) {
	var starts []string
	if wd, err := os.Getwd(); err == nil {
		starts = append(starts, wd)
	}
	if _, file, _, ok := runtime.Caller(0); ok {
		starts = append(starts, filepath.Dir(file))
	}
	for _, dir := range starts {
		for {
			if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
				script := filepath.Join(dir, clickHouseScript)
				if _, err := os.Stat(script); err == nil {
					return script, nil
				}
			}
			parent := filepath.Dir(dir)
			if parent == dir {
				break
			}
			dir = parent
		}
	}
	return "", errors.New("repository root (go.mod with " + clickHouseScript + ") not found above the working directory")
}
