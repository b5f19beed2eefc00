package httpsig

import (
	"bytes"
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"strings"
)

// ContentDigest returns the Content-Digest field value for body (RFC 9530):
// sha-256=:<base64 of SHA-256(body)>:.
func ContentDigest(body []byte) string {
	sum := sha256.Sum256(body)
	return "sha-256=:" + base64.StdEncoding.EncodeToString(sum[:]) + ":"
}

// checkContentDigest checks body against the Content-Digest field lines.
// Every sha-256 and sha-512 digest present must match, and at least one
// must be present; digests of other algorithms are ignored, as RFC 9530
// §2 asks of recipients that do not support them.
func checkContentDigest(lines []string, body []byte) error {
	if len(lines) == 0 {
		return &Error{Kind: ErrMissingComponent, Component: ComponentContentDigest,
			Detail: "the signature covers content-digest but the request has no content-digest header"}
	}
	d, err := parseDictionary(strings.Join(lines, ", "))
	if err != nil {
		return malformed(err, "Content-Digest is not a structured dictionary")
	}
	checked := 0
	for _, m := range d {
		var want []byte
		switch m.key {
		case "sha-256":
			s := sha256.Sum256(body)
			want = s[:]
		case "sha-512":
			s := sha512.Sum512(body)
			want = s[:]
		default:
			continue
		}
		got, ok := itemBytes(m)
		if !ok {
			return failf(ErrMalformed, "Content-Digest %s is not a byte sequence (:base64:)", m.key)
		}
		if !bytes.Equal(got, want) {
			return failf(ErrDigestMismatch, "the body does not match the Content-Digest %s digest", m.key)
		}
		checked++
	}
	if checked == 0 {
		return failf(ErrMalformed, "Content-Digest has no sha-256 or sha-512 digest")
	}
	return nil
}

// itemBytes returns the byte-sequence value of a dictionary member.
func itemBytes(m sfMember) ([]byte, bool) {
	if m.item == nil {
		return nil, false
	}
	b, ok := m.item.value.([]byte)
	return b, ok
}
