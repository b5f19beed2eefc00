// Package journey generates scripted customer histories: sequences of
// customer events that drive the health model to a known outcome. The
// processor's tests, `vitals simulate` and the end-to-end test all replay the
// same journeys, so the outcome each one is documented to reach is a
// contract.
//
// Journeys are deterministic: the same customer id and start time give the
// same events, including their event ids. This package must never import
// Kafka or any transport; it only builds event values.
package journey
