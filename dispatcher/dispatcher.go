package dispatcher

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/ssrf"
	"github.com/vitalshq/vitals/topics"
)

// Decoder turns a derived-topic record value into an event (package
// schemas' Codec implements it).
type Decoder interface {
	DecodeDerived(value []byte) (event.Derived, error)
}

// Endpoints returns the enabled endpoints subscribed to an event type (the
// materialized endpoint registry implements it).
type Endpoints interface {
	Subscribed(eventType string) []endpoint.Endpoint
}

// AttemptSink records webhook attempts (the analytics writer implements it).
type AttemptSink interface {
	Append(ctx context.Context, a analytics.WebhookAttempt) error
}

// ErrAlreadyRunning is returned by Run when the Dispatcher is running or
// has run.
var ErrAlreadyRunning = errors.New("dispatcher: Run called twice")

// Dispatcher consumes derived events and delivers them as webhooks. Build it
// with New; Run does the work.
type Dispatcher struct {
	brokers   []string
	decoder   Decoder
	endpoints Endpoints
	cfg       config
	sender    Sender
	metrics   *metrics
	log       *slog.Logger
	started   atomic.Bool

	mu          sync.Mutex // guards perEndpoint
	perEndpoint map[string]*endpointState
}

// New returns a Dispatcher reading from the Kafka cluster at brokers,
// decoding records with dec and looking subscriptions up in eps.
func New(brokers []string, dec Decoder, eps Endpoints, opts ...Option) (*Dispatcher, error) {
	if len(brokers) == 0 {
		return nil, errors.New("new dispatcher: no seed brokers")
	}
	if dec == nil || eps == nil {
		return nil, errors.New("new dispatcher: a Decoder and an Endpoints are required")
	}
	cfg := defaultConfig()
	for _, o := range opts {
		o(&cfg)
	}
	for i, d := range cfg.schedule {
		if d < 0 {
			return nil, fmt.Errorf("new dispatcher: retry wait %d is negative (%s)", i+1, d)
		}
	}
	if cfg.jitter < 0 || cfg.jitter >= 1 {
		return nil, fmt.Errorf("new dispatcher: retry jitter %v not in [0, 1)", cfg.jitter)
	}
	if cfg.maxAttempts <= 0 || cfg.maxAttempts > len(cfg.schedule)+1 {
		cfg.maxAttempts = len(cfg.schedule) + 1
	}
	if cfg.maxInProcessRetries < 0 {
		cfg.maxInProcessRetries = 0
	}
	if cfg.breakerFailures == 0 {
		cfg.breakerFailures = DefaultBreakerFailures
	}
	if cfg.breakerOpen <= 0 {
		cfg.breakerOpen = DefaultBreakerOpen
	}
	if cfg.maxInFlight <= 0 {
		cfg.maxInFlight = DefaultMaxInFlight
	}
	if cfg.endpointConcurrency <= 0 {
		cfg.endpointConcurrency = DefaultEndpointConcurrency
	}
	if cfg.commitInterval <= 0 {
		cfg.commitInterval = DefaultCommitInterval
	}
	if cfg.group == "" {
		cfg.group = DefaultGroup
	}
	if cfg.log == nil {
		cfg.log = slog.Default()
	}
	m, err := newMetrics(cfg.reg)
	if err != nil {
		return nil, err
	}
	sender := cfg.sender
	if sender == nil {
		sender = NewHTTPSender(Timeout(cfg.deliveryTimeout), Guard(ssrf.New(ssrf.AllowPrivate(cfg.allowPrivate))))
	}
	return &Dispatcher{
		brokers: append([]string(nil), brokers...), decoder: dec, endpoints: eps,
		cfg: cfg, sender: sender, metrics: m, log: cfg.log.With("component", "dispatcher"),
		perEndpoint: make(map[string]*endpointState),
	}, nil
}

// attemptsAllowed is how many attempts one delivery gets in this first
// form: the first plus the in-process retries, within MaxAttempts.
func (d *Dispatcher) attemptsAllowed() int {
	return min(d.cfg.maxAttempts, 1+d.cfg.maxInProcessRetries)
}

// Run consumes the derived topics and delivers until ctx is cancelled. It
// owns the Kafka client and every goroutine it starts, and returns only
// after all of them ended and finished offsets were committed. Deliveries
// cut short by the cancellation are not committed: the partition's next
// owner delivers them again.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	tr := newTracker()
	opts := append([]kgo.Opt{}, d.cfg.kafkaOpts...)
	opts = append(opts,
		kgo.SeedBrokers(d.brokers...),
		kgo.ConsumerGroup(d.cfg.group),
		kgo.ConsumeTopics(topics.Derived()...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
			tr.assign(assigned)
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
			// Commit what finished before the partitions move on.
			if recs := tr.revoke(revoked); len(recs) > 0 {
				if err := cl.CommitRecords(ctx, recs...); err != nil {
					d.log.Warn("commit on revoke failed; records will be delivered again", "err", err)
				}
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			tr.revoke(lost)
		}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("dispatcher: kafka client: %w", err)
	}
	defer cl.Close()

	var wg sync.WaitGroup
	commitCtx, stopCommitter := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { d.commitLoop(commitCtx, cl, tr) })

	var deliveries sync.WaitGroup
	err = d.consume(ctx, cl, tr, &deliveries)
	deliveries.Wait()
	stopCommitter()
	wg.Wait()

	// Final commit of everything finished, with a fresh deadline: ctx is
	// already done.
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if recs := tr.take(); len(recs) > 0 {
		if cerr := cl.CommitRecords(final, recs...); cerr != nil {
			d.log.Warn("final commit failed; finished records will be delivered again", "err", cerr)
		}
	}
	if lerr := cl.LeaveGroupContext(final); lerr != nil {
		d.log.Debug("leave group", "err", lerr)
	}
	return err
}

// consume polls records and starts their deliveries until ctx is done.
func (d *Dispatcher) consume(ctx context.Context, cl *kgo.Client, tr *tracker, deliveries *sync.WaitGroup) error {
	slots := make(chan struct{}, d.cfg.maxInFlight)
	for {
		fetches := cl.PollRecords(ctx, d.cfg.maxInFlight)
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return errors.New("dispatcher: kafka client closed")
		}
		fetches.EachError(func(topic string, p int32, err error) {
			if !errors.Is(err, context.Canceled) {
				d.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
			}
		})
		for _, rec := range fetches.Records() {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			d.dispatch(ctx, tr, rec, func() { <-slots }, deliveries)
		}
	}
}

// dispatch starts one goroutine per subscribed endpoint for rec. release
// frees rec's in-flight slot once every delivery has finished.
func (d *Dispatcher) dispatch(ctx context.Context, tr *tracker, rec *kgo.Record, release func(), deliveries *sync.WaitGroup) {
	ev, err := d.decoder.DecodeDerived(rec.Value)
	var subs []endpoint.Endpoint
	var body []byte
	switch {
	case err != nil:
		d.metrics.decodeErrors.Inc()
		d.log.Error("skipping undecodable record", "topic", rec.Topic, "partition", rec.Partition,
			"offset", rec.Offset, "err", err)
	default:
		for _, ep := range d.endpoints.Subscribed(ev.Event) {
			if ep.Subscribes(ev.Event) {
				subs = append(subs, ep)
			}
		}
		if len(subs) > 0 {
			if body, err = json.Marshal(ev); err != nil {
				d.log.Error("skipping unencodable event", "event_id", ev.EventID, "err", err)
				subs = nil
			}
		}
	}
	rt := tr.add(rec, len(subs))
	if rt == nil { // the partition is no longer ours; its new owner delivers
		release()
		return
	}
	if len(subs) == 0 {
		tr.finish(rt)
		release()
		return
	}
	var remaining atomic.Int32
	remaining.Store(int32(len(subs)))
	for _, ep := range subs {
		deliveries.Go(func() {
			if d.deliver(ctx, ev, body, ep) {
				tr.finish(rt)
			}
			if remaining.Add(-1) == 0 {
				release()
			}
		})
	}
}

// commitLoop commits finished offsets as soon as they advance, and retries
// failed commits every commit interval, until ctx is done.
func (d *Dispatcher) commitLoop(ctx context.Context, cl *kgo.Client, tr *tracker) {
	t := time.NewTicker(d.cfg.commitInterval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-tr.kick:
		case <-t.C:
		}
		recs := tr.take()
		if len(recs) == 0 {
			continue
		}
		if err := cl.CommitRecords(ctx, recs...); err != nil {
			if ctx.Err() == nil {
				d.log.Warn("offset commit failed; will retry", "err", err)
			}
			tr.putBack(recs)
		}
	}
}
