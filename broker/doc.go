// Package broker connects Vitals to Kafka: it builds the franz-go client
// options every stage shares, creates the topics of package topics, and
// runs the embedded kfake broker that `vitals run` uses when no external
// cluster is configured.
//
// It must never hold pipeline logic; stages receive ready client options.
package broker
