// Package event defines the domain types that flow through Vitals: the
// customer activity events accepted by the API and the derived business
// events the processor emits and the dispatcher delivers.
//
// The types here are plain data. Wire encodings live elsewhere: Avro in
// package schemas, ingest JSON parsing and validation in package producer.
// The JSON encoding of derived events defined here IS the webhook body
// contract from the brief: field names may be added, never renamed.
//
// This package must never import another Vitals package.
package event
