// Package loadtest is the end-to-end load harness behind `vitals bench`.
//
// It starts the pipeline's real processes — the vitals binary as `vitals
// api`, `vitals processor`, `vitals dispatcher` and `vitals run` — against
// one Kafka broker (an in-memory kfake broker in this process, over TCP, or
// an external cluster) and a webhook receiver in this process, drives load,
// and measures each stage alone and the pipeline end to end: ingest
// requests and events per second over TLS 1.3 with JWT validation, the
// processor's events per second with exactly-once on, the dispatcher's
// webhooks per second with signing, breakers and analytics on, open-loop
// end-to-end latency at fixed offered rates, sustained webhooks per second,
// processor state size and restore time, and each process's CPU, peak RSS
// and allocations per event. Every throughput is printed beside a baseline
// measured in the same run on the same machine: bare net/http POSTs to the
// same receiver, and raw franz-go produce and consume on the same broker.
//
// The pipeline runs in child processes so that what is measured is the
// product as it is deployed (the same wiring as `vitals run`, not a copy of
// it) and so that CPU, memory and allocations are the pipeline's own, read
// from /proc/<pid> and its /metrics: the load generator, the receiver and
// the embedded broker stay in this process and are not counted. Each child
// serves pprof on loopback, so the harness captures CPU and allocation
// profiles of every stage while it is measured.
//
// Open-loop means send times are scheduled before the run (Schedule) and a
// slow response never delays the next send; latency is measured from the
// scheduled time, so queueing anywhere — in this process included — shows
// in the figures instead of being hidden by coordinated omission.
//
// The package must never be imported by the pipeline's packages: it
// measures them and changes nothing in them.
package loadtest
