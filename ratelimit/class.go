package ratelimit

// Class is a route class: every API route belongs to exactly one, and limits
// are kept per (client, class).
type Class string

// The route classes.
const (
	// ClassRealtime is for interactive lookups and test sends: customer
	// health reads and endpoint test deliveries.
	ClassRealtime Class = "realtime"
	// ClassBulk is for large or expensive operations: batch ingest,
	// replays and exports.
	ClassBulk Class = "bulk"
	// ClassAdmin is for the administration API under /v1/admin/.
	ClassAdmin Class = "admin"
	// ClassStandard is for every other route.
	ClassStandard Class = "standard"
)

// Classes returns every class, in the priority order (admin,
// realtime, standard, bulk).
func Classes() []Class {
	return []Class{ClassAdmin, ClassRealtime, ClassStandard, ClassBulk}
}
