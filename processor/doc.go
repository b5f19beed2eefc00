// Package processor turns the stream of customer activity into derived
// business events: it keeps a live health model per customer and emits
// health_score_change, churn_risk_detected and expansion_ready, exactly
// once.
//
// It has two halves that stay apart on purpose:
//
//   - processor/model: the pure health model. Model.Apply folds one
//     event.CustomerEvent into a customer's State and returns the derived
//     events it causes. It knows nothing about Kafka, never reads the wall
//     clock and gives the same output for the same input, including the
//     derived event ids.
//   - Processor: the Kafka loop, a consume-transform-produce pipeline in the
//     style of Kafka Streams' EOS v2 and goka's group tables.
//
// Guarantees of the Processor:
//
//   - Exactly once. Input is read with read_committed in a consumer group;
//     the derived events (topics.ForDerived), poison records
//     (topics.CustomerEventsDLQ), the changed customer states
//     (topics.CustomerState) and the input offsets of one batch are written
//     in ONE Kafka transaction (franz-go's GroupTransactSession). A
//     read_committed reader sees every derived event of the input once, in
//     per-customer order, or — for input not committed yet — none.
//   - State is a table with a changelog. Each assigned input partition has
//     a table (customer id → model.State) whose changelog is the same
//     partition number of the compacted topics.CustomerState (checked at
//     start: both topics must have the same partition count). A
//     transaction works on copies of the states it touches; they replace
//     the table's only when the transaction committed, so an aborted one
//     (rebalance, failed produce, crash, shutdown) leaves no trace and its
//     input is processed again by the partition's owner.
//   - Restore before processing. On assignment a partition's table is read
//     back from its changelog partition (read_committed, up to the last
//     stable offset, after any open transaction on it ended) before any of
//     its input is processed; on revoke or loss it is dropped.
//   - Poison input never stops the stream. A record that does not decode
//     (or names no customer) goes to the dead-letter topic in the same
//     transaction, with its reason and origin in headers. Input the model
//     skips (duplicate, late, empty) is counted by reason and logged.
//   - Zombie fencing. Each instance has its own transactional id; a
//     restarted instance reusing its id fences its predecessor and aborts
//     the transaction it left open (see WithTransactionalID).
//
// The package must never read the wall clock inside the model, never invent a
// topic name (they come from package topics), never make a state change
// visible before the transaction that wrote its changelog record committed,
// and never import a stage that runs after it (dispatcher, analytics).
package processor
