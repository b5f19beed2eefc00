package producer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/vitalshq/vitals/event"
)

// Limits of the ingest format.
const (
	// MaxBatch is the largest number of events in one request.
	MaxBatch = 1000
	// MaxBodyBytes is the largest request body accepted.
	MaxBodyBytes = 5 << 20
	// MaxBulkBatch and MaxBulkBodyBytes bound POST /v1/events/batch, the
	// bulk route (rate-limit class bulk, signed).
	MaxBulkBatch     = 10000
	MaxBulkBodyBytes = 10 << 20
	// MaxFutureSkew is how far in the future occurred_at may lie.
	MaxFutureSkew = time.Hour
)

// InvalidEventError says which event of a request is invalid, and why.
type InvalidEventError struct {
	Index  int    // position in the array; 0 for a single object
	Field  string // JSON path inside the event, e.g. "data.score"; "" for the whole event
	Reason string // actionable, e.g. "must be an integer 0–10, got 11"
}

func (e *InvalidEventError) Error() string {
	if e.Field == "" {
		return fmt.Sprintf("event %d: %s", e.Index, e.Reason)
	}
	return fmt.Sprintf("event %d: %s %s", e.Index, e.Field, e.Reason)
}

// ErrMalformed is wrapped by errors for bodies that are not a JSON object or
// array of objects at all.
var ErrMalformed = errors.New("malformed JSON")

// ErrTooMany is returned for arrays longer than the batch limit.
var ErrTooMany = errors.New("too many events in one request")

// ErrEmpty is returned for an empty array.
var ErrEmpty = errors.New("no events in the request")

var customerIDPattern = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.:\-]{0,127}$`)

type ingest struct {
	EventID    *string         `json:"event_id"`
	Type       *string         `json:"type"`
	CustomerID *string         `json:"customer_id"`
	OccurredAt *string         `json:"occurred_at"`
	Data       json.RawMessage `json:"data"`
}

// Parse parses an ingest body: one event object or an array of at most
// MaxBatch. Every event is validated; the first invalid one is reported as
// an *InvalidEventError and no event is returned. Events without event_id
// get a generated one (UUIDv7). source is recorded on every event.
func Parse(body []byte, source string, now time.Time) ([]event.CustomerEvent, error) {
	return ParseN(body, source, now, MaxBatch)
}

// ParseN is Parse with a batch limit of maxEvents.
func ParseN(body []byte, source string, now time.Time, maxEvents int) ([]event.CustomerEvent, error) {
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return nil, fmt.Errorf("%w: the body is empty; send an event object or an array of them", ErrMalformed)
	}
	var raws []json.RawMessage
	switch body[0] {
	case '[':
		if err := json.Unmarshal(body, &raws); err != nil {
			return nil, fmt.Errorf("%w: %s", ErrMalformed, describeJSONError(err, body))
		}
		if len(raws) == 0 {
			return nil, ErrEmpty
		}
		if len(raws) > maxEvents {
			return nil, fmt.Errorf("%w: %d, at most %d", ErrTooMany, len(raws), maxEvents)
		}
	case '{':
		if !json.Valid(body) {
			var v any
			return nil, fmt.Errorf("%w: %s", ErrMalformed, describeJSONError(json.Unmarshal(body, &v), body))
		}
		raws = []json.RawMessage{body}
	default:
		return nil, fmt.Errorf("%w: the body must be a JSON object or array, it starts with %q", ErrMalformed, body[:1])
	}
	out := make([]event.CustomerEvent, len(raws))
	for i, raw := range raws {
		ev, err := parseOne(raw, source, now)
		if err != nil {
			err.Index = i
			return nil, err
		}
		out[i] = ev
	}
	return out, nil
}

func parseOne(raw json.RawMessage, source string, now time.Time) (event.CustomerEvent, *InvalidEventError) {
	var in ingest
	if err := strictDecode(raw, &in); err != nil {
		return event.CustomerEvent{}, err
	}
	var ev event.CustomerEvent
	ev.Source = source
	if in.EventID != nil && *in.EventID != "" {
		if len(*in.EventID) > 128 {
			return ev, &InvalidEventError{Field: "event_id", Reason: "must be at most 128 characters"}
		}
		ev.EventID = *in.EventID
	} else {
		ev.EventID = uuid.Must(uuid.NewV7()).String()
	}
	if in.Type == nil || *in.Type == "" {
		return ev, &InvalidEventError{Field: "type", Reason: "is required; one of " + strings.Join(event.CustomerTypes(), ", ")}
	}
	if in.CustomerID == nil || *in.CustomerID == "" {
		return ev, &InvalidEventError{Field: "customer_id", Reason: "is required, e.g. \"cust_12345\""}
	}
	if !customerIDPattern.MatchString(*in.CustomerID) {
		return ev, &InvalidEventError{Field: "customer_id", Reason: "must be 1–128 characters of letters, digits, '_', '.', ':' or '-', starting with a letter or digit"}
	}
	ev.CustomerID = *in.CustomerID
	if in.OccurredAt == nil || *in.OccurredAt == "" {
		return ev, &InvalidEventError{Field: "occurred_at", Reason: "is required, an RFC 3339 time such as \"2025-12-05T08:20:00Z\""}
	}
	t, err := time.Parse(time.RFC3339Nano, *in.OccurredAt)
	if err != nil {
		return ev, &InvalidEventError{Field: "occurred_at", Reason: fmt.Sprintf("must be an RFC 3339 time such as \"2025-12-05T08:20:00Z\", got %q", *in.OccurredAt)}
	}
	if t.UTC().Year() < 0 {
		// "0000-01-01T00:00:00+01:00" is year -1 in UTC, which has no
		// RFC 3339 form: the webhook bodies and reports could not show it.
		return ev, &InvalidEventError{Field: "occurred_at", Reason: fmt.Sprintf("lies before the year 0000 in UTC (%s)", *in.OccurredAt)}
	}
	if t.After(now.Add(MaxFutureSkew)) {
		return ev, &InvalidEventError{Field: "occurred_at", Reason: fmt.Sprintf("lies more than %s in the future (%s); check the sender's clock", MaxFutureSkew, *in.OccurredAt)}
	}
	ev.OccurredAt = t.UTC().Truncate(time.Millisecond)
	if len(in.Data) == 0 || string(in.Data) == "null" {
		return ev, &InvalidEventError{Field: "data", Reason: "is required: an object with the fields of type " + *in.Type}
	}
	p, perr := parseData(*in.Type, in.Data)
	if perr != nil {
		return ev, perr
	}
	ev.Data = p
	return ev, nil
}

func strictDecode(raw []byte, v any) *InvalidEventError {
	dec := json.NewDecoder(bytes.NewReader(raw))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		var te *json.UnmarshalTypeError
		switch {
		case errors.As(err, &te):
			return &InvalidEventError{Field: te.Field, Reason: fmt.Sprintf("must be %s, got a JSON %s", jsonKind(te.Type.Kind().String()), te.Value)}
		case strings.HasPrefix(err.Error(), "json: unknown field "):
			return &InvalidEventError{Field: strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`), Reason: "is not a known field; check its spelling"}
		default:
			return &InvalidEventError{Reason: "is not a JSON object: " + err.Error()}
		}
	}
	if _, err := dec.Token(); err != io.EOF {
		return &InvalidEventError{Reason: "has trailing data after the JSON object"}
	}
	return nil
}

func jsonKind(goKind string) string {
	switch goKind {
	case "int64", "int32", "int":
		return "an integer"
	case "bool":
		return "true or false"
	case "string":
		return "a string"
	case "slice":
		return "an array"
	case "ptr", "struct":
		return "an object"
	}
	return goKind
}

func describeJSONError(err error, body []byte) string {
	var se *json.SyntaxError
	if errors.As(err, &se) {
		return fmt.Sprintf("%v at byte %d", se, se.Offset)
	}
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		return fmt.Sprintf("element at byte %d is a JSON %s, expected an event object", te.Offset, te.Value)
	}
	if err != nil {
		return err.Error()
	}
	return "invalid JSON"
}
