// Package ratelimit limits API requests per (client, route class): a
// sliding-window counter enforces the quota over an hour or a day, and a
// token bucket bounds bursts inside it. Both must admit a request.
//
// A Limiter picks the limit for a request (class defaults, overridden per
// client or per (client, route)), asks a Store for a Decision and applies the
// configured fail policy when the store is unreachable. MemoryStore keeps the
// counters in the process; RedisStore keeps them in Redis, decided by one
// atomic Lua script per request, so several API instances share exact counts.
//
// Decision.SetHeaders writes the RateLimit-Policy and RateLimit fields of
// draft-ietf-httpapi-ratelimit-headers (structured-field lists, one item for
// the quota and one for the burst bucket), and WriteTooMany answers a refused
// request with Retry-After and problem+json. Wiring it into the HTTP server
// (which route is which class, who the client is) is package api's job.
package ratelimit
