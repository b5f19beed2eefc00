package ratelimit

import (
	"context"
	"math/rand/v2"
	"strconv"
	"testing"
	"time"

	"github.com/vitalshq/vitals/internal/testenv"
)

// forEachStore runs fn against a MemoryStore and a RedisStore on a private
// redis-server: both must decide alike.
func forEachStore(t *testing.T, fn func(t *testing.T, s Store)) {
	t.Run("memory", func(t *testing.T) { fn(t, NewMemoryStore()) })
	t.Run("redis", func(t *testing.T) { fn(t, newRedisStore(t)) })
}

// takeN takes n requests at now and returns how many were admitted and the
// last decision.
func takeN(t *testing.T, s Store, key string, l Limit, now time.Time, n int) (int, Decision) {
	t.Helper()
	admitted := 0
	var d Decision
	for range n {
		var err error
		d, err = s.Take(context.Background(), key, l, now)
		if err != nil {
			t.Fatalf("Take: %v", err)
		}
		if d.Allowed {
			admitted++
		}
	}
	return admitted, d
}

func TestStoreBurstAfterIdleHourIsTheBucketNotTheQuota(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		l := DefaultLimits()[ClassStandard] // 1000/h, bucket 50 refilled at 1 per 3.6 s
		now := testEpoch.Add(5 * time.Minute)
		if n, _ := takeN(t, s, "c", l, now, 10); n != 10 {
			t.Fatalf("first 10 requests: %d admitted", n)
		}

		now = now.Add(time.Hour) // idle for an hour
		n, d := takeN(t, s, "c", l, now, 200)
		if n != 50 {
			t.Fatalf("burst after an idle hour: %d of 200 admitted, want the bucket size 50 (not the quota 1000)", n)
		}
		if d.Allowed || d.BurstRemaining != 0 || d.RetryAfter != 3600*time.Millisecond {
			t.Fatalf("after the burst: %+v, want refused, bucket empty, RetryAfter 3.6s", d)
		}
		if d.Remaining < 900 {
			t.Fatalf("after the burst the window still has %d left, want ≥ 900: the bucket, not the window, refused", d.Remaining)
		}
		if d.BurstReset != 180*time.Second {
			t.Fatalf("BurstReset = %v, want 3m0s (50 tokens at 1 per 3.6 s)", d.BurstReset)
		}

		// Refill: one token per 3.6 s.
		if n, _ := takeN(t, s, "c", l, now.Add(3599*time.Millisecond), 1); n != 0 {
			t.Fatal("admitted 3.599 s after the bucket emptied, want refused until 3.6 s")
		}
		now = now.Add(3600 * time.Millisecond)
		if n, _ := takeN(t, s, "c", l, now, 5); n != 1 {
			t.Fatalf("3.6 s after the bucket emptied: %d admitted, want 1", n)
		}
		now = now.Add(36 * time.Second)
		if n, _ := takeN(t, s, "c", l, now, 20); n != 10 {
			t.Fatalf("36 s later: %d admitted, want 10", n)
		}
	})
}

func TestStoreSlidingWindowWeighsThePreviousWindow(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		l := Limit{Quota: 100, Window: time.Hour, Burst: 100}
		now := testEpoch.Add(59 * time.Minute)
		n, d := takeN(t, s, "c", l, now, 101)
		if n != 100 {
			t.Fatalf("%d of 101 admitted in one window, want 100", n)
		}
		// The next window starts in 1 min with the 100 weighing fully;
		// one fits when they weigh 99, 36 s into it: 96 s from now.
		if d.RetryAfter != 96*time.Second || d.Remaining != 0 || d.Reset != time.Hour+time.Minute {
			t.Fatalf("refused decision %+v, want RetryAfter 1m36s, Remaining 0, Reset 1h1m", d)
		}
		if n, _ := takeN(t, s, "c", l, now.Add(96*time.Second-time.Millisecond), 1); n != 0 {
			t.Fatal("admitted 1 ms before RetryAfter")
		}
		if n, _ := takeN(t, s, "c", l, now.Add(96*time.Second), 2); n != 1 {
			t.Fatalf("at RetryAfter: %d of 2 admitted, want 1", n)
		}
		// 30 % into the next window the previous one weighs 70: 30 in all.
		n, d = takeN(t, s, "c", l, testEpoch.Add(time.Hour+18*time.Minute), 100)
		if n != 29 {
			t.Fatalf("30 %% into the next window: %d more admitted, want 29 (30 with the one above)", n)
		}
		if d.Remaining != 0 {
			t.Fatalf("Remaining = %d, want 0", d.Remaining)
		}
		// Two windows later everything is forgotten.
		if n, _ := takeN(t, s, "c", l, testEpoch.Add(3*time.Hour), 150); n != 100 {
			t.Fatalf("two windows later: %d admitted, want 100", n)
		}
	})
}

func TestStoreKeysAreIndependent(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		l := Limit{Quota: 3, Window: time.Minute, Burst: 3}
		for _, key := range []string{"a", "b", "a:b"} {
			if n, _ := takeN(t, s, key, l, testEpoch, 5); n != 3 {
				t.Fatalf("key %q: %d admitted, want 3", key, n)
			}
		}
	})
}

func TestStoreRejectsInvalidLimits(t *testing.T) {
	forEachStore(t, func(t *testing.T, s Store) {
		for _, l := range []Limit{
			{Quota: 0, Window: time.Hour},
			{Quota: 10, Window: 0},
			{Quota: 10, Window: 1500 * time.Microsecond},
			{Quota: 10, Window: time.Hour, Burst: -1},
			{Quota: 1 << 40, Window: 24 * time.Hour},
		} {
			if _, err := s.Take(context.Background(), "k", l, testEpoch); err == nil {
				t.Errorf("Take with %+v: no error", l)
			}
		}
	})
}

// TestStoresAgree replays one random sequence of requests on both stores:
// the Lua script must decide exactly as window.take does.
func TestStoresAgree(t *testing.T) {
	mem, red := NewMemoryStore(), newRedisStore(t)
	limits := []Limit{
		DefaultLimits()[ClassStandard],
		DefaultLimits()[ClassBulk],
		{Quota: 7, Window: time.Second},
		{Quota: 5, Window: 10 * time.Second, Burst: 9},
		{Quota: 3, Window: 250 * time.Millisecond, Burst: 1},
		{Quota: 1, Window: time.Minute},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	now := testEpoch.Add(-7 * time.Second)
	ctx := context.Background()
	var admitted, refused int
	for i := range 3000 {
		switch rng.IntN(10) {
		case 0:
			now = now.Add(time.Duration(rng.IntN(20_000)) * time.Millisecond)
		case 1, 2, 3:
			now = now.Add(time.Duration(rng.IntN(300)) * time.Millisecond)
		case 4:
			// Another instance whose clock is behind.
			now = now.Add(-time.Duration(rng.IntN(2_000)) * time.Millisecond)
		}
		li := rng.IntN(len(limits))
		key := strconv.Itoa(li) + "/" + strconv.Itoa(rng.IntN(3))
		l := limits[li]
		dm, err := mem.Take(ctx, key, l, now)
		if err != nil {
			t.Fatal(err)
		}
		dr, err := red.Take(ctx, key, l, now)
		if err != nil {
			t.Fatal(err)
		}
		if dm != dr {
			t.Fatalf("request %d (key %s, %+v, %v): memory %+v, redis %+v", i, key, l, now.Sub(testEpoch), dm, dr)
		}
		if dm.Allowed {
			admitted++
		} else {
			refused++
		}
	}
	if admitted < 500 || refused < 500 {
		t.Fatalf("%d admitted, %d refused: the sequence does not exercise both", admitted, refused)
	}
}

func TestRedisStoreKeysExpire(t *testing.T) {
	addr := testenv.Redis(t)
	client := newRedisClient(t, addr)
	s := NewRedisStore(client)
	l := Limit{Quota: 10, Window: time.Minute}
	if _, err := s.Take(context.Background(), "c", l, time.Now()); err != nil {
		t.Fatal(err)
	}
	pttl, err := client.PTTL(context.Background(), RedisKeyPrefix+"c").Result()
	if err != nil {
		t.Fatal(err)
	}
	if pttl <= time.Minute || pttl > 2*time.Minute {
		t.Fatalf("PTTL = %v, want in (1m, 2m]: two windows, after which the state reads as new", pttl)
	}
}

func TestRedisStoreServerTime(t *testing.T) {
	client := newRedisClient(t, testenv.Redis(t))
	s := NewRedisStore(client, WithRedisServerTime())
	l := Limit{Quota: 10, Window: time.Hour}
	before := time.Now().Truncate(time.Hour)
	// The injected time is years away; the server's clock must win.
	if _, err := s.Take(context.Background(), "c", l, testEpoch); err != nil {
		t.Fatal(err)
	}
	after := time.Now().Truncate(time.Hour)
	start, err := client.HGet(context.Background(), RedisKeyPrefix+"c", "s").Int64()
	if err != nil {
		t.Fatal(err)
	}
	if got := time.UnixMilli(start); !got.Equal(before) && !got.Equal(after) {
		t.Fatalf("window start %v, want the current hour by the server's clock (%v)", got.UTC(), before.UTC())
	}
}

func TestMemoryStoreDropsIdleStates(t *testing.T) {
	s := NewMemoryStore()
	l := Limit{Quota: 10, Window: time.Minute}
	ctx := context.Background()
	for i := range 500 {
		if _, err := s.Take(ctx, strconv.Itoa(i), l, testEpoch); err != nil {
			t.Fatal(err)
		}
	}
	if s.Len() != 500 {
		t.Fatalf("Len = %d, want 500", s.Len())
	}
	// Past two windows (plus the slack, and a sweep interval) a shard drops its expired
	// keys on its next Take; 1000 new keys reach every one of the 64 shards
	// (all but certainly: a shard is missed with probability < 1e-5).
	later := testEpoch.Add(2*time.Minute + sweepSlack)
	for i := range 1000 {
		if _, err := s.Take(ctx, "new"+strconv.Itoa(i), l, later); err != nil {
			t.Fatal(err)
		}
	}
	if s.Len() != 1000 {
		t.Fatalf("Len = %d after the first 500 states expired, want 1000", s.Len())
	}
}

func TestMemoryStoreKeepsStatesAcrossAClockStepBack(t *testing.T) {
	s := NewMemoryStore()
	l := Limit{Quota: 3, Window: time.Minute, Burst: 3}
	ctx := context.Background()
	if n, _ := takeN(t, s, "c", l, testEpoch, 3); n != 3 {
		t.Fatalf("%d admitted, want 3", n)
	}
	// 30 s after the state expired every shard sweeps...
	for i := range 1000 {
		if _, err := s.Take(ctx, "other"+strconv.Itoa(i), l, testEpoch.Add(2*time.Minute+30*time.Second)); err != nil {
			t.Fatal(err)
		}
	}
	// ...then the clock steps back to when the 3 requests still weigh
	// 1/60: 2 more fit, not a fresh 3.
	if n, _ := takeN(t, s, "c", l, testEpoch.Add(time.Minute+59*time.Second), 5); n != 2 {
		t.Fatalf("after a step back: %d admitted, want 2 (the dropped state would give 3)", n)
	}
}
