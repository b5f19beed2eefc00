package health

import (
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/processor/model"
)

// DefaultRecentChurn is how many churn alerts the read model remembers
// for RecentChurn.
const DefaultRecentChurn = 20

// ChurnAlert is one churn_risk_detected event, as the read model saw it
// among a customer's recent derived events.
type ChurnAlert struct {
	CustomerID string    `json:"customer_id"`
	EventID    string    `json:"event_id"`
	At         time.Time `json:"at"`
	RiskLevel  string    `json:"risk_level"`
	Indicators []string  `json:"risk_indicators"`
	Score      int       `json:"score"`
}

// summary is the aggregate view the dashboard shows: how many customers
// are in each band and the latest churn alerts. It is kept up to date as
// changelog records are applied, so reading it costs nothing per
// customer.
type summary struct {
	mu     sync.Mutex
	bandOf map[string]string // customer → band, to move a customer between counts
	bands  map[string]int    // band → customers
	churn  []ChurnAlert      // newest first, at most keep
	keep   int
}

func newSummary(keep int) *summary {
	return &summary{bandOf: map[string]string{}, bands: map[string]int{}, keep: keep}
}

// apply follows one changelog record (ktable.OnApply).
func (s *summary) apply(customerID string, v View, deleted bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if old, ok := s.bandOf[customerID]; ok {
		s.bands[old]--
		if s.bands[old] <= 0 {
			delete(s.bands, old)
		}
		delete(s.bandOf, customerID)
	}
	if deleted {
		return
	}
	band := internBand(v.Band)
	s.bandOf[customerID] = band
	s.bands[band]++
	for _, d := range v.RecentEvents {
		if d.Event == event.ChurnRiskDetected {
			s.addChurn(customerID, d)
		}
	}
}

// internBand returns the package constant for the model's bands, so the
// per-customer map does not hold a decoded copy of the same few strings.
func internBand(b string) string {
	switch b {
	case model.BandGreen:
		return model.BandGreen
	case model.BandYellow:
		return model.BandYellow
	case model.BandRed:
		return model.BandRed
	case "":
		return "unknown"
	}
	return b
}

// addChurn inserts d unless it is known or older than every kept alert.
// A customer's recent events repeat in each of its changelog records, so
// alerts are recognised by event id.
func (s *summary) addChurn(customerID string, d model.DerivedSummary) {
	if s.keep <= 0 {
		return
	}
	if slices.ContainsFunc(s.churn, func(a ChurnAlert) bool { return a.EventID == d.EventID }) {
		return
	}
	i, _ := slices.BinarySearchFunc(s.churn, d.At, func(a ChurnAlert, t time.Time) int { return t.Compare(a.At) })
	if i >= s.keep {
		return
	}
	a := ChurnAlert{CustomerID: customerID, EventID: d.EventID, At: d.At, RiskLevel: d.RiskLevel,
		Indicators: slices.Clone(d.RiskIndicators), Score: d.Score}
	if a.Indicators == nil {
		a.Indicators = []string{}
	}
	s.churn = slices.Insert(s.churn, i, a)
	if len(s.churn) > s.keep {
		s.churn = s.churn[:s.keep]
	}
}

// Bands returns how many customers are in each health band (green,
// yellow, red).
func (r *Reader) Bands() map[string]int {
	r.summary.mu.Lock()
	defer r.summary.mu.Unlock()
	return maps.Clone(r.summary.bands)
}

// RecentChurn returns the latest churn_risk_detected events, newest first
// (at most DefaultRecentChurn). They are taken from the recent derived
// events each customer's state keeps (input.recent_derived in the model
// configuration): an alert pushed out of that list by later events of the
// same customer within one transaction is not seen.
func (r *Reader) RecentChurn() []ChurnAlert {
	r.summary.mu.Lock()
	defer r.summary.mu.Unlock()
	out := make([]ChurnAlert, len(r.summary.churn))
	for i, a := range r.summary.churn {
		a.Indicators = slices.Clone(a.Indicators)
		out[i] = a
	}
	return out
}
