package admission

import "strconv"

// Priority orders requests for admission; a smaller value is a higher
// priority. The zero value is Critical.
type Priority int

// Priorities, highest first. Critical is for security operations that must
// get through an overload (token revocation, endpoint disable); Admin for
// the rest of /v1/admin; Realtime for latency-sensitive lookups; Standard
// for everything else; Bulk for batch ingest, replays and exports, which are
// large, slow and the cheapest to retry later.
const (
	Critical Priority = iota
	Admin
	Realtime
	Standard
	Bulk

	numPriorities = int(Bulk) + 1
)

// String returns the priority's lower-case name, used in metrics labels and
// in problem details.
func (p Priority) String() string {
	switch p {
	case Critical:
		return "critical"
	case Admin:
		return "admin"
	case Realtime:
		return "realtime"
	case Standard:
		return "standard"
	case Bulk:
		return "bulk"
	}
	return "priority(" + strconv.Itoa(int(p)) + ")"
}

func (p Priority) valid() bool { return p >= Critical && p <= Bulk }
