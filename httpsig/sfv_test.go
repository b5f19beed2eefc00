package httpsig

import (
	"reflect"
	"strings"
	"testing"
)

func TestParseDictionaryCanonical(t *testing.T) {
	// Each input parses and serializes back to canonical form.
	cases := []struct{ in, want string }{
		{`sig1=("@method" "@target-uri");created=1618884473;keyid="k"`, ``},
		{`sig1=();created=1`, ``},
		{`a=1, b=2;x=?0, c`, ``},
		{`a=1,b=2`, `a=1, b=2`},
		{`  a=1 ,	b=2  `, `a=1, b=2`},
		{`a=( "x"   "y" )`, `a=("x" "y")`},
		{`a=1, a=2`, `a=2`},
		{`a;x=1;x=2`, `a;x=2`},
		{`a=?1`, `a`},
		{`sha-256=:X48E9qOokqqrvdts8nOJRJN3OWDUoyWxBf7kbu9DBPE=:`, ``},
		{`a=:YQ:`, `a=:YQ==:`},
		{`a=-12.50, b=0.001, c=123456789012.123`, `a=-12.5, b=0.001, c=123456789012.123`},
		{`a=tok/en:x, b=*`, ``},
		{`a="q\"u\\o"`, ``},
		{`a=-999999999999999`, ``},
	}
	for _, tc := range cases {
		d, err := parseDictionary(tc.in)
		if err != nil {
			t.Errorf("parse %q: %v", tc.in, err)
			continue
		}
		got, err := serializeDictionary(d)
		if err != nil {
			t.Errorf("serialize %q: %v", tc.in, err)
			continue
		}
		want := tc.want
		if want == "" {
			want = tc.in
		}
		if got != want {
			t.Errorf("%q serialized as %q, want %q", tc.in, got, want)
		}
	}
}

func TestParseDictionaryValues(t *testing.T) {
	d, err := parseDictionary(`sig1=("@method" "content-digest");created=1618884473;keyid="test";nonce="n1";x=tok, s=:AQID:`)
	if err != nil {
		t.Fatal(err)
	}
	want := sfDict{
		{key: "sig1", list: &sfInnerList{
			items:  []sfItem{{value: "@method"}, {value: "content-digest"}},
			params: sfParams{{"created", int64(1618884473)}, {"keyid", "test"}, {"nonce", "n1"}, {"x", sfToken("tok")}},
		}},
		{key: "s", item: &sfItem{value: []byte{1, 2, 3}}},
	}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("got %#v\nwant %#v", d, want)
	}
}

func TestParseDictionaryRejects(t *testing.T) {
	cases := map[string]string{
		``:                         "empty",
		`   `:                      "empty",
		`Sig1=1`:                   "key must start",
		`1a=1`:                     "key must start",
		`a=1,`:                     "trailing ','",
		`a=1,,b=2`:                 "key must start",
		`a=1 b=2`:                  "expected ','",
		`a=("x" "y"`:               "not closed",
		`a=("x""y")`:               "expected ' ' or ')'",
		`a=("x";`:                  "expected a key",
		`a="unterminated`:          "not closed",
		`a="bad\escape"`:           "invalid escape",
		"a=\"tab\there\"":          "not allowed in a string",
		`a="é"`:                    "not allowed in a string",
		`a=:YWJj`:                  "not closed",
		`a=:Y!Jj:`:                 "not base64",
		`a=:Y=Jj:`:                 "not valid base64",
		`a=?2`:                     "boolean",
		`a=?`:                      "boolean",
		`a=-`:                      "digit after '-'",
		`a=1234567890123456`:       "more than 15 digits",
		`a=1234567890123.5`:        "more than 12 integer digits",
		`a=1.2345`:                 "1 to 3 fractional digits",
		`a=1.`:                     "1 to 3 fractional digits",
		`a=@1618884473`:            "unexpected",
		`a=%"display"`:             "unexpected",
		`a=`:                       "end of the field",
		`a=(`:                      "not closed",
		"a=1\x00":                  "expected ','",
		strings.Repeat("a", 20000): "more than",
	}
	for in, wantErr := range cases {
		_, err := parseDictionary(in)
		if err == nil {
			t.Errorf("parse %q: no error, want %q", in, wantErr)
			continue
		}
		if !strings.Contains(err.Error(), wantErr) {
			t.Errorf("parse %q: %v, want it to mention %q", in, err, wantErr)
		}
	}
}

func TestSerializeRejects(t *testing.T) {
	bad := []sfDict{
		{{key: "Upper", item: &sfItem{value: int64(1)}}},
		{{key: "a", item: &sfItem{value: "line\nbreak"}}},
		{{key: "a", item: &sfItem{value: int64(1_000_000_000_000_000)}}},
		{{key: "a", item: &sfItem{value: sfToken("1bad")}}},
		{{key: "a", item: &sfItem{value: 1.5}}},
		{{key: "a"}},
	}
	for _, d := range bad {
		if s, err := serializeDictionary(d); err == nil {
			t.Errorf("serialized %#v as %q, want an error", d, s)
		}
	}
}
