package dispatcher_test

import (
	"bytes"
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/dispatcher"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/topics"
	"github.com/vitalshq/vitals/webhook"
)

// benchConcurrency is the number of requests in flight to the receiver in
// both benchmarks: the bare baseline runs that many posting goroutines and
// the dispatcher's endpoint has it as MaxInFlight.
const benchConcurrency = 64

// benchWarmup is how many deliveries BenchmarkDispatch makes before its
// timer starts: the group join, the first fetch and the receiver's
// connections are not what it measures.
const benchWarmup = 2000

// newBenchReceiver is the receiver of both benchmarks: an httptest server
// (default settings) that drains the body, answers 200 and counts
// requests. The channel of each mark is closed when the count reaches it,
// so a benchmark waits for a count without polling.
func newBenchReceiver(b *testing.B, marks ...int64) (*httptest.Server, *atomic.Int64, []chan struct{}) {
	b.Helper()
	var got atomic.Int64
	reached := make([]chan struct{}, len(marks))
	for i := range reached {
		reached[i] = make(chan struct{})
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		n := got.Add(1)
		for i, m := range marks {
			if n == m {
				close(reached[i])
			}
		}
	}))
	b.Cleanup(srv.Close)
	return srv, &got, reached
}

// newBenchClient is a net/http client with the connection settings of
// dispatcher.NewHTTPSender (pool sizes, idle timeout, HTTP/2 attempt,
// overall timeout, no redirects), without its address guard, so the
// baseline pays for the same transport as the dispatcher and nothing else.
func newBenchClient() *http.Client {
	return &http.Client{
		Transport: &http.Transport{
			ForceAttemptHTTP2:     true,
			MaxIdleConns:          256,
			MaxIdleConnsPerHost:   64,
			IdleConnTimeout:       90 * time.Second,
			ExpectContinueTimeout: time.Second,
			ResponseHeaderTimeout: dispatcher.DefaultDeliveryTimeout,
		},
		Timeout:       dispatcher.DefaultDeliveryTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// BenchmarkBareHTTPPost is the baseline: plain net/http POSTs of the
// webhook body, benchConcurrency at a time, to the same receiver and with
// the same client settings as BenchmarkDispatch. Connections are opened
// before the timer starts.
func BenchmarkBareHTTPPost(b *testing.B) {
	srv, _, _ := newBenchReceiver(b)
	body := encode(&testing.T{}, churn("evt_bench"))
	client := newBenchClient()
	defer client.CloseIdleConnections()
	post := func() error {
		resp, err := client.Post(srv.URL, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		return resp.Body.Close()
	}
	var warm sync.WaitGroup
	for range benchConcurrency {
		warm.Go(func() { _ = post() })
	}
	warm.Wait()
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0 := cpuTime()
	for range benchConcurrency {
		wg.Go(func() {
			for next.Add(1) <= int64(b.N) {
				if err := post(); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "posts/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
}

// BenchmarkDispatch measures steady-state deliveries/s through the
// dispatcher (kfake over TCP, signing, breaker, an attempt sink) to the
// receiver of BenchmarkBareHTTPPost. All records are produced before Run;
// the timer starts after the first benchWarmup deliveries (group join,
// first fetch, connection set-up excluded) and stops when the b.N
// deliveries after them reached the receiver.
func BenchmarkDispatch(b *testing.B) {
	total := benchWarmup + b.N
	srv, got, reached := newBenchReceiver(b, benchWarmup, int64(total))
	seed := append(topics.Derived(), topics.DLQ, topics.Operational, topics.Retry(time.Second))
	c, err := kfake.NewCluster(kfake.NumBrokers(1), kfake.SeedTopics(1, seed...))
	if err != nil {
		b.Fatal(err)
	}
	defer c.Close()
	prod, err := kgo.NewClient(kgo.SeedBrokers(c.ListenAddrs()...), kgo.ProducerLinger(5*time.Millisecond))
	if err != nil {
		b.Fatal(err)
	}
	defer prod.Close()
	secret, _ := webhook.NewSecret()
	ep := endpoint.Endpoint{ID: "ep_bench", URL: srv.URL, EventTypes: []string{"*"}, Secret: secret,
		MaxInFlight: benchConcurrency}
	sink := &memSink{}
	// The production codec: derived events arrive Avro-encoded.
	codec, err := schemas.New()
	if err != nil {
		b.Fatal(err)
	}
	d, err := dispatcher.New(c.ListenAddrs(), codec, staticEndpoints{ep}, dispatcher.WithAllowPrivate(true),
		dispatcher.WithSink(sink), dispatcher.WithRetrySchedule(time.Second),
		// In-flight attempts canceled at the end of a run log warnings.
		dispatcher.WithLogger(slog.New(slog.NewTextHandler(io.Discard, nil))),
		dispatcher.WithKafkaOptions(kgo.FetchMaxWait(50*time.Millisecond)))
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]*kgo.Record, total)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topics.Critical, Key: []byte("cust_" + strconv.Itoa(i%100)),
			Value: mustAvro(b, codec, churn("evt_"+strconv.Itoa(i)))}
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.StopTimer()
	wg.Go(func() { _ = d.Run(ctx) })
	wait(b, got, reached[0])
	b.ResetTimer()
	cpu0 := cpuTime()
	b.StartTimer()
	wait(b, got, reached[1])
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	b.ReportMetric(float64(cpuTime()-cpu0)/float64(b.N)/1e3, "cpu-µs/op")
	cancel()
	wg.Wait()
	if n := len(sink.forEndpoint(ep.ID)); n < total {
		b.Errorf("sink got %d attempt rows for %d deliveries", n, total)
	}
}

// mustAvro encodes d as the processor writes it.
func mustAvro(b *testing.B, c *schemas.Codec, d event.Derived) []byte {
	v, err := c.EncodeDerived(d)
	if err != nil {
		b.Fatal(err)
	}
	return v
}

// cpuTime is the process's user + system CPU time in nanoseconds. Both
// benchmarks report CPU per operation (receiver included, in the same
// process): on a busy machine their wall-clock rates drift apart, their
// CPU cost much less, and on an idle 2-core machine, where both are
// CPU-bound, the ratio of CPU costs is the ratio of throughputs.
func cpuTime() int64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// wait waits until reached is closed, for at most a minute.
func wait(b *testing.B, got *atomic.Int64, reached <-chan struct{}) {
	select {
	case <-reached:
	case <-time.After(time.Minute):
		b.Fatalf("receiver got %d requests in a minute, fewer than expected", got.Load())
	}
}
