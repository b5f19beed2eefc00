// Package auth is the OAuth 2.0 authorization server and resource server of
// the Vitals API.
//
// As authorization server it issues short-lived JWT access tokens (RFC 9068
// profile, signed with an asymmetric key: ES256 or EdDSA) through the
// client-credentials grant (RFC 6749 §4.4) at POST /oauth/token, and it
// publishes the public signing keys at /.well-known/jwks.json. As resource
// server, Server.Require guards a route with one scope and puts the
// authenticated Principal in the request context.
//
// Clients and signing keys live behind the ClientStore and KeyStore
// interfaces (materialized from compacted Kafka topics in production;
// MemoryStore for tests and single-process setups), so every API instance
// can issue and verify tokens: nothing here assumes one process.
//
// This package must never store or log a client secret (only its SHA-256
// hash is kept), never accept an unsigned token or a symmetric (HMAC)
// signature, and never trust a token's header to choose the verification
// key type.
package auth
