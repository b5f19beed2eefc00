// Package tlsconfig builds the TLS configuration of every Vitals listener
// that is not explicitly marked insecure: TLS 1.3 only, from operator-given
// certificate files or, for local use, from a self-signed ECDSA P-256
// certificate generated once in <data-dir>/tls/ and reused afterwards.
//
// CertPool and Client give local clients (vitals simulate, tests, scripts)
// a way to trust that certificate without InsecureSkipVerify.
//
// This package must never lower the minimum version below TLS 1.3, never
// write a private key readable by anyone but its owner, and never import
// another Vitals package.
package tlsconfig
