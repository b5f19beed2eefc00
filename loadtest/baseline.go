package loadtest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/dispatcher"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/model"
)

// baselineTopic is the harness's scratch topic for the raw franz-go
// baseline; no stage of the pipeline reads or writes it.
const baselineTopic = "vitals-bench.baseline"

// baselines are the reference rates measured in the same run.
type baselines struct {
	post    float64 // bare net/http POSTs/s to the receiver
	postCPU float64 // CPU seconds per POST of this process (client and receiver) in that run
	produce float64 // raw franz-go records/s produced to the broker
	consume float64 // raw franz-go records/s consumed from it
	// churn is a real derived event (the health model's own output for
	// a customer whose champion left): the webhook of the baseline and
	// the record the dispatcher stage delivers.
	churn event.Derived
	body  []byte // churn's webhook body
}

func (b *baselines) postFigure() *Baseline {
	if b.post == 0 {
		return nil
	}
	return &Baseline{Name: "bare net/http POST", Value: b.post, Unit: "POST/s"}
}

func (b *baselines) produceFigure() *Baseline {
	if b.produce == 0 {
		return nil
	}
	return &Baseline{Name: "raw franz-go produce", Value: b.produce, Unit: "records/s"}
}

// measureBaselines measures the bare POST rate to the receiver and the raw
// produce and consume rates on the broker.
func (h *harness) measureBaselines(ctx context.Context, b *baselines) error {
	m, err := model.NewModel(model.DefaultConfig())
	if err != nil {
		return err
	}
	w := newChurnLoad("baseline", 0, 1, time.Now())
	res := m.Apply(&model.State{}, w.Event(0))
	if len(res.Derived) != 1 || res.Derived[0].Event != event.ChurnRiskDetected {
		return fmt.Errorf("the health model derived %d events from a champion leaving, want one %s: the end-to-end traffic no longer maps one event to one webhook", len(res.Derived), event.ChurnRiskDetected)
	}
	b.churn = res.Derived[0]
	if b.body, err = b.churn.MarshalJSON(); err != nil {
		return err
	}

	h.progress.Stage("baseline: bare net/http POST")
	client := webhookClient()
	defer client.CloseIdleConnections()
	var cpu0 float64
	r := closedLoop(ctx, h.cfg.DispatchInFlight, h.cfg.Warmup, h.cfg.Duration, func(ctx context.Context) (int, error) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, h.recv.url, bytes.NewReader(b.body))
		req.Header.Set("Content-Type", "application/json")
		resp, err := client.Do(req)
		if err != nil {
			return 0, err
		}
		_, _ = io.Copy(io.Discard, resp.Body)
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return 0, fmt.Errorf("receiver answered %s", resp.Status)
		}
		return 1, nil
	}, func() { cpu0 = selfCPU() })
	cpu := selfCPU() - cpu0
	if r.units == 0 {
		return fmt.Errorf("no POST reached the receiver: %v", r.firstErr)
	}
	b.post, b.postCPU = r.rate(), cpu/float64(r.units)
	h.report.add(Figure{ID: "baseline.bare_post_per_s", Stage: "baseline", Name: fmt.Sprintf("bare net/http POST, %d in flight", h.cfg.DispatchInFlight),
		Value: ptr(b.post), Unit: "POST/s"})

	h.progress.Stage("baseline: raw franz-go produce and consume")
	return h.rawKafka(ctx, b)
}

// webhookClient is a net/http client with the connection settings of
// dispatcher.NewHTTPSender (pool sizes, idle timeout, HTTP/2 attempt,
// timeouts, no redirects), so the bare-POST baseline pays for the same
// transport as the dispatcher and nothing else.
func webhookClient() *http.Client {
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

// rawKafka measures a plain franz-go client (defaults: idempotent,
// acks=all) producing stream events, Avro-encoded as the API writes them,
// to a scratch topic with the pipeline's partition count, and a plain
// consumer reading them back.
func (h *harness) rawKafka(ctx context.Context, b *baselines) error {
	if _, err := h.adm.CreateTopic(ctx, 6, -1, nil, baselineTopic); err != nil && !errors.Is(err, kerr.TopicAlreadyExists) {
		return fmt.Errorf("create %s: %w", baselineTopic, err)
	}
	values, keys := make([][]byte, 10_000), make([][]byte, 10_000)
	s := newStream(time.Now())
	for i := range values {
		ev := s.event(int64(i))
		v, err := h.codec.EncodeCustomerEvent(ev)
		if err != nil {
			return err
		}
		values[i], keys[i] = v, []byte(ev.CustomerID)
	}
	pcl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.DefaultProduceTopic(baselineTopic), kgo.MaxBufferedRecords(100_000))
	if err != nil {
		return err
	}
	defer pcl.Close()
	start := time.Now()
	ws, we := start.Add(h.cfg.Warmup), start.Add(h.cfg.Warmup+h.cfg.Duration)
	var acked, inWindow atomic.Int64
	var firstErr atomic.Pointer[error]
	var wg sync.WaitGroup
	for i := 0; time.Now().Before(we) && ctx.Err() == nil; i++ {
		wg.Add(1)
		pcl.Produce(ctx, &kgo.Record{Key: keys[i%len(keys)], Value: values[i%len(values)]}, func(_ *kgo.Record, err error) {
			defer wg.Done()
			if err != nil {
				firstErr.CompareAndSwap(nil, &err)
				return
			}
			acked.Add(1)
			if now := time.Now(); !now.Before(ws) && now.Before(we) {
				inWindow.Add(1)
			}
		})
	}
	wg.Wait()
	if p := firstErr.Load(); p != nil {
		return fmt.Errorf("raw produce: %w", *p)
	}
	b.produce = float64(inWindow.Load()) / h.cfg.Duration.Seconds()
	h.report.add(Figure{ID: "baseline.raw_produce_per_s", Stage: "baseline", Name: "raw franz-go produce (acks=all, idempotent)",
		Value: ptr(b.produce), Unit: "records/s"})

	ccl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(baselineTopic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()))
	if err != nil {
		return err
	}
	defer ccl.Close()
	cctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	var got int64
	var first time.Time
	for got < acked.Load() {
		fs := ccl.PollFetches(cctx)
		if err := cctx.Err(); err != nil {
			return fmt.Errorf("raw consume: read %d of %d: %w", got, acked.Load(), err)
		}
		if first.IsZero() {
			first = time.Now()
		}
		got += int64(fs.NumRecords())
	}
	if el := time.Since(first); el > 0 {
		b.consume = float64(got) / el.Seconds()
	}
	h.report.add(Figure{ID: "baseline.raw_consume_per_s", Stage: "baseline", Name: "raw franz-go consume",
		Value: ptr(b.consume), Unit: "records/s"})
	// The records would stay in the embedded broker's memory, in this
	// process, for the rest of the run.
	if _, err := h.adm.DeleteTopics(ctx, baselineTopic); err != nil {
		h.log.Warn("delete the baseline topic", "err", err)
	}
	return nil
}

// loopResult is what a closed loop completed inside its window.
type loopResult struct {
	units, ops, errs int64
	window           time.Duration
	firstErr         error
}

func (r loopResult) rate() float64   { return float64(r.units) / r.window.Seconds() }
func (r loopResult) opRate() float64 { return float64(r.ops) / r.window.Seconds() }

// closedLoop runs workers that call op back to back for warmup + window,
// and counts the operations (and the units each reports, e.g. events) that
// completed inside the window. onStart, when set, runs when the window
// opens (for reading a child's resources, starting profiles).
func closedLoop(ctx context.Context, workers int, warmup, window time.Duration, op func(context.Context) (int, error), onStart func()) loopResult {
	start := time.Now()
	ws, we := start.Add(warmup), start.Add(warmup+window)
	var units, ops, errs atomic.Int64
	var firstErr atomic.Pointer[error]
	lctx, cancel := context.WithDeadline(ctx, we.Add(30*time.Second))
	defer cancel()
	var wg sync.WaitGroup
	if onStart != nil {
		wg.Go(func() {
			select {
			case <-time.After(time.Until(ws)):
				onStart()
			case <-lctx.Done():
			}
		})
	}
	for range workers {
		wg.Go(func() {
			for time.Now().Before(we) && lctx.Err() == nil {
				n, err := op(lctx)
				now := time.Now()
				in := !now.Before(ws) && now.Before(we)
				if err != nil {
					firstErr.CompareAndSwap(nil, &err)
					if in {
						errs.Add(1)
					}
					select { // a failing target is not retried in a tight loop
					case <-lctx.Done():
					case <-time.After(10 * time.Millisecond):
					}
					continue
				}
				if in {
					units.Add(int64(n))
					ops.Add(1)
				}
			}
		})
	}
	wg.Wait()
	r := loopResult{units: units.Load(), ops: ops.Load(), errs: errs.Load(), window: window}
	if p := firstErr.Load(); p != nil {
		r.firstErr = *p
	}
	return r
}
