package producer

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/topics"
)

// Encoder encodes a customer event for the wire (package schemas' Codec).
type Encoder interface {
	EncodeCustomerEvent(event.CustomerEvent) ([]byte, error)
}

// Producer writes customer events to Kafka.
type Producer struct {
	cl  *kgo.Client
	enc Encoder
}

// New returns a Producer over a client built from clientOpts (seed brokers
// and the like). The client is idempotent with acks=all, the franz-go
// default, which New makes explicit. Close releases it.
func New(clientOpts []kgo.Opt, enc Encoder) (*Producer, error) {
	cl, err := kgo.NewClient(append(slices.Clone(clientOpts),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.ProducerLinger(2*time.Millisecond),
		kgo.ProducerBatchCompression(kgo.Lz4Compression(), kgo.NoCompression()),
		kgo.DefaultProduceTopic(topics.CustomerEvents),
	)...)
	if err != nil {
		return nil, fmt.Errorf("producer: %w", err)
	}
	return &Producer{cl: cl, enc: enc}, nil
}

// Client exposes the underlying client, for readiness checks.
func (p *Producer) Client() *kgo.Client { return p.cl }

// Close flushes and closes the client.
func (p *Producer) Close() { p.cl.Close() }

// ErrEncode wraps failures to encode an event (a bug, not bad input: Parse
// validated it).
var ErrEncode = errors.New("encode event")

// Produce writes evs to the customer-events topic keyed by customer_id and
// returns once the broker acknowledged all of them. All are encoded before
// any is sent, so an encoding failure produces nothing. If the broker
// rejects some records after others were written, the error says so; the
// client retries the request, and the processor drops duplicates by
// event_id.
func (p *Producer) Produce(ctx context.Context, evs []event.CustomerEvent) error {
	recs := make([]*kgo.Record, len(evs))
	for i, ev := range evs {
		b, err := p.enc.EncodeCustomerEvent(ev)
		if err != nil {
			return fmt.Errorf("%w %d (%s): %v", ErrEncode, i, ev.EventID, err)
		}
		recs[i] = &kgo.Record{Key: []byte(ev.CustomerID), Value: b, Timestamp: time.Now(),
			Headers: []kgo.RecordHeader{{Key: "event-type", Value: []byte(ev.Type())}}}
	}
	if err := p.cl.ProduceSync(ctx, recs...).FirstErr(); err != nil {
		return fmt.Errorf("produce %d events: %w", len(recs), err)
	}
	return nil
}
