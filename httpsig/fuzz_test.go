package httpsig

import (
	"context"
	"net/http"
	"net/http/httptest"
	"reflect"
	"testing"
	"time"
)

// FuzzParseSignatureInput feeds arbitrary Signature-Input and Signature
// values to the parser and to Verify. Neither may panic; whatever parses
// must serialize and parse back to the same value; and Verify must never
// accept a signature it was not given a valid one for.
func FuzzParseSignatureInput(f *testing.F) {
	for _, seed := range [][2]string{
		{rfcB25.input, rfcB25.signature},
		{rfcB26.input, rfcB26.signature},
		{`sig1=("@method" "@target-uri" "content-digest" "content-type");created=1800000000;keyid="k";nonce="abc"`, `sig1=:AAAA:`},
		{`sig1=("@method");created=1800000000;keyid="k";nonce="n";alg="hmac-sha256";expires=1800000100;tag="t"`, `sig1=:YWJj:`},
		{`a=1, b=?0, c=tok, d=1.5, e=:AQID:, f;x=1`, `a=:AQ:`},
		{`sig1=("@query-param";name="x")`, `sig1=:AA==:`},
		{`sig1=(`, `sig1=:`},
		{`sig1=("a" "b"`, ``},
		{`sig1="\"`, `sig1=:!!:`},
		{`sig1=(@method)`, `sig1=?2`},
		{`sig1=-999999999999999.999`, `sig1=1234567890123456`},
		{"sig1=(\"x\"\t\"y\")", "sig1=:AAAA:, sig1=:BBBB:"},
	} {
		f.Add(seed[0], seed[1])
	}
	key := Key{ID: "k", Alg: AlgHMACSHA256, HMAC: make([]byte, 32)}
	v := NewVerifier(StaticKeys{"k": key, "test-shared-secret": key},
		WithClock(func() time.Time { return time.Unix(1_800_000_000, 0) }),
		WithRequiredComponents(), WithBodyComponents(), WithNonceRequired(false))

	f.Fuzz(func(t *testing.T, input, signature string) {
		d, err := parseDictionary(input)
		if err == nil {
			out, err := serializeDictionary(d)
			if err != nil {
				t.Fatalf("parsed %q but cannot serialize it: %v", input, err)
			}
			again, err := parseDictionary(out)
			if err != nil {
				t.Fatalf("serialized %q as %q, which does not parse: %v", input, out, err)
			}
			if !reflect.DeepEqual(d, again) {
				t.Fatalf("%q parsed as %#v, its serialization %q as %#v", input, d, out, again)
			}
			if out2, _ := serializeDictionary(again); out2 != out {
				t.Fatalf("serialization not stable: %q then %q", out, out2)
			}
			for _, m := range d {
				_, _, _ = parseSignatureInput(m.key, m)
			}
		}

		r := httptest.NewRequest(http.MethodPost, "/v1/events/batch", nil)
		r.Header["Signature-Input"] = []string{input}
		r.Header["Signature"] = []string{signature}
		if res, err := v.Verify(context.Background(), r, nil); err == nil {
			t.Fatalf("Verify accepted Signature-Input %q, Signature %q: %+v", input, signature, res)
		}
	})
}
