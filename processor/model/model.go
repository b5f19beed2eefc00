package model

import (
	"cmp"
	"fmt"
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

// Fixed parts of the default model that are not (yet) in Config.
const (
	usageWindowDays   = 30   // one trend window; State keeps two
	utilisationShare  = 0.7  // of the usage component; the 30-day trend is the rest
	execLoginShare    = 0.2  // of the engagement component; login days are the rest
	openTicketPenalty = 10.0 // support points per open ticket
	urgentPenalty     = 10.0 // extra for an open high/urgent ticket
	escalatedPenalty  = 40.0 // support points per escalated, unresolved ticket
	unpaidPenalty     = 50.0 // payment points per failed/overdue invoice
	settledKeep       = 30 * 24 * time.Hour
)

// Model is the default health model: it folds customer events into a State
// and says which derived events they cause. A Model is immutable and safe
// for concurrent use; each State must be used by one goroutine at a time.
type Model struct {
	cfg Config
}

// NewModel returns a Model for cfg, or an error wrapping ErrInvalidConfig.
func NewModel(cfg Config) (*Model, error) {
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	return &Model{cfg: cfg}, nil
}

// Band names the band of score: green, yellow or red.
func (m *Model) Band(score int) string {
	switch {
	case score >= m.cfg.GreenMin:
		return BandGreen
	case score >= m.cfg.YellowMin:
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
// An event without a payload, or whose id is among the customer's recent
// ids, changes nothing and returns nil.
func (m *Model) Apply(st *State, ev event.CustomerEvent) Result {
	if ev.Data == nil {
		return Result{Skipped: SkippedEmpty}
	}
	if m.duplicate(st, ev.EventID) {
		return Result{Skipped: SkippedDuplicate}
	}
	t := ev.OccurredAt.UTC()
	if st.CustomerID == "" {
		st.CustomerID = ev.CustomerID
	}
	if st.FirstSeen.IsZero() || t.Before(st.FirstSeen) {
		st.FirstSeen = t
	}
	if t.After(st.Now) {
		st.Now = t
	}
	m.fold(st, t, ev.Data)
	m.prune(st)

	s := m.measure(st)
	st.Score, st.Components = s.score, s.comps

	e := emitter{st: st, in: ev, at: t}
	m.healthChange(st, s, &e)
	var buf [7]string
	indicators := m.indicators(st, s, buf[:0])
	m.churn(st, indicators, &e)
	if len(indicators) == 0 {
		m.expansion(st, s, &e)
	}
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
	SkippedDuplicate = "duplicate" // same event_id seen recently
	SkippedLate      = "late"      // older than the out-of-order grace
	SkippedEmpty     = "empty"     // no payload
)

// duplicate reports whether id is among st's recent event ids, and
// remembers it if not.
func (m *Model) duplicate(st *State, id string) bool {
	if id == "" || m.cfg.DedupeWindow == 0 {
		return false
	}
	if slices.Contains(st.RecentEventIDs, id) {
		return true
	}
	if len(st.RecentEventIDs) >= m.cfg.DedupeWindow {
		n := copy(st.RecentEventIDs, st.RecentEventIDs[len(st.RecentEventIDs)-m.cfg.DedupeWindow+1:])
		st.RecentEventIDs = st.RecentEventIDs[:n]
	}
	st.RecentEventIDs = append(st.RecentEventIDs, id)
	return false
}

// fold records one payload. Status-like facts (tickets, invoices, NPS,
// contract, sponsor) keep the latest by event time, so a late event never
// overrides a newer one.
func (m *Model) fold(st *State, t time.Time, p event.Payload) {
	day := Day(t)
	nowDay := Day(st.Now)
	switch p := p.(type) {
	case event.UsageReported:
		if day > nowDay-2*usageWindowDays {
			i, found := slices.BinarySearchFunc(st.Usage, day, func(u UsageDay, d int64) int { return cmp.Compare(u.Day, d) })
			switch {
			case !found:
				st.Usage = slices.Insert(st.Usage, i, UsageDay{Day: day, ActiveUsers: p.ActiveUsers, Seats: p.SeatsPurchased})
			case p.ActiveUsers > st.Usage[i].ActiveUsers:
				st.Usage[i] = UsageDay{Day: day, ActiveUsers: p.ActiveUsers, Seats: p.SeatsPurchased}
			}
		}
		if day > nowDay-int64(m.cfg.AdoptionDays) && len(p.FeaturesUsed) > 0 {
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
		if day > nowDay-int64(m.cfg.EngagementDays) {
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
			st.Contract = &Contract{Plan: p.Plan, Seats: p.Seats, ArrCents: p.ArrCents, Renewal: renewal,
				PlanFeatures: slices.Clone(p.PlanFeatures), At: t}
		}
	case event.SponsorChanged:
		if st.Sponsor == nil || !st.Sponsor.At.After(t) {
			st.Sponsor = &Sponsor{HasExecSponsor: p.HasExecSponsor, ChampionLeft: p.ChampionLeft, At: t}
		}
	}
}

// prune drops what has left every window, keeping State small.
func (m *Model) prune(st *State) {
	nowDay := Day(st.Now)
	st.Usage = dropBefore(st.Usage, nowDay-2*usageWindowDays, func(u UsageDay) int64 { return u.Day })
	st.Logins = dropBefore(st.Logins, nowDay-int64(m.cfg.EngagementDays), func(l LoginDay) int64 { return l.Day })
	for f, d := range st.Features {
		if d <= nowDay-int64(m.cfg.AdoptionDays) {
			delete(st.Features, f)
		}
	}
	horizon := st.Now.Add(-settledKeep)
	for id, tk := range st.Tickets {
		if tk.Status == "resolved" && tk.At.Before(horizon) {
			delete(st.Tickets, id)
		}
	}
	for id, inv := range st.Invoices {
		if inv.Status == "succeeded" && inv.At.Before(horizon) {
			delete(st.Invoices, id)
		}
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

// signals are the measurements one Apply derives its decisions from.
type signals struct {
	score int
	comps Components

	trend      float64 // trailing / previous 30-day mean daily active users
	trendKnown bool
	adoption   float64 // share of the catalogue used, 0–1
	adoptKnown bool
	execLogin  bool // an executive logged in within the engagement window
}

// measure computes the six components and the score from st.
func (m *Model) measure(st *State) signals {
	var s signals
	c := &s.comps
	nowDay := Day(st.Now)
	neutral := m.cfg.NeutralComponent

	// Usage: seat utilisation of the latest day (full marks at
	// FullUtilisation) and the 30-day trend (declines cost 2 points per
	// percent; steady or growing is full marks).
	var trailSum, prevSum, trailN, prevN int64
	for _, u := range st.Usage {
		if u.Day > nowDay-usageWindowDays {
			trailSum += u.ActiveUsers
			trailN++
		} else {
			prevSum += u.ActiveUsers
			prevN++
		}
	}
	if trailN >= int64(m.cfg.MinTrendDays) && prevN >= int64(m.cfg.MinTrendDays) && prevSum > 0 {
		s.trend = (float64(trailSum) / float64(trailN)) / (float64(prevSum) / float64(prevN))
		s.trendKnown = true
	}
	if len(st.Usage) == 0 {
		c.Usage = neutral
	} else {
		util := neutral
		if u, ok := m.utilisation(st, st.Usage[len(st.Usage)-1]); ok {
			util = math.Min(100, 100*u/m.cfg.FullUtilisation)
		}
		trend := 100.0
		if s.trendKnown && s.trend < 1 {
			trend = math.Max(0, 100-200*(1-s.trend))
		}
		c.Usage = utilisationShare*util + (1-utilisationShare)*trend
	}

	// Engagement: days with a login in the window (full marks when half the
	// days have one) and whether an executive logged in. The window is
	// shorter while the customer is younger than it; with no login yet and
	// a young customer it is neutral.
	observed := nowDay - Day(st.FirstSeen) + 1
	window := min(int64(m.cfg.EngagementDays), observed)
	var loginDays int64
	for _, l := range st.Logins {
		if l.Day > nowDay-window && l.Logins > 0 {
			loginDays++
			s.execLogin = s.execLogin || l.ExecLogins > 0
		}
	}
	if st.LastLoginAt.IsZero() && observed < int64(m.cfg.EngagementDays) {
		c.Engagement = neutral
	} else {
		login := math.Min(100, 100*float64(loginDays)/(float64(window)*m.cfg.EngagedDayShare))
		exec := 0.0
		if s.execLogin {
			exec = 100
		}
		c.Engagement = (1-execLoginShare)*login + execLoginShare*exec
	}

	// Support: points off per open and escalated ticket.
	c.Support = 100
	for _, tk := range st.Tickets {
		switch tk.Status {
		case "opened":
			c.Support -= openTicketPenalty
			if tk.Priority == "high" || tk.Priority == "urgent" {
				c.Support -= urgentPenalty
			}
		case "escalated":
			c.Support -= escalatedPenalty
		}
	}
	c.Support = math.Max(0, c.Support)

	// Payment: points off per failed or overdue invoice not yet paid.
	c.Payment = 100
	for _, inv := range st.Invoices {
		if inv.Status == "failed" || inv.Status == "overdue" {
			c.Payment -= unpaidPenalty
		}
	}
	c.Payment = math.Max(0, c.Payment)

	// Sentiment: the latest NPS × 10.
	c.Sentiment = neutral
	if st.NPS != nil {
		c.Sentiment = math.Max(0, math.Min(100, 10*float64(st.NPS.Score)))
	}

	// Adoption: share of the plan's features (or the configured catalogue)
	// used within AdoptionDays.
	c.Adoption = neutral
	if cat := m.catalogue(st); len(cat) > 0 {
		used := 0
		for _, f := range cat {
			if _, ok := st.Features[f]; ok {
				used++
			}
		}
		s.adoption = float64(used) / float64(len(cat))
		s.adoptKnown = true
		c.Adoption = 100 * s.adoption
	}

	w := m.cfg.Weights
	total := w.Usage*c.Usage + w.Engagement*c.Engagement + w.Support*c.Support +
		w.Payment*c.Payment + w.Sentiment*c.Sentiment + w.Adoption*c.Adoption
	sum := w.Usage + w.Engagement + w.Support + w.Payment + w.Sentiment + w.Adoption
	// Rounding to 1e-6 first keeps float noise (0.1+0.2 style) from
	// deciding a .5 tie: 85.5 is 86 however the weights were summed.
	exact := math.Round(total/sum*1e6) / 1e6
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

// catalogue is the feature list adoption is measured against.
func (m *Model) catalogue(st *State) []string {
	if st.Contract != nil && len(st.Contract.PlanFeatures) > 0 {
		return st.Contract.PlanFeatures
	}
	return m.cfg.FeatureCatalogue
}

// healthChange reports the score when it moved ScoreChangeMin points or
// changed band since the last report. Within BaselineWindow of the first
// event the score only becomes the baseline.
func (m *Model) healthChange(st *State, s signals, e *emitter) {
	if !st.Baselined || st.Now.Before(st.FirstSeen.Add(m.cfg.BaselineWindow)) {
		st.Baselined, st.ReportedScore, st.ReportedComponents = true, s.score, s.comps
		return
	}
	prev := st.ReportedScore
	if abs(s.score-prev) < m.cfg.ScoreChangeMin && m.Band(s.score) == m.Band(prev) {
		return
	}
	e.emit(event.HealthScoreChange, "", func(d *event.Derived) {
		d.Health = &event.HealthChange{PreviousScore: prev, NewScore: s.score,
			ChangeReason: m.changeReason(st.ReportedComponents, s.comps)}
	})
	st.ReportedScore, st.ReportedComponents = s.score, s.comps
}

// changeReason names the component whose weighted change moved the score
// most, with its direction. Ties go to the earlier component in the order
// usage, engagement, support, payment, sentiment, adoption.
func (m *Model) changeReason(old, cur Components) string {
	w := m.cfg.Weights
	moves := [...]struct {
		delta    float64
		down, up string
	}{
		{w.Usage * (cur.Usage - old.Usage), "usage_decline", "usage_growth"},
		{w.Engagement * (cur.Engagement - old.Engagement), "engagement_drop", "engagement_gain"},
		{w.Support * (cur.Support - old.Support), "support_escalation", "support_resolved"},
		{w.Payment * (cur.Payment - old.Payment), "payment_issue", "payment_recovered"},
		{w.Sentiment * (cur.Sentiment - old.Sentiment), "nps_detractor", "nps_promoter"},
		{w.Adoption * (cur.Adoption - old.Adoption), "adoption_drop", "adoption_gain"},
	}
	best := 0
	for i := range moves {
		if math.Abs(moves[i].delta) > math.Abs(moves[best].delta) {
			best = i
		}
	}
	if moves[best].delta < 0 {
		return moves[best].down
	}
	return moves[best].up
}

// indicators appends the churn indicators that hold for st to dst, in
// Indicators order.
func (m *Model) indicators(st *State, s signals, dst []string) []string {
	if s.trendKnown && s.trend <= m.cfg.UsageDeclineRatio {
		dst = append(dst, IndicatorUsageDecline)
	}
	var escalated, unpaid bool
	for _, tk := range st.Tickets {
		escalated = escalated || tk.Status == "escalated"
	}
	if escalated {
		dst = append(dst, IndicatorSupportEscal)
	}
	for _, inv := range st.Invoices {
		unpaid = unpaid || inv.Status == "failed" || inv.Status == "overdue"
	}
	if unpaid {
		dst = append(dst, IndicatorPaymentIssue)
	}
	if st.NPS != nil && st.NPS.Score <= 6 {
		dst = append(dst, IndicatorNpsDetractor)
	}
	if st.Sponsor != nil && st.Sponsor.ChampionLeft {
		dst = append(dst, IndicatorChampionLeft)
	}
	quiet := time.Duration(m.cfg.EngagementDays) * 24 * time.Hour
	if st.Now.Sub(st.FirstSeen) >= quiet && (st.LastLoginAt.IsZero() || st.Now.Sub(st.LastLoginAt) >= quiet) {
		dst = append(dst, IndicatorLowEngagement)
	}
	if c := st.Contract; c != nil && !c.Renewal.IsZero() && s.score < m.cfg.RenewalRiskScore {
		today := st.Now.Truncate(24 * time.Hour)
		if !c.Renewal.Before(today) && !c.Renewal.After(today.AddDate(0, 0, m.cfg.RenewalWindowDays)) {
			dst = append(dst, IndicatorRenewalAtRisk)
		}
	}
	return dst
}

// riskLevel maps the summed weights of indicators to a level ("" for none).
func (m *Model) riskLevel(indicators []string) string {
	sum := 0
	for _, in := range indicators {
		sum += m.cfg.IndicatorWeights[in]
	}
	t := m.cfg.RiskThresholds
	switch {
	case sum >= t.Critical:
		return RiskCritical
	case sum >= t.High:
		return RiskHigh
	case sum >= t.Medium:
		return RiskMedium
	case sum >= t.Low:
		return RiskLow
	}
	return ""
}

// churn reports the risk level when it rose, unless the same level was
// reported less than RiskRepeatAfter ago.
func (m *Model) churn(st *State, indicators []string, e *emitter) {
	level := m.riskLevel(indicators)
	prev := st.RiskLevel
	st.RiskLevel = level
	if riskRank(level) <= riskRank(prev) {
		return
	}
	if last, ok := st.RiskEmitted[level]; ok && st.Now.Sub(last) < m.cfg.RiskRepeatAfter {
		return
	}
	if st.RiskEmitted == nil {
		st.RiskEmitted = make(map[string]time.Time)
	}
	st.RiskEmitted[level] = st.Now
	e.emit(event.ChurnRiskDetected, "", func(d *event.Derived) {
		d.Churn = &event.ChurnRisk{RiskLevel: level, RiskIndicators: slices.Clone(indicators),
			RecommendedActions: slices.Clone(m.cfg.Actions[level])}
	})
}

func riskRank(level string) int { return slices.Index(RiskLevels(), level) + 1 }

// expansion reports upsell and cross-sell opportunities of a healthy
// customer without churn indicators, each at most once per
// ExpansionRepeatAfter.
func (m *Model) expansion(st *State, s signals, e *emitter) {
	c := st.Contract
	if s.score < m.cfg.ExpansionMinScore || c == nil {
		return
	}
	type opportunity struct {
		kind  string
		value int64
	}
	var opps [2]opportunity
	n := 0
	if c.Seats > 0 && c.ArrCents > 0 && m.utilisationStreak(st) >= m.cfg.UpsellDays {
		extra := max(1, int64(math.Ceil(float64(c.Seats)*m.cfg.UpsellSeatShare)))
		value := int64(math.Round(float64(extra) * float64(c.ArrCents) / 100 / float64(c.Seats)))
		opps[n] = opportunity{OpportunityUpsell, value}
		n++
	}
	if len(c.PlanFeatures) > 0 && s.adoptKnown && s.adoption >= m.cfg.CrossSellFeatureShare {
		opps[n] = opportunity{OpportunityCrossSell, int64(math.Round(float64(c.ArrCents) / 100 * m.cfg.CrossSellARRShare))}
		n++
	}
	for _, o := range opps[:n] {
		if last, ok := st.ExpansionEmitted[o.kind]; ok && st.Now.Sub(last) < m.cfg.ExpansionRepeatAfter {
			continue
		}
		if st.ExpansionEmitted == nil {
			st.ExpansionEmitted = make(map[string]time.Time)
		}
		st.ExpansionEmitted[o.kind] = st.Now
		factors := m.successFactors(st, s)
		p := m.cfg.ProbabilityBase + m.cfg.ProbabilityPerFactor*float64(len(factors))
		p = math.Round(math.Min(m.cfg.ProbabilityMax, p)*100) / 100
		e.emit(event.ExpansionReady, o.kind, func(d *event.Derived) {
			d.Expansion = &event.Expansion{OpportunityType: o.kind, ValueEstimate: o.value,
				Probability: p, SuccessFactors: factors}
		})
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
		if u.Day != want || !ok || util < m.cfg.UpsellUtilisation {
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
	if s.adoptKnown && 100*s.adoption >= m.cfg.HighAdoption {
		f = append(f, FactorHighAdoption)
	}
	if s.score >= m.cfg.StrongScore {
		f = append(f, FactorStrongHealthScore)
	}
	if s.execLogin || (st.Sponsor != nil && st.Sponsor.HasExecSponsor) {
		f = append(f, FactorExecSponsorship)
	}
	if st.NPS != nil && st.NPS.Score >= 9 {
		f = append(f, FactorPromoterNPS)
	}
	if s.trendKnown && s.trend >= m.cfg.UsageGrowthRatio {
		f = append(f, FactorUsageGrowth)
	}
	return f
}

// emitter collects the derived events of one Apply.
type emitter struct {
	st  *State
	in  event.CustomerEvent
	at  time.Time
	out []event.Derived
}

// emit appends a derived event of type typ; sub tells apart several events
// of one type caused by one input (the opportunity type).
func (e *emitter) emit(typ, sub string, fill func(*event.Derived)) {
	d := event.Derived{
		EventID:    DerivedID(e.st.CustomerID, e.in, typ, sub),
		Event:      typ,
		CustomerID: e.st.CustomerID,
		Timestamp:  e.at,
	}
	fill(&d)
	e.out = append(e.out, d)
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
