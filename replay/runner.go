package replay

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/dispatcher/task"
	"github.com/vitalshq/vitals/endpoint"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/topics"
)

// Decoder decodes a derived event's record value (package schemas' Codec).
type Decoder interface {
	DecodeDerived(value []byte) (event.Derived, error)
}

// Endpoints looks endpoints up (package endpoint's Registry).
type Endpoints interface {
	Get(id string) (endpoint.Endpoint, bool)
}

// Defaults of the Runner's options.
const (
	DefaultGroup            = "vitals.replay"
	DefaultFirstDelay       = 5 * time.Second
	DefaultMessageWindow    = 7 * 24 * time.Hour
	DefaultProgressInterval = time.Second
	// produceBatch is how many tasks are written per ProduceSync.
	produceBatch = 500
)

// Option configures a Runner.
type Option func(*config)

type config struct {
	group            string
	firstDelay       time.Duration
	messageWindow    time.Duration
	progressInterval time.Duration
	logger           *slog.Logger
}

// Group sets the consumer group the runners of a cluster share (default
// DefaultGroup).
func Group(name string) Option { return func(c *config) { c.group = name } }

// FirstDelay sets the first delay of the dispatcher's retry schedule: tasks
// go to topics.Retry(FirstDelay) (default DefaultFirstDelay).
func FirstDelay(d time.Duration) Option { return func(c *config) { c.firstDelay = d } }

// MessageWindow bounds the search for a message_id replay that gives no
// since: the last MessageWindow of the derived topics is scanned (default
// DefaultMessageWindow).
func MessageWindow(d time.Duration) Option { return func(c *config) { c.messageWindow = d } }

// ProgressInterval sets how often a running job's counts are written to
// topics.Replays (default DefaultProgressInterval).
func ProgressInterval(d time.Duration) Option { return func(c *config) { c.progressInterval = d } }

// Logger sets the logger (default slog.Default()).
func Logger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// Runner executes replay jobs. Run one per instance; the consumer group on
// the single-partition topics.Replays makes exactly one of them the owner
// of all jobs at a time (see the package doc). Jobs run one after another.
type Runner struct {
	clientOpts []kgo.Opt
	store      *Store
	endpoints  Endpoints
	decoder    Decoder
	cfg        config
}

// NewRunner returns a runner using clients built from clientOpts (seed
// brokers and the like). store must be running (Store.Run) in the same
// process: the runner reads the latest state of each job from it and
// writes progress through it.
func NewRunner(clientOpts []kgo.Opt, store *Store, eps Endpoints, dec Decoder, opts ...Option) *Runner {
	cfg := config{group: DefaultGroup, firstDelay: DefaultFirstDelay, messageWindow: DefaultMessageWindow,
		progressInterval: DefaultProgressInterval, logger: slog.Default()}
	for _, o := range opts {
		o(&cfg)
	}
	return &Runner{clientOpts: clientOpts, store: store, endpoints: eps, decoder: dec, cfg: cfg}
}

// Run consumes topics.Replays in the runners' group and executes every job
// not yet finished, until ctx is done. A job's record is committed once the
// job finished, so a job whose owner died is run again by the next owner.
func (r *Runner) Run(ctx context.Context) error {
	cl, err := kgo.NewClient(append(slices.Clone(r.clientOpts),
		kgo.ConsumeTopics(topics.Replays),
		kgo.ConsumerGroup(r.cfg.group),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		kgo.DisableAutoCommit(),
		kgo.RequiredAcks(kgo.AllISRAcks()),
	)...)
	if err != nil {
		return fmt.Errorf("replay runner: %w", err)
	}
	defer cl.Close()
	if err := r.store.WaitReady(ctx); err != nil {
		return nil // ctx done before the store was ready
	}
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			r.cfg.logger.Warn("replay runner fetch error", "topic", t, "partition", p, "err", err)
		})
		for _, rec := range fs.Records() {
			if rec.Value != nil {
				r.handle(ctx, cl, rec)
			}
			if ctx.Err() != nil {
				return nil
			}
			if err := cl.CommitRecords(ctx, rec); err != nil && ctx.Err() == nil {
				r.cfg.logger.Warn("replay runner commit", "offset", rec.Offset, "err", err)
			}
		}
	}
}

// handle runs the job of rec unless it already finished.
func (r *Runner) handle(ctx context.Context, cl *kgo.Client, rec *kgo.Record) {
	var j Job
	if err := json.Unmarshal(rec.Value, &j); err != nil {
		r.cfg.logger.Error("replay runner: undecodable job skipped", "offset", rec.Offset, "err", err)
		return
	}
	if latest, ok := r.store.Get(j.ID); ok {
		j = latest
	}
	if j.Status.Finished() {
		return
	}
	r.cfg.logger.Info("replay started", "id", j.ID, "endpoint", j.EndpointID)
	j = r.execute(ctx, cl, j)
	if ctx.Err() != nil {
		return // the next owner runs it again
	}
	r.cfg.logger.Info("replay finished", "id", j.ID, "status", j.Status, "scanned", j.Scanned, "queued", j.Queued, "error", j.Error)
}

// errFound stops a message_id scan at its message.
var errFound = errors.New("message found")

// execute runs j to its end and stores the final state.
func (r *Runner) execute(ctx context.Context, cl *kgo.Client, j Job) Job {
	now := time.Now().UTC()
	j.Status, j.Scanned, j.Queued, j.Error, j.UpdatedAt = StatusRunning, 0, 0, "", now
	r.save(ctx, j)
	e, ok := r.endpoints.Get(j.EndpointID)
	if !ok {
		return r.finish(ctx, j, fmt.Errorf("endpoint %s no longer exists", j.EndpointID))
	}
	e.Disabled = false // the API refused disabled endpoints; judge subscriptions only
	since, until := j.Since, j.Until
	if j.MessageID != "" && since.IsZero() {
		since = now.Add(-r.cfg.messageWindow)
	}
	if until.IsZero() {
		until = now
	}
	scanTopics := topics.Derived()
	if j.FailedOnly {
		scanTopics = []string{topics.DLQ}
	}
	tier := topics.Retry(r.cfg.firstDelay)
	var batch []*kgo.Record
	flush := func() error {
		if len(batch) == 0 {
			return nil
		}
		if err := cl.ProduceSync(ctx, batch...).FirstErr(); err != nil {
			return fmt.Errorf("queue tasks to %s: %w", tier, err)
		}
		j.Queued += int64(len(batch))
		batch = batch[:0]
		return nil
	}
	lastSave := time.Now()
	found := false
	err := r.scan(ctx, cl, scanTopics, since, until, func(rec *kgo.Record) error {
		j.Scanned++
		t, ok := r.pick(rec, e, j)
		if ok {
			t.Attempts, t.DueAt, t.FirstAttempt, t.LastError, t.LastStatus, t.ReplayID = 0, time.Now().UTC(), time.Time{}, "", 0, j.ID
			batch = append(batch, t.Record(tier))
		}
		if len(batch) >= produceBatch || time.Since(lastSave) >= r.cfg.progressInterval {
			if err := flush(); err != nil {
				return err
			}
			lastSave = time.Now()
			r.save(ctx, j)
		}
		if ok && j.MessageID != "" {
			found = true
			return errFound
		}
		return nil
	})
	if errors.Is(err, errFound) {
		err = nil
	}
	if ferr := flush(); err == nil {
		err = ferr
	}
	if err == nil && j.MessageID != "" && !found {
		err = fmt.Errorf("message %s not found among %s events for this endpoint from %s to %s",
			j.MessageID, "derived", since.Format(time.RFC3339), until.Format(time.RFC3339))
	}
	return r.finish(ctx, j, err)
}

// pick returns the task for rec when the job replays it.
func (r *Runner) pick(rec *kgo.Record, e endpoint.Endpoint, j Job) (task.Task, bool) {
	if j.FailedOnly {
		t, err := task.Decode(rec)
		if err != nil || t.EndpointID != e.ID {
			return task.Task{}, false
		}
		return t, true
	}
	ev, err := r.decoder.DecodeDerived(rec.Value)
	if err != nil {
		return task.Task{}, false
	}
	if j.MessageID != "" && ev.EventID != j.MessageID {
		return task.Task{}, false
	}
	if !e.Subscribes(ev.Event) || !e.WantsCustomer(ev.CustomerID) {
		return task.Task{}, false
	}
	return task.Task{EndpointID: e.ID, EventID: ev.EventID, EventType: ev.Event, CustomerID: string(rec.Key), Event: rec.Value}, true
}

func (r *Runner) finish(ctx context.Context, j Job, err error) Job {
	j.Status, j.UpdatedAt = StatusDone, time.Now().UTC()
	if err != nil {
		j.Status, j.Error = StatusFailed, err.Error()
	}
	r.save(ctx, j)
	return j
}

func (r *Runner) save(ctx context.Context, j Job) {
	if err := r.store.Put(ctx, j); err != nil && ctx.Err() == nil {
		r.cfg.logger.Warn("replay progress not stored", "id", j.ID, "err", err)
	}
}

// scan calls fn for every record of scanTopics whose offset lies between the
// first offset at or after since and the first at or after until (Kafka's
// timestamp index, kadm ListOffsetsAfterMilli), reading each partition once
// up to that bound. fn's error stops the scan and is returned.
func (r *Runner) scan(ctx context.Context, cl *kgo.Client, scanTopics []string, since, until time.Time, fn func(*kgo.Record) error) error {
	adm := kadm.NewClient(cl)
	starts, err := adm.ListOffsetsAfterMilli(ctx, since.UnixMilli(), scanTopics...)
	if err == nil {
		err = starts.Error()
	}
	if err != nil {
		return fmt.Errorf("offsets after %s: %w", since.Format(time.RFC3339), err)
	}
	ends, err := adm.ListOffsetsAfterMilli(ctx, until.UnixMilli(), scanTopics...)
	if err == nil {
		err = ends.Error()
	}
	if err != nil {
		return fmt.Errorf("offsets after %s: %w", until.Format(time.RFC3339), err)
	}
	type tp struct {
		topic string
		p     int32
	}
	from := map[string]map[int32]kgo.Offset{}
	end := map[tp]int64{}
	starts.Each(func(o kadm.ListedOffset) {
		e, ok := ends.Lookup(o.Topic, o.Partition)
		if !ok || o.Offset >= e.Offset {
			return
		}
		if from[o.Topic] == nil {
			from[o.Topic] = map[int32]kgo.Offset{}
		}
		from[o.Topic][o.Partition] = kgo.NewOffset().At(o.Offset)
		end[tp{o.Topic, o.Partition}] = e.Offset
	})
	if len(end) == 0 {
		return nil
	}
	reader, err := kgo.NewClient(append(slices.Clone(r.clientOpts),
		kgo.ConsumePartitions(from),
		kgo.FetchIsolationLevel(kgo.ReadCommitted()),
		kgo.KeepControlRecords(),
	)...)
	if err != nil {
		return fmt.Errorf("scan reader: %w", err)
	}
	defer reader.Close()
	for len(end) > 0 {
		fs := reader.PollFetches(ctx)
		if err := ctx.Err(); err != nil {
			return err
		}
		fs.EachError(func(t string, p int32, err error) {
			r.cfg.logger.Warn("replay scan fetch error", "topic", t, "partition", p, "err", err)
		})
		for _, rec := range fs.Records() {
			k := tp{rec.Topic, rec.Partition}
			last, ok := end[k]
			if !ok || rec.Offset >= last {
				continue
			}
			if rec.Offset >= last-1 {
				delete(end, k)
				reader.PauseFetchPartitions(map[string][]int32{rec.Topic: {rec.Partition}})
			}
			if rec.Attrs.IsControl() {
				continue
			}
			if err := fn(rec); err != nil {
				return err
			}
		}
	}
	return nil
}
