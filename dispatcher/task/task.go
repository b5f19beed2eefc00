// Package task is the wire form of one pending webhook delivery: a derived
// event bound for one endpoint, with its attempt history. Tasks travel in
// the retry tiers (topics.Retry), the dead-letter topic (topics.DLQ) and
// replays. The record value is the derived event's record value unchanged
// (Avro, Confluent framing), so any tool that reads the derived topics reads
// these too; everything else is in headers.
//
// It must never hold delivery logic: it only encodes and decodes.
package task

import (
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
)

// Header names. All values are ASCII.
const (
	HeaderEndpoint     = "vitals-endpoint"      // endpoint id
	HeaderEventID      = "vitals-event-id"      // derived event id (the webhook-id)
	HeaderEventType    = "vitals-event-type"    // derived event name
	HeaderAttempts     = "vitals-attempts"      // attempts made so far (decimal)
	HeaderDueAt        = "vitals-due-at"        // next attempt not before (Unix ms)
	HeaderFirstAttempt = "vitals-first-attempt" // first attempt time (Unix ms)
	HeaderLastError    = "vitals-last-error"    // error class of the last attempt
	HeaderLastStatus   = "vitals-last-status"   // HTTP status of the last attempt, 0 for none
	HeaderReplay       = "vitals-replay"        // replay job id, when the task comes from a replay
)

// Task is one pending (or dead-lettered) delivery.
type Task struct {
	EndpointID   string
	EventID      string
	EventType    string
	CustomerID   string    // the record key
	Event        []byte    // the derived event's record value, unchanged
	Attempts     int       // attempts made so far; 0 for a replay not yet tried
	DueAt        time.Time // next attempt not before
	FirstAttempt time.Time // zero before the first attempt
	LastError    string    // error class of the last attempt ("" for none)
	LastStatus   int       // HTTP status of the last attempt (0 for none)
	ReplayID     string    // set when the task comes from a replay
}

// Record returns t as a record for topic, keyed by customer id so that
// one customer's tasks stay in order within a tier.
func (t Task) Record(topic string) *kgo.Record {
	h := []kgo.RecordHeader{
		{Key: HeaderEndpoint, Value: []byte(t.EndpointID)},
		{Key: HeaderEventID, Value: []byte(t.EventID)},
		{Key: HeaderEventType, Value: []byte(t.EventType)},
		{Key: HeaderAttempts, Value: []byte(strconv.Itoa(t.Attempts))},
		{Key: HeaderDueAt, Value: []byte(strconv.FormatInt(t.DueAt.UnixMilli(), 10))},
	}
	if !t.FirstAttempt.IsZero() {
		h = append(h, kgo.RecordHeader{Key: HeaderFirstAttempt, Value: []byte(strconv.FormatInt(t.FirstAttempt.UnixMilli(), 10))})
	}
	if t.LastError != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderLastError, Value: []byte(t.LastError)})
	}
	if t.LastStatus != 0 {
		h = append(h, kgo.RecordHeader{Key: HeaderLastStatus, Value: []byte(strconv.Itoa(t.LastStatus))})
	}
	if t.ReplayID != "" {
		h = append(h, kgo.RecordHeader{Key: HeaderReplay, Value: []byte(t.ReplayID)})
	}
	return &kgo.Record{Topic: topic, Key: []byte(t.CustomerID), Value: t.Event, Headers: h}
}

// ErrMalformed is wrapped by Decode errors: a record that is not a task.
var ErrMalformed = errors.New("malformed delivery task")

// Decode reads a task from a record written by Record.
func Decode(r *kgo.Record) (Task, error) {
	t := Task{CustomerID: string(r.Key), Event: r.Value}
	for _, h := range r.Headers {
		v := string(h.Value)
		var err error
		switch h.Key {
		case HeaderEndpoint:
			t.EndpointID = v
		case HeaderEventID:
			t.EventID = v
		case HeaderEventType:
			t.EventType = v
		case HeaderAttempts:
			t.Attempts, err = strconv.Atoi(v)
		case HeaderDueAt:
			t.DueAt, err = unixMilli(v)
		case HeaderFirstAttempt:
			t.FirstAttempt, err = unixMilli(v)
		case HeaderLastError:
			t.LastError = v
		case HeaderLastStatus:
			t.LastStatus, err = strconv.Atoi(v)
		case HeaderReplay:
			t.ReplayID = v
		}
		if err != nil {
			return Task{}, fmt.Errorf("%w: header %s=%q: %v", ErrMalformed, h.Key, v, err)
		}
	}
	if t.EndpointID == "" || t.EventID == "" || t.DueAt.IsZero() || len(t.Event) == 0 {
		return Task{}, fmt.Errorf("%w: %s/%d@%d lacks endpoint, event id, due time or event", ErrMalformed, r.Topic, r.Partition, r.Offset)
	}
	return t, nil
}

func unixMilli(s string) (time.Time, error) {
	ms, err := strconv.ParseInt(s, 10, 64)
	if err != nil {
		return time.Time{}, err
	}
	return time.UnixMilli(ms).UTC(), nil
}
