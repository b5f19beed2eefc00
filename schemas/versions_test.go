package schemas

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path"
	"reflect"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/linkedin/goavro/v2"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/topics"
)

// sample is one datum of a schema version: its Avro JSON encoding, written
// with that version's own schema, and the Go value the current reader path
// must make of it. Samples live in testdata/samples/<file>.json; every
// schema version needs one, so a release cannot skip this test.
type sample struct {
	Name string          `json:"name"`
	Avro json.RawMessage `json:"avro"`
	Want json.RawMessage `json:"want"`
}

func readManifest(t *testing.T, fsys fs.FS) []manifestEntry {
	t.Helper()
	raw, err := fs.ReadFile(fsys, "manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	var m manifest
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m.Schemas
}

// fixtureCodec returns a Codec that knows the released schemas plus the
// never-released writers in testdata/evolution, and those fixture entries.
func fixtureCodec(t *testing.T) (*Codec, []manifestEntry) {
	t.Helper()
	merged := fstest.MapFS{}
	for _, fsys := range []fs.FS{files, os.DirFS("testdata/evolution")} {
		entries, err := fs.ReadDir(fsys, ".")
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range entries {
			if strings.HasSuffix(e.Name(), ".avsc") {
				b, err := fs.ReadFile(fsys, e.Name())
				if err != nil {
					t.Fatal(err)
				}
				merged[e.Name()] = &fstest.MapFile{Data: b}
			}
		}
	}
	raw, err := fs.ReadFile(files, "manifest.json")
	if err != nil {
		t.Fatal(err)
	}
	merged["manifest.json"] = &fstest.MapFile{Data: raw}
	extra := readManifest(t, os.DirFS("testdata/evolution"))
	c, err := newCodec(merged, extra)
	if err != nil {
		t.Fatalf("newCodec with fixtures: %v", err)
	}
	return c, extra
}

// TestEveryVersionDecodes writes the samples of every schema version kept in
// schemas/ (and of the fixture writers in testdata/evolution) with that
// version's own schema, through goavro directly, and decodes them with the
// current reader path.
func TestEveryVersionDecodes(t *testing.T) {
	released := readManifest(t, files)
	current := newTestCodec(t)
	withFixtures, fixtures := fixtureCodec(t)

	type run struct {
		entry   manifestEntry
		fsys    fs.FS
		codec   *Codec
		fixture bool
	}
	var runs []run
	for _, e := range released {
		runs = append(runs, run{e, files, current, false})
	}
	for _, e := range fixtures {
		runs = append(runs, run{e, os.DirFS("testdata/evolution"), withFixtures, true})
	}
	if len(fixtures) == 0 {
		t.Fatal("no fixture writers: the test would only see one version per subject")
	}

	customerTypes := map[string]bool{}
	for _, r := range runs {
		t.Run(r.entry.File, func(t *testing.T) {
			text, err := fs.ReadFile(r.fsys, r.entry.File)
			if err != nil {
				t.Fatal(err)
			}
			writer, err := goavro.NewCodec(string(text))
			if err != nil {
				t.Fatal(err)
			}
			raw, err := os.ReadFile(path.Join("testdata/samples", strings.TrimSuffix(r.entry.File, ".avsc")+".json"))
			if err != nil {
				t.Fatalf("every schema version needs samples: %v", err)
			}
			var samples []sample
			if err := json.Unmarshal(raw, &samples); err != nil {
				t.Fatal(err)
			}
			if len(samples) == 0 {
				t.Fatal("no samples")
			}
			for _, s := range samples {
				native, _, err := writer.NativeFromTextual(s.Avro)
				if err != nil {
					t.Fatalf("%s: sample is not valid for its own schema: %v", s.Name, err)
				}
				msg := binary.BigEndian.AppendUint32([]byte{0}, uint32(r.entry.ID))
				if msg, err = writer.BinaryFromNative(msg, native); err != nil {
					t.Fatalf("%s: %v", s.Name, err)
				}
				if r.entry.Subject == Subject(topics.CustomerState) {
					// The Go mapping of the state lives in processor/model
					// (tested there); here the generic path must give back
					// what the writer wrote: the same datum, byte for byte.
					got, version, err := r.codec.DecodeNative(r.entry.Subject, msg)
					if err != nil {
						t.Fatalf("%s: decode: %v", s.Name, err)
					}
					again, err := writer.BinaryFromNative(nil, got)
					if err != nil || version != r.entry.Version || string(again) != string(msg[5:]) {
						t.Errorf("%s: version %d (want %d), re-encoded %x (%v), want %x", s.Name, version, r.entry.Version, again, err, msg[5:])
					}
					continue
				}
				if r.entry.Subject == Subject(topics.CustomerEvents) {
					got, err := r.codec.DecodeCustomerEvent(msg)
					if err != nil {
						t.Fatalf("%s: decode: %v", s.Name, err)
					}
					want := wantCustomer(t, s.Want)
					if !reflect.DeepEqual(got, want) {
						t.Errorf("%s:\n got %#v\nwant %#v", s.Name, got, want)
					}
					if !r.fixture {
						customerTypes[want.Type()] = true
					}
					continue
				}
				got, err := r.codec.DecodeDerived(msg)
				if err != nil {
					t.Fatalf("%s: decode: %v", s.Name, err)
				}
				want := wantDerived(t, s.Want)
				if Subject(topics.ForDerived(want.Event)) != r.entry.Subject {
					t.Fatalf("%s: sample event %q does not belong to %s", s.Name, want.Event, r.entry.Subject)
				}
				if !reflect.DeepEqual(got, want) {
					t.Errorf("%s:\n got %#v\nwant %#v", s.Name, got, want)
				}
			}
		})
	}
	for _, typ := range event.CustomerTypes() {
		if !customerTypes[typ] {
			t.Errorf("no released sample of customer event type %s", typ)
		}
	}
}

func wantCustomer(t *testing.T, raw json.RawMessage) event.CustomerEvent {
	t.Helper()
	var w struct {
		EventID    string          `json:"event_id"`
		CustomerID string          `json:"customer_id"`
		OccurredAt time.Time       `json:"occurred_at"`
		Source     string          `json:"source"`
		Type       string          `json:"type"`
		Data       json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	e := event.CustomerEvent{EventID: w.EventID, CustomerID: w.CustomerID, OccurredAt: w.OccurredAt.UTC(), Source: w.Source}
	var err error
	switch w.Type {
	case event.TypeUsageReported:
		e.Data, err = unmarshalAs[event.UsageReported](w.Data)
	case event.TypeLoginRecorded:
		e.Data, err = unmarshalAs[event.LoginRecorded](w.Data)
	case event.TypeSupportTicket:
		e.Data, err = unmarshalAs[event.SupportTicket](w.Data)
	case event.TypePaymentEvent:
		e.Data, err = unmarshalAs[event.PaymentEvent](w.Data)
	case event.TypeNpsResponse:
		e.Data, err = unmarshalAs[event.NpsResponse](w.Data)
	case event.TypeContractUpdated:
		e.Data, err = unmarshalAs[event.ContractUpdated](w.Data)
	case event.TypeSponsorChanged:
		e.Data, err = unmarshalAs[event.SponsorChanged](w.Data)
	default:
		t.Fatalf("sample type %q", w.Type)
	}
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func wantDerived(t *testing.T, raw json.RawMessage) event.Derived {
	t.Helper()
	var w struct {
		Event       string             `json:"event"`
		EventID     string             `json:"event_id"`
		CustomerID  string             `json:"customer_id"`
		Timestamp   time.Time          `json:"timestamp"`
		Explanation *event.Explanation `json:"explanation"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		t.Fatal(err)
	}
	d := event.Derived{EventID: w.EventID, Event: w.Event, CustomerID: w.CustomerID, Timestamp: w.Timestamp.UTC(),
		Explanation: w.Explanation}
	var err error
	switch w.Event {
	case event.HealthScoreChange:
		d.Health, err = unmarshalPtr[event.HealthChange](raw)
	case event.ExpansionReady:
		d.Expansion, err = unmarshalPtr[event.Expansion](raw)
	case event.ChurnRiskDetected:
		d.Churn, err = unmarshalPtr[event.ChurnRisk](raw)
	default:
		t.Fatalf("sample event %q", w.Event)
	}
	if err != nil {
		t.Fatal(err)
	}
	return d
}

func unmarshalAs[T any](raw json.RawMessage) (T, error) {
	var v T
	err := json.Unmarshal(raw, &v)
	return v, err
}

func unmarshalPtr[T any](raw json.RawMessage) (*T, error) {
	v, err := unmarshalAs[T](raw)
	return &v, err
}

// TestFixtureWriterIsLatest shows a release that ships a newer version
// encodes with it (filling the new optional field with its default), and
// that a reader without that version refuses the id by name rather than
// misreading the bytes.
func TestFixtureWriterIsLatest(t *testing.T) {
	withFixtures, _ := fixtureCodec(t)
	d := derivedEvents()[0]
	msg, err := withFixtures.EncodeDerived(d)
	if err != nil {
		t.Fatal(err)
	}
	if id, _ := SchemaID(msg); id != 1001 {
		t.Fatalf("encoded with schema id %d, want the fixture v3 id 1001", id)
	}
	got, err := withFixtures.DecodeDerived(msg)
	if err != nil {
		t.Fatal(err)
	}
	if got.Health == nil || *got.Health != *d.Health {
		t.Fatalf("decoded %+v, want %+v", got.Health, d.Health)
	}
	if _, err := newTestCodec(t).DecodeDerived(msg); !errors.Is(err, ErrUnknownSchema) {
		t.Fatalf("current release decoding a newer id: err %v, want ErrUnknownSchema", err)
	}
}
