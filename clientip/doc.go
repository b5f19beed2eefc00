// Package clientip decides which network address a request comes from and
// whether that address may use a client's credentials.
//
// A Resolver takes the address from the socket peer (http.Request.RemoteAddr).
// Only when that peer is one of the configured trusted proxies does it read
// X-Forwarded-For, walking it from the right past further trusted proxies
// and stopping at the first address it does not trust: the one the
// outermost trusted proxy saw on its own socket. Everything to the left of
// that entry is written by the client and is never used. Resolver.Middleware
// puts the resolved address in the request context (FromContext).
//
// An AllowList is a client's list of CIDR ranges, stored on the client
// record as a JSON array of strings; an empty list allows any address.
// Deny answers a request from outside the list with a 403 problem+json.
//
// This package must never return an address that an untrusted party could
// choose: X-Forwarded-For from an untrusted peer is ignored entirely, and a
// header Vitals cannot read safely resolves to the last hop it could. The
// RFC 7239 Forwarded header is ignored on purpose: proxies in front of
// Vitals must set X-Forwarded-For, and honouring both would let a client
// send whichever one its proxy passes through untouched.
package clientip
