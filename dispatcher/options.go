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
	DefaultRetryJitter         = 0.2
	DefaultMaxInProcessRetries = 1
	DefaultBreakerFailures     = 5
	DefaultBreakerOpen         = 30 * time.Second
	DefaultMaxInFlight         = 1000
	DefaultEndpointConcurrency = 8
	DefaultCommitInterval      = time.Second
	UserAgent                  = "Vitals-Webhooks/1"
)

// DefaultRetrySchedule returns the brief's retry schedule: 5s, 5m, 30m, 2h,
// 5h, 10h, 10h after the first attempt.
func DefaultRetrySchedule() []time.Duration {
	return []time.Duration{5 * time.Second, 5 * time.Minute, 30 * time.Minute,
		2 * time.Hour, 5 * time.Hour, 10 * time.Hour, 10 * time.Hour}
}

// Option configures a Dispatcher.
type Option func(*config)

type config struct {
	group               string
	sender              Sender
	sink                AttemptSink
	log                 *slog.Logger
	reg                 prometheus.Registerer
	schedule            []time.Duration
	jitter              float64
	maxAttempts         int
	maxInProcessRetries int
	breakerFailures     uint32
	breakerOpen         time.Duration
	maxInFlight         int
	endpointConcurrency int
	commitInterval      time.Duration
	deliveryTimeout     time.Duration
	allowPrivate        bool
	kafkaOpts           []kgo.Opt
}

func defaultConfig() config {
	return config{
		group:               DefaultGroup,
		log:                 slog.Default(),
		schedule:            DefaultRetrySchedule(),
		jitter:              DefaultRetryJitter,
		maxInProcessRetries: DefaultMaxInProcessRetries,
		breakerFailures:     DefaultBreakerFailures,
		breakerOpen:         DefaultBreakerOpen,
		maxInFlight:         DefaultMaxInFlight,
		endpointConcurrency: DefaultEndpointConcurrency,
		commitInterval:      DefaultCommitInterval,
		deliveryTimeout:     DefaultDeliveryTimeout,
	}
}

// WithGroup sets the consumer group (default DefaultGroup). Every
// dispatcher instance of one deployment uses the same group.
func WithGroup(group string) Option { return func(c *config) { c.group = group } }

// WithSender replaces the HTTP sender. When set, WithDeliveryTimeout and
// WithAllowPrivate have no effect.
func WithSender(s Sender) Option { return func(c *config) { c.sender = s } }

// WithSink sets where every attempt is recorded (the analytics writer).
// Without it attempts are only logged and counted.
func WithSink(s AttemptSink) Option { return func(c *config) { c.sink = s } }

// WithLogger sets the logger (default slog.Default()).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.log = l } }

// WithRegisterer registers the dispatcher's metrics (default: not
// registered).
func WithRegisterer(r prometheus.Registerer) Option { return func(c *config) { c.reg = r } }

// WithRetrySchedule sets the waits after the first attempt (default
// DefaultRetrySchedule). Attempt n+1 waits schedule[n-1], ± the jitter.
func WithRetrySchedule(ds ...time.Duration) Option {
	return func(c *config) { c.schedule = append([]time.Duration(nil), ds...) }
}

// WithRetryJitter sets the relative jitter applied to each wait, in [0, 1)
// (default 0.2: ±20 %).
func WithRetryJitter(f float64) Option { return func(c *config) { c.jitter = f } }

// WithMaxAttempts caps the attempts per delivery, the first included
// (default 1 + len(schedule)).
func WithMaxAttempts(n int) Option { return func(c *config) { c.maxAttempts = n } }

// WithMaxInProcessRetries sets how many retries of the schedule are waited
// for in process (default DefaultMaxInProcessRetries). A delivery still
// failing after them is given up as exhausted. This bound exists only in the
// first form of the dispatcher; retry topics replace it in [3/9].
func WithMaxInProcessRetries(n int) Option { return func(c *config) { c.maxInProcessRetries = n } }

// WithBreaker sets the circuit breaker of each endpoint: it opens after
// failures consecutive failed attempts and stays open for open (defaults
// DefaultBreakerFailures, DefaultBreakerOpen), then lets one trial through.
func WithBreaker(failures uint32, open time.Duration) Option {
	return func(c *config) { c.breakerFailures, c.breakerOpen = failures, open }
}

// WithMaxInFlight bounds the records fetched but not yet finished (default
// DefaultMaxInFlight); consuming pauses at the bound.
func WithMaxInFlight(n int) Option { return func(c *config) { c.maxInFlight = n } }

// WithEndpointConcurrency bounds simultaneous requests to one endpoint
// (default DefaultEndpointConcurrency).
func WithEndpointConcurrency(n int) Option { return func(c *config) { c.endpointConcurrency = n } }

// WithCommitInterval sets how often a failed offset commit is retried
// (default DefaultCommitInterval); finished offsets are committed at once.
func WithCommitInterval(d time.Duration) Option { return func(c *config) { c.commitInterval = d } }

// WithDeliveryTimeout sets the default HTTP sender's timeout per attempt
// (default DefaultDeliveryTimeout).
func WithDeliveryTimeout(d time.Duration) Option { return func(c *config) { c.deliveryTimeout = d } }

// WithAllowPrivate lets the default HTTP sender reach loopback and private
// addresses: local development and tests only.
func WithAllowPrivate(allow bool) Option { return func(c *config) { c.allowPrivate = allow } }

// WithKafkaOptions adds franz-go client options (TLS, SASL, timeouts). The
// dispatcher sets the seed brokers, group, topics, isolation level and
// commit behaviour itself; options overriding those break its guarantees.
func WithKafkaOptions(opts ...kgo.Opt) Option {
	return func(c *config) { c.kafkaOpts = append(c.kafkaOpts, opts...) }
}
