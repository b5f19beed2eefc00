package dispatcher_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/dispatcher"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/topics"
	"github.com/vitalshq/vitals/webhook"
)

// BenchmarkBareHTTPPost is the baseline: concurrent plain net/http POSTs of
// a webhook-sized body to a local receiver.
func BenchmarkBareHTTPPost(b *testing.B) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
	}))
	defer srv.Close()
	body := encode(&testing.T{}, churn("evt_bench"))
	client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 64}}
	b.SetParallelism(1)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			resp, err := client.Post(srv.URL, "application/json", bytes.NewReader(body))
			if err != nil {
				b.Error(err)
				return
			}
			_, _ = io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "posts/s")
}

// BenchmarkDispatch measures deliveries/s through the dispatcher (kfake
// over TCP, signing, breaker, an attempt sink) to a local receiver.
func BenchmarkDispatch(b *testing.B) {
	var got atomic.Int64
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		got.Add(1)
	}))
	defer srv.Close()
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
	ep := endpoint.Endpoint{ID: "ep_bench", URL: srv.URL, EventTypes: []string{"*"}, Secret: secret, MaxInFlight: 64}
	d, err := dispatcher.New(c.ListenAddrs(), jsonCodec{}, staticEndpoints{ep}, dispatcher.WithAllowPrivate(true),
		dispatcher.WithSink(&memSink{}), dispatcher.WithRetrySchedule(time.Second),
		dispatcher.WithKafkaOptions(kgo.FetchMaxWait(50*time.Millisecond)))
	if err != nil {
		b.Fatal(err)
	}
	recs := make([]*kgo.Record, b.N)
	for i := range recs {
		recs[i] = &kgo.Record{Topic: topics.Critical, Key: []byte("cust_" + strconv.Itoa(i%100)),
			Value: encode(&testing.T{}, churn("evt_"+strconv.Itoa(i)))}
	}
	if err := prod.ProduceSync(context.Background(), recs...).FirstErr(); err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	b.ResetTimer()
	wg.Go(func() { _ = d.Run(ctx) })
	for got.Load() < int64(b.N) {
		time.Sleep(time.Millisecond)
	}
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "deliveries/s")
	cancel()
	wg.Wait()
}
