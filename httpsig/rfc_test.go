package httpsig

import (
	"bufio"
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/sha512"
	"crypto/x509"
	"encoding/base64"
	"encoding/pem"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"
)

// The keys, request and expected results below are copied from RFC 9421,
// Appendix B (B.1.4, B.1.5, B.2, B.2.5, B.2.6).

// rfcEd25519Private and rfcEd25519Public are test-key-ed25519 (B.1.4).
const rfcEd25519Private = `-----BEGIN PRIVATE KEY-----
MC4CAQAwBQYDK2VwBCIEIJ+DYvh6SEqVTm50DFtMDoQikTmiCqirVv9mWG9qfSnF
-----END PRIVATE KEY-----
`

const rfcEd25519Public = `-----BEGIN PUBLIC KEY-----
MCowBQYDK2VwAyEAJrQLj5P/89iXES9+vFgrIy29clF9CC/oPPsw3c5D0bs=
-----END PUBLIC KEY-----
`

// rfcSharedSecret is test-shared-secret (B.1.5), base64.
const rfcSharedSecret = "uzvJfB4u3N0Jy4T7NZ75MDVcr8zSTInedJtkgcu46YW4XByzNJjxBdtjUkdJPBtbmHhIDi6pcl8jsasjlTMtDQ=="

// rfcTestRequest is the test-request message (B.2), with CRLF line ends.
var rfcTestRequest = strings.ReplaceAll(`POST /foo?param=Value&Pet=dog HTTP/1.1
Host: example.com
Date: Tue, 20 Apr 2021 02:07:55 GMT
Content-Type: application/json
Content-Digest: sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:
Content-Length: 18

`, "\n", "\r\n") + `{"hello": "world"}`

// rfcCreated is the created parameter of every B.2 signature.
const rfcCreated = 1618884473

var rfcB25 = struct{ base, input, signature string }{
	base: `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@authority": example.com
"content-type": application/json
"@signature-params": ("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"`,
	input:     `sig-b25=("date" "@authority" "content-type");created=1618884473;keyid="test-shared-secret"`,
	signature: `sig-b25=:pxcQw6G3AjtMBQjwo8XzkZf/bws5LelbaMk5rGIGtE8=:`,
}

var rfcB26 = struct{ base, input, signature string }{
	base: `"date": Tue, 20 Apr 2021 02:07:55 GMT
"@method": POST
"@path": /foo
"@authority": example.com
"content-type": application/json
"content-length": 18
"@signature-params": ("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`,
	input:     `sig-b26=("date" "@method" "@path" "@authority" "content-type" "content-length");created=1618884473;keyid="test-key-ed25519"`,
	signature: `sig-b26=:wqcAqbmYJ2ji2glfAMaRy4gruYYnx2nEFN2HN6jrnDnQCK1u02Gb04v9EDgwUPiu4A0w6vuQv5lIp5WPpBKRCw==:`,
}

func rfcHMACKey(t *testing.T) Key {
	t.Helper()
	secret, err := base64.StdEncoding.DecodeString(rfcSharedSecret)
	if err != nil {
		t.Fatal(err)
	}
	return Key{ID: "test-shared-secret", Alg: AlgHMACSHA256, HMAC: secret}
}

func rfcEd25519Key(t *testing.T) Key {
	t.Helper()
	block, _ := pem.Decode([]byte(rfcEd25519Private))
	priv, err := x509.ParsePKCS8PrivateKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	block, _ = pem.Decode([]byte(rfcEd25519Public))
	pub, err := x509.ParsePKIXPublicKey(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	k := Key{ID: "test-key-ed25519", Alg: AlgEd25519,
		Ed25519Private: priv.(ed25519.PrivateKey), Ed25519Public: pub.(ed25519.PublicKey)}
	if !k.Ed25519Public.Equal(k.Ed25519Private.Public()) {
		t.Fatal("B.1.4 public key is not the public half of the private key")
	}
	return k
}

// rfcServerRequest parses the test request as a server receives it.
func rfcServerRequest(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	r, err := http.ReadRequest(bufio.NewReader(strings.NewReader(rfcTestRequest)))
	if err != nil {
		t.Fatal(err)
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		t.Fatal(err)
	}
	return r, body
}

// rfcClientRequest builds the test request as a Go client would send it.
func rfcClientRequest(t *testing.T) (*http.Request, []byte) {
	t.Helper()
	body := []byte(`{"hello": "world"}`)
	r, err := http.NewRequest(http.MethodPost, "https://example.com/foo?param=Value&Pet=dog", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	r.Header.Set("Date", "Tue, 20 Apr 2021 02:07:55 GMT")
	r.Header.Set("Content-Type", "application/json")
	r.Header.Set("Content-Digest", "sha-512=:WZDPaVn/7XgHaAy8pmojAkGWoRx2UFChF41A2svX+TaPm+AbwAgBWnrIiYllu7BNNyealdVLvRwEmTHWXvJwew==:")
	return r, body
}

func TestRFCTestRequestDigest(t *testing.T) {
	_, body := rfcServerRequest(t)
	sum := sha512.Sum512(body)
	if got := base64.StdEncoding.EncodeToString(sum[:]); !strings.Contains(rfcTestRequest, got) {
		t.Fatalf("sha-512 of the test body is %s, not the Content-Digest of B.2", got)
	}
	if err := checkContentDigest([]string{"sha-512=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"}, body); err != nil {
		t.Fatal(err)
	}
}

func TestRFCVectors(t *testing.T) {
	cases := []struct {
		name                   string
		key                    func(*testing.T) Key
		label                  string
		components             []string
		base, input, signature string
	}{
		{"B.2.5 hmac-sha256", rfcHMACKey, "sig-b25", []string{"date", "@authority", "content-type"},
			rfcB25.base, rfcB25.input, rfcB25.signature},
		{"B.2.6 ed25519", rfcEd25519Key, "sig-b26", []string{"date", "@method", "@path", "@authority", "content-type", "content-length"},
			rfcB26.base, rfcB26.input, rfcB26.signature},
	}
	for _, tc := range cases {
		params := SignParams{Label: tc.label, Components: tc.components, Created: time.Unix(rfcCreated, 0), OmitNonce: true}
		t.Run(tc.name+"/signature base", func(t *testing.T) {
			for _, view := range []struct {
				name string
				req  func(*testing.T) (*http.Request, []byte)
			}{{"server", rfcServerRequest}, {"client", rfcClientRequest}} {
				r, _ := view.req(t)
				base, _, err := signatureBase(newMessage(r, ""), tc.components,
					sfParams{{key: "created", value: int64(rfcCreated)}, {key: "keyid", value: tc.key(t).ID}})
				if err != nil {
					t.Fatalf("%s view: %v", view.name, err)
				}
				if base != tc.base {
					t.Errorf("%s view: signature base\n%s\nwant\n%s", view.name, base, tc.base)
				}
			}
		})
		t.Run(tc.name+"/sign", func(t *testing.T) {
			for _, view := range []struct {
				name string
				req  func(*testing.T) (*http.Request, []byte)
			}{{"server", rfcServerRequest}, {"client", rfcClientRequest}} {
				r, body := view.req(t)
				if err := Sign(r, body, tc.key(t), params); err != nil {
					t.Fatal(err)
				}
				if got := r.Header.Get("Signature-Input"); got != tc.input {
					t.Errorf("%s view: Signature-Input\n%s\nwant\n%s", view.name, got, tc.input)
				}
				if got := r.Header.Get("Signature"); got != tc.signature {
					t.Errorf("%s view: Signature\n%s\nwant\n%s", view.name, got, tc.signature)
				}
			}
		})
		t.Run(tc.name+"/verify", func(t *testing.T) {
			k := tc.key(t)
			verifyKey := k
			verifyKey.Ed25519Private = nil // the verifier has the public key only
			v := NewVerifier(StaticKeys{k.ID: verifyKey},
				WithClock(func() time.Time { return time.Unix(rfcCreated+10, 0) }),
				WithRequiredComponents(), WithBodyComponents(), WithNonceRequired(false))
			r, body := rfcServerRequest(t)
			r.Header.Set("Signature-Input", tc.input)
			r.Header.Set("Signature", tc.signature)
			res, err := v.Verify(context.Background(), r, body)
			if err != nil {
				t.Fatalf("Verify of the RFC's own signature: %v", err)
			}
			if res.Label != tc.label || res.KeyID != k.ID || !res.Created.Equal(time.Unix(rfcCreated, 0)) {
				t.Errorf("result %+v", res)
			}

			// Any change to a covered component breaks it.
			r.Header.Set("Content-Type", "application/json; charset=utf-8")
			if _, err := v.Verify(context.Background(), r, body); !errorsIs(err, ErrBadSignature) {
				t.Errorf("after changing content-type: %v, want ErrBadSignature", err)
			}
		})
	}
}
