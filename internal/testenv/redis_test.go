package testenv

import (
	"net"
	"strings"
	"testing"
	"time"
)

func TestRedisAnswersPingAndIsPrivate(t *testing.T) {
	a, b := Redis(t), Redis(t)
	if a == b {
		t.Fatalf("two Redis calls returned the same address %s", a)
	}
	for _, addr := range []string{a, b} {
		if !strings.HasPrefix(addr, "127.0.0.1:") {
			t.Fatalf("address %q is not on 127.0.0.1", addr)
		}
		if _, err := redisPing(addr); err != nil {
			t.Fatalf("PING %s: %v", addr, err)
		}
	}
}

func TestStartRedisStopsAndStartsOnTheSameAddress(t *testing.T) {
	srv := StartRedis(t)
	addr := srv.Addr()
	if _, err := redisPing(addr); err != nil {
		t.Fatalf("PING %s: %v", addr, err)
	}

	srv.Stop()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Stop", addr)
	}
	srv.Stop() // stopping a stopped server is a no-op
	srv.Start()
	if srv.Addr() != addr {
		t.Fatalf("Addr after Start = %s, want %s", srv.Addr(), addr)
	}
	if _, err := redisPing(addr); err != nil {
		t.Fatalf("PING %s after Start: %v", addr, err)
	}
}

func TestRedisServerStoppedAtCleanup(t *testing.T) {
	var addr string
	t.Run("owner", func(t *testing.T) {
		addr = Redis(t)
	})
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after its test ended", addr)
	}
}

func TestFindRedisServerSaysHowToInstall(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	_, err := findRedisServer([]string{"/nonexistent/redis-server"})
	if err == nil || !strings.Contains(err.Error(), "make deps") {
		t.Fatalf("findRedisServer with no redis-server: err = %v, want one naming `make deps`", err)
	}
}
