package loadtest

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/dispatcher"
	"github.com/vitalshq/vitals/topics"
)

// dispatchSizing is the delivery rate the dispatcher stage's input is sized
// for: enough records to keep a dispatcher at that rate busy for the
// whole window.
const dispatchSizing = 25_000

// runDispatcher measures `vitals dispatcher` alone: signing, a breaker per
// endpoint and the attempt log (analytics) on, delivering a backlog of
// churn_risk_detected records to the receiver.
func (h *harness) runDispatcher(ctx context.Context, base *baselines) error {
	if !h.endpointOK {
		return errors.New("the receiver is not registered as an endpoint")
	}
	h.progress.Stage("dispatcher: preparing derived events")
	n := int(dispatchSizing * (h.cfg.Warmup + h.cfg.Duration + 3*time.Second).Seconds())
	if err := h.produceChurn(ctx, n, base); err != nil {
		return err
	}
	port, err := freePort()
	if err != nil {
		return err
	}
	ops := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	args := []string{"dispatcher", "--ops-listen", ops, "--allow-private-endpoints"}
	if h.cfg.ClickHouseAddr != "" {
		args = append(args, "--clickhouse-addr", h.cfg.ClickHouseAddr)
	}
	h.progress.Stage("dispatcher: webhooks/s (signed, breaker, attempt log)")
	d, err := h.startChild(ctx, "dispatcher", "http://"+ops, args...)
	if err != nil {
		return err
	}
	rate, cpu, err := h.meterDeliveries(ctx, d, "dispatcher")
	if serr := d.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	h.report.add(Figure{ID: "dispatcher.webhooks_per_s", Stage: "dispatcher", Name: fmt.Sprintf("vitals dispatcher, signed, breaker, attempt log, max %d in flight", h.cfg.DispatchInFlight),
		Value: ptr(rate), Unit: "webhooks/s", Baseline: base.postFigure(), Target: &Target{Text: ">= 0.6x bare POST", Min: ptr(0.6), OfRatio: true}})
	if cpu > 0 && base.postCPU > 0 {
		// Work per second of CPU, the ratio a machine with nothing else
		// to do would show as throughput: on a shared machine the
		// wall-clock rates above drift apart, the CPU costs much less.
		h.report.add(Figure{ID: "dispatcher.webhooks_per_cpu_s", Stage: "dispatcher", Name: "  per CPU second (dispatcher + receiver + broker)",
			Value: ptr(1 / cpu), Unit: "webhooks/CPU-s", Baseline: &Baseline{Name: "bare POST per CPU second", Value: 1 / base.postCPU, Unit: "POST/CPU-s"},
			Target: &Target{Text: ">= 0.6x bare POST", Min: ptr(0.6), OfRatio: true}})
	}
	return h.skip(ctx, dispatcher.DefaultGroup, append(topics.Derived(), topics.Operational)...)
}

// produceChurn writes n churn_risk_detected records (the health model's
// own event, each with its own id and one of 1000 customers), Avro-encoded
// as the processor writes them, to the critical topic.
func (h *harness) produceChurn(ctx context.Context, n int, base *baselines) error {
	const chunk = 20_000
	recs := make([]*kgo.Record, 0, chunk)
	d := base.churn
	for i := range n {
		d.EventID = "bench-dispatch-" + strconv.Itoa(i)
		d.CustomerID = "dispatch-" + strconv.Itoa(i%1000)
		v, err := h.codec.EncodeDerived(d)
		if err != nil {
			return err
		}
		recs = append(recs, &kgo.Record{Topic: topics.Critical, Key: []byte(d.CustomerID), Value: v})
		if len(recs) == chunk || i == n-1 {
			if err := h.kcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return fmt.Errorf("produce derived events: %w", err)
			}
			recs = recs[:0]
		}
	}
	return nil
}

// meterDeliveries waits for the first webhook, lets the dispatcher warm
// up, and measures the webhooks the receiver gets over the window (or
// until a second passes without one): their rate, and the CPU seconds per
// webhook of the child and this process (receiver, embedded broker).
func (h *harness) meterDeliveries(ctx context.Context, c *child, stage string) (rate, cpu float64, err error) {
	start := h.recv.count.Load()
	if err := h.recv.waitCount(ctx, start+1, 2*time.Minute); err != nil {
		return 0, 0, fmt.Errorf("%s: %w", stage, err)
	}
	if err := sleep(ctx, h.cfg.Warmup); err != nil {
		return 0, 0, err
	}
	unsigned := h.recv.unsigned.Load()
	from := h.recv.count.Load()
	before, uerr := c.usage(ctx)
	t0 := time.Now()
	waitProfiles := h.captureProfiles(ctx, stage, c, h.cfg.Duration)
	defer waitProfiles()
	to, last, lastAt := from, from, t0
	for time.Since(t0) < h.cfg.Duration {
		if err := sleep(ctx, 50*time.Millisecond); err != nil {
			return 0, 0, err
		}
		if to = h.recv.count.Load(); to != last {
			last, lastAt = to, time.Now()
		} else if time.Since(lastAt) > time.Second {
			h.report.note("%s: no webhook arrived for a second after %s of the %s window (the backlog was consumed, or deliveries waited in a retry tier); the rate is over the time until then",
				stage, lastAt.Sub(t0).Round(time.Millisecond), h.cfg.Duration)
			break
		}
	}
	el := lastAt.Sub(t0)
	if el <= 0 || to == from {
		return 0, 0, fmt.Errorf("%s: no webhook arrived in the window", stage)
	}
	after, aerr := c.usage(ctx)
	waitProfiles()
	if n := h.recv.unsigned.Load() - unsigned; n > 0 {
		return 0, 0, fmt.Errorf("%s: %d webhooks arrived without a signature", stage, n)
	}
	if uerr == nil && aerr == nil {
		h.report.Resources = append(h.report.Resources, c.resources(stage, before, after, to-from))
		cpu = (after.cpu - before.cpu + after.harness - before.harness) / float64(to-from)
	}
	return float64(to-from) / el.Seconds(), cpu, nil
}
