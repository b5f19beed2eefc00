package httpsig

import (
	"container/heap"
	"context"
	"errors"
	"fmt"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"
)

// DefaultNonceCapacity is the default size of a MemoryNonceCache: room for
// about 1,700 signed requests per second sustained over the 600 s a nonce
// is kept with the default skew.
const DefaultNonceCapacity = 1 << 20

// ErrNonceCacheFull is returned by MemoryNonceCache.Seen when every slot
// holds a live nonce. Evicting one would let it be replayed, so the cache
// refuses instead and the request is answered 503.
var ErrNonceCacheFull = errors.New("httpsig: nonce cache is full")

// MemoryNonceCache is an in-process NonceCache with a bounded number of
// entries, each forgotten when its ttl has passed. It has no goroutine:
// expired entries are dropped on each call. It is safe for concurrent use.
type MemoryNonceCache struct {
	mu       sync.Mutex
	capacity int
	now      func() time.Time
	expiry   map[string]time.Time // live entries by cache key
	queue    expiryQueue          // the same entries, soonest expiry first
}

// NewMemoryNonceCache returns a cache holding at most capacity nonces
// (DefaultNonceCapacity when capacity <= 0), timed by now (time.Now when
// nil).
func NewMemoryNonceCache(capacity int, now func() time.Time) *MemoryNonceCache {
	if capacity <= 0 {
		capacity = DefaultNonceCapacity
	}
	if now == nil {
		now = time.Now
	}
	return &MemoryNonceCache{capacity: capacity, now: now, expiry: make(map[string]time.Time)}
}

// Seen records (keyID, nonce) for ttl and reports whether it was already
// recorded and not yet expired.
func (c *MemoryNonceCache) Seen(_ context.Context, keyID, nonce string, ttl time.Duration) (bool, error) {
	k := nonceKey(keyID, nonce)
	c.mu.Lock()
	defer c.mu.Unlock()
	now := c.now()
	for c.queue.Len() > 0 && !c.queue[0].exp.After(now) {
		e := heap.Pop(&c.queue).(expiryEntry)
		if exp, ok := c.expiry[e.key]; ok && exp.Equal(e.exp) {
			delete(c.expiry, e.key)
		}
	}
	if _, ok := c.expiry[k]; ok {
		return true, nil
	}
	if len(c.expiry) >= c.capacity {
		return false, fmt.Errorf("%w (%d live nonces)", ErrNonceCacheFull, len(c.expiry))
	}
	exp := now.Add(ttl)
	c.expiry[k] = exp
	heap.Push(&c.queue, expiryEntry{key: k, exp: exp})
	return false, nil
}

// Len returns the number of nonces held, expired ones included until the
// next Seen drops them.
func (c *MemoryNonceCache) Len() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.expiry)
}

// nonceKey joins keyID and nonce unambiguously: the length prefix keeps
// ("a:b", "c") and ("a", "b:c") apart.
func nonceKey(keyID, nonce string) string {
	return strconv.Itoa(len(keyID)) + ":" + keyID + ":" + nonce
}

type expiryEntry struct {
	key string
	exp time.Time
}

// expiryQueue is a min-heap of entries by expiry (container/heap).
type expiryQueue []expiryEntry

func (q expiryQueue) Len() int           { return len(q) }
func (q expiryQueue) Less(i, j int) bool { return q[i].exp.Before(q[j].exp) }
func (q expiryQueue) Swap(i, j int)      { q[i], q[j] = q[j], q[i] }
func (q *expiryQueue) Push(x any)        { *q = append(*q, x.(expiryEntry)) }
func (q *expiryQueue) Pop() any {
	old := *q
	e := old[len(old)-1]
	*q = old[:len(old)-1]
	return e
}

// DefaultRedisNoncePrefix prefixes the Redis keys of a RedisNonceCache.
const DefaultRedisNoncePrefix = "vitals:httpsig:nonce:"

// RedisNonceCache is a NonceCache in Redis, shared by every API instance
// that points at the same server: SET key 1 NX EX ttl records a nonce and
// tells atomically whether it was already there.
type RedisNonceCache struct {
	client redis.Cmdable
	prefix string
}

// NewRedisNonceCache returns a cache that keeps nonces in client under
// prefix (DefaultRedisNoncePrefix when empty). The caller owns client and
// closes it.
func NewRedisNonceCache(client redis.Cmdable, prefix string) *RedisNonceCache {
	if prefix == "" {
		prefix = DefaultRedisNoncePrefix
	}
	return &RedisNonceCache{client: client, prefix: prefix}
}

// Seen records (keyID, nonce) for ttl, rounded up to whole seconds, and
// reports whether it was already recorded.
func (c *RedisNonceCache) Seen(ctx context.Context, keyID, nonce string, ttl time.Duration) (bool, error) {
	secs := max(int64((ttl+time.Second-1)/time.Second), 1)
	set, err := c.client.SetNX(ctx, c.prefix+nonceKey(keyID, nonce), 1, time.Duration(secs)*time.Second).Result()
	if err != nil {
		return false, fmt.Errorf("httpsig: redis nonce cache: %w", err)
	}
	return !set, nil
}
