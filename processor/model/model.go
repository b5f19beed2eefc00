package model

import (
	"cmp"
	"fmt"
	"maps"
	"math"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/vitalshq/vitals/event"
)

// Health bands of a score.
const (
	BandGreen  = "green"
	BandYellow = "yellow"
	BandRed    = "red"
)

// Model is the default health model: it folds customer events into a State
// and says which derived events they cause. A Model is immutable and safe
// for concurrent use; each State must be used by one goroutine at a time.
type Model struct {
	cfg Config
}

// NewModel returns a Model for cfg, or an error wrapping ErrInvalidConfig.
func NewModel(cfg Config) (*Model, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Model{cfg: cfg.clone()}, nil
}

// Config returns (a copy of) the Config m runs with.
func (m *Model) Config() Config { return m.cfg.clone() }

// clone copies c's slices and maps, so a Model shares nothing with its
// caller.
func (c Config) clone() Config {
	c.Adoption.FeatureCatalogue = slices.Clone(c.Adoption.FeatureCatalogue)
	c.Churn.IndicatorWeights = maps.Clone(c.Churn.IndicatorWeights)
	c.Churn.Actions = maps.Clone(c.Churn.Actions)
	for level, acts := range c.Churn.Actions {
		c.Churn.Actions[level] = slices.Clone(acts)
	}
	return c
}

// Band names the band of score: green, yellow or red.
func (m *Model) Band(score int) string {
	switch {
	case score >= m.cfg.Bands.GreenMin:
		return BandGreen
	case score >= m.cfg.Bands.YellowMin:
		return BandYellow
	}
	return BandRed
}

// Apply folds ev into st and returns the derived events it causes, in the
// order health_score_change, churn_risk_detected, expansion_ready. Each
// derived event has the time ev occurred and an id derived from the
// customer, ev's id and the derived type, so applying the same input again
// to the same earlier State yields identical events.
//
// Input that changes nothing says why in Result.Skipped: no payload
// (SkippedEmpty), an event_id applied within Config.Input.DedupeWindow of
// this event's time (SkippedDuplicate), or an event time more than
// Config.Input.LateGrace behind the customer's latest (SkippedLate). Event
// times are truncated to the millisecond, the precision of the wire.
func (m *Model) Apply(st *State, ev event.CustomerEvent) Result {
	if ev.Data == nil {
		return Result{Skipped: SkippedEmpty}
	}
	t := ev.OccurredAt.UTC().Truncate(time.Millisecond)
	if m.duplicate(st, ev.EventID, t) {
		return Result{Skipped: SkippedDuplicate}
	}
	if !st.Now.IsZero() && st.Now.Sub(t) > m.cfg.Input.LateGrace {
		return Result{Skipped: SkippedLate}
	}
	if st.CustomerID == "" {
		st.CustomerID = ev.CustomerID
	}
	if st.FirstSeen.IsZero() || t.Before(st.FirstSeen) {
		st.FirstSeen = t
	}
	if t.After(st.Now) {
		st.Now = t
	}
	m.remember(st, ev.EventID, t)
	prev := reported{score: st.ReportedScore, comps: st.ReportedComponents}
	m.fold(st, t, ev.Data)
	m.prune(st)

	s := m.measure(st)
	st.Score, st.Band, st.Components = s.score, m.Band(s.score), s.comps
	if !st.Baselined {
		prev = reported{score: s.score, comps: s.comps}
	}

	e := emitter{st: st, in: ev, at: t, prev: prev}
	m.healthChange(st, s, &e)
	var buf [7]string
	indicators := m.indicators(st, s, buf[:0])
	st.Indicators = setStrings(st.Indicators, indicators)
	m.churn(st, s, indicators, &e)
	if len(indicators) == 0 {
		m.expansion(st, s, &e)
	}
	m.recordRecent(st, e.out)
	return Result{Derived: e.out}
}

// Result is what applying one input event did.
type Result struct {
	// Derived are the events to emit, in order: health change, churn,
	// expansion.
	Derived []event.Derived
	// Skipped says why the input changed nothing ("" when it was applied):
	// SkippedDuplicate, SkippedLate or SkippedEmpty. The caller counts and
	// logs skipped input; the model never drops it silently.
	Skipped string
}

// Reasons an input is skipped.
const (
	SkippedDuplicate = "duplicate" // same event_id applied within the dedupe window
	SkippedLate      = "late"      // older than the out-of-order grace
	SkippedEmpty     = "empty"     // no payload
)

// reported is the health last reported to subscribers.
type reported struct {
	score int
	comps Components
}

// duplicate reports whether id was applied with an event time less than
// DedupeWindow from t.
func (m *Model) duplicate(st *State, id string, t time.Time) bool {
	if id == "" {
		return false
	}
	for _, s := range st.SeenIDs {
		if s.ID == id {
			d := t.Sub(s.At)
			return d < m.cfg.Input.DedupeWindow && -d < m.cfg.Input.DedupeWindow
		}
	}
	return false
}

// remember records id as applied at t. Past DedupeMaxIDs the id with the
// oldest event time is forgotten.
func (m *Model) remember(st *State, id string, t time.Time) {
	if id == "" || m.cfg.Input.DedupeWindow <= 0 {
		return
	}
	for i := range st.SeenIDs {
		if st.SeenIDs[i].ID == id { // seen, but outside the window: restart it
			st.SeenIDs[i].At = t
			return
		}
	}
	if len(st.SeenIDs) >= m.cfg.Input.DedupeMaxIDs {
		oldest := 0
		for i, s := range st.SeenIDs {
			if s.At.Before(st.SeenIDs[oldest].At) {
				oldest = i
			}
		}
		st.SeenIDs = slices.Delete(st.SeenIDs, oldest, oldest+1)
	}
	st.SeenIDs = append(st.SeenIDs, SeenID{ID: id, At: t})
}

// fold records one payload. Usage and logins land in the bucket of their
// event day, in or out of order; status-like facts (tickets, invoices, NPS,
// contract, sponsor) keep the latest by event time, so a late event never
// overrides a newer one.
func (m *Model) fold(st *State, t time.Time, p event.Payload) {
	day := Day(t)
	nowDay := Day(st.Now)
	switch p := p.(type) {
	case event.UsageReported:
		if day > nowDay-int64(2*m.cfg.Usage.TrendWindowDays) {
			i, found := slices.BinarySearchFunc(st.Usage, day, func(u UsageDay, d int64) int { return cmp.Compare(u.Day, d) })
			switch {
			case !found:
				st.Usage = slices.Insert(st.Usage, i, UsageDay{Day: day, ActiveUsers: p.ActiveUsers, Seats: p.SeatsPurchased})
			case p.ActiveUsers > st.Usage[i].ActiveUsers:
				st.Usage[i] = UsageDay{Day: day, ActiveUsers: p.ActiveUsers, Seats: p.SeatsPurchased}
			}
		}
		if day > nowDay-int64(m.cfg.Adoption.WindowDays) && len(p.FeaturesUsed) > 0 {
			if st.Features == nil {
				st.Features = make(map[string]int64, len(p.FeaturesUsed))
			}
			for _, f := range p.FeaturesUsed {
				if d, ok := st.Features[f]; !ok || d < day {
					st.Features[f] = day
				}
			}
		}
	case event.LoginRecorded:
		if t.After(st.LastLoginAt) {
			st.LastLoginAt = t
		}
		if day > nowDay-int64(m.cfg.Engagement.WindowDays) {
			i, found := slices.BinarySearchFunc(st.Logins, day, func(l LoginDay, d int64) int { return cmp.Compare(l.Day, d) })
			if !found {
				st.Logins = slices.Insert(st.Logins, i, LoginDay{Day: day})
			}
			st.Logins[i].Logins++
			if p.Role == "executive" {
				st.Logins[i].ExecLogins++
			}
		}
	case event.SupportTicket:
		old, ok := st.Tickets[p.TicketID]
		if ok && old.At.After(t) {
			return
		}
		if st.Tickets == nil {
			st.Tickets = make(map[string]Ticket)
		}
		prio := p.Priority
		if prio == "" {
			prio = old.Priority
		}
		st.Tickets[p.TicketID] = Ticket{Status: p.Status, Priority: prio, At: t}
	case event.PaymentEvent:
		if old, ok := st.Invoices[p.InvoiceID]; ok && old.At.After(t) {
			return
		}
		if st.Invoices == nil {
			st.Invoices = make(map[string]Invoice)
		}
		st.Invoices[p.InvoiceID] = Invoice{Status: p.Status, At: t}
	case event.NpsResponse:
		if st.NPS == nil || !st.NPS.At.After(t) {
			st.NPS = &NPS{Score: p.Score, At: t}
		}
	case event.ContractUpdated:
		if st.Contract == nil || !st.Contract.At.After(t) {
			renewal, _ := time.Parse(time.DateOnly, p.RenewalDate) // zero when malformed: no renewal risk
			var features []string
			if len(p.PlanFeatures) > 0 {
				features = slices.Clone(p.PlanFeatures)
			}
			st.Contract = &Contract{Plan: p.Plan, Seats: p.Seats, ArrCents: p.ArrCents, Renewal: renewal,
				PlanFeatures: features, At: t}
		}
	case event.SponsorChanged:
		if st.Sponsor == nil || !st.Sponsor.At.After(t) {
			st.Sponsor = &Sponsor{HasExecSponsor: p.HasExecSponsor, ChampionLeft: p.ChampionLeft, At: t}
		}
	}
}

// prune drops what has left every window, keeping State small. Emptied
// collections become nil, so a State decoded from its encoding is deeply
// equal to the live one.
func (m *Model) prune(st *State) {
	nowDay := Day(st.Now)
	st.Usage = nilIfEmpty(dropBefore(st.Usage, nowDay-int64(2*m.cfg.Usage.TrendWindowDays), func(u UsageDay) int64 { return u.Day }))
	st.Logins = nilIfEmpty(dropBefore(st.Logins, nowDay-int64(m.cfg.Engagement.WindowDays), func(l LoginDay) int64 { return l.Day }))
	for f, d := range st.Features {
		if d <= nowDay-int64(m.cfg.Adoption.WindowDays) {
			delete(st.Features, f)
		}
	}
	for id, tk := range st.Tickets {
		if tk.Status == "resolved" && st.Now.Sub(tk.At) > m.cfg.Support.ResolvedKeep {
			delete(st.Tickets, id)
		}
	}
	for id, inv := range st.Invoices {
		if inv.Status == "succeeded" && st.Now.Sub(inv.At) > m.cfg.Payment.SettledKeep {
			delete(st.Invoices, id)
		}
	}
	st.SeenIDs = nilIfEmpty(slices.DeleteFunc(st.SeenIDs, func(s SeenID) bool {
		return st.Now.Sub(s.At) >= m.cfg.Input.DedupeWindow
	}))
	if len(st.Features) == 0 {
		st.Features = nil
	}
	if len(st.Tickets) == 0 {
		st.Tickets = nil
	}
	if len(st.Invoices) == 0 {
		st.Invoices = nil
	}
}

// dropBefore removes the leading elements of the ascending s whose day is at
// or before last, in place.
func dropBefore[T any](s []T, last int64, day func(T) int64) []T {
	i := 0
	for i < len(s) && day(s[i]) <= last {
		i++
	}
	if i == 0 {
		return s
	}
	return s[:copy(s, s[i:])]
}

func nilIfEmpty[T any](s []T) []T {
	if len(s) == 0 {
		return nil
	}
	return s
}

// setStrings copies src into dst's storage; empty becomes nil.
func setStrings(dst, src []string) []string {
	if len(src) == 0 {
		return nil
	}
	if slices.Equal(dst, src) {
		return dst
	}
	return append(dst[:0], src...)
}

// signals are the measurements one Apply derives its decisions and
// explanations from.
type signals struct {
	score int
	comps Components

	utilisation float64 // mean seat utilisation over the utilisation days, 0–1+
	utilKnown   bool
	utilDays    int   // days it is the mean of
	active      int64 // active users and seats of the latest usage day
	seats       int64

	trend                float64 // trailing / previous window mean daily active users
	trendKnown           bool
	trailMean, prevMean  float64
	trailDays, prevDays  int64
	loginDays, loginSpan int64 // days with a login, of the engagement window
	execLogin            bool  // an executive logged in within the engagement window
	engagementNeutral    bool

	open, urgent, escalated int // open (not escalated) tickets, of them high/urgent; escalated
	unpaid                  int // failed or overdue invoices

	adoption      float64 // share of the catalogue used, 0–1
	adoptKnown    bool
	adoptUsed     int
	adoptCatalog  int
	adoptFromPlan bool
}

// measure computes the six components and the score from st.
func (m *Model) measure(st *State) signals {
	var s signals
	c := &s.comps
	nowDay := Day(st.Now)
	neutral := m.cfg.NeutralComponent
	u := m.cfg.Usage

	// Usage: mean seat utilisation over the last UtilisationDays (full
	// marks at FullUtilisation) and the trend of the trailing window
	// against the one before (declines cost DeclinePointsPerPercent;
	// steady or growing is full marks).
	win := int64(u.TrendWindowDays)
	var trailSum, prevSum int64
	var utilSum float64
	for _, d := range st.Usage {
		if d.Day > nowDay-win {
			trailSum += d.ActiveUsers
			s.trailDays++
		} else {
			prevSum += d.ActiveUsers
			s.prevDays++
		}
		if d.Day > nowDay-int64(u.UtilisationDays) {
			if ut, ok := m.utilisation(st, d); ok {
				utilSum += ut
				s.utilDays++
			}
		}
	}
	if s.trailDays > 0 {
		s.trailMean = float64(trailSum) / float64(s.trailDays)
	}
	if s.prevDays > 0 {
		s.prevMean = float64(prevSum) / float64(s.prevDays)
	}
	if s.trailDays >= int64(u.MinTrendDays) && s.prevDays >= int64(u.MinTrendDays) && prevSum > 0 {
		s.trend = s.trailMean / s.prevMean
		s.trendKnown = true
	}
	if n := len(st.Usage); n > 0 {
		last := st.Usage[n-1]
		s.active, s.seats = last.ActiveUsers, last.Seats
		if s.seats <= 0 && st.Contract != nil {
			s.seats = st.Contract.Seats
		}
		if s.utilDays > 0 {
			s.utilisation, s.utilKnown = utilSum/float64(s.utilDays), true
		} else if ut, ok := m.utilisation(st, last); ok { // no recent report: the latest one
			s.utilisation, s.utilKnown, s.utilDays = ut, true, 1
		}
	}
	if len(st.Usage) == 0 {
		c.Usage = neutral
	} else {
		util := neutral
		if s.utilKnown {
			util = math.Min(100, 100*s.utilisation/u.FullUtilisation)
		}
		trend := 100.0
		if s.trendKnown && s.trend < 1 {
			trend = math.Max(0, 100-u.DeclinePointsPerPercent*100*(1-s.trend))
		}
		c.Usage = u.UtilisationShare*util + (1-u.UtilisationShare)*trend
	}

	// Engagement: days with a login in the window (full marks when
	// EngagedDayShare of the days have one) and whether an executive logged
	// in. The window is shorter while the customer is younger than it; with
	// no login yet and a young customer it is neutral.
	e := m.cfg.Engagement
	observed := nowDay - Day(st.FirstSeen) + 1
	s.loginSpan = min(int64(e.WindowDays), observed)
	for _, l := range st.Logins {
		if l.Day > nowDay-s.loginSpan && l.Logins > 0 {
			s.loginDays++
			s.execLogin = s.execLogin || l.ExecLogins > 0
		}
	}
	if st.LastLoginAt.IsZero() && observed < int64(e.WindowDays) {
		c.Engagement = neutral
		s.engagementNeutral = true
	} else {
		login := math.Min(100, 100*float64(s.loginDays)/(float64(s.loginSpan)*e.EngagedDayShare))
		exec := 0.0
		if s.execLogin {
			exec = 100
		}
		c.Engagement = (1-e.ExecLoginShare)*login + e.ExecLoginShare*exec
	}

	// Support: points off per open and escalated ticket.
	for _, tk := range st.Tickets {
		switch tk.Status {
		case "opened":
			s.open++
			if tk.Priority == "high" || tk.Priority == "urgent" {
				s.urgent++
			}
		case "escalated":
			s.escalated++
		}
	}
	sp := m.cfg.Support
	c.Support = math.Max(0, 100-float64(s.open)*sp.OpenPenalty-float64(s.urgent)*sp.HighPriorityPenalty-
		float64(s.escalated)*sp.EscalatedPenalty)

	// Payment: points off per failed or overdue invoice not yet paid.
	for _, inv := range st.Invoices {
		if inv.Status == "failed" || inv.Status == "overdue" {
			s.unpaid++
		}
	}
	c.Payment = math.Max(0, 100-float64(s.unpaid)*m.cfg.Payment.UnpaidPenalty)

	// Sentiment: the latest NPS × 10.
	c.Sentiment = neutral
	if st.NPS != nil {
		c.Sentiment = math.Max(0, math.Min(100, 10*float64(st.NPS.Score)))
	}

	// Adoption: share of the plan's features (or the configured catalogue)
	// used within the adoption window.
	c.Adoption = neutral
	if cat, fromPlan := m.catalogue(st); len(cat) > 0 {
		for _, f := range cat {
			if _, ok := st.Features[f]; ok {
				s.adoptUsed++
			}
		}
		s.adoptCatalog, s.adoptFromPlan = len(cat), fromPlan
		s.adoption = float64(s.adoptUsed) / float64(len(cat))
		s.adoptKnown = true
		c.Adoption = 100 * s.adoption
	}

	w := m.cfg.Weights
	total := w.Usage*c.Usage + w.Engagement*c.Engagement + w.Support*c.Support +
		w.Payment*c.Payment + w.Sentiment*c.Sentiment + w.Adoption*c.Adoption
	// Rounding to 1e-6 first keeps float noise (0.1+0.2 style) from
	// deciding a .5 tie: 85.5 is 86 however the weights were summed.
	exact := math.Round(total*1e6) / 1e6
	s.score = int(math.Round(math.Max(0, math.Min(100, exact))))
	return s
}

// utilisation is the seat utilisation of one usage day: its active users
// over its reported seats, or the contract's seats when it reported none.
func (m *Model) utilisation(st *State, u UsageDay) (float64, bool) {
	seats := u.Seats
	if seats <= 0 && st.Contract != nil {
		seats = st.Contract.Seats
	}
	if seats <= 0 {
		return 0, false
	}
	return float64(u.ActiveUsers) / float64(seats), true
}

// catalogue is the feature list adoption is measured against, and whether
// it is the contract's plan.
func (m *Model) catalogue(st *State) ([]string, bool) {
	if st.Contract != nil && len(st.Contract.PlanFeatures) > 0 {
		return st.Contract.PlanFeatures, true
	}
	return m.cfg.Adoption.FeatureCatalogue, false
}

// healthChange reports the score when it moved MinDelta points or changed
// band since the last report. Within BaselineWindow of the first event the
// score only becomes the baseline.
func (m *Model) healthChange(st *State, s signals, e *emitter) {
	if !st.Baselined || st.Now.Before(st.FirstSeen.Add(m.cfg.HealthChange.BaselineWindow)) {
		st.Baselined, st.ReportedScore, st.ReportedComponents = true, s.score, s.comps
		return
	}
	prev := st.ReportedScore
	if abs(s.score-prev) < m.cfg.HealthChange.MinDelta && m.Band(s.score) == m.Band(prev) {
		return
	}
	reason, comp := m.changeReason(st, s, st.ReportedComponents, s.comps)
	d := e.emit(event.HealthScoreChange, "")
	d.Health = &event.HealthChange{PreviousScore: prev, NewScore: s.score, ChangeReason: reason}
	d.Explanation = m.explainHealth(st, s, e.prev, comp)
	st.ReportedScore, st.ReportedComponents = s.score, s.comps
}

// componentNames are the explanation names of the components, in
// Components field order.
var componentNames = [6]string{"usage", "engagement", "support", "payment", "sentiment", "adoption"}

// Change reasons (change_reason): the component that moved the score most
// and which way. Some components name what happened more precisely.
const (
	ReasonUsageDecline     = "usage_decline"
	ReasonUsageGrowth      = "usage_growth"
	ReasonEngagementDrop   = "engagement_drop"
	ReasonEngagementGain   = "engagement_gain"
	ReasonSupportEscal     = "support_escalation"     // support fell and a ticket is escalated
	ReasonSupportTickets   = "support_tickets_opened" // support fell, nothing escalated
	ReasonSupportResolved  = "support_resolved"
	ReasonPaymentIssue     = "payment_issue"
	ReasonPaymentRecovered = "payment_recovered"
	ReasonNpsDetractor     = "nps_detractor" // sentiment fell to a detractor answer
	ReasonNpsDecline       = "nps_decline"   // sentiment fell, not to a detractor
	ReasonNpsPromoter      = "nps_promoter"  // sentiment rose to a promoter answer
	ReasonNpsImproved      = "nps_improved"  // sentiment rose, not to a promoter
	ReasonAdoptionDrop     = "adoption_drop"
	ReasonAdoptionGain     = "adoption_gain"
)

// ChangeReasons lists every change_reason the model emits, in component
// order (usage, engagement, support, payment, sentiment, adoption).
func ChangeReasons() []string {
	return []string{ReasonUsageDecline, ReasonUsageGrowth, ReasonEngagementDrop, ReasonEngagementGain,
		ReasonSupportEscal, ReasonSupportTickets, ReasonSupportResolved, ReasonPaymentIssue, ReasonPaymentRecovered,
		ReasonNpsDetractor, ReasonNpsDecline, ReasonNpsPromoter, ReasonNpsImproved, ReasonAdoptionDrop, ReasonAdoptionGain}
}

// weightedDeltas are each component's weighted change from old to cur, in
// Components field order.
func (m *Model) weightedDeltas(old, cur Components) [6]float64 {
	w := m.cfg.Weights
	return [6]float64{
		w.Usage * (cur.Usage - old.Usage),
		w.Engagement * (cur.Engagement - old.Engagement),
		w.Support * (cur.Support - old.Support),
		w.Payment * (cur.Payment - old.Payment),
		w.Sentiment * (cur.Sentiment - old.Sentiment),
		w.Adoption * (cur.Adoption - old.Adoption),
	}
}

// changeReason names the component whose weighted change moved the score
// most, with its direction, and returns its index. Ties go to the earlier
// component in the order usage, engagement, support, payment, sentiment,
// adoption.
func (m *Model) changeReason(st *State, s signals, old, cur Components) (string, int) {
	moves := m.weightedDeltas(old, cur)
	best := 0
	for i := range moves {
		if math.Abs(moves[i]) > math.Abs(moves[best]) {
			best = i
		}
	}
	up := moves[best] >= 0
	switch componentNames[best] {
	case "usage":
		return pick(up, ReasonUsageGrowth, ReasonUsageDecline), best
	case "engagement":
		return pick(up, ReasonEngagementGain, ReasonEngagementDrop), best
	case "support":
		if up {
			return ReasonSupportResolved, best
		}
		return pick(s.escalated > 0, ReasonSupportEscal, ReasonSupportTickets), best
	case "payment":
		return pick(up, ReasonPaymentRecovered, ReasonPaymentIssue), best
	case "sentiment":
		nps := -1
		if st.NPS != nil {
			nps = int(st.NPS.Score)
		}
		if up {
			return pick(nps >= m.cfg.Sentiment.PromoterMin, ReasonNpsPromoter, ReasonNpsImproved), best
		}
		return pick(nps >= 0 && nps <= m.cfg.Sentiment.DetractorMax, ReasonNpsDetractor, ReasonNpsDecline), best
	}
	return pick(up, ReasonAdoptionGain, ReasonAdoptionDrop), best
}

func pick(cond bool, yes, no string) string {
	if cond {
		return yes
	}
	return no
}

// indicators appends the churn indicators that hold for st to dst, in
// Indicators order.
func (m *Model) indicators(st *State, s signals, dst []string) []string {
	if s.trendKnown && s.trend <= m.cfg.Usage.DeclineRatio {
		dst = append(dst, IndicatorUsageDecline)
	}
	if s.escalated > 0 {
		dst = append(dst, IndicatorSupportEscal)
	}
	if s.unpaid > 0 {
		dst = append(dst, IndicatorPaymentIssue)
	}
	if st.NPS != nil && int(st.NPS.Score) <= m.cfg.Sentiment.DetractorMax {
		dst = append(dst, IndicatorNpsDetractor)
	}
	if st.Sponsor != nil && st.Sponsor.ChampionLeft {
		dst = append(dst, IndicatorChampionLeft)
	}
	if m.lowEngagement(st) {
		dst = append(dst, IndicatorLowEngagement)
	}
	if m.renewalAtRisk(st, s.score) {
		dst = append(dst, IndicatorRenewalAtRisk)
	}
	return dst
}

// lowEngagement: no login for LowEngagementDays, once the customer has been
// seen that long.
func (m *Model) lowEngagement(st *State) bool {
	quiet := time.Duration(m.cfg.Churn.LowEngagementDays) * 24 * time.Hour
	return st.Now.Sub(st.FirstSeen) >= quiet && (st.LastLoginAt.IsZero() || st.Now.Sub(st.LastLoginAt) >= quiet)
}

// renewalAtRisk: the renewal date is today or within RenewalWindowDays and
// the score is below RenewalRiskScore.
func (m *Model) renewalAtRisk(st *State, score int) bool {
	c := st.Contract
	if c == nil || c.Renewal.IsZero() || score >= m.cfg.Churn.RenewalRiskScore {
		return false
	}
	today := st.Now.Truncate(24 * time.Hour)
	return !c.Renewal.Before(today) && !c.Renewal.After(today.AddDate(0, 0, m.cfg.Churn.RenewalWindowDays))
}

// riskPoints sums the weights of indicators.
func (m *Model) riskPoints(indicators []string) int {
	sum := 0
	for _, in := range indicators {
		sum += m.cfg.Churn.IndicatorWeights[in]
	}
	return sum
}

// riskLevel maps summed indicator weights to a level ("" for none).
func (m *Model) riskLevel(points int) string {
	t := m.cfg.Churn.RiskThresholds
	switch {
	case points >= t.Critical:
		return RiskCritical
	case points >= t.High:
		return RiskHigh
	case points >= t.Medium:
		return RiskMedium
	case points >= t.Low:
		return RiskLow
	}
	return ""
}

// churn reports the risk level when it rose, unless the same level was
// reported less than RepeatAfter ago.
func (m *Model) churn(st *State, s signals, indicators []string, e *emitter) {
	points := m.riskPoints(indicators)
	level := m.riskLevel(points)
	prev := st.RiskLevel
	st.RiskLevel = level
	if riskRank(level) <= riskRank(prev) {
		return
	}
	if last, ok := st.RiskEmitted[level]; ok && st.Now.Sub(last) < m.cfg.Churn.RepeatAfter {
		return
	}
	if st.RiskEmitted == nil {
		st.RiskEmitted = make(map[string]time.Time)
	}
	st.RiskEmitted[level] = st.Now
	d := e.emit(event.ChurnRiskDetected, "")
	d.Churn = &event.ChurnRisk{RiskLevel: level, RiskIndicators: slices.Clone(indicators),
		RecommendedActions: slices.Clone(m.cfg.Churn.Actions[level])}
	d.Explanation = m.explainChurn(st, s, e.prev, level, points, indicators)
}

func riskRank(level string) int { return slices.Index(RiskLevels(), level) + 1 }

// expansion reports upsell and cross-sell opportunities of a healthy
// customer without churn indicators, each at most once per RepeatAfter.
func (m *Model) expansion(st *State, s signals, e *emitter) {
	c := st.Contract
	x := m.cfg.Expansion
	if s.score < x.MinScore || c == nil {
		return
	}
	for _, kind := range [2]string{OpportunityUpsell, OpportunityCrossSell} {
		var value, extra int64
		var streak int
		switch kind {
		case OpportunityUpsell:
			if c.Seats <= 0 || c.ArrCents <= 0 {
				continue
			}
			if streak = m.utilisationStreak(st); streak < x.UpsellDays {
				continue
			}
			extra = max(1, int64(math.Ceil(float64(c.Seats)*x.UpsellSeatShare)))
			value = int64(math.Round(float64(extra) * float64(c.ArrCents) / 100 / float64(c.Seats)))
		case OpportunityCrossSell:
			if len(c.PlanFeatures) == 0 || !s.adoptKnown || !s.adoptFromPlan || s.adoption < x.CrossSellFeatureShare {
				continue
			}
			value = int64(math.Round(float64(c.ArrCents) / 100 * x.CrossSellARRShare))
		}
		if last, ok := st.ExpansionEmitted[kind]; ok && st.Now.Sub(last) < x.RepeatAfter {
			continue
		}
		if st.ExpansionEmitted == nil {
			st.ExpansionEmitted = make(map[string]time.Time)
		}
		st.ExpansionEmitted[kind] = st.Now
		factors := m.successFactors(st, s)
		p := x.ProbabilityBase + x.ProbabilityPerFactor*float64(len(factors))
		p = math.Round(math.Min(x.ProbabilityMax, p)*100) / 100
		d := e.emit(event.ExpansionReady, kind)
		d.Expansion = &event.Expansion{OpportunityType: kind, ValueEstimate: value, Probability: p, SuccessFactors: factors}
		d.Explanation = m.explainExpansion(st, s, e.prev, kind, value, extra, streak, factors)
	}
}

// utilisationStreak counts the consecutive days, ending at the latest usage
// day (which must be today or yesterday), whose utilisation is at least
// UpsellUtilisation.
func (m *Model) utilisationStreak(st *State) int {
	n := len(st.Usage)
	if n == 0 || st.Usage[n-1].Day < Day(st.Now)-1 {
		return 0
	}
	streak := 0
	want := st.Usage[n-1].Day
	for i := n - 1; i >= 0; i-- {
		u := st.Usage[i]
		util, ok := m.utilisation(st, u)
		if u.Day != want || !ok || util < m.cfg.Expansion.UpsellUtilisation {
			break
		}
		streak++
		want--
	}
	return streak
}

// successFactors lists what makes an expansion likely, in a fixed order.
func (m *Model) successFactors(st *State, s signals) []string {
	var f []string
	if s.adoptKnown && 100*s.adoption >= m.cfg.Expansion.HighAdoption {
		f = append(f, FactorHighAdoption)
	}
	if s.score >= m.cfg.Expansion.StrongScore {
		f = append(f, FactorStrongHealthScore)
	}
	if s.execLogin || (st.Sponsor != nil && st.Sponsor.HasExecSponsor) {
		f = append(f, FactorExecSponsorship)
	}
	if st.NPS != nil && int(st.NPS.Score) >= m.cfg.Sentiment.PromoterMin {
		f = append(f, FactorPromoterNPS)
	}
	if s.trendKnown && s.trend >= m.cfg.Usage.GrowthRatio {
		f = append(f, FactorUsageGrowth)
	}
	return f
}

// recordRecent appends the summaries of out to st.RecentDerived, keeping
// the latest RecentDerived.
func (m *Model) recordRecent(st *State, out []event.Derived) {
	keep := m.cfg.Input.RecentDerived
	if len(out) == 0 || keep == 0 {
		return
	}
	for _, d := range out {
		sum := DerivedSummary{EventID: d.EventID, Event: d.Event, At: d.Timestamp, Score: st.Score}
		switch {
		case d.Health != nil:
			sum.PreviousScore, sum.Score, sum.ChangeReason = d.Health.PreviousScore, d.Health.NewScore, d.Health.ChangeReason
		case d.Churn != nil:
			sum.RiskLevel, sum.RiskIndicators = d.Churn.RiskLevel, slices.Clone(d.Churn.RiskIndicators)
		case d.Expansion != nil:
			sum.OpportunityType, sum.ValueEstimate, sum.Probability = d.Expansion.OpportunityType, d.Expansion.ValueEstimate, d.Expansion.Probability
		}
		st.RecentDerived = append(st.RecentDerived, sum)
	}
	if n := len(st.RecentDerived); n > keep {
		st.RecentDerived = slices.Delete(st.RecentDerived, 0, n-keep)
	}
}

// emitter collects the derived events of one Apply.
type emitter struct {
	st   *State
	in   event.CustomerEvent
	at   time.Time
	prev reported // health last reported before this input
	out  []event.Derived
}

// emit appends a derived event of type typ and returns it for the caller to
// fill; sub tells apart several events of one type caused by one input (the
// opportunity type).
func (e *emitter) emit(typ, sub string) *event.Derived {
	e.out = append(e.out, event.Derived{
		EventID:    DerivedID(e.st.CustomerID, e.in, typ, sub),
		Event:      typ,
		CustomerID: e.st.CustomerID,
		Timestamp:  e.at,
	})
	return &e.out[len(e.out)-1]
}

// DerivedID is the deterministic id of the derived event of type typ (and
// sub-kind sub, e.g. the opportunity type) caused by input event in: a UUIDv5
// of the customer id, the input event id and the type. Reprocessing the same
// input yields the same id, which downstream deduplication relies on. An
// input without an id is identified by its type and event time instead.
func DerivedID(customerID string, in event.CustomerEvent, typ, sub string) string {
	inID := in.EventID
	if inID == "" {
		inID = fmt.Sprintf("%s@%d", in.Type(), in.OccurredAt.UnixNano())
	}
	name := "vitals/derived\x00" + customerID + "\x00" + inID + "\x00" + typ + "\x00" + sub
	return uuid.NewSHA1(uuid.NameSpaceURL, []byte(name)).String()
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}
