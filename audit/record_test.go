package audit_test

import (
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/vitalshq/vitals/audit"
)

// golden is a fixed record; its canonical encoding and hash below were
// computed outside Go (Python, from the documented netstring format), so
// the test pins the format, not just Go's own output.
func golden() audit.Record {
	return audit.Record{
		ID:             "0190f3c2-7b1e-7c4a-9d3e-2f6a8b9c0d1e",
		Time:           time.Date(2025, 12, 5, 9, 20, 0, 123_000_000, time.FixedZone("CET", 3600)),
		Instance:       "0190f3c0-0000-7000-8000-000000000001",
		Seq:            42,
		PrevHash:       "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		RequestID:      "req-7",
		ClientID:       "client_abc",
		UserID:         "user_1",
		SourceIP:       "203.0.113.9",
		UserAgent:      "vitals-cli/1.0 (linux)",
		Method:         "POST",
		Route:          "/v1/endpoints/{id}",
		Status:         201,
		LatencyMs:      37,
		Scopes:         []string{"endpoints:write", "audit:read"},
		Decision:       audit.DecisionAllowed,
		RateLimitClass: "standard",
		BodySHA256:     "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
	}
}

const (
	goldenCanonical = "15:vitals-audit-v1,36:0190f3c2-7b1e-7c4a-9d3e-2f6a8b9c0d1e,24:2025-12-05T08:20:00.123Z," +
		"36:0190f3c0-0000-7000-8000-000000000001,2:42,64:9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08," +
		"5:req-7,10:client_abc,6:user_1,11:203.0.113.9,22:vitals-cli/1.0 (linux),4:POST,18:/v1/endpoints/{id},3:201,2:37," +
		"33:15:endpoints:write,10:audit:read,,7:allowed,0:,8:standard," +
		"64:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855,"
	goldenHash = "1c9ea674d1870edba8dd118099b1f9cd73e041076621ef3df782c4ea5f3aad8c"
)

func TestCanonicalEncodingAndGoldenHash(t *testing.T) {
	r := golden()
	if got := string(r.Canonical()); got != goldenCanonical {
		t.Errorf("Canonical:\n got %s\nwant %s", got, goldenCanonical)
	}
	if got := r.ComputeHash(); got != goldenHash {
		t.Errorf("ComputeHash = %s, want %s", got, goldenHash)
	}
	r.Hash = "anything" // Hash is not part of what it hashes
	if got := r.ComputeHash(); got != goldenHash {
		t.Errorf("ComputeHash depends on Hash: %s", got)
	}
}

// TestEveryFieldIsHashed changes each field of the golden record in turn:
// every one but Hash must change the hash. A field added to Record and
// forgotten in the canonical encoding fails here.
func TestEveryFieldIsHashed(t *testing.T) {
	typ := reflect.TypeOf(audit.Record{})
	for i := range typ.NumField() {
		f := typ.Field(i)
		r := golden()
		v := reflect.ValueOf(&r).Elem().Field(i)
		switch v.Kind() {
		case reflect.String:
			v.SetString(v.String() + "x")
		case reflect.Int, reflect.Int64:
			v.SetInt(v.Int() + 1)
		case reflect.Uint64:
			v.SetUint(v.Uint() + 1)
		case reflect.Slice:
			v.Set(reflect.ValueOf([]string{"endpoints:write"}))
		case reflect.Struct: // time.Time
			v.Set(reflect.ValueOf(r.Time.Add(time.Millisecond)))
		default:
			t.Fatalf("field %s has kind %s: teach this test (and Canonical) about it", f.Name, v.Kind())
		}
		changed := r.ComputeHash() != goldenHash
		if f.Name == "Hash" && changed {
			t.Errorf("changing Hash changed the hash")
		}
		if f.Name != "Hash" && !changed {
			t.Errorf("field %s is not covered by the hash", f.Name)
		}
	}
}

// TestScopesAreFramed: moving a byte between adjacent scopes, or between
// scopes and the next field, changes the encoding (no ambiguity).
func TestScopesAreFramed(t *testing.T) {
	a, b := golden(), golden()
	a.Scopes, b.Scopes = []string{"ab", "c"}, []string{"a", "bc"}
	if a.ComputeHash() == b.ComputeHash() {
		t.Error("scopes [ab c] and [a bc] hash the same")
	}
	a.Scopes, b.Scopes = nil, []string{""}
	if a.ComputeHash() == b.ComputeHash() {
		t.Error("no scopes and one empty scope hash the same")
	}
	a, b = golden(), golden()
	a.Decision, a.Reason = "allowedx", ""
	b.Decision, b.Reason = "allowed", "x"
	if a.ComputeHash() == b.ComputeHash() {
		t.Error("a byte moved between decision and reason hashes the same")
	}
}

// TestSealedRecordSurvivesJSON: what Seal hashes is what a JSON round trip
// (the Kafka value) gives back, even from awkward input.
func TestSealedRecordSurvivesJSON(t *testing.T) {
	c := audit.NewChain()
	in := golden()
	in.UserAgent = strings.Repeat("é", 200) + "\xff\xfe" // 402 bytes, invalid UTF-8 at the end
	in.RequestID = "bad\xc3"                             // truncated character
	in.Status = 70000
	in.LatencyMs = -5
	r := c.Seal(in)
	if len(r.UserAgent) > audit.MaxUserAgentBytes || !utf8.ValidString(r.UserAgent) {
		t.Errorf("user agent not cut to %d bytes of valid UTF-8: %d bytes, valid %v", audit.MaxUserAgentBytes, len(r.UserAgent), utf8.ValidString(r.UserAgent))
	}
	if r.Status != 0 || r.LatencyMs != 0 {
		t.Errorf("status %d, latency %d: want both clamped to 0", r.Status, r.LatencyMs)
	}
	if r.Time.Location() != time.UTC || r.Time.Nanosecond()%int(time.Millisecond) != 0 {
		t.Errorf("time %v: want UTC milliseconds", r.Time)
	}
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	var back audit.Record
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if got := back.ComputeHash(); got != r.Hash {
		t.Errorf("hash after a JSON round trip = %s, sealed %s\n%s", got, r.Hash, b)
	}
}

func TestBodySHA256(t *testing.T) {
	if got := audit.BodySHA256(nil); got != "" {
		t.Errorf("BodySHA256(nil) = %q, want empty", got)
	}
	if got, want := audit.BodySHA256([]byte("test")), "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08"; got != want {
		t.Errorf("BodySHA256(test) = %s, want %s", got, want)
	}
}
