package audit

import (
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vitalshq/vitals/topics"
)

// Defaults of the Writer's and Loader's options.
const (
	// DefaultLinger is how long the Writer lets a record wait for others
	// to share its produce request (franz-go's default).
	DefaultLinger = 10 * time.Millisecond
	// MaxLinger bounds WithLinger: asynchronous records reach Kafka within
	// a second.
	MaxLinger = time.Second
	// DefaultMaxBuffered is how many records the Writer holds that Kafka
	// has not acknowledged before Write waits.
	DefaultMaxBuffered = 10000
	// DefaultLoaderGroup is the Loader's consumer group.
	DefaultLoaderGroup = "vitals-audit-loader"
	// DefaultBatchSize is how many records the Loader inserts at most at once.
	DefaultBatchSize = 1000
	// DefaultFlushInterval is how long the Loader waits at most for a batch
	// to fill after its first record.
	DefaultFlushInterval = time.Second
	// DefaultRetryBackoff is the Loader's first wait after a failed insert;
	// it doubles up to 30 s.
	DefaultRetryBackoff = 500 * time.Millisecond
)

// options are the settings of a Writer or a Loader; each ignores the ones
// that are not its own.
type options struct {
	topic         string
	log           *slog.Logger
	reg           prometheus.Registerer
	chain         *Chain
	linger        time.Duration
	maxBuffered   int
	group         string
	batchSize     int
	flushInterval time.Duration
	retryBackoff  time.Duration
}

// Option configures a Writer or a Loader.
type Option func(*options)

func newOptions(opts []Option) options {
	o := options{
		topic:         topics.Audit,
		linger:        DefaultLinger,
		maxBuffered:   DefaultMaxBuffered,
		group:         DefaultLoaderGroup,
		batchSize:     DefaultBatchSize,
		flushInterval: DefaultFlushInterval,
		retryBackoff:  DefaultRetryBackoff,
	}
	for _, opt := range opts {
		opt(&o)
	}
	if o.log == nil {
		o.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	return o
}

// WithTopic sets the topic (default topics.Audit); tests sharing a broker
// use their own.
func WithTopic(name string) Option { return func(o *options) { o.topic = name } }

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(o *options) { o.log = l } }

// WithMetrics registers the Writer's or Loader's Prometheus metrics on r.
func WithMetrics(r prometheus.Registerer) Option { return func(o *options) { o.reg = r } }

// WithChain makes the Writer seal into c (default: a NewChain of its own).
// Writer only.
func WithChain(c *Chain) Option { return func(o *options) { o.chain = c } }

// WithLinger sets how long a record may wait in the Writer for others to
// share its produce request: (0, MaxLinger], default DefaultLinger. A
// synchronous Write waits for it too. Writer only.
func WithLinger(d time.Duration) Option { return func(o *options) { o.linger = d } }

// WithMaxBuffered bounds the records the Writer holds unacknowledged;
// Write waits (until its context is done) while that many are in flight.
// Default DefaultMaxBuffered. Writer only.
func WithMaxBuffered(n int) Option { return func(o *options) { o.maxBuffered = n } }

// WithGroup sets the Loader's consumer group (default DefaultLoaderGroup).
func WithGroup(name string) Option { return func(o *options) { o.group = name } }

// WithBatchSize sets how many records the Loader inserts at most at once
// (default DefaultBatchSize).
func WithBatchSize(n int) Option { return func(o *options) { o.batchSize = n } }

// WithFlushInterval sets how long the Loader waits at most for a batch to
// fill after its first record (default DefaultFlushInterval).
func WithFlushInterval(d time.Duration) Option { return func(o *options) { o.flushInterval = d } }

// WithRetryBackoff sets the Loader's first wait after a failed insert; it
// doubles up to 30 s (default DefaultRetryBackoff).
func WithRetryBackoff(d time.Duration) Option { return func(o *options) { o.retryBackoff = d } }
