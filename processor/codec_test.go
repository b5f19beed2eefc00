package processor_test

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/vitalshq/vitals/event"
)

// jsonCodec is a test-only processor.Codec: customer events in the ingest
// JSON shape, derived events as their webhook body. Production uses the Avro
// codec of package schemas.
type jsonCodec struct{}

type wireEvent struct {
	EventID    string          `json:"event_id"`
	Type       string          `json:"type"`
	CustomerID string          `json:"customer_id"`
	OccurredAt time.Time       `json:"occurred_at"`
	Source     string          `json:"source"`
	Data       json.RawMessage `json:"data"`
}

func (jsonCodec) encodeCustomerEvent(ev event.CustomerEvent) ([]byte, error) {
	data, err := json.Marshal(ev.Data)
	if err != nil {
		return nil, err
	}
	return json.Marshal(wireEvent{EventID: ev.EventID, Type: ev.Type(), CustomerID: ev.CustomerID,
		OccurredAt: ev.OccurredAt, Source: ev.Source, Data: data})
}

func (jsonCodec) DecodeCustomerEvent(b []byte) (event.CustomerEvent, error) {
	var w wireEvent
	if err := json.Unmarshal(b, &w); err != nil {
		return event.CustomerEvent{}, fmt.Errorf("decode customer event: %w", err)
	}
	var p event.Payload
	var err error
	switch w.Type {
	case event.TypeUsageReported:
		p, err = decodeAs[event.UsageReported](w.Data)
	case event.TypeLoginRecorded:
		p, err = decodeAs[event.LoginRecorded](w.Data)
	case event.TypeSupportTicket:
		p, err = decodeAs[event.SupportTicket](w.Data)
	case event.TypePaymentEvent:
		p, err = decodeAs[event.PaymentEvent](w.Data)
	case event.TypeNpsResponse:
		p, err = decodeAs[event.NpsResponse](w.Data)
	case event.TypeContractUpdated:
		p, err = decodeAs[event.ContractUpdated](w.Data)
	case event.TypeSponsorChanged:
		p, err = decodeAs[event.SponsorChanged](w.Data)
	default:
		err = fmt.Errorf("unknown type %q", w.Type)
	}
	if err != nil {
		return event.CustomerEvent{}, fmt.Errorf("decode customer event %s: %w", w.EventID, err)
	}
	return event.CustomerEvent{EventID: w.EventID, CustomerID: w.CustomerID, OccurredAt: w.OccurredAt,
		Source: w.Source, Data: p}, nil
}

func decodeAs[T event.Payload](b []byte) (event.Payload, error) {
	var v T
	err := json.Unmarshal(b, &v)
	return v, err
}

func (jsonCodec) EncodeDerived(d event.Derived) ([]byte, error) { return json.Marshal(d) }
