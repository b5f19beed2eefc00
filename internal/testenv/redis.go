package testenv

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"
)

const (
	// redisStartTimeout bounds how long a starting redis-server may take to
	// answer PING; it starts in milliseconds on an idle machine.
	redisStartTimeout = 15 * time.Second
	// redisStopTimeout bounds how long a server may take to exit after
	// SIGTERM before it is killed.
	redisStopTimeout = 10 * time.Second
)

// redisServerCandidates returns the places redis-server is looked for when
// it is not on PATH (Debian installs it in /usr/bin; a PATH without /usr/bin,
// as some service environments have, would miss it).
func redisServerCandidates() []string {
	return []string{"/usr/bin/redis-server", "/usr/local/bin/redis-server", "/usr/sbin/redis-server"}
}

// Redis returns the address ("127.0.0.1:port") of a private redis-server for
// t, started on a free loopback port with its own directory and stopped when
// t ends. Each call starts a new server, so tests never see each other's keys.
// It fails t when redis-server is missing (`make deps` installs Debian's
// redis-server) or does not start; it never skips.
func Redis(t testing.TB) string {
	t.Helper()
	return StartRedis(t).Addr()
}

// RedisServer is a private redis-server owned by one test. Stop and Start let
// outage tests take it down and bring it back on the same address. The
// server keeps no data on disk: after Stop and Start it is empty.
type RedisServer struct {
	t    testing.TB
	bin  string
	dir  string
	port int
	proc *redisProcess // nil while stopped
}

// redisProcess is one run of redis-server; done is closed when it has
// exited, after which err holds the result of cmd.Wait.
type redisProcess struct {
	cmd  *exec.Cmd
	done chan struct{}
	err  error
}

// StartRedis starts a private redis-server on a free loopback port and stops
// it when t ends (also when t fails). It fails t when the server cannot be
// started.
func StartRedis(t testing.TB) *RedisServer {
	t.Helper()
	bin, err := findRedisServer(redisServerCandidates())
	if err != nil {
		t.Fatalf("testenv: redis: %v", err)
	}
	s := &RedisServer{
		t:   t,
		bin: bin,
		dir: t.TempDir(), // registered first, so removed after the stop below
	}
	// A free port is picked by binding and releasing it, so another process
	// can take it in between: retry with a new port when start fails.
	var lastErr error
	for range 3 {
		if s.port, err = redisFreePort(); err != nil {
			t.Fatalf("testenv: redis: %v", err)
		}
		if lastErr = s.start(); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("testenv: start redis: %v", lastErr)
	}
	t.Cleanup(func() {
		if err := s.stop(); err != nil {
			t.Errorf("testenv: stop redis: %v", err)
		}
	})
	return s
}

// Addr returns the server's address, "127.0.0.1:port". It stays the same
// across Stop and Start.
func (s *RedisServer) Addr() string {
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(s.port))
}

// Dir returns the server's directory (its log, redis.log, is there).
func (s *RedisServer) Dir() string { return s.dir }

// Stop stops the server and waits until it has exited, so that connections
// to Addr are refused. Call it from the test goroutine: it fails the test on
// error.
func (s *RedisServer) Stop() {
	s.t.Helper()
	if err := s.stop(); err != nil {
		s.t.Fatalf("testenv: stop redis: %v", err)
	}
}

// Start starts the server again on the same port (with no data) and waits
// until it answers PING. Call it from the test goroutine: it fails the test
// on error.
func (s *RedisServer) Start() {
	s.t.Helper()
	if err := s.start(); err != nil {
		s.t.Fatalf("testenv: start redis: %v", err)
	}
}

// start launches redis-server and waits until it answers PING on its port
// and reports its own pid (not another server's that took the port).
func (s *RedisServer) start() error {
	if s.proc != nil {
		return nil
	}
	logFile := filepath.Join(s.dir, "redis.log")
	cmd := exec.Command(s.bin,
		"--bind", "127.0.0.1",
		"--port", strconv.Itoa(s.port),
		"--dir", s.dir,
		"--logfile", logFile,
		"--daemonize", "no",
		"--save", "",
		"--appendonly", "no",
		"--protected-mode", "yes",
	)
	// The server stays in the test's process group, so a ^C meant for
	// `go test` (which does not run cleanups) stops it too.
	cmd.Dir = s.dir
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("run %s: %w", s.bin, err)
	}
	p := &redisProcess{cmd: cmd, done: make(chan struct{})}
	go func() { // ends when the process exits; stop waits for it
		p.err = cmd.Wait()
		close(p.done)
	}()

	addr := s.Addr()
	deadline := time.Now().Add(redisStartTimeout)
	for {
		select {
		case <-p.done:
			return fmt.Errorf("redis-server on %s exited during startup (%v)%s", addr, p.err, redisLogTail(logFile))
		default:
		}
		pid, err := redisPing(addr)
		if err == nil && pid == cmd.Process.Pid {
			s.proc = p
			return nil
		}
		if err == nil {
			err = fmt.Errorf("%s is served by another redis-server (pid %d)", addr, pid)
		}
		if time.Now().After(deadline) {
			stopRedisProcess(p)
			return fmt.Errorf("redis-server did not answer PING on %s within %v: %w%s", addr, redisStartTimeout, err, redisLogTail(logFile))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// stop stops the running server, if any, and waits until it has exited.
func (s *RedisServer) stop() error {
	if s.proc == nil {
		return nil
	}
	p := s.proc
	s.proc = nil
	return stopRedisProcess(p)
}

// stopRedisProcess sends SIGTERM, then SIGKILL after redisStopTimeout, and
// waits until the process has exited.
func stopRedisProcess(p *redisProcess) error {
	select {
	case <-p.done:
		return nil // already gone (it crashed or was killed)
	default:
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil && !errors.Is(err, os.ErrProcessDone) {
		return fmt.Errorf("signal redis-server: %w", err)
	}
	select {
	case <-p.done:
		return nil
	case <-time.After(redisStopTimeout):
	}
	_ = p.cmd.Process.Kill()
	select {
	case <-p.done:
		return fmt.Errorf("redis-server (pid %d) ignored SIGTERM for %v and was killed", p.cmd.Process.Pid, redisStopTimeout)
	case <-time.After(redisStopTimeout):
		return fmt.Errorf("redis-server (pid %d) did not exit after SIGKILL", p.cmd.Process.Pid)
	}
}

// redisPing sends PING and INFO server to addr over a fresh TCP connection
// and returns the server's process id when it answered PONG.
func redisPing(addr string) (int, error) {
	c, err := net.DialTimeout("tcp", addr, time.Second)
	if err != nil {
		return 0, err
	}
	defer c.Close()
	if err := c.SetDeadline(time.Now().Add(2 * time.Second)); err != nil {
		return 0, err
	}
	if _, err := c.Write([]byte("*1\r\n$4\r\nPING\r\n*2\r\n$4\r\nINFO\r\n$6\r\nserver\r\n")); err != nil {
		return 0, fmt.Errorf("write PING: %w", err)
	}
	r := bufio.NewReader(c)
	line, err := r.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read PING reply: %w", err)
	}
	if line = strings.TrimRight(line, "\r\n"); line != "+PONG" {
		return 0, fmt.Errorf("PING answered %q", line)
	}
	line, err = r.ReadString('\n')
	if err != nil {
		return 0, fmt.Errorf("read INFO reply: %w", err)
	}
	n, err := strconv.Atoi(strings.TrimPrefix(strings.TrimRight(line, "\r\n"), "$"))
	if !strings.HasPrefix(line, "$") || err != nil || n < 0 {
		return 0, fmt.Errorf("INFO answered %q", line)
	}
	body := make([]byte, n)
	if _, err := io.ReadFull(r, body); err != nil {
		return 0, fmt.Errorf("read INFO body: %w", err)
	}
	for l := range strings.Lines(string(body)) {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "process_id:"); ok {
			pid, err := strconv.Atoi(v)
			if err != nil {
				return 0, fmt.Errorf("INFO process_id %q: %w", v, err)
			}
			return pid, nil
		}
	}
	return 0, errors.New("INFO server has no process_id")
}

// findRedisServer returns the path of redis-server: on PATH, else the first
// existing candidate. The error tells how to install it.
func findRedisServer(candidates []string) (string, error) {
	if p, err := exec.LookPath("redis-server"); err == nil {
		return p, nil
	}
	for _, p := range candidates {
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() && fi.Mode()&0o111 != 0 {
			return p, nil
		}
	}
	return "", errors.New("redis-server is not installed; `make deps` installs it (Debian's redis-server, via deploy/redis/redis.sh install)")
}

// redisFreePort returns a TCP port that was free on 127.0.0.1.
func redisFreePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// redisLogTail returns the last lines of the server log, prefixed by a
// newline, or "" when there is none.
func redisLogTail(file string) string {
	b, err := os.ReadFile(file)
	if err != nil || len(b) == 0 {
		return ""
	}
	lines := bytes.Split(bytes.TrimSpace(b), []byte("\n"))
	if len(lines) > 20 {
		lines = lines[len(lines)-20:]
	}
	return "\n---- tail of " + file + "\n" + string(bytes.Join(lines, []byte("\n")))
}
