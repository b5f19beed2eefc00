package audit

import (
	"io"
	"log/slog"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/vitalshq/vitals/topics"
)

// Defaults of the Writer's options.
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
)

// options are the settings of a Writer.
type options struct {
	topic       string
	log         *slog.Logger
	reg         prometheus.Registerer
	chain       *Chain
	linger      time.Duration
	maxBuffered int
}

// Option configures a Writer.
type Option func(*options)

func newOptions(opts []Option) options {
	o := options{
		topic:       topics.Audit,
		linger:      DefaultLinger,
		maxBuffered: DefaultMaxBuffered,
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

// WithMetrics registers the Writer's Prometheus metrics on r.
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
