// Package e2e holds the end-to-end tests of Vitals: the real `vitals`
// binary, run as its own process against real Kafka (kfake over TCP and
// Apache Kafka), real ClickHouse and real HTTP receivers, driven only
// through its public interfaces (HTTPS API, webhooks, ClickHouse tables,
// Kafka topics).
package e2e
