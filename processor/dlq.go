package processor

import (
	"errors"
	"strconv"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/topics"
)

// ErrNoCustomer is the poison reason of a customer event that decoded but
// names no customer: it has no key to keep state under.
var ErrNoCustomer = errors.New("processor: customer event without customer id")

// Headers of a record on topics.CustomerEventsDLQ, beside the poison
// record's own key, value and headers.
const (
	HeaderReason          = "vitals-dlq-reason"           // PoisonReason of the failure
	HeaderError           = "vitals-dlq-error"            // the decode error's text
	HeaderSourceTopic     = "vitals-dlq-source-topic"     // topic the record was read from
	HeaderSourcePartition = "vitals-dlq-source-partition" // its partition, decimal
	HeaderSourceOffset    = "vitals-dlq-source-offset"    // its offset, decimal
)

// Poison reasons, the values of HeaderReason and the reason label of
// vitals_processor_dlq_total.
const (
	ReasonFraming       = "framing"        // not Confluent-framed (schemas.ErrFraming)
	ReasonUnknownSchema = "unknown_schema" // schema id not known (schemas.ErrUnknownSchema)
	ReasonWrongSubject  = "wrong_subject"  // schema of another subject (schemas.ErrWrongSubject)
	ReasonMalformed     = "malformed"      // payload does not decode (schemas.ErrMalformed)
	ReasonNoCustomer    = "no_customer"    // decoded, but no customer id (ErrNoCustomer)
	ReasonUndecodable   = "undecodable"    // any other decode error
)

// PoisonReason classifies a decode error into one of the Reason constants.
func PoisonReason(err error) string {
	switch {
	case errors.Is(err, schemas.ErrFraming):
		return ReasonFraming
	case errors.Is(err, schemas.ErrUnknownSchema):
		return ReasonUnknownSchema
	case errors.Is(err, schemas.ErrWrongSubject):
		return ReasonWrongSubject
	case errors.Is(err, schemas.ErrMalformed):
		return ReasonMalformed
	case errors.Is(err, ErrNoCustomer):
		return ReasonNoCustomer
	}
	return ReasonUndecodable
}

// dlqRecord is the dead-letter copy of the poison record r: the same key,
// value and headers, plus the reason and where r came from.
func dlqRecord(r *kgo.Record, reason string, err error) *kgo.Record {
	h := make([]kgo.RecordHeader, 0, len(r.Headers)+5)
	h = append(h, r.Headers...)
	h = append(h,
		kgo.RecordHeader{Key: HeaderReason, Value: []byte(reason)},
		kgo.RecordHeader{Key: HeaderError, Value: []byte(err.Error())},
		kgo.RecordHeader{Key: HeaderSourceTopic, Value: []byte(r.Topic)},
		kgo.RecordHeader{Key: HeaderSourcePartition, Value: []byte(strconv.Itoa(int(r.Partition)))},
		kgo.RecordHeader{Key: HeaderSourceOffset, Value: []byte(strconv.FormatInt(r.Offset, 10))},
	)
	return &kgo.Record{Topic: topics.CustomerEventsDLQ, Key: r.Key, Value: r.Value, Headers: h}
}
