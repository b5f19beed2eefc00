package model

import "time"

// State is everything the health model remembers about one customer. It is
// plain data (exported fields, JSON tags, no pointers into shared structures)
// so a changelog can serialize it and restore it verbatim; Model.Apply is
// the only code that changes it.
//
// Days are UTC calendar days counted from the Unix epoch (see Day). Windows
// are measured against Now, the latest event time seen for the customer, so
// a replay of the same events yields the same State.
type State struct {
	CustomerID string    `json:"customer_id"`
	FirstSeen  time.Time `json:"first_seen"` // earliest occurred_at seen
	Now        time.Time `json:"now"`        // latest occurred_at seen: the model's clock

	// SeenIDs are the input event ids applied within
	// Config.Input.DedupeWindow of Now (at most DedupeMaxIDs), in arrival
	// order; an event repeating one of them is a duplicate.
	SeenIDs []SeenID `json:"seen_ids,omitempty"`

	Usage    []UsageDay       `json:"usage,omitempty"`    // ascending by Day, last 2 trend windows
	Features map[string]int64 `json:"features,omitempty"` // feature → last Day it was used
	Logins   []LoginDay       `json:"logins,omitempty"`   // ascending by Day, last engagement window
	// LastLoginAt is the latest login of any role (zero: never).
	LastLoginAt time.Time          `json:"last_login_at"`
	Tickets     map[string]Ticket  `json:"tickets,omitempty"`  // by ticket id; resolved ones kept 30 days
	Invoices    map[string]Invoice `json:"invoices,omitempty"` // by invoice id; succeeded ones kept 30 days
	NPS         *NPS               `json:"nps,omitempty"`
	Contract    *Contract          `json:"contract,omitempty"`
	Sponsor     *Sponsor           `json:"sponsor,omitempty"`

	// Score, Band and Components are the health after the latest event.
	Score      int        `json:"score"`
	Band       string     `json:"band"`
	Components Components `json:"components"`
	// Reported is the score (and its components) last reported in a
	// health_score_change, or the baseline; Baselined says it is set.
	Baselined          bool       `json:"baselined"`
	ReportedScore      int        `json:"reported_score"`
	ReportedComponents Components `json:"reported_components"`

	// RiskLevel is the current churn risk level ("" for none) and
	// Indicators the churn indicators that hold now, in Indicators order.
	RiskLevel  string   `json:"risk_level,omitempty"`
	Indicators []string `json:"indicators,omitempty"`
	// RiskEmitted and ExpansionEmitted are when a churn event of each level
	// and an expansion event of each opportunity type were last emitted.
	RiskEmitted      map[string]time.Time `json:"risk_emitted,omitempty"`
	ExpansionEmitted map[string]time.Time `json:"expansion_emitted,omitempty"`

	// RecentDerived are the latest derived events, oldest first, at most
	// Config.Input.RecentDerived: what a read model shows as "last derived
	// events".
	RecentDerived []DerivedSummary `json:"recent_derived,omitempty"`
}

// SeenID is one remembered input event id and its event time.
type SeenID struct {
	ID string    `json:"id"`
	At time.Time `json:"at"`
}

// DerivedSummary is the key fields of one derived event. Fields of other
// event types are zero.
type DerivedSummary struct {
	EventID string    `json:"event_id"`
	Event   string    `json:"event"`
	At      time.Time `json:"at"`
	// Score is the health score when it was derived.
	Score int `json:"score"`
	// health_score_change
	PreviousScore int    `json:"previous_score,omitempty"`
	ChangeReason  string `json:"change_reason,omitempty"`
	// churn_risk_detected
	RiskLevel      string   `json:"risk_level,omitempty"`
	RiskIndicators []string `json:"risk_indicators,omitempty"`
	// expansion_ready
	OpportunityType string  `json:"opportunity_type,omitempty"`
	ValueEstimate   int64   `json:"value_estimate,omitempty"`
	Probability     float64 `json:"probability,omitempty"`
}

// UsageDay is one day of usage: the highest active_users reported that day
// and the seats_purchased of the report that set it.
type UsageDay struct {
	Day         int64 `json:"day"`
	ActiveUsers int64 `json:"active_users"`
	Seats       int64 `json:"seats"`
}

// LoginDay counts one day's logins, and how many were by executives.
type LoginDay struct {
	Day        int64 `json:"day"`
	Logins     int64 `json:"logins"`
	ExecLogins int64 `json:"exec_logins"`
}

// Ticket is the latest known status of one support ticket.
type Ticket struct {
	Status   string    `json:"status"`
	Priority string    `json:"priority"`
	At       time.Time `json:"at"`
}

// Invoice is the latest known status of one invoice.
type Invoice struct {
	Status string    `json:"status"`
	At     time.Time `json:"at"`
}

// NPS is the latest NPS answer.
type NPS struct {
	Score int32     `json:"score"`
	At    time.Time `json:"at"`
}

// Contract is the latest contract. Renewal is the renewal date at 00:00 UTC
// (zero when it did not parse).
type Contract struct {
	Plan         string    `json:"plan"`
	Seats        int64     `json:"seats"`
	ArrCents     int64     `json:"arr_cents"`
	Renewal      time.Time `json:"renewal"`
	PlanFeatures []string  `json:"plan_features,omitempty"`
	At           time.Time `json:"at"`
}

// Sponsor is the latest sponsor report.
type Sponsor struct {
	HasExecSponsor bool      `json:"has_exec_sponsor"`
	ChampionLeft   bool      `json:"champion_left"`
	At             time.Time `json:"at"`
}

// Components are the six health component scores, each 0–100.
type Components struct {
	Usage      float64 `json:"usage"`
	Engagement float64 `json:"engagement"`
	Support    float64 `json:"support"`
	Payment    float64 `json:"payment"`
	Sentiment  float64 `json:"sentiment"`
	Adoption   float64 `json:"adoption"`
}

// Day returns t's UTC calendar day counted from the Unix epoch.
func Day(t time.Time) int64 {
	s := t.Unix()
	d := s / 86400
	if s%86400 < 0 {
		d--
	}
	return d
}
