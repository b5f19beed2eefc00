package ratelimit

import (
	"context"
	"strconv"
	"sync/atomic"
	"testing"
	"time"
)

// benchLimiter returns a Limiter on store whose standard limit never runs
// out during a benchmark, so every iteration is a full admitted decision.
func benchLimiter(b *testing.B, store Store) *Limiter {
	b.Helper()
	return mustLimiter(b, store, WithLimits(map[Class]Limit{
		ClassStandard: {Quota: 1 << 28, Window: time.Hour, Burst: 1 << 28},
	}))
}

// benchAllow runs Allow in parallel over 1000 clients.
func benchAllow(b *testing.B, l *Limiter) {
	clients := make([]string, 1000)
	for i := range clients {
		clients[i] = "client-" + strconv.Itoa(i)
	}
	var next atomic.Uint64
	ctx := context.Background()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			i := next.Add(1)
			if d := l.Allow(ctx, clients[i%uint64(len(clients))], ClassStandard, "GET /v1/endpoints"); !d.Allowed || d.Err != nil {
				b.Errorf("refused: %+v", d)
				return
			}
		}
	})
}

func BenchmarkMemoryAllow(b *testing.B) {
	benchAllow(b, benchLimiter(b, NewMemoryStore()))
}

func BenchmarkRedisAllow(b *testing.B) {
	benchAllow(b, benchLimiter(b, newRedisStore(b)))
}
