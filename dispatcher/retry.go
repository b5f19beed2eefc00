package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/dispatcher/task"
)

// consumeRetries polls the retry tiers. Within a partition of a tier the
// records are in the order they were written, so the head is (up to the
// jitter) the first due: due records are delivered; at the first one not
// yet due the partition is paused, rewound to that record and resumed by
// one timer when it is due. Nothing but the head's due time is held while
// a partition waits, and no fetch happens for it meanwhile.
func (d *Dispatcher) consumeRetries(ctx context.Context, cl *kgo.Client, tr *tracker, deliveries *workers) error {
	p := &pauser{cl: cl, timers: map[tp]*time.Timer{}}
	tr.setRevokeHook(p.forget)
	defer p.stop()
	slots := make(chan struct{}, d.cfg.maxInFlight)
	for {
		fetches := cl.PollRecords(ctx, d.cfg.maxInFlight)
		if ctx.Err() != nil {
			cl.AllowRebalance()
			return nil
		}
		if fetches.IsClientClosed() {
			return errors.New("dispatcher: kafka client closed")
		}
		d.logFetchErrors(fetches)
		now := time.Now()
		waiting := map[tp]bool{}
		rewind := map[string]map[int32]kgo.EpochOffset{}
		for _, rec := range fetches.Records() {
			k := tp{rec.Topic, rec.Partition}
			if waiting[k] {
				continue // refetched after the head is due
			}
			t, err := task.Decode(rec)
			if err == nil && t.DueAt.After(now) {
				waiting[k] = true
				if rewind[rec.Topic] == nil {
					rewind[rec.Topic] = map[int32]kgo.EpochOffset{}
				}
				rewind[rec.Topic][rec.Partition] = kgo.EpochOffset{Epoch: rec.LeaderEpoch, Offset: rec.Offset}
				p.pause(k, t.DueAt)
				continue
			}
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				cl.AllowRebalance()
				return nil
			}
			d.start(ctx, tr, rec, d.taskJobs(rec, t, err), func() { <-slots }, deliveries)
		}
		cl.SetOffsets(rewind)
		cl.AllowRebalance()
	}
}

// taskJobs returns the delivery of a due retry record (none when it cannot
// or need not be made any more).
func (d *Dispatcher) taskJobs(rec *kgo.Record, t task.Task, decodeErr error) []job {
	drop := func(reason string, args ...any) []job {
		d.metrics.dropped.WithLabelValues(reason).Inc()
		d.log.Warn("dropping retry task", append([]any{"reason", reason, "topic", rec.Topic,
			"partition", rec.Partition, "offset", rec.Offset, "event_id", t.EventID, "endpoint_id", t.EndpointID}, args...)...)
		return nil
	}
	if decodeErr != nil {
		return drop("malformed", "err", decodeErr)
	}
	ep, ok := d.endpoints.Get(t.EndpointID)
	if !ok {
		return drop("endpoint_deleted")
	}
	if !ep.Disabled && !ep.Subscribes(t.EventType) && t.ReplayID == "" {
		return drop("unsubscribed")
	}
	body := t.Event
	if !isOperational(t.EventType) {
		ev, err := d.decoder.DecodeDerived(t.Event)
		if err != nil {
			d.metrics.decodeErrors.Inc()
			return drop("undecodable", "err", err)
		}
		if body, err = json.Marshal(ev); err != nil {
			return drop("undecodable", "err", err)
		}
	}
	return []job{{t: t, ep: &ep, body: body}}
}

// pauser pauses retry-tier partitions until their head is due: one timer
// per paused partition.
type pauser struct {
	cl     *kgo.Client
	mu     sync.Mutex
	timers map[tp]*time.Timer
}

// pause stops fetching k until due.
func (p *pauser) pause(k tp, due time.Time) {
	p.cl.PauseFetchPartitions(map[string][]int32{k.topic: {k.partition}})
	p.mu.Lock()
	defer p.mu.Unlock()
	if old := p.timers[k]; old != nil {
		old.Stop()
	}
	var timer *time.Timer
	timer = time.AfterFunc(time.Until(due), func() {
		p.mu.Lock()
		mine := p.timers[k] == timer
		if mine {
			delete(p.timers, k)
		}
		p.mu.Unlock()
		if mine {
			p.cl.ResumeFetchPartitions(map[string][]int32{k.topic: {k.partition}})
		}
	})
	p.timers[k] = timer
}

// forget resumes revoked partitions and drops their timers, so that they
// are fetched when assigned again.
func (p *pauser) forget(revoked map[string][]int32) {
	p.mu.Lock()
	for topic, ps := range revoked {
		for _, part := range ps {
			if t := p.timers[tp{topic, part}]; t != nil {
				t.Stop()
				delete(p.timers, tp{topic, part})
			}
		}
	}
	p.mu.Unlock()
	p.cl.ResumeFetchPartitions(revoked)
}

// stop drops every timer.
func (p *pauser) stop() {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k, t := range p.timers {
		t.Stop()
		delete(p.timers, k)
	}
}
