package ratelimit

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/redis/go-redis/v9"
)

// RedisKeyPrefix starts the name of every key RedisStore writes.
const RedisKeyPrefix = "vitals:ratelimit:"

// defaultRedisTimeout bounds one decision: past it the request goes by the
// fail policy rather than waiting on a slow Redis.
const defaultRedisTimeout = 250 * time.Millisecond

// takeScript is window.take in Lua: one atomic decision per call, so API
// instances sharing the Redis server share exact counts. The state is one
// hash per key (fields w s c p k l = window.w start curr prev tokens last)
// with a TTL after which it would read as new, so idle clients cost nothing.
//
// KEYS[1] = state key; ARGV = now (ms since the epoch, or -1 for the Redis
// server's clock), window (ms), quota, burst, ttl (ms).
// Returns {allowed, remaining, reset, burstRemaining, burstReset, retryAfter}
// (durations in ms). Numbers are Lua doubles; Limit.Validate keeps every
// product below 2^53 so they are exact integers.
var takeScript = redis.NewScript(`
local now = tonumber(ARGV[1])
local w = tonumber(ARGV[2])
local q = tonumber(ARGV[3])
local b = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
if now < 0 then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function ceildiv(a, d) return math.floor((a + d - 1) / d) end

local capacity = b * w
local start = now - (now % w)
local curr, prev, tokens, last = 0, 0, capacity, now
local f = redis.call('HMGET', KEYS[1], 'w', 's', 'c', 'p', 'k', 'l')
if tonumber(f[1]) == w then
  local s = tonumber(f[2])
  curr, prev, tokens, last = tonumber(f[3]), tonumber(f[4]), tonumber(f[5]), tonumber(f[6])
  if s == start then
  elseif s == start - w then
    prev, curr = curr, 0
  elseif s > start then
    start = s
  else
    prev, curr = 0, 0
  end
end
if tokens > capacity then tokens = capacity end
if now > last then
  local elapsed = now - last
  if elapsed >= ceildiv(capacity - tokens, q) then
    tokens = capacity
  else
    tokens = tokens + elapsed * q
  end
  last = now
end
local e = now - start
if e < 0 then e = 0 end

local windowOK = prev * (w - e) + (curr + 1) * w <= q * w
local bucketOK = tokens >= w
local allowed = 0
if windowOK and bucketOK then
  allowed = 1
  curr = curr + 1
  tokens = tokens - w
end
redis.call('HSET', KEYS[1], 'w', w, 's', start, 'c', curr, 'p', prev, 'k', tokens, 'l', last)
redis.call('PEXPIRE', KEYS[1], ttl)

local remaining = 0
local used = prev * (w - e) + curr * w
if used < q * w then remaining = math.floor((q * w - used) / w) end
local reset = 0
if curr > 0 then reset = 2 * w - e elseif prev > 0 then reset = w - e end
local burstRemaining = math.floor(tokens / w)
local burstReset = ceildiv(capacity - tokens, q)
local retry = 0
if allowed == 0 then
  local windowWait, bucketWait = 0, 0
  if windowOK then
  elseif curr + 1 > q then
    windowWait = (w - e) + w - math.floor((q - 1) * w / curr)
  else
    windowWait = w - math.floor((q - curr - 1) * w / prev) - e
  end
  if not bucketOK then bucketWait = ceildiv(w - tokens, q) end
  retry = math.max(windowWait, bucketWait)
end
return {allowed, remaining, reset, burstRemaining, burstReset, retry}
`)

// RedisStore keeps limit states in Redis so that every API instance using
// the same server shares them. Each decision is one EVALSHA of an atomic Lua
// script (window and bucket together). It is safe for concurrent use.
//
// Time: by default the caller's now is used, so tests can inject a clock and
// the store agrees with MemoryStore to the millisecond; API instances then
// need synchronised clocks (NTP). Skew is tolerated — a state is never moved
// back to an earlier window and a bucket is never refilled for time that went
// backwards — so a skewed instance can only admit a little less, for as long
// as its skew. WithRedisServerTime uses the Redis server's clock instead,
// which removes skew between instances but ignores the injected clock.
type RedisStore struct {
	client     redis.Scripter
	timeout    time.Duration
	serverTime bool
}

// RedisOption configures a RedisStore.
type RedisOption func(*RedisStore)

// WithRedisTimeout bounds each decision (default 250 ms); 0 leaves it to the
// caller's context. The client should have ContextTimeoutEnabled so that the
// bound also applies to reads and writes on the connection.
func WithRedisTimeout(d time.Duration) RedisOption {
	return func(s *RedisStore) { s.timeout = d }
}

// WithRedisServerTime makes the store decide on the Redis server's clock
// (TIME) and ignore the now passed to Take.
func WithRedisServerTime() RedisOption {
	return func(s *RedisStore) { s.serverTime = true }
}

// RedisOptions returns go-redis options for addr ("host:port") suited to
// deciding requests: context deadlines apply to reads and writes, and a
// server that is down is noticed within a dial timeout (no dial retries, one
// command retry), so the fail policy applies promptly instead of after
// go-redis's default retries. Callers may adjust the rest (password, TLS,
// pool size) before redis.NewClient.
func RedisOptions(addr string) *redis.Options {
	return &redis.Options{
		Addr:                  addr,
		DialTimeout:           defaultRedisTimeout,
		ReadTimeout:           defaultRedisTimeout,
		WriteTimeout:          defaultRedisTimeout,
		ContextTimeoutEnabled: true,
		DialerRetries:         1,
		MaxRetries:            1,
	}
}

// NewRedisStore returns a store on client (a *redis.Client, ring or cluster
// client). The client stays the caller's to close.
func NewRedisStore(client redis.Scripter, opts ...RedisOption) *RedisStore {
	s := &RedisStore{client: client, timeout: defaultRedisTimeout}
	for _, o := range opts {
		o(s)
	}
	return s
}

// Take decides one request for key under l at now (or at the server's time)
// and counts it when admitted. Errors mean no decision was made: Redis was
// unreachable, slow past the timeout, or answered something unexpected.
func (s *RedisStore) Take(ctx context.Context, key string, l Limit, now time.Time) (Decision, error) {
	if err := l.Validate(); err != nil {
		return Decision{}, err
	}
	ms := now.UnixMilli()
	if s.serverTime {
		ms = -1
	} else if ms < 0 {
		return Decision{}, errors.New("rate limit: time before 1970")
	}
	if s.timeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, s.timeout)
		defer cancel()
	}
	w, q, b := l.Window.Milliseconds(), int64(l.Quota), int64(l.BurstSize())
	res, err := takeScript.Run(ctx, s.client, []string{RedisKeyPrefix + key}, ms, w, q, b, ttl(w, q, b)).Int64Slice()
	if err != nil {
		return Decision{}, fmt.Errorf("rate limit script on redis: %w", err)
	}
	if len(res) != 6 {
		return Decision{}, fmt.Errorf("rate limit script on redis: %d results, want 6", len(res))
	}
	o := outcome{
		allowed:        res[0] == 1,
		remaining:      res[1],
		reset:          res[2],
		burstRemaining: res[3],
		burstReset:     res[4],
		retryAfter:     res[5],
	}
	return o.decision(l.withBurst()), nil
}
