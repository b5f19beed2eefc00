package loadtest

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor"
	"github.com/vitalshq/vitals/topics"
)

// processorTarget is the processor's target rate; the input the stage
// prepares is sized to keep a processor at that rate busy for the whole
// window.
const processorTarget = 150_000

// runProcessor measures `vitals processor` alone (exactly-once on, as
// always) on the input topic's backlog: the ingest stage's events, topped
// up with stream events produced raw. Then it measures the state: it adds
// StateCustomers customers, and restarts the processor to time the
// restore of every customer from the changelog.
func (h *harness) runProcessor(ctx context.Context, base *baselines) error {
	h.progress.Stage("processor: preparing input")
	backlog, err := h.lag(ctx, processor.DefaultGroup, topics.CustomerEvents)
	if err != nil {
		return err
	}
	want := int64(processorTarget * (h.cfg.Warmup + h.cfg.Duration + 3*time.Second).Seconds())
	if add := want - backlog; add > 0 {
		first := h.stream.take(int(add))
		if err := h.produceEvents(ctx, int(add), func(j int) event.CustomerEvent { return h.stream.event(first + int64(j)) }); err != nil {
			return err
		}
		backlog += add
	}

	h.progress.Stage("processor: events/s with exactly-once")
	p, err := h.startProcessor(ctx, "processor")
	if err != nil {
		return err
	}
	m, err := h.meterCommits(ctx, p, "processor", backlog)
	if serr := p.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	h.report.add(Figure{ID: "processor.events_per_s", Stage: "processor", Name: "vitals processor, exactly-once, input backlog",
		Value: ptr(m), Unit: "events/s", Baseline: base.produceFigure(), Target: &Target{Text: ">= 150,000/s", Min: ptr(float64(processorTarget))}})
	if err := h.skip(ctx, processor.DefaultGroup, topics.CustomerEvents); err != nil {
		return err
	}
	return h.measureState(ctx)
}

// startProcessor starts `vitals processor` with its ops listener.
func (h *harness) startProcessor(ctx context.Context, name string) (*child, error) {
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	ops := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	return h.startChild(ctx, name, "http://"+ops, "processor", "--ops-listen", ops)
}

// meterCommits waits for the processor's first commit, lets it warm up,
// and measures the rate at which its group commits input offsets over the
// window (or until the backlog is consumed, if sooner).
func (h *harness) meterCommits(ctx context.Context, c *child, stage string, backlog int64) (float64, error) {
	start, err := h.committed(ctx, processor.DefaultGroup, topics.CustomerEvents)
	if err != nil {
		return 0, err
	}
	end := start + backlog
	wctx, cancel := context.WithTimeout(ctx, 2*time.Minute)
	defer cancel()
	n := start
	for n == start {
		if n, err = h.pollCommitted(wctx, processor.DefaultGroup, topics.CustomerEvents); err != nil {
			return 0, fmt.Errorf("%s: waiting for the first commit: %w", stage, err)
		}
	}
	if err := sleep(ctx, h.cfg.Warmup); err != nil {
		return 0, err
	}
	from, err := h.committed(ctx, processor.DefaultGroup, topics.CustomerEvents)
	if err != nil {
		return 0, err
	}
	if from >= end {
		return 0, fmt.Errorf("%s: the backlog of %d events was consumed during the warm-up: raise the input", stage, backlog)
	}
	before, uerr := c.usage(ctx)
	t0 := time.Now()
	waitProfiles := h.captureProfiles(ctx, stage, c, h.cfg.Duration)
	defer waitProfiles()
	to := from
	for time.Since(t0) < h.cfg.Duration && to < end {
		if to, err = h.pollCommitted(ctx, processor.DefaultGroup, topics.CustomerEvents); err != nil {
			return 0, err
		}
	}
	el := time.Since(t0)
	after, aerr := c.usage(ctx)
	waitProfiles()
	if to >= end {
		h.report.note("%s: the backlog ran out after %s of the %s window; the rate is over that time", stage, el.Round(time.Millisecond), h.cfg.Duration)
	}
	if uerr == nil && aerr == nil {
		h.report.Resources = append(h.report.Resources, c.resources(stage, before, after, to-from))
	}
	return float64(to-from) / el.Seconds(), nil
}

// pollCommitted waits 100 ms and returns the group's committed offsets.
func (h *harness) pollCommitted(ctx context.Context, group string, topic string) (int64, error) {
	if err := sleep(ctx, 100*time.Millisecond); err != nil {
		return 0, err
	}
	return h.committed(ctx, group, topic)
}

// committed returns the sum of group's committed offsets on topic.
func (h *harness) committed(ctx context.Context, group, topic string) (int64, error) {
	offs, err := h.adm.FetchOffsets(ctx, group)
	if errors.Is(err, kerr.GroupIDNotFound) {
		return 0, nil // no commit yet
	}
	if err != nil {
		return 0, fmt.Errorf("committed offsets of %s: %w", group, err)
	}
	var sum int64
	offs.Each(func(o kadm.OffsetResponse) {
		if o.Topic == topic && o.Err == nil {
			sum += max(0, o.At)
		}
	})
	return sum, nil
}

// lag returns how many records of topic group has not committed.
func (h *harness) lag(ctx context.Context, group, topic string) (int64, error) {
	ends, err := h.adm.ListEndOffsets(ctx, topic)
	if err != nil {
		return 0, fmt.Errorf("end offsets of %s: %w", topic, err)
	}
	var end int64
	ends.Each(func(o kadm.ListedOffset) {
		if o.Err == nil {
			end += o.Offset
		}
	})
	c, err := h.committed(ctx, group, topic)
	if err != nil {
		return 0, err
	}
	return max(0, end-c), nil
}

// skip commits group's offsets at the end of topics, so the next stage
// starts without what this one left unconsumed, and deletes the records
// before them (best effort), so an embedded broker does not hold them in
// this process's memory for the rest of the run. The group must have no
// members, and topics no other reader.
func (h *harness) skip(ctx context.Context, group string, topicNames ...string) error {
	ends, err := h.adm.ListEndOffsets(ctx, topicNames...)
	if err != nil {
		return fmt.Errorf("end offsets: %w", err)
	}
	resp, err := h.adm.CommitOffsets(ctx, group, ends.Offsets())
	if err == nil {
		err = resp.Error()
	}
	if err != nil {
		return fmt.Errorf("move %s past the backlog: %w", group, err)
	}
	if _, err := h.adm.DeleteRecords(ctx, ends.Offsets()); err != nil {
		h.log.Info("could not delete consumed records", "topics", topicNames, "err", err)
	}
	return nil
}

// produceEvents writes n customer events, Avro-encoded as the API writes
// them, straight to the input topic.
func (h *harness) produceEvents(ctx context.Context, n int, ev func(int) event.CustomerEvent) error {
	const chunk = 20_000
	recs := make([]*kgo.Record, 0, chunk)
	for j := range n {
		e := ev(j)
		v, err := h.codec.EncodeCustomerEvent(e)
		if err != nil {
			return err
		}
		recs = append(recs, &kgo.Record{Topic: topics.CustomerEvents, Key: []byte(e.CustomerID), Value: v})
		if len(recs) == chunk || j == n-1 {
			if err := h.kcl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
				return fmt.Errorf("produce input: %w", err)
			}
			recs = recs[:0]
		}
	}
	return nil
}

// measureState adds StateCustomers customers (a contract, a usage report
// and a login each), lets a processor take them in, and restarts it to
// time the restore of every customer; it reports the state's size per
// customer in the changelog and in memory.
func (h *harness) measureState(ctx context.Context) error {
	n := h.cfg.StateCustomers
	h.progress.Stage(fmt.Sprintf("processor: state of %d customers", n))
	at := time.Now().Add(-24 * time.Hour).UTC().Truncate(time.Second)
	if err := h.produceEvents(ctx, 3*n, func(j int) event.CustomerEvent { return stateEvents("state-", j/3, at)[j%3] }); err != nil {
		return err
	}
	p, err := h.startProcessor(ctx, "processor-state")
	if err != nil {
		return err
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	for {
		lag, err := h.lag(wctx, processor.DefaultGroup, topics.CustomerEvents)
		if err != nil {
			p.stop()
			return fmt.Errorf("state: %w", err)
		}
		if lag == 0 {
			break
		}
		if err := sleep(wctx, 200*time.Millisecond); err != nil {
			p.stop()
			return fmt.Errorf("state: the processor did not take in %d customers: %w", n, err)
		}
	}
	g, err := scrape(ctx, p.hc, p.metrics, "vitals_processor_customers")
	if serr := p.stop(); err == nil {
		err = serr
	}
	if err != nil {
		return err
	}
	customers := g["vitals_processor_customers"]

	h.progress.Stage(fmt.Sprintf("processor: restore of %.0f customers", customers))
	started := time.Now()
	p, err = h.startProcessor(ctx, "processor-restore")
	if err != nil {
		return err
	}
	waitProfiles := h.captureProfiles(ctx, "processor restore", p, min(h.cfg.Duration, 10*time.Second))
	defer waitProfiles()
	var restored map[string]float64
	for {
		restored, err = scrape(wctx, p.hc, p.metrics, "vitals_processor_restored_customers_total", "vitals_processor_restore_seconds_sum")
		if err == nil && restored["vitals_processor_restored_customers_total"] >= customers {
			break
		}
		if err := sleep(wctx, 100*time.Millisecond); err != nil {
			p.stop()
			return fmt.Errorf("restore: %.0f of %.0f customers: %w", restored["vitals_processor_restored_customers_total"], customers, err)
		}
	}
	wall := time.Since(started)
	waitProfiles()
	heap, herr := liveHeap(ctx, p)
	if err := p.stop(); err != nil {
		return err
	}
	secs := restored["vitals_processor_restore_seconds_sum"]
	count := restored["vitals_processor_restored_customers_total"]
	changelog, err := h.changelogSize(ctx)
	if err != nil {
		return err
	}
	const million = 1_000_000
	scale := million / count
	h.report.add(Figure{ID: "processor.state_bytes_per_customer", Stage: "processor", Name: fmt.Sprintf("state per customer, changelog (Avro), %d customers", changelog.customers),
		Value: ptr(changelog.mean), Unit: "bytes", Target: &Target{Text: "<= 1 KiB (at 1M)", Max: ptr(1024.0)},
		Note: fmt.Sprintf("largest %d bytes; per-customer size does not depend on the customer count", changelog.max)})
	if herr == nil {
		h.report.add(Figure{ID: "processor.heap_bytes_per_customer", Stage: "processor", Name: fmt.Sprintf("live heap per customer after restore (whole process / %.0f)", count),
			Value: ptr(heap / count), Unit: "bytes", Note: "upper bound: includes the process's own heap"})
	}
	h.report.add(Figure{ID: "processor.restore_s", Stage: "processor", Name: fmt.Sprintf("restore of %.0f customers (measured)", count),
		Value: ptr(secs), Unit: "s", Note: fmt.Sprintf("start to restored: %s", wall.Round(time.Millisecond))})
	h.report.add(Figure{ID: "processor.restore_1m_s", Stage: "processor", Name: fmt.Sprintf("restore of 1M customers (extrapolated x%.1f)", scale),
		Value: ptr(secs * scale), Unit: "s", Target: &Target{Text: "<= 10 s", Max: ptr(10.0)},
		Note: "linear in the changelog records read"})
	h.report.note("processor state: measured at %.0f customers (--state-customers %d plus the stream's); the 1M figures are extrapolated linearly from it: the restore reads the changelog sequentially, and a customer's state size does not depend on how many there are. kfake does not compact, so the restore read every changelog record (%d), not one per customer", count, n, changelog.records)
	return nil
}

// liveHeap forces a garbage collection in child c (through its pprof
// heap endpoint) and returns its in-use heap bytes.
func liveHeap(ctx context.Context, c *child) (float64, error) {
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, c.pprof+"/debug/pprof/heap?gc=1", nil)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	m, err := scrape(ctx, c.hc, c.metrics, "go_memstats_heap_alloc_bytes")
	if err != nil {
		return 0, err
	}
	return m["go_memstats_heap_alloc_bytes"], nil
}

// changelogStats is the size of the changelog's latest state per customer.
type changelogStats struct {
	customers, records int
	mean               float64
	max                int
}

// changelogSize reads the whole state changelog (read_committed) and
// measures the latest record of each customer.
func (h *harness) changelogSize(ctx context.Context) (changelogStats, error) {
	cl, err := kgo.NewClient(kgo.SeedBrokers(h.brokers...), kgo.ConsumeTopics(topics.CustomerState),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()), kgo.FetchIsolationLevel(kgo.ReadCommitted()))
	if err != nil {
		return changelogStats{}, err
	}
	defer cl.Close()
	sizes := map[string]int{}
	var st changelogStats
	for {
		pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		fs := cl.PollFetches(pctx)
		cancel()
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		n := 0
		fs.EachRecord(func(r *kgo.Record) {
			n++
			if r.Value == nil {
				delete(sizes, string(r.Key))
				return
			}
			sizes[string(r.Key)] = len(r.Value)
		})
		st.records += n
		if n == 0 && pctx.Err() != nil {
			break // two seconds without a record: the end
		}
	}
	var sum int
	for _, s := range sizes {
		sum += s
		st.max = max(st.max, s)
	}
	st.customers = len(sizes)
	if st.customers > 0 {
		st.mean = float64(sum) / float64(st.customers)
	}
	return st, nil
}

// sleep waits d or until ctx is done.
func sleep(ctx context.Context, d time.Duration) error {
	if d <= 0 {
		return ctx.Err()
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
