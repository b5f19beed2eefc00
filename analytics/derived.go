package analytics

import (
	"context"
	"encoding/json"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/analytics/loader"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/topics"
)

// DerivedLoaderGroup is the consumer group of the derived-events loader.
const DerivedLoaderGroup = "vitals-derived-loader"

// DerivedEvent is one row of the ClickHouse table derived_events: an event
// the processor emitted, with why.
type DerivedEvent struct {
	EventID    string `json:"event_id"`
	EventType  string `json:"event_type"` // event.HealthScoreChange, …
	CustomerID string `json:"customer_id"`
	// Reason is the event's headline cause: the change_reason of a
	// health_score_change, the risk_level of a churn_risk_detected, the
	// opportunity_type of an expansion_ready.
	Reason string `json:"reason"`
	// Summary is the explanation's one sentence; "" without one.
	Summary string `json:"summary,omitempty"`
	// Detail is the JSON of the type's fields (event.HealthChange,
	// event.ChurnRisk or event.Expansion).
	Detail json.RawMessage `json:"detail,omitempty"`
	// Explanation is the JSON of the event's event.Explanation; empty for
	// events written without one.
	Explanation json.RawMessage `json:"explanation,omitempty"`
	Timestamp   time.Time       `json:"timestamp"` // when derived, UTC, whole seconds once stored
}

// DerivedEventOf returns d as a derived_events row.
func DerivedEventOf(d event.Derived) DerivedEvent {
	e := DerivedEvent{EventID: d.EventID, EventType: d.Event, CustomerID: d.CustomerID, Timestamp: d.Timestamp.UTC()}
	var detail any
	switch {
	case d.Health != nil:
		e.Reason, detail = d.Health.ChangeReason, d.Health
	case d.Churn != nil:
		e.Reason, detail = d.Churn.RiskLevel, d.Churn
	case d.Expansion != nil:
		e.Reason, detail = d.Expansion.OpportunityType, d.Expansion
	}
	if detail != nil {
		e.Detail, _ = json.Marshal(detail) // plain fields: cannot fail
	}
	if d.Explanation != nil {
		e.Summary = d.Explanation.Summary
		e.Explanation, _ = json.Marshal(d.Explanation)
	}
	return e
}

// derivedColumns lists derived_events' columns in insert and select order.
const derivedColumns = "event_id, event_type, customer_id, reason, summary, detail, explanation, timestamp"

// InsertDerived inserts events as one batch (the loader's DerivedSink): all
// of them or, on error, possibly none. Inserting an event again is
// harmless: queries count each event id once.
func (s *Store) InsertDerived(ctx context.Context, events []DerivedEvent) error {
	if len(events) == 0 {
		return nil
	}
	if err := s.ready(ctx); err != nil {
		return fmt.Errorf("insert %d derived events: %w", len(events), err)
	}
	rows := make([][]any, len(events))
	for i, e := range events {
		rows[i] = []any{e.EventID, e.EventType, e.CustomerID, e.Reason, e.Summary,
			string(e.Detail), string(e.Explanation), e.Timestamp.UTC()}
	}
	if err := s.ex.insert(ctx, s.db+".derived_events", derivedColumns, rows); err != nil {
		return fmt.Errorf("insert %d derived events: %w", len(events), err)
	}
	return nil
}

// DerivedSink stores derived-event rows: *Store.
type DerivedSink interface {
	InsertDerived(ctx context.Context, events []DerivedEvent) error
}

// NewDerivedLoader returns a loader that reads the three derived topics
// (topics.Derived) in consumer group DerivedLoaderGroup, decodes each
// record with codec and inserts the rows into sink in batches, committing
// offsets after each insert. Run it beside the dispatcher; opts tune
// batching, logging and metrics (loader.With…).
func NewDerivedLoader(kopts []kgo.Opt, codec *schemas.Codec, sink DerivedSink, opts ...loader.Option) (*loader.Loader[DerivedEvent], error) {
	if codec == nil || sink == nil {
		return nil, fmt.Errorf("analytics: derived loader needs a codec and a sink")
	}
	return loader.New(kopts, loader.Spec[DerivedEvent]{
		Name:   "derived",
		Group:  DerivedLoaderGroup,
		Topics: topics.Derived(),
		Decode: func(r *kgo.Record) (DerivedEvent, error) {
			d, err := codec.DecodeDerived(r.Value)
			if err != nil {
				return DerivedEvent{}, err
			}
			return DerivedEventOf(d), nil
		},
		Insert: sink.InsertDerived,
	}, opts...)
}

// DerivedCount is how many events of one type and reason were derived in
// one time bucket.
type DerivedCount struct {
	Time      time.Time `json:"time"` // start of the bucket, UTC
	EventType string    `json:"event_type"`
	Reason    string    `json:"reason"`
	Events    uint64    `json:"events"` // distinct event ids
}

// DerivedEventCounts returns derived events by time bucket, type and
// reason, oldest bucket first (Query: Since, Until, Step of at least a
// second, EventType, Limit on rows, default MaxLimit).
func (s *Store) DerivedEventCounts(ctx context.Context, q Query) ([]DerivedCount, error) {
	since, until, err := q.window(time.Second)
	if err != nil {
		return nil, err
	}
	step := strconv.FormatInt(q.step(time.Second), 10)
	var f filter
	f.between("timestamp", since, until)
	f.addIf("event_type", q.EventType)
	sql := `SELECT toUInt32(intDiv(toUInt32(timestamp), ` + step + `) * ` + step + `) AS bucket, event_type, reason,
    toUInt64(uniqExact(event_id))
FROM ` + s.db + `.derived_events` + f.sql() + `
GROUP BY bucket, event_type, reason
ORDER BY bucket, event_type, reason
LIMIT ` + strconv.Itoa(q.seriesLimit())
	var out []DerivedCount
	err = s.run(ctx, "derived event counts", sql, f.args, func(r resultRows) error {
		var c DerivedCount
		var t uint32
		if err := r.Scan(&t, &c.EventType, &c.Reason, &c.Events); err != nil {
			return err
		}
		c.Time = unix(t)
		out = append(out, c)
		return nil
	})
	return out, err
}

// RecentDerivedEvents returns derived events with their explanations,
// newest first, each event once (Query: Since, Until, EventType, Limit).
func (s *Store) RecentDerivedEvents(ctx context.Context, q Query) ([]DerivedEvent, error) {
	since, until, err := q.window(time.Second)
	if err != nil {
		return nil, err
	}
	var f filter
	f.between("timestamp", since, until)
	f.addIf("event_type", q.EventType)
	sql := `SELECT event_id, event_type, customer_id, reason, summary, detail, explanation, toUInt32(timestamp)
FROM ` + s.db + `.derived_events` + f.sql() + `
ORDER BY timestamp DESC, event_id
LIMIT 1 BY event_id
LIMIT ` + strconv.Itoa(q.limit())
	var out []DerivedEvent
	err = s.run(ctx, "recent derived events", sql, f.args, func(r resultRows) error {
		var e DerivedEvent
		var detail, explanation string
		var t uint32
		if err := r.Scan(&e.EventID, &e.EventType, &e.CustomerID, &e.Reason, &e.Summary, &detail, &explanation, &t); err != nil {
			return err
		}
		if detail != "" {
			e.Detail = json.RawMessage(detail)
		}
		if explanation != "" {
			e.Explanation = json.RawMessage(explanation)
		}
		e.Timestamp = unix(t)
		out = append(out, e)
		return nil
	})
	return out, err
}
