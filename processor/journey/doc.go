// Package journey generates simulated customer histories: sequences of
// customer events that drive the health model to a known outcome. The
// processor's tests, `vitals simulate` and the end-to-end test all replay the
// same journeys, so the outcome each one is documented to reach is a
// contract.
//
// Two kinds: scripted journeys (Healthy, Churning, Expanding; ByName) that
// reach one documented outcome each, and Cohort, a population of customers
// with seeded, realistic noise (daily usage ±15 %, quiet weekends, tickets
// opened and resolved, NPS answers, paid invoices) and an optional usage
// drop for a share of them, for testing that the model stays quiet for
// healthy customers and speaks up for declining ones.
//
// Journeys are deterministic: the same inputs (customer id and start time,
// or cohort seed and index) give the same events, including their event
// ids. This package must never import Kafka or any transport; it only builds
// event values.
package journey
