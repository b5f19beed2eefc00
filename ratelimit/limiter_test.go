package ratelimit

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/vitalshq/vitals/internal/testenv"
	"github.com/vitalshq/vitals/problem"
)

// precisionOverrides gives client "hammer" the default quota of every class
// with burst = quota, so that the sliding window, not the bucket, decides.
func precisionOverrides(t *testing.T) (*StaticOverrides, map[Class]Limit) {
	t.Helper()
	var list []Override
	limits := map[Class]Limit{}
	for c, l := range DefaultLimits() {
		l.Burst = l.Quota
		limits[c] = l
		list = append(list, Override{ClientID: "hammer", Class: c, Limit: l})
	}
	ov, err := NewStaticOverrides(list...)
	if err != nil {
		t.Fatal(err)
	}
	return ov, limits
}

// checkPrecision hammers every class with 3× its quota from 64 workers over
// urls and checks that exactly the quota was admitted, each admitted
// response saw a distinct remaining count, and every other got 429.
func checkPrecision(t *testing.T, urls []string, limits map[Class]Limit) {
	for _, c := range Classes() {
		l := limits[c]
		res := hammer(t, urls, "hammer", c, l, 3*l.Quota)
		if res.admitted != l.Quota || res.refused != 2*l.Quota {
			t.Errorf("class %s: %d admitted, %d refused of %d, want exactly %d admitted", c, res.admitted, res.refused, 3*l.Quota, l.Quota)
			continue
		}
		// Each admitted request saw its own count: r = quota-1 … 0, once each.
		slices.Sort(res.remaining)
		for i, r := range res.remaining {
			if r != int64(i) {
				t.Errorf("class %s: remaining counts of admitted requests are not 0..%d once each (position %d is %d)", c, l.Quota-1, i, r)
				break
			}
		}
	}
}

func TestPrecisionMemory(t *testing.T) {
	ov, limits := precisionOverrides(t)
	clock := newFakeClock(testEpoch)
	l := mustLimiter(t, NewMemoryStore(), WithOverrides(ov), WithClock(clock.Now))
	srv := limitServer(t, l)
	checkPrecision(t, []string{srv.URL}, limits)
}

// TestPrecisionRedisTwoInstances runs two API instances — each its own
// Limiter, RedisStore and connection pool — on one redis-server; the
// workers alternate between them.
func TestPrecisionRedisTwoInstances(t *testing.T) {
	ov, limits := precisionOverrides(t)
	addr := testenv.Redis(t)
	clock := newFakeClock(testEpoch)
	var urls []string
	for range 2 {
		store := NewRedisStore(newRedisClient(t, addr), WithRedisTimeout(testRedisTimeout))
		l := mustLimiter(t, store, WithOverrides(ov), WithClock(clock.Now))
		urls = append(urls, limitServer(t, l).URL)
	}
	checkPrecision(t, urls, limits)
}

func TestBurstAfterIdleHourHeaders(t *testing.T) {
	clock := newFakeClock(testEpoch)
	l := mustLimiter(t, NewMemoryStore(), WithClock(clock.Now))
	ctx := context.Background()
	l.Allow(ctx, "c", ClassRealtime, "GET /v1/customers/{id}/health")
	clock.Add(time.Hour)

	admitted := 0
	var last Decision
	for range 100 {
		last = l.Allow(ctx, "c", ClassRealtime, "GET /v1/customers/{id}/health")
		if last.Allowed {
			admitted++
		}
	}
	if admitted != 5 {
		t.Fatalf("realtime burst after an idle hour: %d admitted, want 5 (5 %% of 100)", admitted)
	}
	rec := httptest.NewRecorder()
	WriteTooMany(rec, httptest.NewRequest(http.MethodGet, "/v1/customers/x/health", nil), last)
	if rec.Code != http.StatusTooManyRequests {
		t.Fatalf("status %d, want 429", rec.Code)
	}
	checkPolicyHeader(t, rec.Header(), ClassRealtime, DefaultLimits()[ClassRealtime])
	if got, want := rec.Header().Get(HeaderPolicy), `"realtime";q=100;w=3600, "realtime-burst";q=5;w=180`; got != want {
		t.Fatalf("%s = %q, want %q", HeaderPolicy, got, want)
	}
	st := rateLimitState(t, rec.Header(), ClassRealtime)
	if st.r != 94 || st.burstR != 0 || st.burstT != 180 {
		t.Fatalf("RateLimit %q: want the window at 94 left and the bucket empty for 180 s", rec.Header().Get(HeaderRateLimit))
	}
	// One token per 36 s.
	if got := rec.Header().Get("Retry-After"); got != "36" {
		t.Fatalf("Retry-After = %q, want 36", got)
	}
	var body map[string]any
	if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
		t.Fatal(err)
	}
	if body["class"] != "realtime" || body["retry_after"] != float64(36) || body["type"] != problem.TypeBase+"rate-limited" ||
		!strings.Contains(body["detail"].(string), "retry in 36 s") {
		t.Fatalf("problem body %v", body)
	}
	clock.Add(36 * time.Second)
	if d := l.Allow(ctx, "c", ClassRealtime, "GET /v1/customers/{id}/health"); !d.Allowed {
		t.Fatalf("after Retry-After: refused %+v", d)
	}
}

func TestOverrides(t *testing.T) {
	ov, err := NewStaticOverrides(
		Override{ClientID: "big", Class: ClassRealtime, Limit: Limit{Quota: 20, Window: time.Hour, Burst: 20}},
		Override{ClientID: "big", Class: ClassRealtime, Route: "POST /v1/endpoints/{id}/test", Limit: Limit{Quota: 3, Window: time.Hour, Burst: 3}},
	)
	if err != nil {
		t.Fatal(err)
	}
	clock := newFakeClock(testEpoch)
	l := mustLimiter(t, NewMemoryStore(), WithOverrides(ov), WithClock(clock.Now))
	ctx := context.Background()
	count := func(client string, class Class, route string, n int) (int, Decision) {
		admitted := 0
		var d Decision
		for range n {
			if d = l.Allow(ctx, client, class, route); d.Allowed {
				admitted++
			}
		}
		return admitted, d
	}
	const health, test = "GET /v1/customers/{id}/health", "POST /v1/endpoints/{id}/test"

	// The per-route override has counters of its own.
	if n, d := count("big", ClassRealtime, test, 10); n != 3 || d.Limit.Quota != 3 {
		t.Fatalf("route override: %d admitted (limit %+v), want 3", n, d.Limit)
	}
	// The client override covers the rest of the class, untouched by the
	// route's requests.
	if n, d := count("big", ClassRealtime, health, 30); n != 20 || d.Limit.Quota != 20 {
		t.Fatalf("client override: %d admitted (limit %+v), want 20", n, d.Limit)
	}
	// Other clients get the default: bucket 5.
	if n, d := count("small", ClassRealtime, test, 10); n != 5 || d.Limit != (Limit{Quota: 100, Window: time.Hour, Burst: 5}) {
		t.Fatalf("default client: %d admitted (limit %+v), want 5 of the default limit", n, d.Limit)
	}
	// An unknown class counts as standard.
	if d := l.Allow(ctx, "small", Class("nonsense"), "GET /x"); d.Class != ClassStandard || d.Limit.Quota != 1000 {
		t.Fatalf("unknown class: %+v, want standard", d)
	}
}

func TestInvalidOverrideIsIgnored(t *testing.T) {
	var logs bytes.Buffer
	l := mustLimiter(t, NewMemoryStore(),
		WithOverrides(overrideFunc(func(string, Class, string) (Limit, bool) { return Limit{Quota: 0}, true })),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	d := l.Allow(context.Background(), "c", ClassStandard, "GET /v1/endpoints")
	if !d.Allowed || d.Limit.Quota != 1000 {
		t.Fatalf("decision %+v, want the class default", d)
	}
	if !strings.Contains(logs.String(), "override ignored") {
		t.Fatalf("no log line for the invalid override: %q", logs.String())
	}
}

// overrideFunc adapts a function to Overrides.
type overrideFunc func(clientID string, class Class, route string) (Limit, bool)

func (f overrideFunc) Limit(clientID string, class Class, route string) (Limit, bool) {
	return f(clientID, class, route)
}

func TestNewOverridesValidate(t *testing.T) {
	for _, o := range []Override{
		{Class: ClassBulk, Limit: Limit{Quota: 1, Window: time.Hour}},
		{ClientID: "c", Limit: Limit{Quota: 1, Window: time.Hour}},
		{ClientID: "c", Class: ClassBulk, Limit: Limit{Quota: 1}},
	} {
		if _, err := NewStaticOverrides(o); err == nil {
			t.Errorf("NewStaticOverrides(%+v): no error", o)
		}
	}
	if _, err := New(NewMemoryStore(), WithLimits(map[Class]Limit{ClassBulk: {Quota: -1, Window: time.Hour}})); err == nil {
		t.Error("New with an invalid class limit: no error")
	}
}

func TestRedisDownFailsClosedForAdminOpenForTheRest(t *testing.T) {
	srv := testenv.StartRedis(t)
	reg := prometheus.NewRegistry()
	var logs bytes.Buffer
	clock := newFakeClock(testEpoch)
	l := mustLimiter(t, NewRedisStore(newRedisClient(t, srv.Addr())),
		WithRegisterer(reg), WithClock(clock.Now),
		WithLogger(slog.New(slog.NewTextHandler(&logs, nil))),
		WithFailPolicy(ClassBulk, FailClosed))
	ctx := context.Background()
	for _, c := range Classes() {
		if d := l.Allow(ctx, "c", c, ""); !d.Allowed || d.Err != nil {
			t.Fatalf("class %s with redis up: %+v", c, d)
		}
	}

	srv.Stop()
	want := map[Class]bool{ClassAdmin: false, ClassBulk: false, ClassRealtime: true, ClassStandard: true}
	for _, c := range Classes() {
		d := l.Allow(ctx, "c", c, "")
		if d.Err == nil || d.Allowed != want[c] || d.Class != c {
			t.Fatalf("class %s with redis down: %+v, want allowed=%v with the error", c, d, want[c])
		}
		policy := "open"
		if !want[c] {
			policy = "closed"
		}
		if got := gathered(t, reg, "vitals_ratelimit_store_errors_total", map[string]string{"class": string(c), "policy": policy}); got != 1 {
			t.Fatalf("vitals_ratelimit_store_errors_total{class=%s,policy=%s} = %v, want 1", c, policy, got)
		}
		rec := httptest.NewRecorder()
		if d.Allowed {
			d.SetHeaders(rec.Header())
			if rec.Header().Get(HeaderRateLimit) != "" || rec.Header().Get(HeaderPolicy) == "" {
				t.Fatalf("fail-open headers %v: want the policy and no RateLimit (counts unknown)", rec.Header())
			}
			continue
		}
		WriteTooMany(rec, httptest.NewRequest(http.MethodPost, "/v1/admin/clients", nil), d)
		var body map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &body); err != nil {
			t.Fatal(err)
		}
		if rec.Code != http.StatusServiceUnavailable || rec.Header().Get("Retry-After") != "5" ||
			rec.Header().Get(HeaderRateLimit) != "" || body["type"] != problem.TypeBase+"rate-limit-unavailable" || body["class"] != string(c) {
			t.Fatalf("fail-closed response %d %v %s", rec.Code, rec.Header(), rec.Body)
		}
	}
	if got := gathered(t, reg, "vitals_ratelimit_decisions_total", map[string]string{"class": "admin", "decision": "fail_closed"}); got != 1 {
		t.Fatalf("vitals_ratelimit_decisions_total{class=admin,decision=fail_closed} = %v, want 1", got)
	}
	if n := strings.Count(logs.String(), "rate limit store unavailable"); n != 1 {
		t.Fatalf("%d log lines for 4 failures within 10 s, want 1:\n%s", n, logs.String())
	}
	clock.Add(11 * time.Second)
	l.Allow(ctx, "c", ClassStandard, "")
	if n := strings.Count(logs.String(), "rate limit store unavailable"); n != 2 || !strings.Contains(logs.String(), "unlogged_failures=3") {
		t.Fatalf("after 11 s: %d log lines, want 2, the second counting 3 unlogged failures:\n%s", n, logs.String())
	}

	// Back up: decisions come from Redis again.
	srv.Start()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d := l.Allow(ctx, "c", ClassAdmin, "")
		if d.Err == nil {
			if !d.Allowed {
				t.Fatalf("admin after recovery: %+v", d)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still failing 5 s after redis came back: %v", d.Err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestStoreErrorFailPolicyOverride(t *testing.T) {
	broken := storeFunc(func(context.Context, string, Limit, time.Time) (Decision, error) {
		return Decision{}, errors.New("boom")
	})
	l := mustLimiter(t, broken, WithFailPolicy(ClassAdmin, FailOpen), WithFailPolicy(ClassRealtime, FailClosed),
		WithLogger(slog.New(slog.DiscardHandler)))
	if d := l.Allow(context.Background(), "c", ClassAdmin, ""); !d.Allowed {
		t.Fatalf("admin set to fail open: %+v", d)
	}
	if d := l.Allow(context.Background(), "c", ClassRealtime, ""); d.Allowed || d.RetryAfter != 5*time.Second {
		t.Fatalf("realtime set to fail closed: %+v", d)
	}
}

// storeFunc adapts a function to Store.
type storeFunc func(ctx context.Context, key string, l Limit, now time.Time) (Decision, error)

func (f storeFunc) Take(ctx context.Context, key string, l Limit, now time.Time) (Decision, error) {
	return f(ctx, key, l, now)
}

func TestSetHeaders(t *testing.T) {
	std := DefaultLimits()[ClassStandard].withBurst()
	for _, tc := range []struct {
		name string
		d    Decision
		want map[string]string
	}{
		{
			name: "allowed",
			d:    Decision{Allowed: true, Class: ClassStandard, Limit: std, Remaining: 993, Reset: 11500 * time.Millisecond, BurstRemaining: 43, BurstReset: 25200 * time.Millisecond},
			want: map[string]string{
				HeaderPolicy:    `"standard";q=1000;w=3600, "standard-burst";q=50;w=180`,
				HeaderRateLimit: `"standard";r=993;t=12, "standard-burst";r=43;t=26`,
				"Retry-After":   "",
			},
		},
		{
			name: "refused, retry rounded up",
			d:    Decision{Class: ClassBulk, Limit: DefaultLimits()[ClassBulk], BurstReset: 2 * time.Hour, RetryAfter: 864001 * time.Millisecond},
			want: map[string]string{
				HeaderPolicy:    `"bulk";q=100;w=86400, "bulk-burst";q=5;w=4320`,
				HeaderRateLimit: `"bulk";r=0;t=0, "bulk-burst";r=0;t=7200`,
				"Retry-After":   "865",
			},
		},
		{
			name: "refused with no wait still says 1 s",
			d:    Decision{Class: ClassAdmin, Limit: DefaultLimits()[ClassAdmin]},
			want: map[string]string{"Retry-After": "1", HeaderPolicy: `"admin";q=500;w=3600, "admin-burst";q=25;w=180`},
		},
		{
			name: "store failed",
			d:    Decision{Allowed: true, Class: ClassStandard, Limit: std, Err: errors.New("down")},
			want: map[string]string{HeaderRateLimit: "", HeaderPolicy: `"standard";q=1000;w=3600, "standard-burst";q=50;w=180`},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h := http.Header{"Retry-After": {"99"}, HeaderRateLimit: {"stale"}}
			tc.d.SetHeaders(h)
			for k, v := range tc.want {
				if got := h.Get(k); got != v {
					t.Errorf("%s = %q, want %q", k, got, v)
				}
			}
			if v := h.Get(HeaderPolicy); v != "" {
				if _, err := parseSFList(v); err != nil {
					t.Errorf("%s %q: %v", HeaderPolicy, v, err)
				}
			}
			if v := h.Get(HeaderRateLimit); v != "" {
				rateLimitState(t, h, tc.d.Class)
			}
		})
	}
}

func TestParseSFListRejectsMalformed(t *testing.T) {
	for _, v := range []string{
		`standard;q=1`, `"standard";q`, `"standard";q=1,`, `"standard" "x"`, `"standard";Q=1`, `"a";q=1;q=2`, `"standard";q=1.5`,
	} {
		if _, err := parseSFList(v); err == nil {
			t.Errorf("parseSFList(%q): no error", v)
		}
	}
}

// gathered returns the value of the counter name with exactly labels in
// reg, or -1 when there is none.
func gathered(t *testing.T, reg *prometheus.Registry, name string, labels map[string]string) float64 {
	t.Helper()
	families, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range families {
		if f.GetName() != name {
			continue
		}
		for _, m := range f.GetMetric() {
			if labelsEqual(m.GetLabel(), labels) {
				return m.GetCounter().GetValue()
			}
		}
	}
	return -1
}

func labelsEqual(got []*dto.LabelPair, want map[string]string) bool {
	if len(got) != len(want) {
		return false
	}
	for _, p := range got {
		if want[p.GetName()] != p.GetValue() {
			return false
		}
	}
	return true
}
