// Package httpsig signs and verifies HTTP requests with HTTP Message
// Signatures (RFC 9421), binds the body with Content-Digest (RFC 9530,
// sha-256) and refuses replays with a nonce cache.
//
// Vitals requires a signature on its high-value operations (batch ingest,
// endpoint delete, secret rotation, replays, admin mutations) on top of the
// OAuth bearer token, so that a leaked token alone cannot perform them and a
// captured request cannot be sent twice. A client signs with Sign (or lets
// Transport do it for every request); the API checks with a Verifier and
// answers failures with WriteProblem, a 401 problem+json that names the part
// that failed and how to fix it.
//
// The package speaks only the subset of RFC 9421 that Vitals needs: request
// signatures with the derived components @method, @target-uri, @authority,
// @scheme, @request-target, @path and @query plus plain header fields, and
// the algorithms hmac-sha256 and ed25519. It parses the Signature-Input,
// Signature and Content-Digest fields with a strict RFC 8941 parser and
// refuses anything it does not understand rather than guessing.
//
// It must never log or return key material, and never accept a signature it
// could not fully check: a covered component it does not support, an
// unknown parameter type or an unreachable nonce cache is a failure.
package httpsig
