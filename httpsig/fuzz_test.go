package httpsig

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"io"
	"net/http"
	"net/http/httptest"
	"reflect"
	"slices"
	"strings"
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

// FuzzSignVerify signs arbitrary requests (method, target, headers, body,
// a choice of covered components, either algorithm), sends them through
// net/http's wire format and verifies what a server reads back. Whatever
// Sign signs and net/http can send must verify: signer and verifier build
// the same signature base from the same bytes on the wire. The same
// request again is a replay, and a changed body breaks the digest.
func FuzzSignVerify(f *testing.F) {
	for _, s := range []struct {
		method, target, contentType, extra string
		body                               []byte
		comps                              uint8
		ed                                 bool
	}{
		{"POST", "/v1/events/batch", "application/json", "", []byte(`[{"type":"nps_response"}]`), 0, false},
		{"DELETE", "/v1/endpoints/ep_1", "", "", nil, 0x1f, true},
		{"POST", "/v1/replays?from=2026-01-01T00:00:00Z&status=failed", "application/json; charset=utf-8", " padded\tvalue ", []byte("{}"), 0xff, false},
		{"PUT", "/a%2Fb/%7e?x=%zz&&y", "text/plain", "ünïcode", []byte("\x00\xff"), 0x3c, true},
		{"PATCH", "/path with space?q=a+b", "x", "a, b", []byte("x"), 0x20, false},
		{"GET", "", "", "", nil, 0x10, false},
		{"POST", "//double//slash/", "application/json", "", []byte(" "), 0x40, true},
		{"post", "/?", "a", "", []byte("a"), 0x80, false},
	} {
		f.Add(s.method, s.target, s.contentType, s.extra, s.body, s.comps, s.ed)
	}
	now := time.Unix(1_800_000_000, 0)
	seed := make([]byte, ed25519.SeedSize)
	keys := map[bool]Key{
		false: {ID: "k-hmac", ClientID: "c1", Alg: AlgHMACSHA256, HMAC: []byte("0123456789abcdef0123456789abcdef")},
		true:  {ID: "k-ed", ClientID: "c1", Alg: AlgEd25519, Ed25519Private: ed25519.NewKeyFromSeed(seed)},
	}
	optional := []string{ComponentAuthority, ComponentScheme, ComponentRequestTarget, ComponentPath, ComponentQuery, "x-extra", "content-length", "host"}

	f.Fuzz(func(t *testing.T, method, target, contentType, extra string, body []byte, comps uint8, ed bool) {
		if !strings.HasPrefix(target, "/") {
			target = "/" + target
		}
		req, err := http.NewRequest(method, "http://api.example"+target, bytes.NewReader(body))
		if err != nil {
			return
		}
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if extra != "" {
			req.Header.Set("X-Extra", extra)
		}
		covered := DefaultComponents(len(body) > 0)
		for i, c := range optional {
			if comps&(1<<i) != 0 {
				covered = append(covered, c)
			}
		}
		key := keys[ed]
		if err := Sign(req, body, key, SignParams{Components: covered, Now: func() time.Time { return now }}); err != nil {
			return // a component the request lacks, or a value with a line break
		}
		var wire bytes.Buffer
		if err := req.Write(&wire); err != nil {
			return // net/http would not send it
		}
		raw := wire.Bytes()
		read := func(raw []byte) (*http.Request, []byte) {
			r, err := http.ReadRequest(bufio.NewReader(bytes.NewReader(raw)))
			if err != nil {
				return nil, nil
			}
			b, err := io.ReadAll(r.Body)
			if err != nil {
				return nil, nil
			}
			return r, b
		}
		srvReq, srvBody := read(raw)
		if srvReq == nil {
			return // net/http wrote what its own server does not read
		}
		v := NewVerifier(StaticKeys{key.ID: key}, WithClock(func() time.Time { return now.Add(time.Second) }))
		ctx := context.Background()

		if len(srvBody) > 0 && slices.Contains(covered, ComponentContentDigest) {
			tampered := bytes.Clone(srvBody)
			tampered[0] ^= 1
			if _, err := v.Verify(ctx, srvReq, tampered); !errorsIs(err, ErrDigestMismatch) {
				t.Fatalf("%s %s: changed body gives %v, want a digest mismatch", method, target, err)
			}
		}
		res, err := v.Verify(ctx, srvReq, srvBody)
		if err != nil {
			t.Fatalf("%s %q covering %q: signed request refused after the wire: %v\n%s", method, target, covered, err, raw)
		}
		if res.KeyID != key.ID || res.ClientID != key.ClientID || !slices.Equal(res.Components, covered) || !res.Created.Equal(now.Truncate(time.Second)) {
			t.Fatalf("result %+v, want key %s covering %q created %v", res, key.ID, covered, now)
		}
		again, _ := read(raw)
		if _, err := v.Verify(ctx, again, srvBody); !errorsIs(err, ErrReplayed) {
			t.Fatalf("%s %s: replay gives %v", method, target, err)
		}
	})
}

// FuzzContentDigest feeds arbitrary Content-Digest field lines with a body
// to the digest check. It must never panic, and it may accept only when a
// sha-256 or sha-512 digest is present and every one present is the
// body's.
func FuzzContentDigest(f *testing.F) {
	body := []byte(`{"hello": "world"}`)
	sum512 := sha512.Sum512(body)
	for _, lines := range []string{
		ContentDigest(body),
		"sha-512=:" + base64.StdEncoding.EncodeToString(sum512[:]) + ":",
		ContentDigest(body) + ", sha-512=:" + base64.StdEncoding.EncodeToString(sum512[:]) + ":",
		ContentDigest(body) + "\nsha-512=:AAAA:",
		"md5=:AAAA:, " + ContentDigest(body),
		"sha-256=:AAAA:, sha-256=:" + ContentDigest(body)[9:],
		"sha-256=\"abc\"", "sha-256", "sha-256=:" + base64.StdEncoding.EncodeToString(body) + ":", "unixsum=1", "",
	} {
		f.Add(lines, body)
	}

	f.Fuzz(func(t *testing.T, lines string, body []byte) {
		var field []string
		if lines != "" {
			field = strings.Split(lines, "\n")
		}
		if checkContentDigest(field, body) != nil {
			return
		}
		want256, want512 := sha256.Sum256(body), sha512.Sum512(body)
		d, err := parseDictionary(strings.Join(field, ", "))
		if err != nil {
			t.Fatalf("accepted %q, which does not parse: %v", lines, err)
		}
		found := false
		for _, m := range d {
			got, _ := itemBytes(m)
			switch m.key {
			case "sha-256":
				found = true
				if !bytes.Equal(got, want256[:]) {
					t.Fatalf("accepted %q with a wrong sha-256", lines)
				}
			case "sha-512":
				found = true
				if !bytes.Equal(got, want512[:]) {
					t.Fatalf("accepted %q with a wrong sha-512", lines)
				}
			}
		}
		if !found {
			t.Fatalf("accepted %q without a sha-256 or sha-512 digest", lines)
		}
	})
}
