// Package producer is the ingest edge of the pipeline: it parses and
// validates the JSON customer events of POST /v1/events and writes them,
// Avro-encoded, to the customer-events topic, keyed by customer_id.
//
// A batch is validated as a whole before anything is produced, and Produce
// returns only once the broker acknowledged every record (acks=all,
// idempotent producer), so a 202 from the API means the events are durable.
// It must never acknowledge an event Kafka has not.
package producer
