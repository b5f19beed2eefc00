package testenv

import (
	"net"
	"testing"
	"time"
)

func TestStartClickHouseStopsAndStartsOnTheSameAddress(t *testing.T) {
	srv := StartClickHouse(t)
	addr := srv.Addr()
	mustDial(t, addr)

	srv.Stop()
	if c, err := net.DialTimeout("tcp", addr, time.Second); err == nil {
		c.Close()
		t.Fatalf("%s still accepts connections after Stop", addr)
	}
	srv.Start()
	if srv.Addr() != addr {
		t.Fatalf("Addr after Start = %s, want %s", srv.Addr(), addr)
	}
	mustDial(t, addr)
}

func TestClickHouseUsesTheSharedServerWhenSet(t *testing.T) {
	t.Setenv(ClickHouseAddrEnv, "127.0.0.1:19000")
	if got := ClickHouse(t); got != "127.0.0.1:19000" {
		t.Fatalf("ClickHouse() = %q, want the address from %s", got, ClickHouseAddrEnv)
	}
}

func mustDial(t *testing.T, addr string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatalf("dial %s: %v", addr, err)
	}
	c.Close()
}
