package schemas

import (
	"embed"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"sort"

	"github.com/linkedin/goavro/v2"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/topics"
)

//go:embed manifest.json *.avsc
var files embed.FS

// Failure classes. Every error returned by a Codec wraps exactly one of them,
// so a consumer can route a bad record (for example to the dead-letter topic)
// with errors.Is.
var (
	// ErrFraming means the record is not in the Confluent wire format: it is
	// shorter than the 5-byte header or its magic byte is not 0.
	ErrFraming = errors.New("schemas: not Confluent-framed Avro")
	// ErrUnknownSchema means the schema id in the header is not in the
	// manifest (written by a newer release, or not by Vitals at all).
	ErrUnknownSchema = errors.New("schemas: unknown schema id")
	// ErrWrongSubject means the schema id is known but belongs to another
	// subject than the one asked for (a record on the wrong topic).
	ErrWrongSubject = errors.New("schemas: schema id of another subject")
	// ErrMalformed means the payload does not decode with its writer's
	// schema: truncated, garbage, trailing bytes, or values the Go types
	// cannot hold.
	ErrMalformed = errors.New("schemas: malformed Avro payload")
	// ErrInvalid means a Go value cannot be encoded: no payload, a symbol not
	// in an enum, a renewal date that is not YYYY-MM-DD, or a derived event
	// whose body does not match its Event.
	ErrInvalid = errors.New("schemas: value does not fit the schema")
)

// headerLen is the size of the Confluent header: magic byte and schema id.
const headerLen = 5

// Subject returns the schema registry subject of the values of topic under
// the TopicNameStrategy: topic + "-value".
func Subject(topic string) string { return topic + "-value" }

// Info describes one schema version, in the shape a schema registry needs.
type Info struct {
	ID      int    // globally unique id; the one written in the wire header
	Subject string // "<topic>-value"
	Version int    // 1, 2, … within Subject
	Schema  string // the schema JSON text, as stored in the .avsc file
}

// manifestEntry is one row of manifest.json.
type manifestEntry struct {
	ID      int    `json:"id"`
	Subject string `json:"subject"`
	Version int    `json:"version"`
	File    string `json:"file"`
}

type manifest struct {
	Schemas []manifestEntry `json:"schemas"`
}

// kind says which Go type a subject maps to: kindCustomer, or the derived
// event name (event.HealthScoreChange, …).
type kind string

const (
	kindCustomer kind = "customer_event"
	kindState    kind = "customer_state"
)

// derivedKind reports whether k is a derived event name.
func derivedKind(k kind) bool { return k != kindCustomer && k != kindState }

// writer is one parsed schema version: the codec to decode records written
// with it and, for the latest version of a subject, to encode.
type writer struct {
	info   Info
	kind   kind
	codec  *goavro.Codec
	shape  *node // structural checker run before goavro allocates
	header [headerLen]byte
}

// Codec encodes and decodes the Avro records of the Vitals data topics. It is
// immutable after New and safe for concurrent use.
type Codec struct {
	byID     map[uint32]*writer
	customer *writer            // latest customer-events version
	derived  map[string]*writer // latest version per derived event name
	latest   map[string]*writer // latest version per subject
	infos    []Info
}

// New returns a Codec for every schema version in the embedded manifest. It
// fails if the manifest is inconsistent or a schema does not parse.
func New() (*Codec, error) {
	return newCodec(files, nil)
}

// newCodec builds a Codec from the manifest.json in fsys plus extra entries
// (whose files are also read from fsys). Tests use extra to add writer
// versions that were never released.
func newCodec(fsys fs.FS, extra []manifestEntry) (*Codec, error) {
	raw, err := fs.ReadFile(fsys, "manifest.json")
	if err != nil {
		return nil, fmt.Errorf("schemas: read manifest: %w", err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, fmt.Errorf("schemas: parse manifest: %w", err)
	}
	entries := append(m.Schemas, extra...)

	kinds := subjectKinds()
	c := &Codec{
		byID:    make(map[uint32]*writer, len(entries)),
		derived: make(map[string]*writer, len(event.DerivedTypes())),
		latest:  make(map[string]*writer, len(kinds)),
	}
	versions := make(map[string]bool, len(entries))
	for _, e := range entries {
		k, ok := kinds[e.Subject]
		if !ok {
			return nil, fmt.Errorf("schemas: manifest id %d: unknown subject %q", e.ID, e.Subject)
		}
		if e.ID <= 0 || uint64(e.ID) > 1<<31-1 {
			return nil, fmt.Errorf("schemas: manifest id %d: out of range", e.ID)
		}
		if _, dup := c.byID[uint32(e.ID)]; dup {
			return nil, fmt.Errorf("schemas: manifest id %d: used twice", e.ID)
		}
		sv := fmt.Sprintf("%s/%d", e.Subject, e.Version)
		if e.Version < 0 || versions[sv] {
			return nil, fmt.Errorf("schemas: manifest id %d: bad or duplicate version %s", e.ID, sv)
		}
		versions[sv] = true

		text, err := fs.ReadFile(fsys, e.File)
		if err != nil {
			return nil, fmt.Errorf("schemas: manifest id %d: %w", e.ID, err)
		}
		codec, err := goavro.NewCodec(string(text))
		if err != nil {
			return nil, fmt.Errorf("schemas: parse %s: %w", e.File, err)
		}
		shape, err := compileShape(text)
		if err != nil {
			return nil, fmt.Errorf("schemas: parse %s: %w", e.File, err)
		}
		w := &writer{
			info:  Info{ID: e.ID, Subject: e.Subject, Version: e.Version, Schema: string(text)},
			kind:  k,
			codec: codec,
			shape: shape,
		}
		binary.BigEndian.PutUint32(w.header[1:], uint32(e.ID))
		c.byID[uint32(e.ID)] = w
		c.infos = append(c.infos, w.info)

		if cur := c.latest[e.Subject]; cur == nil || e.Version > cur.info.Version {
			c.latest[e.Subject] = w
		}
		if k == kindCustomer {
			if c.customer == nil || e.Version > c.customer.info.Version {
				c.customer = w
			}
		} else if derivedKind(k) {
			if cur := c.derived[string(k)]; cur == nil || e.Version > cur.info.Version {
				c.derived[string(k)] = w
			}
		}
	}
	if c.customer == nil {
		return nil, fmt.Errorf("schemas: manifest has no schema for %s", Subject(topics.CustomerEvents))
	}
	for _, et := range event.DerivedTypes() {
		if c.derived[et] == nil {
			return nil, fmt.Errorf("schemas: manifest has no schema for %s", Subject(topics.ForDerived(et)))
		}
	}
	sort.Slice(c.infos, func(i, j int) bool { return c.infos[i].ID < c.infos[j].ID })
	return c, nil
}

// subjectKinds maps every data subject to the Go type it carries.
func subjectKinds() map[string]kind {
	m := map[string]kind{Subject(topics.CustomerEvents): kindCustomer, Subject(topics.CustomerState): kindState}
	for _, et := range event.DerivedTypes() {
		m[Subject(topics.ForDerived(et))] = kind(et)
	}
	return m
}

// Schemas returns every schema version the Codec knows, ordered by id. The
// slice is a copy; callers may keep or change it.
func (c *Codec) Schemas() []Info {
	out := make([]Info, len(c.infos))
	copy(out, c.infos)
	return out
}

// SchemaID returns the schema id in the Confluent header of msg, or an error
// wrapping ErrFraming.
func SchemaID(msg []byte) (int, error) {
	if len(msg) < headerLen {
		return 0, fmt.Errorf("%w: %d bytes, want at least %d", ErrFraming, len(msg), headerLen)
	}
	if msg[0] != 0 {
		return 0, fmt.Errorf("%w: magic byte %d, want 0", ErrFraming, msg[0])
	}
	return int(binary.BigEndian.Uint32(msg[1:headerLen])), nil
}

// writerOf returns the writer of msg and its Avro payload. want reports
// whether a kind is acceptable for the caller.
func (c *Codec) writerOf(msg []byte, want func(kind) bool) (*writer, []byte, error) {
	id, err := SchemaID(msg)
	if err != nil {
		return nil, nil, err
	}
	w := c.byID[uint32(id)]
	if w == nil {
		return nil, nil, fmt.Errorf("%w: %d", ErrUnknownSchema, id)
	}
	if !want(w.kind) {
		return nil, nil, fmt.Errorf("%w: id %d is %s", ErrWrongSubject, id, w.info.Subject)
	}
	return w, msg[headerLen:], nil
}

// decode checks payload against the writer's shape, then decodes it with
// goavro. The shape check comes first because goavro sizes arrays from the
// untrusted block count before reading them.
func (w *writer) decode(payload []byte) (map[string]any, error) {
	if err := w.shape.check(payload); err != nil {
		return nil, fmt.Errorf("%w: schema id %d: %v", ErrMalformed, w.info.ID, err)
	}
	native, rest, err := w.codec.NativeFromBinary(payload)
	if err != nil {
		return nil, fmt.Errorf("%w: schema id %d: %v", ErrMalformed, w.info.ID, err)
	}
	if len(rest) != 0 {
		return nil, fmt.Errorf("%w: schema id %d: %d trailing bytes", ErrMalformed, w.info.ID, len(rest))
	}
	m, ok := native.(map[string]any)
	if !ok {
		return nil, fmt.Errorf("%w: schema id %d: top level is %T, not a record", ErrMalformed, w.info.ID, native)
	}
	return m, nil
}

// encode frames native with the writer's header. sizeHint is the expected
// payload size, so the output is allocated once in the common case.
func (w *writer) encode(native map[string]any, sizeHint int) ([]byte, error) {
	buf := make([]byte, headerLen, headerLen+sizeHint)
	copy(buf, w.header[:])
	buf, err := w.codec.BinaryFromNative(buf, native)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrInvalid, w.info.Subject, err)
	}
	return buf, nil
}

// EncodeCustomerEvent encodes e with the latest schema of the customer-events
// subject, in the Confluent wire format.
func (c *Codec) EncodeCustomerEvent(e event.CustomerEvent) ([]byte, error) {
	native, size, err := customerToNative(e)
	if err != nil {
		return nil, fmt.Errorf("encode customer event %q: %w", e.EventID, err)
	}
	out, err := c.customer.encode(native, size)
	if err != nil {
		return nil, fmt.Errorf("encode customer event %q: %w", e.EventID, err)
	}
	return out, nil
}

// DecodeCustomerEvent decodes a customer-events record written with any
// schema version in the manifest.
func (c *Codec) DecodeCustomerEvent(msg []byte) (event.CustomerEvent, error) {
	w, payload, err := c.writerOf(msg, func(k kind) bool { return k == kindCustomer })
	if err != nil {
		return event.CustomerEvent{}, fmt.Errorf("decode customer event: %w", err)
	}
	native, err := w.decode(payload)
	if err != nil {
		return event.CustomerEvent{}, fmt.Errorf("decode customer event: %w", err)
	}
	e, err := customerFromNative(native)
	if err != nil {
		return event.CustomerEvent{}, fmt.Errorf("decode customer event: schema id %d: %w", w.info.ID, err)
	}
	return e, nil
}

// EncodeDerived encodes d with the latest schema of the subject of its topic
// (topics.ForDerived(d.Event)), in the Confluent wire format.
func (c *Codec) EncodeDerived(d event.Derived) ([]byte, error) {
	w := c.derived[d.Event]
	if w == nil {
		return nil, fmt.Errorf("encode derived %q: %w: unknown event %q", d.EventID, ErrInvalid, d.Event)
	}
	native, size, err := derivedToNative(d)
	if err != nil {
		return nil, fmt.Errorf("encode derived %q: %w", d.EventID, err)
	}
	out, err := w.encode(native, size)
	if err != nil {
		return nil, fmt.Errorf("encode derived %q: %w", d.EventID, err)
	}
	return out, nil
}

// DecodeDerived decodes a record of any derived-event subject, written with
// any schema version in the manifest. The subject sets d.Event.
func (c *Codec) DecodeDerived(msg []byte) (event.Derived, error) {
	w, payload, err := c.writerOf(msg, derivedKind)
	if err != nil {
		return event.Derived{}, fmt.Errorf("decode derived: %w", err)
	}
	native, err := w.decode(payload)
	if err != nil {
		return event.Derived{}, fmt.Errorf("decode derived: %w", err)
	}
	d, err := derivedFromNative(string(w.kind), native)
	if err != nil {
		return event.Derived{}, fmt.Errorf("decode derived: schema id %d: %w", w.info.ID, err)
	}
	return d, nil
}

// EncodeNative encodes native, in goavro's native form (records as
// map[string]any, unions as map[branch]value or nil), with the latest schema
// of subject, in the Confluent wire format. It serves records whose Go
// mapping lives with their owner, such as the processor's customer state
// (subject Subject(topics.CustomerState)).
func (c *Codec) EncodeNative(subject string, native map[string]any) ([]byte, error) {
	w := c.latest[subject]
	if w == nil {
		return nil, fmt.Errorf("encode %s: %w: no schema for subject", subject, ErrInvalid)
	}
	out, err := w.encode(native, 256)
	if err != nil {
		return nil, fmt.Errorf("encode %s: %w", subject, err)
	}
	return out, nil
}

// DecodeNative decodes a record of subject written with any schema version
// in the manifest into goavro's native form, and returns that version, so
// the caller can map fields older versions lack to their defaults.
func (c *Codec) DecodeNative(subject string, msg []byte) (map[string]any, int, error) {
	id, err := SchemaID(msg)
	if err != nil {
		return nil, 0, fmt.Errorf("decode %s: %w", subject, err)
	}
	w := c.byID[uint32(id)]
	switch {
	case w == nil:
		return nil, 0, fmt.Errorf("decode %s: %w: %d", subject, ErrUnknownSchema, id)
	case w.info.Subject != subject:
		return nil, 0, fmt.Errorf("decode %s: %w: id %d is %s", subject, ErrWrongSubject, id, w.info.Subject)
	}
	native, err := w.decode(msg[headerLen:])
	if err != nil {
		return nil, 0, fmt.Errorf("decode %s: %w", subject, err)
	}
	return native, w.info.Version, nil
}
