package analytics

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ClickHouse/clickhouse-go/v2/lib/driver"
	"github.com/prometheus/client_golang/prometheus"
)

var (
	// ErrNoSink reports a Writer with neither a ClickHouse address nor a
	// spool directory: it would have nowhere to put rows.
	ErrNoSink = errors.New("analytics: neither ClickHouse address nor spool directory configured")
	// ErrClosed reports an Append after the Writer's Run has returned or
	// while it is shutting down.
	ErrClosed = errors.New("analytics: writer closed")
	// ErrAlreadyRunning reports a second call of Run on one Writer.
	ErrAlreadyRunning = errors.New("analytics: writer already running")
	// ErrUnwritten reports rows that Run could neither insert nor spool
	// before it returned: they are lost, and Run says how many.
	ErrUnwritten = errors.New("analytics: rows neither written nor spooled")
	// ErrNotConfigured reports a query on a Writer without ClickHouse.
	ErrNotConfigured = errors.New("analytics: ClickHouse not configured")
)

// Defaults for a Writer's options.
const (
	DefaultBatchSize     = 1000
	DefaultFlushInterval = time.Second
	DefaultProbeInterval = 5 * time.Second
	DefaultWriteTimeout  = 10 * time.Second
)

// config holds a Writer's settings; Options change it, NewWriter fills the
// defaults.
type config struct {
	batchSize     int
	flushInterval time.Duration
	queueSize     int
	spoolDir      string
	spoolSealer   Sealer
	spoolLimit    int64
	database      string
	username      string
	password      string
	tls           TLS
	logger        *slog.Logger
	registerer    prometheus.Registerer
	probeInterval time.Duration
	writeTimeout  time.Duration
}

// Option configures a Writer.
type Option func(*config)

// WithBatchSize sets how many rows make a batch: a full batch is written at
// once (default DefaultBatchSize).
func WithBatchSize(n int) Option { return func(c *config) { c.batchSize = n } }

// WithFlushInterval sets how long a row waits at most for its batch to fill
// before the batch is written anyway (default DefaultFlushInterval).
func WithFlushInterval(d time.Duration) Option { return func(c *config) { c.flushInterval = d } }

// WithQueueSize bounds how many appended rows wait in memory for the writing
// goroutine; Append blocks when they are that many (default 4 × batch size).
func WithQueueSize(n int) Option { return func(c *config) { c.queueSize = n } }

// WithSpoolDir sets the directory for the disk spool that takes batches
// while ClickHouse is down. Without one, batches that ClickHouse does not
// take stay in memory and Append blocks once the queue is full.
func WithSpoolDir(dir string) Option { return func(c *config) { c.spoolDir = dir } }

// WithSpoolSealer encrypts the spool at rest with s (a *keyring.Keyring):
// rows are sealed before they reach the disk, so the spool holds no customer
// data in the clear. Spool segments written without a sealer still replay;
// a spool holding sealed segments needs a sealer that opens them, or
// NewWriter fails with ErrSpoolSealed.
func WithSpoolSealer(s Sealer) Option { return func(c *config) { c.spoolSealer = s } }

// DefaultSpoolLimit bounds the disk spool (WithSpoolLimit).
const DefaultSpoolLimit = 1 << 30

// WithSpoolLimit bounds the disk spool to about n bytes (default
// DefaultSpoolLimit; 0 or less: unbounded). A full spool takes no more
// rows: they wait in memory, the queue fills, and Append blocks — the
// dispatcher feels the pressure — with an error log and
// vitals_analytics_spool_full_total counting, never a silent drop.
func WithSpoolLimit(n int64) Option { return func(c *config) { c.spoolLimit = n } }

// WithDatabase sets the ClickHouse database, created if missing (default
// DefaultDatabase).
func WithDatabase(name string) Option { return func(c *config) { c.database = name } }

// WithAuth sets the ClickHouse user and password (default: user "default",
// no password).
func WithAuth(username, password string) Option {
	return func(c *config) { c.username, c.password = username, password }
}

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(c *config) { c.logger = l } }

// WithMetrics registers the Writer's Prometheus metrics on r.
func WithMetrics(r prometheus.Registerer) Option { return func(c *config) { c.registerer = r } }

// WithProbeInterval sets how often a Writer checks whether ClickHouse is back
// while it is down or the spool holds rows (default DefaultProbeInterval).
func WithProbeInterval(d time.Duration) Option { return func(c *config) { c.probeInterval = d } }

// WithWriteTimeout bounds each insert, ping and migration (default
// DefaultWriteTimeout). An insert in flight when Run is cancelled gets this
// long to finish before its rows go to the spool.
func WithWriteTimeout(d time.Duration) Option { return func(c *config) { c.writeTimeout = d } }

// Writer batches webhook attempt rows into ClickHouse, spooling them to disk
// while ClickHouse is down or not configured. Append may be called from any
// goroutine; Run does the writing and must be running for rows to move.
type Writer struct {
	cfg     config
	log     *slog.Logger
	conn    driver.Conn // nil without ClickHouse
	spool   *spool      // nil without a spool directory
	metrics *metrics
	insertQ string

	queue    chan WebhookAttempt
	stopping chan struct{} // closed when Run starts shutting down
	mu       sync.RWMutex  // Lock excludes Appends in flight; guards closed
	closed   bool
	running  atomic.Bool
	// stateReady says endpoint_state_changes exists (AppendStateChange).
	stateReady atomic.Bool
	// spoolSince is when the spool last went from empty to holding rows
	// (Unix nanoseconds; 0 when empty), read by the age gauge.
	spoolSince atomic.Int64

	// State owned by the Run goroutine.
	up         bool // the last insert or probe succeeded
	migrated   bool
	warned     bool      // the current outage was logged
	fullLogged time.Time // when "spool full" was last logged
}

// NewWriter returns a Writer for the ClickHouse server at addr (native
// protocol, "host:port"). An empty addr means no ClickHouse: rows then go to
// the spool only. The connection is made lazily, so NewWriter succeeds while
// ClickHouse is down.
func NewWriter(addr string, opts ...Option) (*Writer, error) {
	cfg := config{
		batchSize:     DefaultBatchSize,
		flushInterval: DefaultFlushInterval,
		database:      DefaultDatabase,
		probeInterval: DefaultProbeInterval,
		writeTimeout:  DefaultWriteTimeout,
	}
	for _, o := range opts {
		o(&cfg)
	}
	if cfg.batchSize <= 0 || cfg.flushInterval <= 0 || cfg.probeInterval <= 0 || cfg.writeTimeout <= 0 {
		return nil, errors.New("analytics: batch size, flush interval, probe interval and write timeout must be positive")
	}
	if cfg.queueSize <= 0 {
		cfg.queueSize = 4 * cfg.batchSize
	}
	if !identifier.MatchString(cfg.database) {
		return nil, fmt.Errorf("%w: %q", ErrBadDatabaseName, cfg.database)
	}
	if addr == "" && cfg.spoolDir == "" {
		return nil, ErrNoSink
	}
	if _, err := cfg.tls.config(); err != nil { // fail before opening the spool
		return nil, err
	}
	w := &Writer{
		cfg:      cfg,
		log:      cfg.logger,
		insertQ:  "INSERT INTO " + cfg.database + ".webhook_attempts (" + attemptColumns + ")",
		queue:    make(chan WebhookAttempt, cfg.queueSize),
		stopping: make(chan struct{}),
	}
	if cfg.spoolLimit == 0 {
		cfg.spoolLimit = DefaultSpoolLimit
		w.cfg.spoolLimit = DefaultSpoolLimit
	}
	if w.log == nil {
		w.log = slog.New(slog.NewTextHandler(io.Discard, nil))
	}
	m, err := newMetrics(cfg.registerer, w.spoolAge)
	if err != nil {
		return nil, err
	}
	w.metrics = m
	if cfg.spoolDir != "" {
		if w.spool, err = openSpool(cfg.spoolDir, cfg.spoolSealer); err != nil {
			m.unregister()
			return nil, err
		}
		w.metrics.spoolBytes.Set(float64(w.spool.bytes()))
		if !w.spool.empty() {
			w.spoolSince.Store(time.Now().UnixNano()) // at least this old
		}
	}
	if addr != "" {
		if w.conn, err = openConn(addr, cfg); err != nil {
			w.Close()
			return nil, err
		}
	}
	return w, nil
}

// Append queues one row for writing. It blocks while the queue is full
// (backpressure) until ctx is done, and fails with ErrClosed once Run is
// shutting down. A nil return means the Writer holds the row: Run will write
// it to ClickHouse or the spool, or report it lost in its error.
func (w *Writer) Append(ctx context.Context, a WebhookAttempt) error {
	w.mu.RLock()
	defer w.mu.RUnlock()
	if w.closed {
		return ErrClosed
	}
	select {
	case w.queue <- a:
		return nil
	case <-w.stopping:
		return ErrClosed
	case <-ctx.Done():
		return fmt.Errorf("analytics: append %s: %w", a.AttemptID, ctx.Err())
	}
}

// Run writes queued rows until ctx is cancelled, then writes (or spools)
// every row it still holds and returns. It connects and migrates the schema
// first when it can; while ClickHouse is down it spools batches and probes
// every probe interval, replaying the spool in order once ClickHouse is back.
// Run returns nil after a clean shutdown, or an error wrapping ErrUnwritten
// when rows could be neither written nor spooled.
func (w *Writer) Run(ctx context.Context) error {
	if !w.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	if w.conn == nil {
		w.log.Warn("analytics: no ClickHouse configured; webhook attempts go to the disk spool only",
			"spool_dir", w.cfg.spoolDir)
	} else if w.probe(ctx) {
		w.replay(ctx)
	}

	flush := time.NewTicker(w.cfg.flushInterval)
	defer flush.Stop()
	probe := time.NewTicker(w.cfg.probeInterval)
	defer probe.Stop()
	batch := make([]WebhookAttempt, 0, w.cfg.batchSize)
	for {
		in := w.queue
		if len(batch) >= w.cfg.batchSize {
			in = nil // a full batch waits for a sink; Append feels the backpressure
		}
		select {
		case <-ctx.Done():
			return w.shutdown(ctx, batch)
		case a := <-in:
			batch = append(batch, a)
			if len(batch) >= w.cfg.batchSize && w.flush(ctx, batch) {
				batch = batch[:0]
			}
		case <-flush.C:
			if len(batch) > 0 && w.flush(ctx, batch) {
				batch = batch[:0]
			}
		case <-probe.C:
			if w.conn != nil && (!w.up || w.spooled()) && w.probe(ctx) {
				w.replay(ctx)
			}
		}
	}
}

// Close releases the ClickHouse connection and the spool. Call it after Run
// has returned.
func (w *Writer) Close() error {
	var err error
	if w.conn != nil {
		err = w.conn.Close()
	}
	if w.spool != nil {
		err = errors.Join(err, w.spool.close())
	}
	w.metrics.unregister()
	return err
}

// spooled reports whether rows wait in the spool.
func (w *Writer) spooled() bool { return w.spool != nil && !w.spool.empty() }

// flush writes batch to ClickHouse or, failing that, to the spool. It
// reports false when neither took it: the caller keeps the rows and tries
// again. While the spool holds rows, new batches join it, so replay keeps
// their order.
func (w *Writer) flush(ctx context.Context, batch []WebhookAttempt) bool {
	if w.conn != nil && w.up && !w.spooled() {
		// Cancelling Run means "stop after flushing", so an insert in
		// flight finishes; insert bounds it by the write timeout.
		err := w.insert(context.WithoutCancel(ctx), batch)
		if err == nil {
			w.metrics.written.Add(float64(len(batch)))
			return true
		}
		w.markDown(err)
	}
	if w.spool == nil {
		return false
	}
	if lim := w.cfg.spoolLimit; lim > 0 && w.spool.bytes() >= lim {
		w.metrics.spoolFull.Inc()
		if time.Since(w.fullLogged) > 10*time.Second {
			w.fullLogged = time.Now()
			w.log.Error("analytics: spool full; holding rows in memory until ClickHouse takes the spool (Append blocks when the queue is full)",
				"spool_bytes", w.spool.bytes(), "limit", lim)
		}
		return false
	}
	if err := w.spool.append(batch); err != nil {
		w.log.Error("analytics: spool write failed; holding rows in memory", "rows", len(batch), "err", err)
		return false
	}
	w.metrics.spooled.Add(float64(len(batch)))
	w.metrics.spoolBytes.Set(float64(w.spool.bytes()))
	w.spoolSince.CompareAndSwap(0, time.Now().UnixNano())
	return true
}

// insert sends rows to ClickHouse as one native batch.
func (w *Writer) insert(ctx context.Context, rows []WebhookAttempt) error {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.writeTimeout)
	defer cancel()
	b, err := w.conn.PrepareBatch(ctx, w.insertQ)
	if err != nil {
		return fmt.Errorf("insert %d attempts: %w", len(rows), err)
	}
	defer b.Close() // no-op once sent; releases the connection on error
	for i := range rows {
		if err := b.Append(attemptValues(&rows[i])...); err != nil {
			return fmt.Errorf("insert attempt %s: %w", rows[i].AttemptID, err)
		}
	}
	if err := b.Send(); err != nil {
		return fmt.Errorf("insert %d attempts: %w", len(rows), err)
	}
	return nil
}

// probe pings ClickHouse and applies migrations once; it reports whether
// ClickHouse can take inserts.
func (w *Writer) probe(ctx context.Context) bool {
	ctx, cancel := context.WithTimeout(ctx, w.cfg.writeTimeout)
	defer cancel()
	if err := w.conn.Ping(ctx); err != nil {
		w.markDown(fmt.Errorf("ping: %w", err))
		return false
	}
	if !w.migrated {
		if err := Migrate(ctx, w.conn, w.cfg.database); err != nil {
			w.markDown(err)
			return false
		}
		w.migrated = true
	}
	if !w.up && w.warned {
		w.log.Info("analytics: ClickHouse is back")
	}
	w.up, w.warned = true, false
	return true
}

// markDown records that ClickHouse failed, logging once per outage.
func (w *Writer) markDown(err error) {
	w.up = false
	if !w.warned {
		w.warned = true
		w.log.Warn("analytics: ClickHouse unavailable; spooling webhook attempts to disk until it is back",
			"spool_dir", w.cfg.spoolDir, "err", err)
	}
}

// replay sends the spool to ClickHouse, oldest rows first. It holds up the
// Run loop meanwhile, so a long replay turns into backpressure on Append
// rather than into more memory.
func (w *Writer) replay(ctx context.Context) {
	if !w.spooled() {
		return
	}
	n, err := w.spool.replay(ctx, w.cfg.batchSize, w.insert, w.log)
	w.metrics.replayed.Add(float64(n))
	w.metrics.spoolBytes.Set(float64(w.spool.bytes()))
	if w.spool.empty() {
		w.spoolSince.Store(0)
	}
	if err != nil {
		if ctx.Err() == nil { // a replay cut short by shutdown resumes next run
			w.markDown(err)
		}
		return
	}
	w.log.Info("analytics: replayed spooled webhook attempts into ClickHouse", "rows", n)
}

// shutdown stops Appends, takes every row still queued and writes or spools
// all of them. Inserts ignore ctx's cancellation and are bounded by the write
// timeout; after one fails, the rest go straight to the spool.
func (w *Writer) shutdown(ctx context.Context, batch []WebhookAttempt) error {
	close(w.stopping)
	w.mu.Lock() // waits for Appends in flight, which now see stopping
	w.closed = true
	w.mu.Unlock()
	for drained := false; !drained; {
		select {
		case a := <-w.queue:
			batch = append(batch, a)
		default:
			drained = true
		}
	}
	for len(batch) > 0 {
		n := min(len(batch), w.cfg.batchSize)
		if !w.flush(ctx, batch[:n]) {
			w.log.Error("analytics: shutting down with rows neither written nor spooled", "rows", len(batch))
			return fmt.Errorf("%w: %d rows", ErrUnwritten, len(batch))
		}
		batch = batch[n:]
	}
	return nil
}

// spoolAge is how long the spool has held rows (0 when empty), for the
// vitals_analytics_spool_age_seconds gauge.
func (w *Writer) spoolAge() float64 {
	since := w.spoolSince.Load()
	if since == 0 {
		return 0
	}
	return time.Since(time.Unix(0, since)).Seconds()
}
