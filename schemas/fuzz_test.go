package schemas

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"reflect"
	"strings"
	"testing"

	"github.com/linkedin/goavro/v2"

	"github.com/vitalshq/vitals/topics"
)

// FuzzDecodeCustomerEvent feeds arbitrary bytes to the reader path of the
// input topic. It must never panic or exhaust memory; every failure must
// carry the error class its framing calls for; whatever decodes must
// encode again and decode to the same event.
func FuzzDecodeCustomerEvent(f *testing.F) {
	c := newTestCodec(f)
	for _, e := range customerEvents() {
		b, err := c.EncodeCustomerEvent(e)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)/2])
	}
	d, err := c.EncodeDerived(derivedEvents()[1])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(d)
	addGarbledFraming(f)
	for _, msg := range releasedSamples(f) {
		f.Add(msg)
	}

	f.Fuzz(func(t *testing.T, msg []byte) {
		e, err := c.DecodeCustomerEvent(msg)
		if err != nil {
			checkDecodeError(t, c, msg, err, func(k kind) bool { return k == kindCustomer })
			return
		}
		again, err := c.EncodeCustomerEvent(e)
		if err != nil {
			t.Fatalf("decoded event does not encode again: %v (%#v)", err, e)
		}
		back, err := c.DecodeCustomerEvent(again)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		if !reflect.DeepEqual(back, e) {
			t.Fatalf("re-encoding changed the event:\n got %#v\nwant %#v", back, e)
		}
	})
}

// FuzzDecodeDerived feeds arbitrary bytes to the reader path of the derived
// topics, which the dispatcher turns into webhook bodies. It must never
// panic; failures carry the error class their framing calls for; a decoded
// event belongs to the subject of its schema id, encodes again to the same
// event, and marshals to a webhook body naming it.
func FuzzDecodeDerived(f *testing.F) {
	c := newTestCodec(f)
	for _, d := range derivedEvents() {
		b, err := c.EncodeDerived(d)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
		f.Add(b[:len(b)-1])
	}
	cust, err := c.EncodeCustomerEvent(customerEvents()[0])
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cust)
	addGarbledFraming(f)
	for _, msg := range releasedSamples(f) {
		f.Add(msg)
	}

	f.Fuzz(func(t *testing.T, msg []byte) {
		d, err := c.DecodeDerived(msg)
		if err != nil {
			checkDecodeError(t, c, msg, err, derivedKind)
			return
		}
		id, _ := SchemaID(msg)
		if want := c.byID[uint32(id)].info.Subject; Subject(topics.ForDerived(d.Event)) != want {
			t.Fatalf("schema id %d (%s) decoded as event %q", id, want, d.Event)
		}
		again, err := c.EncodeDerived(d)
		if err != nil {
			t.Fatalf("decoded event does not encode again: %v (%#v)", err, d)
		}
		back, err := c.DecodeDerived(again)
		if err != nil {
			t.Fatalf("re-encoded event does not decode: %v", err)
		}
		if !reflect.DeepEqual(back, d) {
			t.Fatalf("re-encoding changed the event:\n got %#v\nwant %#v", back, d)
		}
		body, err := json.Marshal(d)
		if err != nil {
			t.Fatalf("decoded event has no webhook body: %v (%#v)", err, d)
		}
		var head struct {
			Event   string `json:"event"`
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(body, &head); err != nil || head.Event != d.Event || head.EventID != d.EventID {
			t.Fatalf("webhook body %s does not name event %q %q (%v)", body, d.Event, d.EventID, err)
		}
	})
}

// addGarbledFraming adds framings a reader must classify: too short, wrong
// magic byte, unknown and out-of-range schema ids, every known id with an
// empty or hostile payload.
func addGarbledFraming(f *testing.F) {
	for _, msg := range [][]byte{
		{}, {0}, {0, 0, 0, 0}, {0, 0, 0, 0, 0}, {1, 0, 0, 0, 1, 0},
		{0, 0, 0, 0, 1}, {0, 0, 0, 0, 9, 0}, {0, 0xff, 0xff, 0xff, 0xff, 0},
		{0, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff, 0x0f},
	} {
		f.Add(msg)
	}
	for id := uint32(1); id <= 8; id++ {
		h := binary.BigEndian.AppendUint32([]byte{0}, id)
		f.Add(h)
		f.Add(append(h, 0x02, 'x', 0x02, 'y', 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01))
		f.Add(append(h, 0xfe, 0xff, 0xff, 0xff, 0x0f)) // a length of -2^31
	}
}

// checkDecodeError checks err is the class msg's framing calls for: too
// short or a wrong magic byte is ErrFraming, an id outside the manifest
// ErrUnknownSchema, an id of a subject the reader does not take
// ErrWrongSubject, anything else ErrMalformed.
func checkDecodeError(t *testing.T, c *Codec, msg []byte, err error, want func(kind) bool) {
	t.Helper()
	var class error
	switch id, ferr := SchemaID(msg); {
	case ferr != nil:
		class = ErrFraming
	case c.byID[uint32(id)] == nil:
		class = ErrUnknownSchema
	case !want(c.byID[uint32(id)].kind):
		class = ErrWrongSubject
	default:
		class = ErrMalformed
	}
	if !errors.Is(err, class) {
		t.Fatalf("framing %x calls for %v, got %v", msg[:min(len(msg), headerLen)], class, err)
	}
	for _, other := range []error{ErrFraming, ErrUnknownSchema, ErrWrongSubject, ErrMalformed, ErrInvalid} {
		if other != class && errors.Is(err, other) {
			t.Fatalf("error %v is of two classes: %v and %v", err, class, other)
		}
	}
}

// releasedSamples returns the samples of testdata/samples written, as
// producers of older releases did, with each released schema version.
func releasedSamples(tb testing.TB) [][]byte {
	tb.Helper()
	raw, err := fs.ReadFile(files, "manifest.json")
	if err != nil {
		tb.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		tb.Fatal(err)
	}
	var out [][]byte
	for _, e := range m.Schemas {
		text, err := fs.ReadFile(files, e.File)
		if err != nil {
			tb.Fatal(err)
		}
		w, err := goavro.NewCodec(string(text))
		if err != nil {
			tb.Fatal(err)
		}
		raw, err := fs.ReadFile(os.DirFS("testdata/samples"), strings.TrimSuffix(e.File, ".avsc")+".json")
		if err != nil {
			tb.Fatal(err)
		}
		var samples []sample
		if err := json.Unmarshal(raw, &samples); err != nil {
			tb.Fatal(err)
		}
		for _, s := range samples {
			native, _, err := w.NativeFromTextual(s.Avro)
			if err != nil {
				tb.Fatalf("%s %s: %v", e.File, s.Name, err)
			}
			msg, err := w.BinaryFromNative(binary.BigEndian.AppendUint32([]byte{0}, uint32(e.ID)), native)
			if err != nil {
				tb.Fatalf("%s %s: %v", e.File, s.Name, err)
			}
			out = append(out, msg)
		}
	}
	return out
}
