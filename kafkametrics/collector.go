package kafkametrics

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kadm"
	"github.com/twmb/franz-go/pkg/kerr"
	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/topics"
)

// Metric names a Collector exports.
const (
	// MetricConsumerLag is the offsets between a group's committed offset
	// and the end of each topic it reads, summed over the topic's
	// partitions. Labels: group, topic.
	MetricConsumerLag = "vitals_consumer_lag"
	// MetricTopicDepth is the offsets waiting in a retry tier (end offset
	// minus the retry group's committed offset, or the start offset where
	// it has none) or held by a dead-letter topic (end minus start offset),
	// summed over partitions. Labels: topic, kind (KindRetry, KindDLQ).
	MetricTopicDepth = "vitals_topic_depth"
	// MetricRefreshed is the Unix time of the last complete answer from
	// the cluster: the age of every other figure.
	MetricRefreshed = "vitals_kafka_metrics_refreshed_timestamp_seconds"
	// MetricRefreshErrors counts refreshes (or a group's or topic's part of
	// one) the cluster did not answer; their figures keep their last values.
	MetricRefreshErrors = "vitals_kafka_metrics_refresh_errors_total"
)

// Values of the kind label of MetricTopicDepth.
const (
	KindRetry = "retry" // a retry tier of the dispatcher
	KindDLQ   = "dlq"   // a dead-letter topic
)

// Defaults of a Collector.
const (
	// DefaultInterval is how often the cluster is asked: a quarter of a
	// minute keeps lag alerts timely at a few small admin requests per
	// interval.
	DefaultInterval = 15 * time.Second
	// DefaultRetryGroup is the consumer group that reads the retry tiers
	// (dispatcher.DefaultRetryGroup).
	DefaultRetryGroup = "vitals-dispatcher-retry"
)

// DefaultGroups returns the consumer groups whose lag is exported by
// default: the processor's, the dispatcher's two and the audit loader's
// (processor.DefaultGroup, dispatcher.DefaultGroup, DefaultRetryGroup,
// audit.DefaultLoaderGroup).
func DefaultGroups() []string {
	return []string{"vitals-processor", "vitals-dispatcher", DefaultRetryGroup, "vitals-audit-loader"}
}

// DefaultDeadLetterTopics returns the dead-letter topics whose depth is
// exported by default: the dispatcher's and the processor's.
func DefaultDeadLetterTopics() []string { return []string{topics.DLQ, topics.CustomerEventsDLQ} }

// minRefreshTimeout bounds one refresh from below: a short interval must
// not cut off the cluster's answer (missed ticks are dropped meanwhile).
const minRefreshTimeout = 10 * time.Second

// Option configures a Collector.
type Option func(*config)

type config struct {
	groups     []string
	retryGroup string
	tiers      []string
	dlqs       []string
	interval   time.Duration
	log        *slog.Logger
}

// WithGroups sets the consumer groups whose lag is exported (default
// DefaultGroups).
func WithGroups(groups ...string) Option {
	return func(c *config) { c.groups = slices.Clone(groups) }
}

// WithRetryGroup sets the group that reads the retry tiers, whose
// committed offsets measure the tiers' depth (default DefaultRetryGroup).
func WithRetryGroup(group string) Option { return func(c *config) { c.retryGroup = group } }

// WithRetrySchedule names the retry tiers by the dispatcher's schedule
// (topics.Retry of each delay), so every tier has a depth even before the
// retry group committed to it. Tiers the retry group reads are measured
// without it too.
func WithRetrySchedule(delays ...time.Duration) Option {
	return func(c *config) {
		c.tiers = nil
		for _, s := range topics.RetryTiers(delays, 1) {
			c.tiers = append(c.tiers, s.Name)
		}
	}
}

// WithDeadLetterTopics sets the dead-letter topics whose depth is exported
// (default DefaultDeadLetterTopics).
func WithDeadLetterTopics(names ...string) Option {
	return func(c *config) { c.dlqs = slices.Clone(names) }
}

// WithInterval sets how often the cluster is asked (default
// DefaultInterval).
func WithInterval(d time.Duration) Option { return func(c *config) { c.interval = d } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// groupTopic identifies one consumer-lag series.
type groupTopic struct{ group, topic string }

// depth is one topic-depth series.
type depth struct {
	kind  string
	value int64
}

// Collector is a prometheus.Collector of consumer lag and topic depth. Run
// refreshes its figures; register it with the process's registry.
type Collector struct {
	kafkaOpts []kgo.Opt
	cfg       config
	log       *slog.Logger

	lagDesc, depthDesc, refreshedDesc *prometheus.Desc
	errors                            prometheus.Counter

	mu        sync.Mutex
	lag       map[groupTopic]int64
	depth     map[string]depth
	refreshed time.Time
}

// New returns a Collector that asks the cluster reached with kafkaOpts
// (seed brokers, security; see broker.Options). It exports nothing until
// Run's first refresh.
func New(kafkaOpts []kgo.Opt, opts ...Option) (*Collector, error) {
	if len(kafkaOpts) == 0 {
		return nil, errors.New("kafka metrics: no Kafka client options (seed brokers)")
	}
	cfg := config{
		groups:     DefaultGroups(),
		retryGroup: DefaultRetryGroup,
		dlqs:       DefaultDeadLetterTopics(),
		interval:   DefaultInterval,
		log:        slog.Default(),
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.interval <= 0 {
		return nil, fmt.Errorf("kafka metrics: interval %v: want a positive duration", cfg.interval)
	}
	return &Collector{
		kafkaOpts: slices.Clone(kafkaOpts),
		cfg:       cfg,
		log:       cfg.log.With("component", "kafka-metrics"),
		lagDesc: prometheus.NewDesc(MetricConsumerLag,
			"Offsets between a consumer group's committed offset and the end of a topic it reads, summed over partitions.",
			[]string{"group", "topic"}, nil),
		depthDesc: prometheus.NewDesc(MetricTopicDepth,
			"Offsets waiting in a retry tier (end minus the retry group's committed offset) or held by a dead-letter topic (end minus start), summed over partitions.",
			[]string{"topic", "kind"}, nil),
		refreshedDesc: prometheus.NewDesc(MetricRefreshed,
			"Unix time of the last complete answer from the Kafka cluster to the lag and depth queries.", nil, nil),
		errors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: MetricRefreshErrors,
			Help: "Lag or depth queries the Kafka cluster did not answer; their figures keep their last values.",
		}),
		lag:   map[groupTopic]int64{},
		depth: map[string]depth{},
	}, nil
}

// Run refreshes the figures at once and then every interval, until ctx is
// done. It owns its Kafka client and returns nil on cancellation; a failed
// refresh is logged and counted, not returned.
func (c *Collector) Run(ctx context.Context) error {
	cl, err := kgo.NewClient(c.kafkaOpts...)
	if err != nil {
		return fmt.Errorf("kafka metrics: kafka client: %w", err)
	}
	defer cl.Close()
	adm := kadm.NewClient(cl)
	t := time.NewTicker(c.cfg.interval)
	defer t.Stop()
	for {
		rctx, cancel := context.WithTimeout(ctx, max(c.cfg.interval, minRefreshTimeout))
		err := c.refresh(rctx, adm)
		cancel()
		if ctx.Err() != nil {
			return nil
		}
		if err != nil {
			c.errors.Inc()
			c.log.Warn("kafka lag and depth not refreshed; exporting the last figures", "err", err)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// refresh asks the cluster once and replaces the figures it answered for.
// A group or topic it could not measure keeps its last figure.
func (c *Collector) refresh(ctx context.Context, adm *kadm.Client) error {
	groups := slices.Clone(c.cfg.groups)
	if !slices.Contains(groups, c.cfg.retryGroup) {
		groups = append(groups, c.cfg.retryGroup) // its topics are the tiers
	}
	lags, err := adm.Lag(ctx, groups...)
	if err != nil {
		return fmt.Errorf("consumer lag: %w", err)
	}
	var errs []error
	lag := map[groupTopic]int64{}
	failedGroups := map[string]bool{}
	tiers := slices.Clone(c.cfg.tiers)
	for _, g := range groups {
		l, ok := lags[g]
		if ok && errors.Is(l.Error(), kerr.GroupIDNotFound) {
			continue // never started (or deleted): no figure
		}
		if !ok || l.Error() != nil {
			failedGroups[g] = true
			if ok {
				errs = append(errs, fmt.Errorf("group %s: %w", g, l.Error()))
			} else {
				errs = append(errs, fmt.Errorf("group %s: not described", g))
			}
			continue
		}
		if g == c.cfg.retryGroup {
			for t := range l.Lag {
				if !slices.Contains(tiers, t) {
					tiers = append(tiers, t)
				}
			}
		}
		if !slices.Contains(c.cfg.groups, g) {
			continue
		}
		for t, tl := range l.Lag.TotalByTopic() {
			lag[groupTopic{g, t}] = tl.Lag
		}
	}

	depths, failedTopics, err := c.depths(ctx, adm, tiers)
	if err != nil {
		errs = append(errs, fmt.Errorf("topic depth: %w", err))
	}

	c.mu.Lock()
	defer c.mu.Unlock()
	for k, v := range c.lag {
		if failedGroups[k.group] {
			lag[k] = v
		}
	}
	for t, d := range c.depth {
		if failedTopics[t] {
			depths[t] = d
		}
	}
	c.lag, c.depth = lag, depths
	if len(errs) == 0 {
		c.refreshed = time.Now()
	}
	return errors.Join(errs...)
}

// depths measures the retry tiers and dead-letter topics. failed names the
// topics that could not be measured (they keep their last figure); a topic
// that does not exist has no figure.
func (c *Collector) depths(ctx context.Context, adm *kadm.Client, tiers []string) (out map[string]depth, failed map[string]bool, err error) {
	out, failed = map[string]depth{}, map[string]bool{}
	all := append(slices.Clone(tiers), c.cfg.dlqs...)
	if len(all) == 0 {
		return out, failed, nil
	}
	fail := func(err error) (map[string]depth, map[string]bool, error) {
		for _, t := range all {
			failed[t] = true
		}
		return out, failed, err
	}
	// Partial answers (shard errors) leave their partitions out; measure
	// reports them below.
	starts, err := adm.ListStartOffsets(ctx, all...)
	if err != nil && len(starts) == 0 {
		return fail(fmt.Errorf("start offsets: %w", err))
	}
	ends, err := adm.ListEndOffsets(ctx, all...)
	if err != nil && len(ends) == 0 {
		return fail(fmt.Errorf("end offsets: %w", err))
	}
	var commits kadm.OffsetResponses
	if len(tiers) > 0 {
		if commits, err = adm.FetchOffsets(ctx, c.cfg.retryGroup); err != nil {
			return fail(fmt.Errorf("offsets of group %s: %w", c.cfg.retryGroup, err))
		}
	}
	var errs []error
	measure := func(topic, kind string) {
		ps, listed := ends[topic]
		if gone, ok := ps[-1]; ok && errors.Is(gone.Err, kerr.UnknownTopicOrPartition) {
			return // not created (yet): no figure
		}
		if !listed {
			failed[topic] = true
			errs = append(errs, fmt.Errorf("%s: end offsets not listed", topic))
			return
		}
		var sum int64
		for p, end := range ps {
			start, ok := starts.Lookup(topic, p)
			if end.Err != nil || !ok || start.Err != nil {
				failed[topic] = true
				errs = append(errs, fmt.Errorf("%s[%d]: offsets not listed: %w", topic, p, errors.Join(end.Err, start.Err)))
				return
			}
			base := start.Offset
			if kind == KindRetry {
				if cm, ok := commits.Lookup(topic, p); ok && cm.Err == nil && cm.At >= base {
					base = cm.At
				}
			}
			sum += max(0, end.Offset-base)
		}
		out[topic] = depth{kind: kind, value: sum}
	}
	for _, t := range tiers {
		measure(t, KindRetry)
	}
	for _, t := range c.cfg.dlqs {
		measure(t, KindDLQ)
	}
	return out, failed, errors.Join(errs...)
}

// Describe sends the descriptors of the exported metrics.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.lagDesc
	ch <- c.depthDesc
	ch <- c.refreshedDesc
	c.errors.Describe(ch)
}

// Collect sends the figures of the last refresh.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	c.errors.Collect(ch)
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, k := range slices.SortedFunc(maps.Keys(c.lag), func(a, b groupTopic) int {
		return cmp.Or(cmp.Compare(a.group, b.group), cmp.Compare(a.topic, b.topic))
	}) {
		ch <- prometheus.MustNewConstMetric(c.lagDesc, prometheus.GaugeValue, float64(c.lag[k]), k.group, k.topic)
	}
	for _, t := range slices.Sorted(maps.Keys(c.depth)) {
		d := c.depth[t]
		ch <- prometheus.MustNewConstMetric(c.depthDesc, prometheus.GaugeValue, float64(d.value), t, d.kind)
	}
	if !c.refreshed.IsZero() {
		ch <- prometheus.MustNewConstMetric(c.refreshedDesc, prometheus.GaugeValue, float64(c.refreshed.UnixNano())/1e9)
	}
}
