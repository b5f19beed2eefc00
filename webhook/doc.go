// Package webhook signs and verifies webhooks the Standard Webhooks way
// (https://www.standardwebhooks.com): a "whsec_" secret, the headers
// webhook-id, webhook-timestamp and webhook-signature, and a signature
// "v1,<base64 HMAC-SHA256 of id.timestamp.body>" (secrets of 24 to 64
// bytes), plus optionally "v1a,<base64 ed25519 signature of the same>"
// for receivers that verify with a public key.
//
// The dispatcher signs every attempt with Sign or Headers; receivers (and
// the `vitals listen` receiver) check them with a Verifier.
//
// This package must never log, read or compare secrets or signatures in a
// way that leaks them: comparisons are constant time, and errors name the
// failure class, never the expected signature. It imports no other Vitals
// package.
package webhook
