package dispatcher

import (
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Defaults of a Dispatcher. DefaultRetrySchedule is the brief's: the waits
// after the first attempt.
const (
	DefaultGroup               = "vitals-dispatcher"
	DefaultRetryGroup          = "vitals-dispatcher-retry"
	DefaultRetryJitter         = 0.2
	DefaultMaxInFlight         = 1000
	DefaultEndpointConcurrency = 8
	DefaultCommitInterval      = time.Second
	DefaultAutoDisableAfter    = 5 * 24 * time.Hour
	// DefaultRateWait is how long a delivery may wait for an in-flight slot
	// and a rate token of its endpoint before it is handed to the first
	// retry tier instead (without using an attempt).
	DefaultRateWait = time.Second
	// DefaultRetryFetchWait bounds how long the retry consumer's fetches
	// wait for data, and so how late a resumed partition is read.
	DefaultRetryFetchWait = 250 * time.Millisecond
	UserAgent             = "Vitals-Webhooks/1"
)

// DefaultRetrySchedule returns the brief's retry schedule: 5s, 5m, 30m, 2h,
// 5h, 10h, 10h after the first attempt.
func DefaultRetrySchedule() []time.Duration {
	return []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute,
		2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
}

// BreakerSettings configure the circuit breaker of every endpoint. The
// breaker opens when, within Window, at least MinRequests attempts were made
// and FailureRatio of them failed, or after ConsecutiveFailures failures in
// a row. It stays open OpenFor, then admits one probe at a time and closes
// after SuccessesToClose successful probes; a failed probe opens it again.
type BreakerSettings struct {
	Window              time.Duration
	MinRequests         uint32
	FailureRatio        float64
	ConsecutiveFailures uint32
	OpenFor             time.Duration
	SuccessesToClose    uint32
}

// DefaultBreakerSettings returns the brief's breaker: ≥ 70 % failures over
// ≥ 10 requests in 60 s, or 5 consecutive failures; open 30 s; closes after
// 5 successful probes.
func DefaultBreakerSettings() BreakerSettings {
	return BreakerSettings{Window: time.Minute, MinRequests: 10, FailureRatio: 0.7,
		ConsecutiveFailures: 5, OpenFor: 30 * time.Second, SuccessesToClose: 5}
}

// Option configures a Dispatcher.
type Option func(*config)

type config struct {
	group               string
	retryGroup          string
	sender              Sender
	sink                AttemptSink
	stateSink           StateSink
	disabler            Disabler
	log                 *slog.Logger
	reg                 prometheus.Registerer
	schedule            []time.Duration
	jitter              float64
	maxAttempts         int
	breaker             BreakerSettings
	maxInFlight         int
	endpointConcurrency int
	rateWait            time.Duration
	autoDisableAfter    time.Duration
	commitInterval      time.Duration
	deliveryTimeout     time.Duration
	connectTimeout      time.Duration
	allowPrivate        bool
	kafkaOpts           []kgo.Opt
}

func defaultConfig() config {
	return config{
		group:               DefaultGroup,
		retryGroup:          DefaultRetryGroup,
		log:                 slog.Default(),
		schedule:            DefaultRetrySchedule(),
		jitter:              DefaultRetryJitter,
		breaker:             DefaultBreakerSettings(),
		maxInFlight:         DefaultMaxInFlight,
		endpointConcurrency: DefaultEndpointConcurrency,
		rateWait:            DefaultRateWait,
		autoDisableAfter:    DefaultAutoDisableAfter,
		commitInterval:      DefaultCommitInterval,
		deliveryTimeout:     DefaultDeliveryTimeout,
		connectTimeout:      DefaultConnectTimeout,
	}
}

// WithGroup sets the consumer group of the derived and operational topics
// (default DefaultGroup). Every dispatcher instance of one deployment uses
// the same group.
func WithGroup(group string) Option { return func(c *config) { c.group = group } }

// WithRetryGroup sets the consumer group of the retry tiers (default
// DefaultRetryGroup). Every instance of one deployment uses the same one.
func WithRetryGroup(group string) Option { return func(c *config) { c.retryGroup = group } }

// WithSender replaces the HTTP sender. When set, WithDeliveryTimeout,
// WithConnectTimeout and WithAllowPrivate have no effect.
func WithSender(s Sender) Option { return func(c *config) { c.sender = s } }

// WithSink sets where every attempt is recorded (the analytics writer).
// Without it attempts are only logged and counted.
func WithSink(s AttemptSink) Option { return func(c *config) { c.sink = s } }

// WithStateSink sets where breaker transitions and disablings are recorded
// (the analytics writer). Without it they are only logged and counted.
func WithStateSink(s StateSink) Option { return func(c *config) { c.stateSink = s } }

// WithDisabler sets what disables an endpoint that answered 410 Gone or
// failed for the auto-disable period (the endpoint registry). Without it
// the dispatcher only logs, emits the endpoint.disabled event and stops
// sending to the endpoint until it restarts.
func WithDisabler(dis Disabler) Option { return func(c *config) { c.disabler = dis } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithRegisterer registers the dispatcher's metrics (default: not
// registered).
func WithRegisterer(r prometheus.Registerer) Option { return func(c *config) { c.reg = r } }

// WithRetrySchedule sets the waits after the first attempt (default
// DefaultRetrySchedule). Attempt n+1 waits schedule[n-1], ± the jitter, in
// the retry tier topics.Retry(schedule[n-1]).
func WithRetrySchedule(ds ...time.Duration) Option {
	return func(c *config) { c.schedule = append([]time.Duration(nil), ds...) }
}

// WithRetryJitter sets the relative jitter applied to each wait, in [0, 1)
// (default 0.2: ±20 %).
func WithRetryJitter(f float64) Option { return func(c *config) { c.jitter = f } }

// WithMaxAttempts caps the attempts per delivery, the first included
// (default and maximum 1 + len(schedule)).
func WithMaxAttempts(n int) Option { return func(c *config) { c.maxAttempts = n } }

// WithBreakerSettings sets the circuit breaker of every endpoint (default
// DefaultBreakerSettings). Zero fields keep their defaults.
func WithBreakerSettings(s BreakerSettings) Option { return func(c *config) { c.breaker = s } }

// WithBreaker is a shorthand: the breaker opens after failures consecutive
// failures and stays open for open; the rest of DefaultBreakerSettings holds.
func WithBreaker(failures uint32, open time.Duration) Option {
	return func(c *config) { c.breaker.ConsecutiveFailures, c.breaker.OpenFor = failures, open }
}

// WithMaxInFlight bounds the records of each consumer fetched but not yet
// settled (default DefaultMaxInFlight); consuming pauses at the bound.
func WithMaxInFlight(n int) Option { return func(c *config) { c.maxInFlight = n } }

// WithEndpointConcurrency bounds simultaneous requests to an endpoint whose
// MaxInFlight is 0 (default DefaultEndpointConcurrency).
func WithEndpointConcurrency(n int) Option { return func(c *config) { c.endpointConcurrency = n } }

// WithRateWait sets how long a delivery waits for an in-flight slot and a
// rate token of its endpoint before being handed to the first retry tier
// (default DefaultRateWait).
func WithRateWait(d time.Duration) Option { return func(c *config) { c.rateWait = d } }

// WithAutoDisableAfter sets how long all attempts to an endpoint must fail
// before it is disabled (default DefaultAutoDisableAfter; 0 or less never).
func WithAutoDisableAfter(d time.Duration) Option { return func(c *config) { c.autoDisableAfter = d } }

// WithCommitInterval sets how often a failed offset commit is retried
// (default DefaultCommitInterval); settled offsets are committed at once.
func WithCommitInterval(d time.Duration) Option { return func(c *config) { c.commitInterval = d } }

// WithDeliveryTimeout sets the default HTTP sender's timeout per attempt
// (default DefaultDeliveryTimeout).
func WithDeliveryTimeout(d time.Duration) Option { return func(c *config) { c.deliveryTimeout = d } }

// WithConnectTimeout sets the default HTTP sender's TCP connect and TLS
// handshake timeout (default DefaultConnectTimeout).
func WithConnectTimeout(d time.Duration) Option { return func(c *config) { c.connectTimeout = d } }

// WithAllowPrivate lets the default HTTP sender reach loopback and private
// addresses: local development and tests only.
func WithAllowPrivate(allow bool) Option { return func(c *config) { c.allowPrivate = allow } }

// WithKafkaOptions adds franz-go client options (TLS, SASL, timeouts) to
// every client of the dispatcher. The dispatcher sets the seed brokers,
// groups, topics, isolation level and commit behaviour itself; options
// overriding those break its guarantees.
func WithKafkaOptions(opts ...kgo.Opt) Option {
	return func(c *config) { c.kafkaOpts = append(c.kafkaOpts, opts...) }
}
