package audit

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/analytics/loader"
	"github.com/vitalshq/vitals/topics"
)

// DefaultLoaderGroup is the consumer group of the audit loader.
const DefaultLoaderGroup = "vitals-audit-loader"

// Sink stores audit records: analytics.AuditStore (ClickHouse api_audit).
// InsertAudit must store all of recs or fail; storing a record twice must
// be harmless (the loader is at least once).
type Sink interface {
	InsertAudit(ctx context.Context, recs []Record) error
}

// NewLoader returns the loader of topics.Audit into sink: package
// analytics/loader's Kafka → store loader (consumer group
// DefaultLoaderGroup, offsets committed only after the insert, failed
// inserts retried), decoding audit records; a record that is not one is
// logged and counted (vitals_loader_records_undecodable_total{loader="audit"})
// and skipped. opts are loader options (WithTopics, WithBatchSize, …).
func NewLoader(kopts []kgo.Opt, sink Sink, opts ...loader.Option) (*loader.Loader[Record], error) {
	if sink == nil {
		return nil, errors.New("audit: loader needs a sink")
	}
	return loader.New(kopts, loader.Spec[Record]{
		Name:   "audit",
		Group:  DefaultLoaderGroup,
		Topics: []string{topics.Audit},
		Decode: decodeRecord,
		Insert: sink.InsertAudit,
	}, opts...)
}

// decodeRecord reads one audit record from the topic.
func decodeRecord(r *kgo.Record) (Record, error) {
	var rec Record
	if err := json.Unmarshal(r.Value, &rec); err != nil {
		return Record{}, fmt.Errorf("not an audit record: %w", err)
	}
	if rec.Instance == "" || rec.Seq == 0 {
		return Record{}, errors.New("not an audit record: no chain or sequence")
	}
	return rec, nil
}
