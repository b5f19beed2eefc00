package httpsig

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"
)

func TestMemoryNonceCache(t *testing.T) {
	ctx := context.Background()
	clock := newTestClock(time.Unix(1_800_000_000, 0))
	c := NewMemoryNonceCache(3, clock.Now)

	seen := func(keyID, nonce string, ttl time.Duration) bool {
		t.Helper()
		s, err := c.Seen(ctx, keyID, nonce, ttl)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	if seen("k", "n1", 10*time.Second) {
		t.Fatal("first use reported as seen")
	}
	if !seen("k", "n1", 10*time.Second) {
		t.Fatal("second use not reported as seen")
	}
	if seen("k2", "n1", 10*time.Second) {
		t.Fatal("same nonce under another key reported as seen")
	}
	// ("a:b","c") and ("a","b:c") are different entries.
	if seen("a:b", "c", 20*time.Second) {
		t.Fatal("a:b/c reported as seen")
	}

	// Full: refuse rather than evict a live nonce.
	if _, err := c.Seen(ctx, "a", "b:c", time.Second); !errors.Is(err, ErrNonceCacheFull) {
		t.Fatalf("fourth entry in a cache of 3: %v, want ErrNonceCacheFull", err)
	}
	if !seen("k", "n1", 10*time.Second) {
		t.Fatal("a live nonce must still be reported as seen when the cache is full")
	}

	// After 10 s the first two entries expire and make room.
	clock.Advance(10 * time.Second)
	if seen("a", "b:c", time.Second) {
		t.Fatal("a/b:c reported as seen")
	}
	if c.Len() != 2 {
		t.Fatalf("Len %d after expiry, want 2", c.Len())
	}
	if seen("k", "n1", 10*time.Second) {
		t.Fatal("expired nonce still reported as seen")
	}
	if !seen("a:b", "c", time.Second) {
		t.Fatal("a:b/c (20 s ttl) forgotten after 10 s")
	}
}

func TestMemoryNonceCacheConcurrent(t *testing.T) {
	c := NewMemoryNonceCache(0, nil)
	const n = 64
	var wg sync.WaitGroup
	var mu sync.Mutex
	fresh := 0
	for range n {
		wg.Go(func() {
			s, err := c.Seen(context.Background(), "k", "same", time.Minute)
			if err != nil {
				t.Error(err)
			}
			if !s {
				mu.Lock()
				fresh++
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	if fresh != 1 {
		t.Fatalf("%d of %d concurrent uses of one nonce were fresh, want 1", fresh, n)
	}
}

func TestVerifierNonceTTLCoversSkewWindow(t *testing.T) {
	// A nonce must be remembered as long as its created is acceptable: a
	// signature created 299 s in the future stays valid for ~600 s.
	clock := newTestClock(time.Unix(1_800_000_000, 0))
	var got time.Duration
	cache := nonceCacheFunc(func(_ context.Context, _, _ string, ttl time.Duration) (bool, error) {
		got = ttl
		return false, nil
	})
	key := Key{ID: "k", Alg: AlgHMACSHA256, HMAC: make([]byte, 32)}
	v := NewVerifier(StaticKeys{"k": key}, WithClock(clock.Now), WithNonceCache(cache))
	r := newSignedDelete(t, key, SignParams{Created: clock.Now().Add(299 * time.Second)})
	if _, err := v.Verify(context.Background(), r, nil); err != nil {
		t.Fatal(err)
	}
	if got < 599*time.Second || got > 601*time.Second {
		t.Fatalf("nonce ttl %v, want about 600 s", got)
	}
}

type nonceCacheFunc func(ctx context.Context, keyID, nonce string, ttl time.Duration) (bool, error)

func (f nonceCacheFunc) Seen(ctx context.Context, keyID, nonce string, ttl time.Duration) (bool, error) {
	return f(ctx, keyID, nonce, ttl)
}
