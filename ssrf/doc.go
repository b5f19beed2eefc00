// Package ssrf keeps webhook deliveries from reaching addresses they must
// not: loopback, private (RFC 1918), carrier-grade NAT, link-local
// (including the cloud metadata address 169.254.169.254), multicast,
// unspecified, reserved and IPv6 unique-local ranges, in plain and
// IPv4-embedding IPv6 forms.
//
// A Guard checks twice: CheckURL when an endpoint is registered (it resolves
// the host and refuses if any address is forbidden), and Control or
// DialContext on every connection, against the IP actually being dialled,
// which defeats DNS rebinding between the two checks.
//
// AllowPrivate(true) turns the address checks off, for local development and
// tests only. This package must never be bypassed by an HTTP proxy: clients
// using its dialer set no Proxy, or exactly Guard.Proxy, which checks each
// target before handing it to the EgressProxy (see EgressProxy for what is
// checked where).
package ssrf
