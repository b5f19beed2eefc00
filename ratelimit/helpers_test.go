package ratelimit

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/problem"
)

// testEpoch is a fixed start for injected clocks: 10:00:00.000 UTC, the
// start of an hour (and 10 h into a day window).
var testEpoch = time.Date(2030, 1, 2, 10, 0, 0, 0, time.UTC)

// fakeClock is an injected clock that only moves when told.
type fakeClock struct {
	mu sync.Mutex
	t  time.Time
}

func newFakeClock(t time.Time) *fakeClock { return &fakeClock{t: t} }

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *fakeClock) Add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// testRedisTimeout replaces the 250 ms production bound in tests that are
// about counts, not latency (slow under -race on a small machine).
const testRedisTimeout = 5 * time.Second

// newRedisClient returns a client for addr with RedisOptions (timeouts
// raised to testRedisTimeout), closed when t ends.
func newRedisClient(t testing.TB, addr string) *redis.Client {
	t.Helper()
	opts := RedisOptions(addr)
	opts.DialTimeout, opts.ReadTimeout, opts.WriteTimeout = testRedisTimeout, testRedisTimeout, testRedisTimeout
	opts.PoolSize = 64
	c := redis.NewClient(opts)
	t.Cleanup(func() { c.Close() })
	return c
}

// newRedisStore starts a private redis-server and returns a store on it.
func newRedisStore(t testing.TB, opts ...RedisOption) *RedisStore {
	t.Helper()
	opts = append([]RedisOption{WithRedisTimeout(testRedisTimeout)}, opts...)
	return NewRedisStore(newRedisClient(t, testenv.Redis(t)), opts...)
}

// mustLimiter returns New(store, opts...) or fails t.
func mustLimiter(t testing.TB, store Store, opts ...Option) *Limiter {
	t.Helper()
	l, err := New(store, opts...)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return l
}

// sfItem is one member of a structured-field List whose bare items are
// Strings and whose parameters are Integers, the shape of both rate-limit
// fields.
type sfItem struct {
	name   string
	params map[string]int64
	order  []string
}

// parseSFList parses value strictly as an RFC 9651 List of such items.
func parseSFList(value string) ([]sfItem, error) {
	var items []sfItem
	s := value
	for {
		if !strings.HasPrefix(s, `"`) {
			return nil, fmt.Errorf("item at %q: not a String", s)
		}
		end := strings.IndexByte(s[1:], '"')
		if end < 0 {
			return nil, fmt.Errorf("unterminated String in %q", value)
		}
		it := sfItem{name: s[1 : 1+end], params: map[string]int64{}}
		if strings.ContainsAny(it.name, `\`) {
			return nil, fmt.Errorf("escape in %q (not expected)", it.name)
		}
		s = s[2+end:]
		for strings.HasPrefix(s, ";") {
			s = s[1:]
			i := 0
			for i < len(s) && (s[i] >= 'a' && s[i] <= 'z' || s[i] >= '0' && s[i] <= '9' || s[i] == '_' || s[i] == '-') {
				i++
			}
			if i == 0 || s[0] < 'a' || s[0] > 'z' {
				return nil, fmt.Errorf("bad parameter key at %q", s)
			}
			key := s[:i]
			s = s[i:]
			if !strings.HasPrefix(s, "=") {
				return nil, fmt.Errorf("parameter %s without an Integer value", key)
			}
			s = s[1:]
			j := 0
			if j < len(s) && s[j] == '-' {
				j++
			}
			for j < len(s) && s[j] >= '0' && s[j] <= '9' {
				j++
			}
			v, err := strconv.ParseInt(s[:j], 10, 64)
			if err != nil || j > 16 {
				return nil, fmt.Errorf("parameter %s: bad Integer %q", key, s[:j])
			}
			if _, dup := it.params[key]; dup {
				return nil, fmt.Errorf("parameter %s repeated", key)
			}
			it.params[key] = v
			it.order = append(it.order, key)
			s = s[j:]
		}
		items = append(items, it)
		s = strings.TrimLeft(s, " \t")
		if s == "" {
			return items, nil
		}
		if !strings.HasPrefix(s, ",") {
			return nil, fmt.Errorf("expected ',' at %q", s)
		}
		s = strings.TrimLeft(s[1:], " \t")
		if s == "" {
			return nil, fmt.Errorf("trailing comma in %q", value)
		}
	}
}

// checkPolicyHeader checks that RateLimit-Policy names the class and its
// burst bucket with the limit's numbers.
func checkPolicyHeader(t testing.TB, h http.Header, class Class, l Limit) {
	t.Helper()
	if err := policyHeaderErr(h, class, l); err != nil {
		t.Fatal(err)
	}
}

// policyHeaderErr is checkPolicyHeader returning the failure.
func policyHeaderErr(h http.Header, class Class, l Limit) error {
	got := h.Get(HeaderPolicy)
	items, err := parseSFList(got)
	if err != nil {
		return fmt.Errorf("%s: %q: %w", HeaderPolicy, got, err)
	}
	l = l.withBurst()
	refill := seconds(time.Duration(float64(l.Window) * float64(l.Burst) / float64(l.Quota)))
	want := []sfItem{
		{name: string(class), params: map[string]int64{"q": int64(l.Quota), "w": seconds(l.Window)}},
		{name: string(class) + "-burst", params: map[string]int64{"q": int64(l.Burst), "w": refill}},
	}
	if len(items) != len(want) {
		return fmt.Errorf("%s: %q: %d items, want %d", HeaderPolicy, got, len(items), len(want))
	}
	for i, w := range want {
		if items[i].name != w.name || fmt.Sprint(items[i].params) != fmt.Sprint(w.params) || strings.Join(items[i].order, ",") != "q,w" {
			return fmt.Errorf("%s: %q: item %d = %+v, want %+v", HeaderPolicy, got, i, items[i], w)
		}
	}
	return nil
}

// limitState is the RateLimit field: r and t of the quota and burst items.
type limitState struct{ r, t, burstR, burstT int64 }

// rateLimitState parses RateLimit, checking its syntax and names.
func rateLimitState(t testing.TB, h http.Header, class Class) limitState {
	t.Helper()
	st, err := rateLimitStateErr(h, class)
	if err != nil {
		t.Fatal(err)
	}
	return st
}

// rateLimitStateErr is rateLimitState returning the failure.
func rateLimitStateErr(h http.Header, class Class) (limitState, error) {
	got := h.Get(HeaderRateLimit)
	items, err := parseSFList(got)
	if err != nil {
		return limitState{}, fmt.Errorf("%s: %q: %w", HeaderRateLimit, got, err)
	}
	if len(items) != 2 || items[0].name != string(class) || items[1].name != string(class)+"-burst" {
		return limitState{}, fmt.Errorf("%s: %q: want items %q and %q", HeaderRateLimit, got, class, class+"-burst")
	}
	for _, it := range items {
		if strings.Join(it.order, ",") != "r,t" {
			return limitState{}, fmt.Errorf("%s: %q: parameters of %q are %v, want r,t", HeaderRateLimit, got, it.name, it.order)
		}
		if it.params["r"] < 0 || it.params["t"] < 0 {
			return limitState{}, fmt.Errorf("%s: %q: negative value", HeaderRateLimit, got)
		}
	}
	return limitState{items[0].params["r"], items[0].params["t"], items[1].params["r"], items[1].params["t"]}, nil
}

// limitServer serves every request through l: class from ?class=, client
// from X-Client, route from ?route=. Admitted requests get 204 with the
// rate-limit headers, refused ones WriteTooMany.
func limitServer(t testing.TB, l *Limiter) *httptest.Server {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		d := l.Allow(r.Context(), r.Header.Get("X-Client"), Class(q.Get("class")), q.Get("route"))
		if !d.Allowed {
			WriteTooMany(w, r, d)
			return
		}
		d.SetHeaders(w.Header())
		w.WriteHeader(http.StatusNoContent)
	}))
	t.Cleanup(srv.Close)
	return srv
}

// hammerResult counts the answers of a hammer run.
type hammerResult struct {
	admitted  int
	refused   int
	remaining []int64 // r of every admitted response
}

// hammer sends n requests of client in class from 64 concurrent workers,
// spread round-robin over urls, and checks every response's headers: on 204
// the policy and a well-formed RateLimit; on 429 also Retry-After and the
// problem+json body naming the class.
func hammer(t *testing.T, urls []string, client string, class Class, l Limit, n int) hammerResult {
	t.Helper()
	const workers = 64
	tr := &http.Transport{MaxIdleConnsPerHost: workers, MaxConnsPerHost: workers}
	t.Cleanup(tr.CloseIdleConnections)
	hc := &http.Client{Transport: tr, Timeout: 10 * time.Second}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	jobs := make(chan int)
	var mu sync.Mutex
	var res hammerResult
	var firstErr error
	fail := func(err error) {
		mu.Lock()
		defer mu.Unlock()
		if firstErr == nil {
			firstErr = err
		}
	}
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			for i := range jobs {
				url := urls[i%len(urls)] + "/?class=" + string(class)
				req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
				if err != nil {
					fail(err)
					continue
				}
				req.Header.Set("X-Client", client)
				resp, err := hc.Do(req)
				if err != nil {
					fail(err)
					continue
				}
				var body struct {
					Type       string `json:"type"`
					Status     int    `json:"status"`
					Class      string `json:"class"`
					RetryAfter int64  `json:"retry_after"`
				}
				decErr := json.NewDecoder(resp.Body).Decode(&body)
				resp.Body.Close()
				switch resp.StatusCode {
				case http.StatusNoContent:
					st, err := rateLimitStateErr(resp.Header, class)
					if err != nil {
						fail(err)
					}
					if resp.Header.Get("Retry-After") != "" {
						fail(fmt.Errorf("204 with Retry-After %q", resp.Header.Get("Retry-After")))
					}
					if err := policyHeaderErr(resp.Header, class, l); err != nil {
						fail(err)
					}
					mu.Lock()
					res.admitted++
					res.remaining = append(res.remaining, st.r)
					mu.Unlock()
				case http.StatusTooManyRequests:
					st, err := rateLimitStateErr(resp.Header, class)
					if err != nil {
						fail(err)
					}
					if err := policyHeaderErr(resp.Header, class, l); err != nil {
						fail(err)
					}
					ra, err := strconv.ParseInt(resp.Header.Get("Retry-After"), 10, 64)
					switch {
					case err != nil || ra < 1:
						fail(fmt.Errorf("429 Retry-After %q", resp.Header.Get("Retry-After")))
					case st.r != 0:
						fail(fmt.Errorf("429 with r=%d, want 0 (burst = quota, so the window binds)", st.r))
					case resp.Header.Get("Content-Type") != problem.ContentType:
						fail(fmt.Errorf("429 Content-Type %q", resp.Header.Get("Content-Type")))
					case decErr != nil:
						fail(fmt.Errorf("429 body: %w", decErr))
					case body.Status != 429 || body.Class != string(class) || body.RetryAfter != ra || !strings.HasSuffix(body.Type, "/rate-limited"):
						fail(fmt.Errorf("429 body %+v, Retry-After %d", body, ra))
					}
					mu.Lock()
					res.refused++
					mu.Unlock()
				default:
					fail(fmt.Errorf("status %d", resp.StatusCode))
				}
			}
		})
	}
	for i := range n {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	if firstErr != nil {
		t.Fatalf("hammer %s: %v", class, firstErr)
	}
	return res
}
