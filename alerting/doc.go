// Package alerting raises Vitals' own alerts from inside the process: an
// Evaluator reads the process's Prometheus metrics every interval, checks
// them against Rules (a breaker open for five minutes, a growing
// dead-letter topic, consumer lag, a growing analytics spool) and writes an
// operational event to topics.Operational when an alert starts firing
// (endpoint.OpAlertFiring) and when it resolves (endpoint.OpAlertResolved).
// The dispatcher delivers those events as webhooks to the endpoints that
// subscribe to them by name, such as an operations endpoint.
//
// The rules mirror deploy/prometheus/alerts.yml (same alert names), so an
// installation without Prometheus still hears about them.
//
// It must never write an event per evaluation: one event per transition,
// with an id derived from the alert's key and the time its condition began
// to hold, so a rewritten event de-duplicates at the receiver.
package alerting
