// Package broker connects Vitals to Kafka: it builds the franz-go client
// options every stage shares (with TLS and SASL for production clusters),
// creates the topics of package topics, and runs the embedded kfake broker
// that `vitals run` uses when no external cluster is configured.
//
// It must never hold pipeline logic; stages receive ready client options.
// It must never send a SASL PLAIN password without TLS, nor fall back to an
// unprotected connection when the security settings do not build.
package broker
