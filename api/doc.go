// Package api is the HTTPS edge of Vitals: it routes the public API
// (/oauth, /v1, /.well-known) and the operational endpoints, turns every
// failure into RFC 9457 problem+json, and hands accepted work to the
// packages that do it (producer, endpoint registry).
//
// It must never hold business rules: validation of events lives in
// producer, tokens and scopes in auth, delivery in dispatcher.
package api
