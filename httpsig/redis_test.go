package httpsig

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vitalshq/vitals/internal/testenv"
)

func newRedisClient(t *testing.T, addr string) *redis.Client {
	t.Helper()
	c := redis.NewClient(&redis.Options{Addr: addr, MaxRetries: -1, DialTimeout: time.Second})
	t.Cleanup(func() { c.Close() })
	return c
}

func TestRedisNonceCache(t *testing.T) {
	ctx := context.Background()
	client := newRedisClient(t, testenv.Redis(t))
	c := NewRedisNonceCache(client, "")

	for i, want := range []bool{false, true, true} {
		seen, err := c.Seen(ctx, "k", "n1", 300*time.Millisecond)
		if err != nil {
			t.Fatal(err)
		}
		if seen != want {
			t.Fatalf("use %d: seen=%v, want %v", i+1, seen, want)
		}
	}
	if seen, err := c.Seen(ctx, "k2", "n1", time.Minute); err != nil || seen {
		t.Fatalf("same nonce under another key: seen=%v, %v", seen, err)
	}

	// The entry carries the ttl, rounded up to whole seconds (SET ... NX EX 1).
	ttl, err := client.TTL(ctx, DefaultRedisNoncePrefix+nonceKey("k", "n1")).Result()
	if err != nil {
		t.Fatal(err)
	}
	if ttl <= 0 || ttl > time.Second {
		t.Fatalf("TTL %v, want in (0, 1s]", ttl)
	}

	// When it expires the nonce may be used again (by then created is
	// outside the skew window and the verifier refuses it anyway).
	deadline := time.Now().Add(5 * time.Second)
	for {
		n, err := client.Exists(ctx, DefaultRedisNoncePrefix+nonceKey("k", "n1")).Result()
		if err != nil {
			t.Fatal(err)
		}
		if n == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("nonce key did not expire within 5 s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if seen, err := c.Seen(ctx, "k", "n1", time.Second); err != nil || seen {
		t.Fatalf("after expiry: seen=%v, %v", seen, err)
	}
}

// Two API instances sharing Redis: a request admitted by one is a replay
// for the other.
func TestRedisNonceCacheSharedAcrossVerifiers(t *testing.T) {
	srv := testenv.StartRedis(t)
	key := Key{ID: "k", Alg: AlgHMACSHA256, HMAC: make([]byte, 32)}
	clock := newTestClock(time.Unix(1_800_000_000, 0))
	newInstance := func() *Verifier {
		return NewVerifier(StaticKeys{"k": key}, WithClock(clock.Now),
			WithNonceCache(NewRedisNonceCache(newRedisClient(t, srv.Addr()), "")))
	}
	a, b := newInstance(), newInstance()
	r := newSignedDelete(t, key, SignParams{Now: clock.Now})
	if _, err := a.Verify(context.Background(), r, nil); err != nil {
		t.Fatalf("instance a: %v", err)
	}
	if _, err := b.Verify(context.Background(), r, nil); !errors.Is(err, ErrReplayed) {
		t.Fatalf("instance b: %v, want ErrReplayed", err)
	}

	// Redis down: the signature is neither accepted nor blamed on the
	// client; WriteProblem answers 503.
	srv.Stop()
	fresh := newSignedDelete(t, key, SignParams{Now: clock.Now})
	_, err := a.Verify(context.Background(), fresh, nil)
	if err == nil || Reason(err) != "signature_unavailable" {
		t.Fatalf("with Redis down: %v (reason %q), want an unavailable error", err, Reason(err))
	}
	w := httptest.NewRecorder()
	WriteProblem(w, fresh, err)
	if w.Code != http.StatusServiceUnavailable {
		t.Fatalf("WriteProblem with Redis down: %d, want 503", w.Code)
	}
}
