// Package schemas holds the Avro contracts of the Vitals data topics and the
// codec that reads and writes them in the Confluent wire format (magic byte
// 0, 4-byte big-endian schema id, Avro binary payload), so Kafka Connect,
// ksqlDB and ClickHouse's AvroConfluent can read the topics too.
//
// The schemas are the .avsc files in this directory, embedded into the
// binary. manifest.json is the built-in registry: it gives every schema
// version a globally unique id and names its subject with the
// TopicNameStrategy ("<topic>-value", topic names from package topics).
// A Codec writes with the latest version of a subject and reads any version
// listed in the manifest: it decodes with the writer's schema and maps the
// result onto the Go types of package event, using zero values for fields the
// writer's version does not have.
//
// The processor's changelog (topics.CustomerState) has its schema here too;
// its Go mapping lives with processor/model, which uses the generic
// EncodeNative and DecodeNative. Derived events carry an optional
// explanation from version 2 of their schemas on.
//
// Evolution is BACKWARD compatible: a new version may only add fields that
// carry a default, or append branches to a union, or symbols to an enum.
// Every released version stays in this directory and in the manifest, under
// its original id, forever; the tests decode samples of each one.
//
// Date fields: contract_updated.renewal_date is an Avro int with logicalType
// date (days since 1970-01-01, UTC); in Go it is the "YYYY-MM-DD" string of
// event.ContractUpdated. Times are timestamp-millis: sub-millisecond
// precision is dropped and decoded times are in UTC.
//
// This package must never reach the network or a schema registry by itself,
// never reuse or renumber a released schema id, and never import a stage
// package (producer, processor, dispatcher): stages import it.
package schemas
