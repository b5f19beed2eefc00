// Package admission is the overload guard in front of the HTTP API's
// handlers: a priority admission controller with a bounded number of
// requests in flight and a bounded wait queue ordered by priority
// (Critical > Admin > Realtime > Standard > Bulk).
//
// When every slot is busy a request waits in the queue; a freed slot goes to
// the oldest waiter of the highest priority. When the queue is full too, the
// lowest priority is shed first: a higher-priority arrival evicts the most
// recent waiter of the lowest queued priority, anything else is refused at
// once. A shed request gets 503 problem+json with Retry-After.
//
// The package must never start a goroutine per request (waiting happens in
// the caller's goroutine), never busy-wait, and never queue what the
// classifier marks as bypass (health and metrics endpoints), so that probes
// keep answering while the API sheds. It decides only admission: which
// route has which priority is the API's business, quotas are the rate
// limiter's.
package admission
