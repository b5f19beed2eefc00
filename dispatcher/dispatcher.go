package dispatcher

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"github.com/twmb/franz-go/pkg/kmsg"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/dispatcher/task"
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

// Endpoints is the endpoint registry as the dispatcher reads it (the
// materialized *endpoint.Registry implements it): the enabled endpoints
// subscribed to an event type, and one endpoint by id for the deliveries
// waiting in the retry tiers.
type Endpoints interface {
	Subscribed(eventType string) []endpoint.Endpoint
	Get(id string) (endpoint.Endpoint, bool)
}

// AttemptSink records webhook attempts (the analytics writer implements it).
type AttemptSink interface {
	Append(ctx context.Context, a analytics.WebhookAttempt) error
}

// StateSink records endpoint state changes: breaker transitions and
// disablings (the analytics writer implements it).
type StateSink interface {
	AppendStateChange(ctx context.Context, c analytics.EndpointStateChange) error
}

// Disabler disables an endpoint in the registry, with a reason shown to its
// owner (e.g. "410 Gone"). The dispatcher never writes the registry itself.
type Disabler interface {
	Disable(ctx context.Context, endpointID, reason string) error
}

// ErrAlreadyRunning is returned by Run when the Dispatcher is running or
// has run.
var ErrAlreadyRunning = errors.New("dispatcher: Run called twice")

// Dispatcher consumes derived and operational events and delivers them as
// webhooks, with retries in tier topics. Build it with New; Run does the
// work.
type Dispatcher struct {
	brokers   []string
	decoder   Decoder
	endpoints Endpoints
	cfg       config
	sender    Sender
	metrics   *metrics
	log       *slog.Logger
	started   atomic.Bool
	prod      atomic.Pointer[kgo.Client] // set by Run

	mu          sync.RWMutex // guards perEndpoint
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
		if d <= 0 {
			return nil, fmt.Errorf("new dispatcher: retry wait %d is not positive (%s)", i+1, d)
		}
	}
	if cfg.jitter < 0 || cfg.jitter >= 1 {
		return nil, fmt.Errorf("new dispatcher: retry jitter %v not in [0, 1)", cfg.jitter)
	}
	if cfg.maxAttempts <= 0 || cfg.maxAttempts > len(cfg.schedule)+1 {
		cfg.maxAttempts = len(cfg.schedule) + 1
	}
	def := DefaultBreakerSettings()
	b := &cfg.breaker
	if b.Window <= 0 {
		b.Window = def.Window
	}
	if b.MinRequests == 0 {
		b.MinRequests = def.MinRequests
	}
	if b.FailureRatio <= 0 || b.FailureRatio > 1 {
		b.FailureRatio = def.FailureRatio
	}
	if b.ConsecutiveFailures == 0 {
		b.ConsecutiveFailures = def.ConsecutiveFailures
	}
	if b.OpenFor <= 0 {
		b.OpenFor = def.OpenFor
	}
	if b.SuccessesToClose == 0 {
		b.SuccessesToClose = def.SuccessesToClose
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
	if cfg.retryGroup == "" {
		cfg.retryGroup = DefaultRetryGroup
	}
	if cfg.group == cfg.retryGroup {
		return nil, fmt.Errorf("new dispatcher: the retry group must differ from the group (%q)", cfg.group)
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
		sender = NewHTTPSender(Timeout(cfg.deliveryTimeout), ConnectTimeout(cfg.connectTimeout),
			Guard(ssrf.New(ssrf.AllowPrivate(cfg.allowPrivate))))
	}
	return &Dispatcher{
		brokers: append([]string(nil), brokers...), decoder: dec, endpoints: eps,
		cfg: cfg, sender: sender, metrics: m, log: cfg.log.With("component", "dispatcher"),
		perEndpoint: make(map[string]*endpointState),
	}, nil
}

func (d *Dispatcher) producer() *kgo.Client { return d.prod.Load() }

// Run consumes the derived and operational topics (group WithGroup) and the
// retry tiers (group WithRetryGroup) and delivers until ctx is cancelled. It
// owns its Kafka clients and every goroutine it starts, and returns only
// after all of them ended and settled offsets were committed. Deliveries
// cut short by the cancellation are not committed: the partition's next
// owner delivers them again.
func (d *Dispatcher) Run(ctx context.Context) error {
	if !d.started.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	popts := append([]kgo.Opt{kgo.SeedBrokers(d.brokers...)}, d.cfg.kafkaOpts...)
	popts = append(popts, kgo.ProducerLinger(0), kgo.RequiredAcks(kgo.AllISRAcks()))
	prod, err := kgo.NewClient(popts...)
	if err != nil {
		return fmt.Errorf("dispatcher: kafka producer: %w", err)
	}
	defer prod.Close()
	d.prod.Store(prod)

	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	errs := make([]error, 2)
	wg.Go(func() {
		errs[0] = d.runGroup(ctx, d.cfg.group, append(topics.Derived(), topics.Operational), nil, d.consumeEvents)
		cancel()
	})
	if tiers := topics.RetryTiers(d.cfg.schedule, 1); len(tiers) > 0 {
		names := make([]string, len(tiers))
		for i, t := range tiers {
			names[i] = t.Name
		}
		wg.Go(func() {
			errs[1] = d.runGroup(ctx, d.cfg.retryGroup, names,
				[]kgo.Opt{kgo.FetchMaxWait(DefaultRetryFetchWait), kgo.BlockRebalanceOnPoll()}, d.consumeRetries)
			cancel()
		})
	}
	wg.Wait()
	return errors.Join(errs...)
}

// consumeFunc polls cl and starts deliveries until ctx is done.
type consumeFunc func(ctx context.Context, cl *kgo.Client, tr *tracker, deliveries *workers) error

// runGroup runs one consumer group over topics: the client, its commit
// loop and consume, then the final commit. first are options applied
// before the user's Kafka options (defaults they may override).
func (d *Dispatcher) runGroup(ctx context.Context, group string, names []string, first []kgo.Opt, consume consumeFunc) error {
	tr := newTracker()
	log := d.log.With("group", group)
	opts := append(first, kgo.SeedBrokers(d.brokers...))
	opts = append(opts, d.cfg.kafkaOpts...)
	opts = append(opts,
		kgo.ConsumerGroup(group),
		kgo.ConsumeTopics(names...),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.OnOffsetsFetched(func(ctx context.Context, _ *kgo.Client, resp *kmsg.OffsetFetchResponse) error {
			if log.Enabled(ctx, slog.LevelDebug) {
				log.Debug("committed offsets fetched (-1: none, consumed from the start)", "offsets", committedOffsets(resp))
			}
			return nil
		}),
		kgo.OnPartitionsAssigned(func(_ context.Context, _ *kgo.Client, assigned map[string][]int32) {
			log.Debug("partitions assigned", "partitions", assigned)
			tr.assign(assigned)
		}),
		kgo.OnPartitionsRevoked(func(ctx context.Context, cl *kgo.Client, revoked map[string][]int32) {
			log.Debug("partitions revoked", "partitions", revoked)
			tr.onRevoke(revoked)
			// Commit what settled before the partitions move on.
			if recs := tr.revoke(revoked); len(recs) > 0 {
				if err := cl.CommitRecords(ctx, recs...); err != nil {
					d.log.Warn("commit on revoke failed; records will be delivered again", "group", group, "err", err)
				}
			}
		}),
		kgo.OnPartitionsLost(func(_ context.Context, _ *kgo.Client, lost map[string][]int32) {
			log.Debug("partitions lost", "partitions", lost)
			tr.onRevoke(lost)
			tr.revoke(lost)
		}),
	)
	cl, err := kgo.NewClient(opts...)
	if err != nil {
		return fmt.Errorf("dispatcher: kafka client for %s: %w", group, err)
	}
	defer cl.Close()

	var wg sync.WaitGroup
	commitCtx, stopCommitter := context.WithCancel(context.WithoutCancel(ctx))
	wg.Go(func() { d.commitLoop(commitCtx, cl, tr) })

	deliveries := &workers{idle: workerIdle, jobs: make(chan func())}
	err = consume(ctx, cl, tr, deliveries)
	deliveries.wg.Wait()
	stopCommitter()
	wg.Wait()

	// Final commit of everything settled, with a fresh deadline: ctx is
	// already done.
	final, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if recs := tr.take(); len(recs) > 0 {
		if cerr := cl.CommitRecords(final, recs...); cerr != nil {
			d.log.Warn("final commit failed; settled records will be delivered again", "group", group, "err", cerr)
		}
	}
	if lerr := cl.LeaveGroupContext(final); lerr != nil {
		d.log.Debug("leave group", "group", group, "err", lerr)
	}
	return err
}

// committedOffsets returns the committed offset of every partition in an
// OffsetFetch response (one group, any version), for the debug log: where
// each newly assigned partition resumes.
func committedOffsets(resp *kmsg.OffsetFetchResponse) map[string]map[int32]int64 {
	out := map[string]map[int32]int64{}
	add := func(topic string, p int32, offset int64) {
		if out[topic] == nil {
			out[topic] = map[int32]int64{}
		}
		out[topic][p] = offset
	}
	for _, t := range resp.Topics {
		for _, p := range t.Partitions {
			add(t.Topic, p.Partition, p.Offset)
		}
	}
	for _, g := range resp.Groups {
		for _, t := range g.Topics {
			for _, p := range t.Partitions {
				add(t.Topic, p.Partition, p.Offset)
			}
		}
	}
	return out
}

// consumeEvents polls derived and operational records and starts their
// deliveries until ctx is done.
func (d *Dispatcher) consumeEvents(ctx context.Context, cl *kgo.Client, tr *tracker, deliveries *workers) error {
	slots := make(chan struct{}, d.cfg.maxInFlight)
	for {
		fetches := cl.PollRecords(ctx, d.cfg.maxInFlight)
		if ctx.Err() != nil {
			return nil
		}
		if fetches.IsClientClosed() {
			return errors.New("dispatcher: kafka client closed")
		}
		d.logFetchErrors(fetches)
		for _, rec := range fetches.Records() {
			select {
			case slots <- struct{}{}:
			case <-ctx.Done():
				return nil
			}
			d.start(ctx, tr, rec, d.eventJobs(rec), func() { <-slots }, deliveries)
		}
	}
}

func (d *Dispatcher) logFetchErrors(fetches kgo.Fetches) {
	fetches.EachError(func(topic string, p int32, err error) {
		if !errors.Is(err, context.Canceled) {
			d.log.Warn("fetch error", "topic", topic, "partition", p, "err", err)
		}
	})
}

// eventJobs returns the deliveries of a derived or operational record: one
// per subscribed endpoint.
func (d *Dispatcher) eventJobs(rec *kgo.Record) []job {
	now := time.Now()
	base := task.Task{CustomerID: string(rec.Key), Event: rec.Value, DueAt: now}
	var body []byte
	var customerFilter bool
	if rec.Topic == topics.Operational {
		op, err := parseOperational(rec.Value)
		if err != nil || op.ID == "" || !isOperational(op.Type) {
			d.metrics.decodeErrors.Inc()
			d.log.Error("skipping unreadable operational event", "partition", rec.Partition, "offset", rec.Offset, "err", err)
			return nil
		}
		base.EventID, base.EventType, body = op.ID, op.Type, rec.Value
	} else {
		ev, err := d.decoder.DecodeDerived(rec.Value)
		if err != nil {
			d.metrics.decodeErrors.Inc()
			d.log.Error("skipping undecodable record", "topic", rec.Topic, "partition", rec.Partition,
				"offset", rec.Offset, "err", err)
			return nil
		}
		// ev.MarshalJSON's output is compact and valid: calling it directly
		// spares json.Marshal's second pass over the body.
		if body, err = ev.MarshalJSON(); err != nil {
			d.log.Error("skipping unencodable event", "event_id", ev.EventID, "err", err)
			return nil
		}
		base.EventID, base.EventType, base.CustomerID = ev.EventID, ev.Event, ev.CustomerID
		customerFilter = true
	}
	eps := d.endpoints.Subscribed(base.EventType)
	jobs := make([]job, 0, len(eps))
	for i := range eps {
		ep := &eps[i] // jobs point into eps and only read it
		if !ep.Subscribes(base.EventType) || (customerFilter && !ep.WantsCustomer(base.CustomerID)) {
			continue
		}
		t := base
		t.EndpointID = ep.ID
		jobs = append(jobs, job{t: t, ep: ep, body: body})
	}
	return jobs
}

// start tracks rec and runs its jobs, each in its own goroutine (see
// workers). release frees rec's consumer slot once every job has ended.
// The ordering tickets of ordered endpoints are taken here, in record
// order.
func (d *Dispatcher) start(ctx context.Context, tr *tracker, rec *kgo.Record, jobs []job, release func(), deliveries *workers) {
	rt := tr.add(rec, len(jobs))
	if rt == nil { // the partition is no longer ours; its new owner delivers
		release()
		return
	}
	if len(jobs) == 0 {
		tr.finish(rt)
		release()
		return
	}
	var remaining atomic.Int32
	remaining.Store(int32(len(jobs)))
	for i := range jobs {
		j := &jobs[i] // the closure holds a pointer, not a heap copy of the job
		if j.ep.Ordered {
			j.wait, j.done = d.state(*j.ep).ticket(j.t.CustomerID)
		}
		deliveries.run(ctx, func() {
			if d.run(ctx, j) {
				tr.finish(rt)
			}
			if remaining.Add(-1) == 0 {
				release()
			}
		})
	}
}

// commitLoop commits settled offsets as soon as they advance, and retries
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

// workerIdle is how long a delivery goroutine waits for another delivery
// before it ends.
const workerIdle = time.Second

// workers runs each delivery in its own goroutine, reusing goroutines that
// finished a delivery: a new goroutine's stack grows through the HTTP
// client's call depth on every delivery, which costs more than the
// delivery's own work. A delivery is handed only to an idle goroutine
// (never queued behind a running one), so isolation holds exactly as with
// one new goroutine per delivery. Idle goroutines end after idle, or when
// the ctx they were started with is done. Each consumer group has its own
// workers and waits for wg before its final commit.
type workers struct {
	idle time.Duration
	jobs chan func() // unbuffered: a send succeeds only to an idle goroutine
	wg   sync.WaitGroup
}

// run runs f in an idle goroutine, or in a new one.
func (w *workers) run(ctx context.Context, f func()) {
	select {
	case w.jobs <- f:
		return
	default:
	}
	w.wg.Go(func() {
		f()
		t := time.NewTimer(w.idle)
		defer t.Stop()
		for {
			select {
			case f := <-w.jobs:
				f()
				t.Reset(w.idle)
			case <-t.C:
				return
			case <-ctx.Done():
				return
			}
		}
	})
}
