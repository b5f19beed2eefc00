package analytics

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Limits of Query.Limit.
const (
	DefaultLimit = 100
	MaxLimit     = 10000
)

// DefaultBuckets is how many time buckets a series has when Query.Step is
// zero: the window divided into about this many.
const DefaultBuckets = 60

// ErrBadQuery reports a Query the analytics functions refuse: no Since,
// or an Until not after it.
var ErrBadQuery = errors.New("analytics: bad query")

// Query selects what an analytics query reads. Since is required; the
// other fields are optional and each function says which it uses.
type Query struct {
	// Since and Until bound the window, [Since, Until); a zero Until
	// means "up to now and on". Times are compared in whole seconds;
	// queries answered by the per-minute rollup cover whole minutes (Since
	// rounded down, Until up).
	Since, Until time.Time
	// Step is the width of a series' time buckets; zero: the window in
	// about DefaultBuckets buckets. Buckets start at multiples of Step
	// since the Unix epoch. Rollup series use at least a minute.
	Step time.Duration
	// Limit bounds the rows returned: default DefaultLimit (MaxLimit for
	// series), at most MaxLimit.
	Limit int
	// EndpointID restricts attempt queries to one endpoint.
	EndpointID string
	// EventType restricts derived-event queries to one event type.
	EventType string
	// ClientID restricts API queries to one OAuth client.
	ClientID string
}

// notSentCond holds for attempts that sent no request, so whose latency
// says nothing about the endpoint: refused by the breaker, or stopped by
// the dispatcher's error classes bad_secret and canceled
// (dispatcher.ClassBadSecret, ClassCanceled).
const notSentCond = "(outcome = 'circuit_open' OR error_class IN ('bad_secret', 'canceled'))"

// limit returns q's row limit within its bounds.
func (q Query) limit() int {
	if q.Limit <= 0 {
		return DefaultLimit
	}
	return min(q.Limit, MaxLimit)
}

// seriesLimit is the row limit of a series: MaxLimit unless q sets one, so
// that a default series is whole.
func (q Query) seriesLimit() int {
	if q.Limit <= 0 {
		return MaxLimit
	}
	return q.limit()
}

// window returns q's bounds in Unix seconds, rounded out to multiples of
// unit (a second or a minute); until is 0 when q has none.
func (q Query) window(unit time.Duration) (since, until int64, err error) {
	if q.Since.IsZero() {
		return 0, 0, fmt.Errorf("%w: since is required", ErrBadQuery)
	}
	if !q.Until.IsZero() && !q.Until.After(q.Since) {
		return 0, 0, fmt.Errorf("%w: until %s is not after since %s", ErrBadQuery,
			q.Until.UTC().Format(time.RFC3339), q.Since.UTC().Format(time.RFC3339))
	}
	u := int64(unit / time.Second)
	since = max(q.Since.Unix(), 0) / u * u
	if !q.Until.IsZero() {
		until = q.Until.Add(unit-time.Nanosecond).Unix() / u * u // rounded up
	}
	return since, until, nil
}

// step returns the bucket width of a series in whole seconds, at least
// minimum.
func (q Query) step(minimum time.Duration) int64 {
	s := q.Step
	if s <= 0 {
		until := q.Until
		if until.IsZero() {
			until = time.Now()
		}
		s = until.Sub(q.Since) / DefaultBuckets
	}
	s = max(s, minimum)
	s = (s + minimum - 1) / minimum * minimum // a whole number of minimum units
	return int64(s / time.Second)
}

// filter collects a query's WHERE conditions and their arguments.
type filter struct {
	conds []string
	args  []any
}

func (f *filter) add(cond string, args ...any) {
	f.conds = append(f.conds, cond)
	f.args = append(f.args, args...)
}

// addIf adds col = val when val is set.
func (f *filter) addIf(col, val string) {
	if val != "" {
		f.add(col+" = ?", val)
	}
}

// between bounds col (a DateTime column) to [since, until).
func (f *filter) between(col string, since, until int64) {
	f.add(col+" >= toDateTime(?)", since)
	if until > 0 {
		f.add(col+" < toDateTime(?)", until)
	}
}

func (f *filter) sql() string {
	if len(f.conds) == 0 {
		return ""
	}
	return " WHERE " + strings.Join(f.conds, " AND ")
}

// latencies is the SQL turning a quantiles array into Array(Float64), NaN
// (no values) as 0.
func latencies(quantiles string) string {
	return "arrayMap(x -> if(isNaN(x), 0., toFloat64(x)), " + quantiles + ")"
}

// run runs a query after the schema is in place and calls scan for each
// row.
func (s *Store) run(ctx context.Context, what, sql string, args []any, scan func(resultRows) error) error {
	if err := s.ready(ctx); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	rows, err := s.ex.query(ctx, sql, args...)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	defer rows.Close()
	for rows.Next() {
		if err := scan(rows); err != nil {
			return fmt.Errorf("%s: %w", what, err)
		}
	}
	if err := rows.Err(); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	return nil
}

// unix returns Unix seconds as a UTC time.
func unix(sec uint32) time.Time { return time.Unix(int64(sec), 0).UTC() }

// at returns the i-th element of a quantiles array, 0 when it is short.
func at(q []float64, i int) float64 {
	if i < len(q) {
		return q[i]
	}
	return 0
}

// EndpointStats is one endpoint's deliveries in a window. Every count is
// of distinct attempt ids.
type EndpointStats struct {
	EndpointID string `json:"endpoint_id"`
	URLHost    string `json:"url_host"`
	Attempts   uint64 `json:"attempts"`
	Delivered  uint64 `json:"delivered"`
	Failed     uint64 `json:"failed"` // failed and retried
	// DeadLettered counts attempts with outcome "exhausted": the
	// delivery went to the dead-letter topic.
	DeadLettered uint64 `json:"dead_lettered"`
	CircuitOpen  uint64 `json:"circuit_open"` // refused by the breaker: no request sent
	Retries      uint64 `json:"retries"`      // attempts after the first of their delivery
	Events       uint64 `json:"events"`       // distinct events attempted
	// SuccessRate is Delivered over the attempts that sent a request
	// (Sent); 0 when none did.
	SuccessRate float64 `json:"success_rate"`
	Sent        uint64  `json:"sent"`
	// Latency of the attempts that sent a request, exact quantiles, in
	// milliseconds.
	P50Ms float64 `json:"p50_ms"`
	P95Ms float64 `json:"p95_ms"`
	P99Ms float64 `json:"p99_ms"`
}

// EndpointStats returns per-endpoint delivery figures for q's window, the
// busiest endpoints first (Query: Since, Until, EndpointID, Limit). It
// reads webhook_attempts itself, deduplicated by attempt_id, so windows
// are exact to the second and latency quantiles exact (quantileExact).
func (s *Store) EndpointStats(ctx context.Context, q Query) ([]EndpointStats, error) {
	since, until, err := q.window(time.Second)
	if err != nil {
		return nil, err
	}
	var f filter
	f.between("timestamp", since, until)
	f.addIf("endpoint_id", q.EndpointID)
	sql := `SELECT endpoint_id, any(url_host),
    toUInt64(count()) AS n,
    toUInt64(countIf(outcome = 'delivered')),
    toUInt64(countIf(outcome = 'failed')),
    toUInt64(countIf(outcome = 'exhausted')),
    toUInt64(countIf(outcome = 'circuit_open')),
    toUInt64(countIf(attempt > 1)),
    toUInt64(uniqExact(event_id)),
    toUInt64(countIf(NOT ` + notSentCond + `)),
    ` + latencies(`quantilesExactIf(0.5, 0.95, 0.99)(latency_ms, NOT `+notSentCond+`)`) + `
FROM (SELECT endpoint_id, url_host, event_id, attempt, outcome, error_class, latency_ms
    FROM ` + s.db + `.webhook_attempts` + f.sql() + ` LIMIT 1 BY attempt_id)
GROUP BY endpoint_id
ORDER BY n DESC, endpoint_id
LIMIT ` + strconv.Itoa(q.limit())
	var out []EndpointStats
	err = s.run(ctx, "endpoint stats", sql, f.args, func(r resultRows) error {
		var e EndpointStats
		var lat []float64
		if err := r.Scan(&e.EndpointID, &e.URLHost, &e.Attempts, &e.Delivered, &e.Failed, &e.DeadLettered,
			&e.CircuitOpen, &e.Retries, &e.Events, &e.Sent, &lat); err != nil {
			return err
		}
		if e.Sent > 0 {
			e.SuccessRate = float64(e.Delivered) / float64(e.Sent)
		}
		e.P50Ms, e.P95Ms, e.P99Ms = at(lat, 0), at(lat, 1), at(lat, 2)
		out = append(out, e)
		return nil
	})
	return out, err
}

// ErrorClassCount is how many attempts of one endpoint failed with one
// error class.
type ErrorClassCount struct {
	EndpointID string `json:"endpoint_id"`
	ErrorClass string `json:"error_class"`
	Attempts   uint64 `json:"attempts"`
}

// ErrorClasses returns failed attempts by endpoint and error class, the
// most frequent first (Query: Since, Until, EndpointID, Limit). It reads
// the per-minute rollup: whole minutes, counts of distinct attempt ids.
func (s *Store) ErrorClasses(ctx context.Context, q Query) ([]ErrorClassCount, error) {
	since, until, err := q.window(time.Minute)
	if err != nil {
		return nil, err
	}
	var f filter
	f.between("minute", since, until)
	f.addIf("endpoint_id", q.EndpointID)
	f.add("error_class != ''")
	sql := `SELECT endpoint_id, error_class, toUInt64(uniqExactMerge(attempts)) AS n
FROM ` + s.db + `.webhook_attempts_1m` + f.sql() + `
GROUP BY endpoint_id, error_class
ORDER BY n DESC, endpoint_id, error_class
LIMIT ` + strconv.Itoa(q.limit())
	var out []ErrorClassCount
	err = s.run(ctx, "error classes", sql, f.args, func(r resultRows) error {
		var e ErrorClassCount
		if err := r.Scan(&e.EndpointID, &e.ErrorClass, &e.Attempts); err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	return out, err
}

// DeliveryBucket is one endpoint's attempts in one time bucket.
type DeliveryBucket struct {
	Time         time.Time `json:"time"` // start of the bucket, UTC
	EndpointID   string    `json:"endpoint_id"`
	Attempts     uint64    `json:"attempts"`
	Delivered    uint64    `json:"delivered"`
	Failed       uint64    `json:"failed"`
	DeadLettered uint64    `json:"dead_lettered"`
	CircuitOpen  uint64    `json:"circuit_open"`
	Retries      uint64    `json:"retries"`
	// Latency quantiles of the attempts that sent a request, in
	// milliseconds, from the rollup's quantileTiming states: exact below
	// 1024 ms, in 16 ms steps above, at most 30 000.
	P50Ms float64 `json:"p50_ms"`
	P95Ms float64 `json:"p95_ms"`
	P99Ms float64 `json:"p99_ms"`
}

// DeliverySeries returns attempts per time bucket and endpoint, oldest
// bucket first (Query: Since, Until, Step of at least a minute,
// EndpointID, Limit on rows, default MaxLimit). It reads the per-minute
// rollup.
func (s *Store) DeliverySeries(ctx context.Context, q Query) ([]DeliveryBucket, error) {
	since, until, err := q.window(time.Minute)
	if err != nil {
		return nil, err
	}
	step := q.step(time.Minute)
	var f filter
	f.between("minute", since, until)
	f.addIf("endpoint_id", q.EndpointID)
	sql := `SELECT toUInt32(intDiv(toUInt32(minute), ` + strconv.FormatInt(step, 10) + `) * ` + strconv.FormatInt(step, 10) + `) AS bucket,
    endpoint_id,
    toUInt64(uniqExactMerge(attempts)),
    toUInt64(uniqExactMergeIf(attempts, outcome = 'delivered')),
    toUInt64(uniqExactMergeIf(attempts, outcome = 'failed')),
    toUInt64(uniqExactMergeIf(attempts, outcome = 'exhausted')),
    toUInt64(uniqExactMergeIf(attempts, outcome = 'circuit_open')),
    toUInt64(uniqExactMergeIf(attempts, retry = 1)),
    ` + latencies(`quantilesTimingMergeIf(0.5, 0.95, 0.99)(latency, NOT `+notSentCond+`)`) + `
FROM ` + s.db + `.webhook_attempts_1m` + f.sql() + `
GROUP BY bucket, endpoint_id
ORDER BY bucket, endpoint_id
LIMIT ` + strconv.Itoa(q.seriesLimit())
	var out []DeliveryBucket
	err = s.run(ctx, "delivery series", sql, f.args, func(r resultRows) error {
		var b DeliveryBucket
		var t uint32
		var lat []float64
		if err := r.Scan(&t, &b.EndpointID, &b.Attempts, &b.Delivered, &b.Failed, &b.DeadLettered,
			&b.CircuitOpen, &b.Retries, &lat); err != nil {
			return err
		}
		b.Time = unix(t)
		b.P50Ms, b.P95Ms, b.P99Ms = at(lat, 0), at(lat, 1), at(lat, 2)
		out = append(out, b)
		return nil
	})
	return out, err
}

// EndpointLatency is one endpoint's latency in a window.
type EndpointLatency struct {
	EndpointID string `json:"endpoint_id"`
	Sent       uint64 `json:"sent"` // attempts that sent a request
	// Quantiles in milliseconds, as in DeliveryBucket.
	P50Ms float64 `json:"p50_ms"`
	P95Ms float64 `json:"p95_ms"`
	P99Ms float64 `json:"p99_ms"`
}

// SlowestEndpoints returns the endpoints with the highest p95 latency in
// q's window, slowest first (Query: Since, Until, Limit). It reads the
// per-minute rollup.
func (s *Store) SlowestEndpoints(ctx context.Context, q Query) ([]EndpointLatency, error) {
	since, until, err := q.window(time.Minute)
	if err != nil {
		return nil, err
	}
	var f filter
	f.between("minute", since, until)
	f.add("NOT " + notSentCond)
	sql := `SELECT endpoint_id, n, q FROM (
    SELECT endpoint_id, toUInt64(uniqExactMerge(attempts)) AS n,
        ` + latencies(`quantilesTimingMerge(0.5, 0.95, 0.99)(latency)`) + ` AS q
    FROM ` + s.db + `.webhook_attempts_1m` + f.sql() + `
    GROUP BY endpoint_id)
ORDER BY q[2] DESC, endpoint_id
LIMIT ` + strconv.Itoa(q.limit())
	var out []EndpointLatency
	err = s.run(ctx, "slowest endpoints", sql, f.args, func(r resultRows) error {
		var e EndpointLatency
		var lat []float64
		if err := r.Scan(&e.EndpointID, &e.Sent, &lat); err != nil {
			return err
		}
		e.P50Ms, e.P95Ms, e.P99Ms = at(lat, 0), at(lat, 1), at(lat, 2)
		out = append(out, e)
		return nil
	})
	return out, err
}
