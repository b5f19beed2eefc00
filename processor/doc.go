// Package processor turns the stream of customer activity into derived
// business events: it keeps a live health model per customer and emits
// health_score_change, churn_risk_detected and expansion_ready.
//
// It has two halves that stay apart on purpose:
//
//   - Model and State: the pure health model. Model.Apply folds one
//     event.CustomerEvent into a customer's State and returns the derived
//     events it causes. It knows nothing about Kafka, never reads the wall
//     clock (all windows are measured in event time: the latest occurred_at
//     seen for the customer) and gives the same output for the same input,
//     including the derived event ids. State is a plain serializable struct so
//     a later changelog can persist and restore it.
//   - Processor: the Kafka loop. It consumes topics.CustomerEvents in a
//     consumer group, keeps one State per customer for each assigned
//     partition, produces derived events to their topics keyed by customer
//     id, and commits the input offsets only after those produces were acked
//     (at-least-once). Derived event ids are deterministic, so downstream
//     deduplication absorbs the repeats at-least-once can cause.
//
// The package must never read the wall clock inside the model, never invent a
// topic name (they come from package topics), and never import a stage that
// runs after it (dispatcher, analytics).
package processor
