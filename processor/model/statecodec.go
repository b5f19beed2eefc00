package model

import (
	"errors"
	"fmt"
	"time"

	"github.com/vitalshq/vitals/schemas"
	"github.com/vitalshq/vitals/topics"
)

// StateSubject is the schema subject of the customer state changelog
// records (schemas.Subject(topics.CustomerState)):
// schemas/customer_state.v1.avsc.
const StateSubject = topics.CustomerState + "-value"

// ErrStateMalformed is wrapped by DecodeState when a record decodes with its
// schema but its values cannot be a State (wrong types, broken unions).
// Framing and schema errors wrap the schemas package's errors instead.
var ErrStateMalformed = errors.New("processor: malformed customer state")

// StateCodec encodes a State as the Avro record of the changelog topic
// vitals.customer-state.v1, in the Confluent wire format, and decodes any
// version of it. Maps are written as arrays sorted by key, so equal States
// encode to equal bytes. It is safe for concurrent use.
type StateCodec struct {
	codec *schemas.Codec
}

// NewStateCodec returns a StateCodec using c, which must know StateSubject.
func NewStateCodec(c *schemas.Codec) (*StateCodec, error) {
	if c == nil {
		return nil, errors.New("processor: NewStateCodec: nil schemas codec")
	}
	for _, in := range c.Schemas() {
		if in.Subject == StateSubject {
			return &StateCodec{codec: c}, nil
		}
	}
	return nil, fmt.Errorf("processor: NewStateCodec: schemas codec has no %s", StateSubject)
}

// EncodeState encodes st with the latest customer state schema.
func (sc *StateCodec) EncodeState(st *State) ([]byte, error) {
	b, err := sc.codec.EncodeNative(StateSubject, stateToNative(st))
	if err != nil {
		return nil, fmt.Errorf("encode state of %q: %w", st.CustomerID, err)
	}
	return b, nil
}

// DecodeState decodes a changelog record written with any customer state
// schema version.
func (sc *StateCodec) DecodeState(b []byte) (*State, error) {
	native, _, err := sc.codec.DecodeNative(StateSubject, b)
	if err != nil {
		return nil, fmt.Errorf("decode state: %w", err)
	}
	r := reader{m: native}
	st := stateFromNative(&r)
	if r.err != nil {
		return nil, fmt.Errorf("decode state of %q: %w", st.CustomerID, r.err)
	}
	return st, nil
}

// Union branch names of the state schema.
const (
	branchTime     = "long.timestamp-millis"
	branchDate     = "int.date"
	branchNPS      = "dev.vitals.state.NPS"
	branchContract = "dev.vitals.state.Contract"
	branchSponsor  = "dev.vitals.state.Sponsor"
)

func millis(t time.Time) int64 { return t.UnixMilli() }

func optTime(t time.Time) any {
	if t.IsZero() {
		return nil
	}
	return map[string]any{branchTime: t.UnixMilli()}
}

func stateToNative(st *State) map[string]any {
	seen := make([]any, len(st.SeenIDs))
	for i, s := range st.SeenIDs {
		seen[i] = map[string]any{"id": s.ID, "at": millis(s.At)}
	}
	usage := make([]any, len(st.Usage))
	for i, u := range st.Usage {
		usage[i] = map[string]any{"day": u.Day, "active_users": u.ActiveUsers, "seats": u.Seats}
	}
	features := make([]any, 0, len(st.Features))
	for _, f := range sortedKeys(st.Features) {
		features = append(features, map[string]any{"feature": f, "last_day": st.Features[f]})
	}
	logins := make([]any, len(st.Logins))
	for i, l := range st.Logins {
		logins[i] = map[string]any{"day": l.Day, "logins": l.Logins, "exec_logins": l.ExecLogins}
	}
	tickets := make([]any, 0, len(st.Tickets))
	for _, id := range sortedKeys(st.Tickets) {
		tk := st.Tickets[id]
		tickets = append(tickets, map[string]any{"ticket_id": id, "status": tk.Status, "priority": tk.Priority, "at": millis(tk.At)})
	}
	invoices := make([]any, 0, len(st.Invoices))
	for _, id := range sortedKeys(st.Invoices) {
		inv := st.Invoices[id]
		invoices = append(invoices, map[string]any{"invoice_id": id, "status": inv.Status, "at": millis(inv.At)})
	}
	var nps, contract, sponsor any
	if st.NPS != nil {
		nps = map[string]any{branchNPS: map[string]any{"score": st.NPS.Score, "at": millis(st.NPS.At)}}
	}
	if c := st.Contract; c != nil {
		var renewal any
		if !c.Renewal.IsZero() {
			renewal = map[string]any{branchDate: int32(Day(c.Renewal))}
		}
		contract = map[string]any{branchContract: map[string]any{"plan": c.Plan, "seats": c.Seats, "arr_cents": c.ArrCents,
			"renewal": renewal, "plan_features": anyStrings(c.PlanFeatures), "at": millis(c.At)}}
	}
	if s := st.Sponsor; s != nil {
		sponsor = map[string]any{branchSponsor: map[string]any{"has_exec_sponsor": s.HasExecSponsor,
			"champion_left": s.ChampionLeft, "at": millis(s.At)}}
	}
	recent := make([]any, len(st.RecentDerived))
	for i, d := range st.RecentDerived {
		recent[i] = map[string]any{"event_id": d.EventID, "event": d.Event, "at": millis(d.At), "score": int32(d.Score),
			"previous_score": int32(d.PreviousScore), "change_reason": d.ChangeReason, "risk_level": d.RiskLevel,
			"risk_indicators": anyStrings(d.RiskIndicators), "opportunity_type": d.OpportunityType,
			"value_estimate": d.ValueEstimate, "probability": d.Probability}
	}
	return map[string]any{
		"customer_id":         st.CustomerID,
		"first_seen":          optTime(st.FirstSeen),
		"now":                 optTime(st.Now),
		"seen_ids":            seen,
		"usage":               usage,
		"features":            features,
		"logins":              logins,
		"last_login_at":       optTime(st.LastLoginAt),
		"tickets":             tickets,
		"invoices":            invoices,
		"nps":                 nps,
		"contract":            contract,
		"sponsor":             sponsor,
		"score":               int32(st.Score),
		"band":                st.Band,
		"components":          componentsNative(st.Components),
		"baselined":           st.Baselined,
		"reported_score":      int32(st.ReportedScore),
		"reported_components": componentsNative(st.ReportedComponents),
		"risk_level":          st.RiskLevel,
		"indicators":          anyStrings(st.Indicators),
		"risk_emitted":        emittedNative(st.RiskEmitted),
		"expansion_emitted":   emittedNative(st.ExpansionEmitted),
		"recent_derived":      recent,
	}
}

func componentsNative(c Components) map[string]any {
	return map[string]any{"usage": c.Usage, "engagement": c.Engagement, "support": c.Support,
		"payment": c.Payment, "sentiment": c.Sentiment, "adoption": c.Adoption}
}

func emittedNative(m map[string]time.Time) []any {
	out := make([]any, 0, len(m))
	for _, k := range sortedKeys(m) {
		out = append(out, map[string]any{"kind": k, "at": millis(m[k])})
	}
	return out
}

func anyStrings(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

// stateFromNative maps a decoded record onto a State. Empty arrays become
// nil slices and maps, the form Apply keeps them in.
func stateFromNative(r *reader) *State {
	st := &State{
		CustomerID:    r.str("customer_id"),
		FirstSeen:     r.optTime("first_seen"),
		Now:           r.optTime("now"),
		LastLoginAt:   r.optTime("last_login_at"),
		Score:         int(r.i64("score")),
		Band:          r.str("band"),
		Components:    r.components("components"),
		Baselined:     r.boolean("baselined"),
		ReportedScore: int(r.i64("reported_score")),
		RiskLevel:     r.str("risk_level"),
		Indicators:    r.strs("indicators"),
	}
	st.ReportedComponents = r.components("reported_components")
	for _, x := range r.records("seen_ids") {
		st.SeenIDs = append(st.SeenIDs, SeenID{ID: x.str("id"), At: x.time("at")})
	}
	for _, x := range r.records("usage") {
		st.Usage = append(st.Usage, UsageDay{Day: x.i64("day"), ActiveUsers: x.i64("active_users"), Seats: x.i64("seats")})
	}
	for _, x := range r.records("features") {
		if st.Features == nil {
			st.Features = make(map[string]int64)
		}
		st.Features[x.str("feature")] = x.i64("last_day")
	}
	for _, x := range r.records("logins") {
		st.Logins = append(st.Logins, LoginDay{Day: x.i64("day"), Logins: x.i64("logins"), ExecLogins: x.i64("exec_logins")})
	}
	for _, x := range r.records("tickets") {
		if st.Tickets == nil {
			st.Tickets = make(map[string]Ticket)
		}
		st.Tickets[x.str("ticket_id")] = Ticket{Status: x.str("status"), Priority: x.str("priority"), At: x.time("at")}
	}
	for _, x := range r.records("invoices") {
		if st.Invoices == nil {
			st.Invoices = make(map[string]Invoice)
		}
		st.Invoices[x.str("invoice_id")] = Invoice{Status: x.str("status"), At: x.time("at")}
	}
	if x := r.union("nps", branchNPS); x != nil {
		st.NPS = &NPS{Score: int32(x.i64("score")), At: x.time("at")}
	}
	if x := r.union("contract", branchContract); x != nil {
		st.Contract = &Contract{Plan: x.str("plan"), Seats: x.i64("seats"), ArrCents: x.i64("arr_cents"),
			Renewal: x.optDate("renewal"), PlanFeatures: x.strs("plan_features"), At: x.time("at")}
	}
	if x := r.union("sponsor", branchSponsor); x != nil {
		st.Sponsor = &Sponsor{HasExecSponsor: x.boolean("has_exec_sponsor"), ChampionLeft: x.boolean("champion_left"), At: x.time("at")}
	}
	st.RiskEmitted = r.emitted("risk_emitted")
	st.ExpansionEmitted = r.emitted("expansion_emitted")
	for _, x := range r.records("recent_derived") {
		st.RecentDerived = append(st.RecentDerived, DerivedSummary{EventID: x.str("event_id"), Event: x.str("event"),
			At: x.time("at"), Score: int(x.i64("score")), PreviousScore: int(x.i64("previous_score")),
			ChangeReason: x.str("change_reason"), RiskLevel: x.str("risk_level"), RiskIndicators: x.strs("risk_indicators"),
			OpportunityType: x.str("opportunity_type"), ValueEstimate: x.i64("value_estimate"), Probability: x.f64("probability")})
	}
	return st
}

// reader reads the fields of a decoded record, keeping the first type error
// (shared with the readers of nested records) and reading zero values after
// it. A field the writer's version lacks reads as its zero value.
type reader struct {
	m   map[string]any
	err error
	top *reader // where errors go; nil for the top level
}

func (r *reader) fail(k string, v any, want string) {
	root := r
	if r.top != nil {
		root = r.top
	}
	if root.err == nil {
		root.err = fmt.Errorf("%w: field %q is %T, want %s", ErrStateMalformed, k, v, want)
	}
}

func (r *reader) nested(m map[string]any) *reader {
	root := r
	if r.top != nil {
		root = r.top
	}
	return &reader{m: m, top: root}
}

func (r *reader) str(k string) string {
	switch v := r.m[k].(type) {
	case string:
		return v
	case nil:
		return ""
	default:
		r.fail(k, v, "string")
		return ""
	}
}

func (r *reader) i64(k string) int64 {
	switch v := r.m[k].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case nil:
		return 0
	default:
		r.fail(k, v, "int or long")
		return 0
	}
}

func (r *reader) f64(k string) float64 {
	switch v := r.m[k].(type) {
	case float64:
		return v
	case nil:
		return 0
	default:
		r.fail(k, v, "double")
		return 0
	}
}

func (r *reader) boolean(k string) bool {
	switch v := r.m[k].(type) {
	case bool:
		return v
	case nil:
		return false
	default:
		r.fail(k, v, "boolean")
		return false
	}
}

// strs reads an array of strings; empty reads as nil.
func (r *reader) strs(k string) []string {
	switch v := r.m[k].(type) {
	case []any:
		if len(v) == 0 {
			return nil
		}
		out := make([]string, len(v))
		for i, item := range v {
			s, ok := item.(string)
			if !ok {
				r.fail(k, item, "array of string")
				return nil
			}
			out[i] = s
		}
		return out
	case nil:
		return nil
	default:
		r.fail(k, v, "array")
		return nil
	}
}

// timeOf converts a decoded timestamp-millis (time.Time or long) to the
// canonical UTC time.
func (r *reader) timeOf(k string, v any) time.Time {
	switch v := v.(type) {
	case time.Time:
		return time.UnixMilli(v.UnixMilli()).UTC()
	case int64:
		return time.UnixMilli(v).UTC()
	default:
		r.fail(k, v, "timestamp-millis")
		return time.Time{}
	}
}

func (r *reader) time(k string) time.Time { return r.timeOf(k, r.m[k]) }

// optTime reads a union of null and timestamp-millis; null is the zero time.
func (r *reader) optTime(k string) time.Time {
	switch v := r.m[k].(type) {
	case nil:
		return time.Time{}
	case map[string]any:
		t, ok := v[branchTime]
		if !ok || len(v) != 1 {
			r.fail(k, v, "union of null and "+branchTime)
			return time.Time{}
		}
		return r.timeOf(k, t)
	default:
		r.fail(k, v, "union of null and "+branchTime)
		return time.Time{}
	}
}

// optDate reads a union of null and date as midnight UTC; null is the zero
// time.
func (r *reader) optDate(k string) time.Time {
	switch v := r.m[k].(type) {
	case nil:
		return time.Time{}
	case map[string]any:
		switch d := v[branchDate].(type) {
		case time.Time:
			return time.Unix(d.Unix()/86400*86400, 0).UTC()
		case int32:
			return time.Unix(int64(d)*86400, 0).UTC()
		default:
			r.fail(k, v, "union of null and "+branchDate)
			return time.Time{}
		}
	default:
		r.fail(k, v, "union of null and "+branchDate)
		return time.Time{}
	}
}

func (r *reader) components(k string) Components {
	m, ok := r.m[k].(map[string]any)
	if !ok {
		if r.m[k] != nil {
			r.fail(k, r.m[k], "record")
		}
		return Components{}
	}
	x := r.nested(m)
	return Components{Usage: x.f64("usage"), Engagement: x.f64("engagement"), Support: x.f64("support"),
		Payment: x.f64("payment"), Sentiment: x.f64("sentiment"), Adoption: x.f64("adoption")}
}

func (r *reader) records(k string) []*reader {
	switch v := r.m[k].(type) {
	case []any:
		out := make([]*reader, 0, len(v))
		for _, item := range v {
			m, ok := item.(map[string]any)
			if !ok {
				r.fail(k, item, "array of record")
				return nil
			}
			out = append(out, r.nested(m))
		}
		return out
	case nil:
		return nil
	default:
		r.fail(k, v, "array")
		return nil
	}
}

// union reads a union of null and the record branch; nil for null.
func (r *reader) union(k, branch string) *reader {
	switch v := r.m[k].(type) {
	case nil:
		return nil
	case map[string]any:
		m, ok := v[branch].(map[string]any)
		if !ok || len(v) != 1 {
			r.fail(k, v, "union of null and "+branch)
			return nil
		}
		return r.nested(m)
	default:
		r.fail(k, v, "union of null and "+branch)
		return nil
	}
}

func (r *reader) emitted(k string) map[string]time.Time {
	var out map[string]time.Time
	for _, x := range r.records(k) {
		if out == nil {
			out = make(map[string]time.Time)
		}
		out[x.str("kind")] = x.time("at")
	}
	return out
}
