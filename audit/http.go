package audit

import (
	"crypto/sha256"
	"encoding/hex"
	"hash"
	"io"
	"net/http"
	"strings"
)

// UnmatchedRoute is the Route of a request no route pattern matched.
const UnmatchedRoute = "unmatched"

// Route returns the route template of r for Record.Route: the path part of
// the http.ServeMux pattern that matched it ("/v1/customers/{id}" for the
// pattern "GET /v1/customers/{id}"), never the raw path or query, which
// may carry identifiers or credentials. Call it after the mux has served r
// (ServeMux sets r.Pattern on the request it is given); UnmatchedRoute
// when no pattern matched.
func Route(r *http.Request) string {
	p := r.Pattern
	if p == "" {
		return UnmatchedRoute
	}
	if _, path, ok := strings.Cut(p, " "); ok { // "METHOD [HOST]/PATH"
		p = strings.TrimLeft(path, " \t")
	}
	if i := strings.IndexByte(p, '/'); i > 0 { // "HOST/PATH"
		p = p[i:]
	}
	return p
}

// BodyHasher wraps a request body and hashes what is read through it, so
// a record gets the body's SHA-256 without the audit log keeping (or
// re-reading) the body. Not safe for concurrent use: read it in the
// handler, call Sum after the handler returned.
type BodyHasher struct {
	body io.ReadCloser
	h    hash.Hash
	n    int64
}

// HashBody returns body wrapped: r.Body = audit.HashBody(r.Body).
func HashBody(body io.ReadCloser) *BodyHasher {
	return &BodyHasher{body: body, h: sha256.New()}
}

// Read reads from the body, hashing what it returns.
func (b *BodyHasher) Read(p []byte) (int, error) {
	n, err := b.body.Read(p)
	b.h.Write(p[:n])
	b.n += int64(n)
	return n, err
}

// Close closes the body.
func (b *BodyHasher) Close() error { return b.body.Close() }

// Sum returns the lowercase hex SHA-256 of the bytes read so far ("" when
// none were), for Record.BodySHA256. A handler that stopped reading early
// leaves the hash of a prefix: drain the body first (bounded) when the
// whole body's hash matters.
func (b *BodyHasher) Sum() string {
	if b.n == 0 {
		return ""
	}
	return hex.EncodeToString(b.h.Sum(nil))
}
