package admission

import (
	"fmt"
	"io"
	"log/slog"
	"math"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"
)

// Parameters of BenchmarkOverload. Capacity is slots / mean service time =
// 320 requests/s; the load is offered open-loop (arrivals on a fixed
// schedule, whatever the responses do) at three times that. The service time
// models handlers waiting on downstream calls; it is long so that the
// benchmark measures the admission policy and not the CPU of a small shared
// machine: with 10 ms handlers, 3× load is about 5000 HTTP requests/s, which
// saturates 2 vCPUs, and the latency then comes from goroutines waiting for a
// CPU outside admission.
const (
	benchSlots    = 64
	benchService  = 200 * time.Millisecond // mean; uniform within ±50 %
	benchOverload = 3
	benchRequests = 8000 // about 8.3 s at 960 requests/s
)

// overloadResult is what one run of the overload scenario observed.
type overloadResult struct {
	sent, ok, shed, failed [numPriorities]int
	latency                [numPriorities][]time.Duration // of successful requests
	wait                   [numPriorities][]time.Duration // latency minus the modelled service time
	elapsed                time.Duration
}

// BenchmarkOverload offers 3× the admission capacity to a real HTTP server
// behind the Middleware with a mix of priorities (10 % critical, 10 % admin,
// 20 % realtime, 30 % standard, 30 % bulk) and reports the success ratio per
// priority, the p99 latency of critical and admin requests, and the shed
// ratio of bulk. It fails unless critical and admin succeed ≥ 99.9 % and no
// priority is shed more than bulk.
func BenchmarkOverload(b *testing.B) {
	var res overloadResult
	for range b.N {
		res = runOverload(b)
	}
	ratio := func(n, of int) float64 { return 100 * float64(n) / float64(max(of, 1)) }
	for p := range numPriorities {
		b.ReportMetric(ratio(res.ok[p], res.sent[p]), Priority(p).String()+"-ok-%")
	}
	b.ReportMetric(p99ms(res.latency[Critical]), "critical-p99-ms")
	b.ReportMetric(p99ms(res.latency[Admin]), "admin-p99-ms")
	b.ReportMetric(p99ms(res.wait[Critical]), "critical-wait-p99-ms")
	b.ReportMetric(p99ms(res.wait[Admin]), "admin-wait-p99-ms")
	b.ReportMetric(ratio(res.shed[Bulk], res.sent[Bulk]), "bulk-shed-%")
	var served int
	for p := range numPriorities {
		served += res.ok[p]
	}
	b.ReportMetric(float64(served)/res.elapsed.Seconds(), "served-req/s")

	for _, p := range []Priority{Critical, Admin} {
		if r := ratio(res.ok[p], res.sent[p]); r < 99.9 {
			b.Errorf("%v: %d of %d succeeded (%.2f %%), want ≥ 99.9 %%", p, res.ok[p], res.sent[p], r)
		}
	}
	bulkShed := ratio(res.shed[Bulk], res.sent[Bulk])
	for p := Critical; p < Bulk; p++ {
		if r := ratio(res.shed[p], res.sent[p]); r > bulkShed {
			b.Errorf("%v shed %.2f %%, more than bulk (%.2f %%)", p, r, bulkShed)
		}
	}
	for p := range numPriorities {
		if res.failed[p] > 0 {
			b.Errorf("%v: %d requests failed other than by a 503", Priority(p), res.failed[p])
		}
	}
}

// runOverload runs the scenario once on a fresh server and controller.
func runOverload(b *testing.B) overloadResult {
	b.Helper()
	c, err := New(WithMaxInFlight(benchSlots), WithLogger(slog.New(slog.DiscardHandler)))
	if err != nil {
		b.Fatal(err)
	}
	handler := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The modelled service time (not synchronisation): uniform within
		// ±50 % of benchService, so that slots free up spread over time as
		// they do behind real downstream calls, not in lockstep.
		d := benchService/2 + rand.N(benchService)
		time.Sleep(d)
		w.Header().Set("X-Service-Time", strconv.FormatInt(int64(d), 10))
		_, _ = io.WriteString(w, "ok")
	})
	srv := httptest.NewServer(c.Middleware(testClassify, handler))
	defer srv.Close()
	tr := srv.Client().Transport.(*http.Transport).Clone()
	tr.MaxIdleConns, tr.MaxIdleConnsPerHost = 2048, 2048
	client := &http.Client{Transport: tr, Timeout: 30 * time.Second}
	defer tr.CloseIdleConnections()

	// Warm the connection pool so the run measures admission, not dials.
	var warm sync.WaitGroup
	for range 2 * benchSlots {
		warm.Go(func() {
			if resp, err := client.Get(srv.URL + "/healthz"); err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		})
	}
	warm.Wait()

	// The share of each priority in the offered load, in percent.
	benchMix := [numPriorities]int{Critical: 10, Admin: 10, Realtime: 20, Standard: 30, Bulk: 30}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() Priority {
		n := rng.IntN(100)
		for p := range numPriorities {
			if n < benchMix[p] {
				return Priority(p)
			}
			n -= benchMix[p]
		}
		return Bulk
	}
	rate := benchOverload * float64(benchSlots) / benchService.Seconds()
	interval := time.Duration(float64(time.Second) / rate)

	var (
		mu  sync.Mutex
		res overloadResult
		wg  sync.WaitGroup
	)
	b.ResetTimer()
	start := time.Now()
	for i := range benchRequests {
		if d := time.Until(start.Add(time.Duration(i) * interval)); d > 0 {
			time.Sleep(d) // pacing the open-loop arrivals
		}
		p := pick()
		wg.Go(func() {
			req, _ := http.NewRequest(http.MethodPost, srv.URL+"/v1/work", nil)
			req.Header.Set("X-Priority", strconv.Itoa(int(p)))
			t0 := time.Now()
			resp, err := client.Do(req)
			code, service := 0, int64(0)
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				code = resp.StatusCode
				service, _ = strconv.ParseInt(resp.Header.Get("X-Service-Time"), 10, 64)
			}
			lat := time.Since(t0)
			mu.Lock()
			defer mu.Unlock()
			res.sent[p]++
			switch code {
			case http.StatusOK:
				res.ok[p]++
				res.latency[p] = append(res.latency[p], lat)
				res.wait[p] = append(res.wait[p], lat-time.Duration(service))
			case http.StatusServiceUnavailable:
				res.shed[p]++
			default:
				res.failed[p]++
				if res.failed[p] == 1 {
					b.Logf("%v request: status %d, err %v", p, code, err)
				}
			}
		})
	}
	wg.Wait()
	res.elapsed = time.Since(start)
	b.StopTimer()
	b.Logf("offered %.0f req/s for %v; per priority:%s", rate, res.elapsed.Round(time.Millisecond), res.table())
	return res
}

func (r *overloadResult) table() string {
	var s string
	for p := range numPriorities {
		s += fmt.Sprintf("\n  %-8v sent %5d  ok %5d  shed %5d  latency of ok p50 %6.1f p99 %6.1f max %6.1f ms;"+
			" minus service p50 %6.1f p99 %6.1f ms",
			Priority(p), r.sent[p], r.ok[p], r.shed[p], quantileMS(r.latency[p], 0.50), quantileMS(r.latency[p], 0.99),
			quantileMS(r.latency[p], 1), quantileMS(r.wait[p], 0.5), quantileMS(r.wait[p], 0.99))
	}
	return s
}

// p99ms returns the 99th percentile of ds in milliseconds.
func p99ms(ds []time.Duration) float64 { return quantileMS(ds, 0.99) }

// quantileMS returns the q-quantile (nearest rank) of ds in milliseconds.
func quantileMS(ds []time.Duration, q float64) float64 {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	rank := max(int(math.Ceil(q*float64(len(s)))), 1)
	return float64(s[rank-1]) / float64(time.Millisecond)
}
