package schemas

import (
	"fmt"
	"math"
	"time"

	"github.com/vitalshq/vitals/event"
)

// Full names of the CustomerEvent payload branches: the keys goavro uses for
// union values.
const (
	branchUsage    = "dev.vitals.UsageReported"
	branchLogin    = "dev.vitals.LoginRecorded"
	branchTicket   = "dev.vitals.SupportTicket"
	branchPayment  = "dev.vitals.PaymentEvent"
	branchNps      = "dev.vitals.NpsResponse"
	branchContract = "dev.vitals.ContractUpdated"
	branchSponsor  = "dev.vitals.SponsorChanged"
)

// dateLayout is the Go form of an Avro date: event.ContractUpdated.RenewalDate.
const dateLayout = "2006-01-02"

const secondsPerDay = 24 * 60 * 60

// customerToNative returns the goavro form of e and an estimate of its
// encoded size.
func customerToNative(e event.CustomerEvent) (map[string]any, int, error) {
	size := 16 + len(e.EventID) + len(e.CustomerID) + len(e.Source)
	var branch string
	var body map[string]any
	switch p := deref(e.Data).(type) {
	case event.UsageReported:
		branch = branchUsage
		body = map[string]any{
			"active_users":    p.ActiveUsers,
			"seats_purchased": p.SeatsPurchased,
			"features_used":   anyStrings(p.FeaturesUsed),
		}
		size += 24 + lenStrings(p.FeaturesUsed)
	case event.LoginRecorded:
		branch = branchLogin
		body = map[string]any{"user_id": p.UserID, "role": p.Role}
		size += 8 + len(p.UserID)
	case event.SupportTicket:
		branch = branchTicket
		body = map[string]any{"ticket_id": p.TicketID, "status": p.Status, "priority": p.Priority}
		size += 8 + len(p.TicketID)
	case event.PaymentEvent:
		branch = branchPayment
		body = map[string]any{"invoice_id": p.InvoiceID, "status": p.Status, "amount_cents": p.AmountCents}
		size += 16 + len(p.InvoiceID)
	case event.NpsResponse:
		branch = branchNps
		body = map[string]any{"score": p.Score}
		size += 8
	case event.ContractUpdated:
		days, err := daysFromDate(p.RenewalDate)
		if err != nil {
			return nil, 0, err
		}
		branch = branchContract
		body = map[string]any{
			"plan":          p.Plan,
			"seats":         p.Seats,
			"arr_cents":     p.ArrCents,
			"renewal_date":  days,
			"plan_features": anyStrings(p.PlanFeatures),
		}
		size += 32 + len(p.Plan) + lenStrings(p.PlanFeatures)
	case event.SponsorChanged:
		branch = branchSponsor
		body = map[string]any{"has_exec_sponsor": p.HasExecSponsor, "champion_left": p.ChampionLeft}
		size += 4
	case nil:
		return nil, 0, fmt.Errorf("%w: no payload", ErrInvalid)
	default:
		return nil, 0, fmt.Errorf("%w: unsupported payload %T", ErrInvalid, e.Data)
	}
	return map[string]any{
		"event_id":    e.EventID,
		"customer_id": e.CustomerID,
		"occurred_at": e.OccurredAt.UnixMilli(),
		"source":      e.Source,
		"payload":     map[string]any{branch: body},
	}, size, nil
}

// deref turns a pointer payload into its value, so callers may pass either.
// A nil pointer becomes nil.
func deref(p event.Payload) event.Payload {
	switch v := p.(type) {
	case *event.UsageReported:
		return derefOrNil(v)
	case *event.LoginRecorded:
		return derefOrNil(v)
	case *event.SupportTicket:
		return derefOrNil(v)
	case *event.PaymentEvent:
		return derefOrNil(v)
	case *event.NpsResponse:
		return derefOrNil(v)
	case *event.ContractUpdated:
		return derefOrNil(v)
	case *event.SponsorChanged:
		return derefOrNil(v)
	}
	return p
}

func derefOrNil[T event.Payload](p *T) event.Payload {
	if p == nil {
		return nil
	}
	return *p
}

// customerFromNative maps a decoded CustomerEvent record of any version onto
// the Go type. Fields the writer's version lacks keep their zero value.
func customerFromNative(m map[string]any) (event.CustomerEvent, error) {
	f := fields{m: m}
	e := event.CustomerEvent{
		EventID:    f.str("event_id"),
		CustomerID: f.str("customer_id"),
		OccurredAt: f.time("occurred_at"),
		Source:     f.str("source"),
	}
	union, ok := m["payload"].(map[string]any)
	if !ok || len(union) != 1 {
		return event.CustomerEvent{}, fmt.Errorf("%w: payload is %T, want one union branch", ErrMalformed, m["payload"])
	}
	for branch, v := range union {
		body, ok := v.(map[string]any)
		if !ok {
			return event.CustomerEvent{}, fmt.Errorf("%w: payload %s is %T, want a record", ErrMalformed, branch, v)
		}
		p := fields{m: body}
		switch branch {
		case branchUsage:
			e.Data = event.UsageReported{
				ActiveUsers:    p.i64("active_users"),
				SeatsPurchased: p.i64("seats_purchased"),
				FeaturesUsed:   p.strs("features_used"),
			}
		case branchLogin:
			e.Data = event.LoginRecorded{UserID: p.str("user_id"), Role: p.str("role")}
		case branchTicket:
			e.Data = event.SupportTicket{TicketID: p.str("ticket_id"), Status: p.str("status"), Priority: p.str("priority")}
		case branchPayment:
			e.Data = event.PaymentEvent{InvoiceID: p.str("invoice_id"), Status: p.str("status"), AmountCents: p.i64("amount_cents")}
		case branchNps:
			e.Data = event.NpsResponse{Score: p.i32("score")}
		case branchContract:
			e.Data = event.ContractUpdated{
				Plan:         p.str("plan"),
				Seats:        p.i64("seats"),
				ArrCents:     p.i64("arr_cents"),
				RenewalDate:  p.date("renewal_date"),
				PlanFeatures: p.strs("plan_features"),
			}
		case branchSponsor:
			e.Data = event.SponsorChanged{HasExecSponsor: p.boolean("has_exec_sponsor"), ChampionLeft: p.boolean("champion_left")}
		default:
			return event.CustomerEvent{}, fmt.Errorf("%w: payload type %s unknown to this reader", ErrMalformed, branch)
		}
		if p.err != nil {
			return event.CustomerEvent{}, fmt.Errorf("payload %s: %w", branch, p.err)
		}
	}
	if f.err != nil {
		return event.CustomerEvent{}, f.err
	}
	return e, nil
}

// derivedToNative returns the goavro form of d and an estimate of its encoded
// size. The body set must match d.Event, and only that body.
func derivedToNative(d event.Derived) (map[string]any, int, error) {
	set := 0
	for _, b := range []bool{d.Health != nil, d.Expansion != nil, d.Churn != nil} {
		if b {
			set++
		}
	}
	if set != 1 {
		return nil, 0, fmt.Errorf("%w: %s event has %d bodies, want exactly one", ErrInvalid, d.Event, set)
	}
	size := 16 + len(d.EventID) + len(d.CustomerID)
	m := make(map[string]any, 7)
	m["event_id"] = d.EventID
	m["customer_id"] = d.CustomerID
	m["timestamp"] = d.Timestamp.UnixMilli()
	switch d.Event {
	case event.HealthScoreChange:
		h := d.Health
		if h == nil {
			return nil, 0, fmt.Errorf("%w: %s event without Health body", ErrInvalid, d.Event)
		}
		prev, err := toInt32("previous_score", h.PreviousScore)
		if err != nil {
			return nil, 0, err
		}
		next, err := toInt32("new_score", h.NewScore)
		if err != nil {
			return nil, 0, err
		}
		m["previous_score"] = prev
		m["new_score"] = next
		m["change_reason"] = h.ChangeReason
		size += 16 + len(h.ChangeReason)
	case event.ExpansionReady:
		x := d.Expansion
		if x == nil {
			return nil, 0, fmt.Errorf("%w: %s event without Expansion body", ErrInvalid, d.Event)
		}
		m["opportunity_type"] = x.OpportunityType
		m["value_estimate"] = x.ValueEstimate
		m["probability"] = x.Probability
		m["success_factors"] = anyStrings(x.SuccessFactors)
		size += 24 + len(x.OpportunityType) + lenStrings(x.SuccessFactors)
	case event.ChurnRiskDetected:
		r := d.Churn
		if r == nil {
			return nil, 0, fmt.Errorf("%w: %s event without Churn body", ErrInvalid, d.Event)
		}
		m["risk_level"] = r.RiskLevel
		m["risk_indicators"] = anyStrings(r.RiskIndicators)
		m["recommended_actions"] = anyStrings(r.RecommendedActions)
		size += 8 + len(r.RiskLevel) + lenStrings(r.RiskIndicators) + lenStrings(r.RecommendedActions)
	default:
		return nil, 0, fmt.Errorf("%w: unknown derived event %q", ErrInvalid, d.Event)
	}
	// Writers without the field (v1) ignore it.
	m["explanation"] = nil
	if x := d.Explanation; x != nil {
		native, n, err := explanationToNative(x)
		if err != nil {
			return nil, 0, err
		}
		m["explanation"] = map[string]any{branchExplanation: native}
		size += n
	}
	return m, size, nil
}

// branchExplanation is the union branch name of a set explanation.
const branchExplanation = "dev.vitals.Explanation"

func explanationToNative(x *event.Explanation) (map[string]any, int, error) {
	score, err := toInt32("explanation.score", x.Score)
	if err != nil {
		return nil, 0, err
	}
	prev, err := toInt32("explanation.previous_score", x.PreviousScore)
	if err != nil {
		return nil, 0, err
	}
	points, err := toInt32("explanation.risk_points", x.RiskPoints)
	if err != nil {
		return nil, 0, err
	}
	size := 64 + 96 + len(x.Summary) + len(x.Band) + len(x.PreviousBand)
	inputs := make([]any, len(x.Inputs))
	for i, in := range x.Inputs {
		inputs[i] = map[string]any{"component": in.Component, "delta": in.Delta, "score_delta": in.ScoreDelta, "because": in.Because}
		size += 24 + len(in.Component) + len(in.Because)
	}
	indicators := make([]any, len(x.Indicators))
	for i, in := range x.Indicators {
		w, err := toInt32("explanation.indicators.weight", in.Weight)
		if err != nil {
			return nil, 0, err
		}
		indicators[i] = map[string]any{"indicator": in.Indicator, "weight": w, "evidence": in.Evidence}
		size += 8 + len(in.Indicator) + len(in.Evidence)
	}
	factors := make([]any, len(x.Factors))
	for i, f := range x.Factors {
		factors[i] = map[string]any{"factor": f.Factor, "evidence": f.Evidence}
		size += 4 + len(f.Factor) + len(f.Evidence)
	}
	return map[string]any{
		"summary":             x.Summary,
		"score":               score,
		"band":                x.Band,
		"previous_score":      prev,
		"previous_band":       x.PreviousBand,
		"components":          componentsToNative(x.Components),
		"previous_components": componentsToNative(x.PreviousComponents),
		"inputs":              inputs,
		"risk_points":         points,
		"indicators":          indicators,
		"factors":             factors,
	}, size, nil
}

func componentsToNative(c event.ComponentScores) map[string]any {
	return map[string]any{"usage": c.Usage, "engagement": c.Engagement, "support": c.Support,
		"payment": c.Payment, "sentiment": c.Sentiment, "adoption": c.Adoption}
}

// explanationFromNative reads the optional explanation of a decoded derived
// record: nil when the writer's version has none or it is null. Empty
// arrays read as nil slices, the form the processor produces.
func explanationFromNative(f *fields) *event.Explanation {
	var body map[string]any
	switch v := f.m["explanation"].(type) {
	case nil:
		return nil
	case map[string]any:
		b, ok := v[branchExplanation].(map[string]any)
		if !ok || len(v) != 1 {
			f.fail("explanation", v, "union of null and "+branchExplanation)
			return nil
		}
		body = b
	default:
		f.fail("explanation", v, "union of null and "+branchExplanation)
		return nil
	}
	x := fields{m: body}
	out := &event.Explanation{
		Summary:            x.str("summary"),
		Score:              int(x.i32("score")),
		Band:               x.str("band"),
		PreviousScore:      int(x.i32("previous_score")),
		PreviousBand:       x.str("previous_band"),
		Components:         x.components("components"),
		PreviousComponents: x.components("previous_components"),
		RiskPoints:         int(x.i32("risk_points")),
	}
	for _, r := range x.records("inputs") {
		in := fields{m: r}
		out.Inputs = append(out.Inputs, event.ExplanationInput{Component: in.str("component"),
			Delta: in.f64("delta"), ScoreDelta: in.f64("score_delta"), Because: in.str("because")})
		x.keep(in.err)
	}
	for _, r := range x.records("indicators") {
		in := fields{m: r}
		out.Indicators = append(out.Indicators, event.IndicatorEvidence{Indicator: in.str("indicator"),
			Weight: int(in.i32("weight")), Evidence: in.str("evidence")})
		x.keep(in.err)
	}
	for _, r := range x.records("factors") {
		in := fields{m: r}
		out.Factors = append(out.Factors, event.FactorEvidence{Factor: in.str("factor"), Evidence: in.str("evidence")})
		x.keep(in.err)
	}
	f.keep(x.err)
	return out
}

// keep records err as f's error unless f already has one.
func (f *fields) keep(err error) {
	if f.err == nil && err != nil {
		f.err = fmt.Errorf("explanation: %w", err)
	}
}

// components reads a ComponentScores record.
func (f *fields) components(k string) event.ComponentScores {
	r, ok := f.m[k].(map[string]any)
	if !ok {
		if f.m[k] != nil {
			f.fail(k, f.m[k], "record")
		}
		return event.ComponentScores{}
	}
	c := fields{m: r}
	out := event.ComponentScores{Usage: c.f64("usage"), Engagement: c.f64("engagement"), Support: c.f64("support"),
		Payment: c.f64("payment"), Sentiment: c.f64("sentiment"), Adoption: c.f64("adoption")}
	f.keep(c.err)
	return out
}

// records reads an array of records.
func (f *fields) records(k string) []map[string]any {
	switch v := f.m[k].(type) {
	case []any:
		out := make([]map[string]any, 0, len(v))
		for _, item := range v {
			r, ok := item.(map[string]any)
			if !ok {
				f.fail(k, item, "array of record")
				return nil
			}
			out = append(out, r)
		}
		return out
	case nil:
		return nil
	default:
		f.fail(k, v, "array")
		return nil
	}
}

// derivedFromNative maps a decoded derived record of any version onto the Go
// type. et is the derived event name of the writer's subject.
func derivedFromNative(et string, m map[string]any) (event.Derived, error) {
	f := fields{m: m}
	d := event.Derived{
		EventID:    f.str("event_id"),
		Event:      et,
		CustomerID: f.str("customer_id"),
		Timestamp:  f.time("timestamp"),
	}
	switch et {
	case event.HealthScoreChange:
		d.Health = &event.HealthChange{
			PreviousScore: int(f.i32("previous_score")),
			NewScore:      int(f.i32("new_score")),
			ChangeReason:  f.str("change_reason"),
		}
	case event.ExpansionReady:
		d.Expansion = &event.Expansion{
			OpportunityType: f.str("opportunity_type"),
			ValueEstimate:   f.i64("value_estimate"),
			Probability:     f.f64("probability"),
			SuccessFactors:  f.strs("success_factors"),
		}
	case event.ChurnRiskDetected:
		d.Churn = &event.ChurnRisk{
			RiskLevel:          f.str("risk_level"),
			RiskIndicators:     f.strs("risk_indicators"),
			RecommendedActions: f.strs("recommended_actions"),
		}
	}
	d.Explanation = explanationFromNative(&f)
	if f.err != nil {
		return event.Derived{}, f.err
	}
	return d, nil
}

// fields reads the fields of a decoded record. A field the writer's version
// does not have reads as the zero value (the reader's default); a field of an
// unexpected type records the first error in err and reads as zero.
type fields struct {
	m   map[string]any
	err error
}

func (f *fields) fail(k string, v any, want string) {
	if f.err == nil {
		f.err = fmt.Errorf("%w: field %q is %T, want %s", ErrMalformed, k, v, want)
	}
}

func (f *fields) str(k string) string {
	switch v := f.m[k].(type) {
	case string:
		return v
	case nil:
		return ""
	case []byte:
		return string(v)
	default:
		f.fail(k, v, "string")
		return ""
	}
}

func (f *fields) i64(k string) int64 {
	switch v := f.m[k].(type) {
	case int64:
		return v
	case int32:
		return int64(v)
	case nil:
		return 0
	default:
		f.fail(k, v, "long")
		return 0
	}
}

func (f *fields) i32(k string) int32 {
	switch v := f.m[k].(type) {
	case int32:
		return v
	case int64:
		if v < math.MinInt32 || v > math.MaxInt32 {
			f.fail(k, v, "int in range")
			return 0
		}
		return int32(v)
	case nil:
		return 0
	default:
		f.fail(k, v, "int")
		return 0
	}
}

// f64 reads a double. NaN and infinities are malformed: no event has
// them, and a webhook body (JSON) cannot carry them.
func (f *fields) f64(k string) float64 {
	switch v := f.m[k].(type) {
	case float64:
		if math.IsNaN(v) || math.IsInf(v, 0) {
			f.fail(k, v, "finite double")
			return 0
		}
		return v
	case float32:
		if math.IsNaN(float64(v)) || math.IsInf(float64(v), 0) {
			f.fail(k, v, "finite double")
			return 0
		}
		return float64(v)
	case int64:
		return float64(v)
	case int32:
		return float64(v)
	case nil:
		return 0
	default:
		f.fail(k, v, "double")
		return 0
	}
}

func (f *fields) boolean(k string) bool {
	switch v := f.m[k].(type) {
	case bool:
		return v
	case nil:
		return false
	default:
		f.fail(k, v, "boolean")
		return false
	}
}

// strs reads an array of strings. Arrays decode to non-nil slices, so an
// empty array marshals to JSON as [] rather than null.
func (f *fields) strs(k string) []string {
	switch v := f.m[k].(type) {
	case []any:
		out := make([]string, len(v))
		for i, item := range v {
			s, ok := item.(string)
			if !ok {
				f.fail(k, item, "array of string")
				return []string{}
			}
			out[i] = s
		}
		return out
	case nil:
		return []string{}
	default:
		f.fail(k, v, "array")
		return []string{}
	}
}

// time reads a timestamp-millis field as a UTC time.
func (f *fields) time(k string) time.Time {
	switch v := f.m[k].(type) {
	case time.Time:
		return v.UTC()
	case int64:
		return time.UnixMilli(v).UTC()
	case nil:
		return time.Time{}
	default:
		f.fail(k, v, "timestamp-millis")
		return time.Time{}
	}
}

// date reads a date field as "YYYY-MM-DD". Days outside years 0000–9999
// have no such form and are malformed.
func (f *fields) date(k string) string {
	var t time.Time
	switch v := f.m[k].(type) {
	case time.Time:
		t = v.UTC()
	case int32:
		t = time.Unix(int64(v)*secondsPerDay, 0).UTC()
	case nil:
		return ""
	default:
		f.fail(k, v, "date")
		return ""
	}
	if t.Year() < 0 || t.Year() > 9999 {
		f.fail(k, t, "date in years 0000-9999")
		return ""
	}
	return t.Format(dateLayout)
}

// daysFromDate converts "YYYY-MM-DD" to days since 1970-01-01.
func daysFromDate(s string) (int32, error) {
	t, err := time.Parse(dateLayout, s)
	if err != nil {
		return 0, fmt.Errorf("%w: renewal_date %q is not YYYY-MM-DD", ErrInvalid, s)
	}
	// t is midnight UTC, so the division is exact, also before 1970.
	return int32(t.Unix() / secondsPerDay), nil
}

func toInt32(name string, v int) (int32, error) {
	if v < math.MinInt32 || v > math.MaxInt32 {
		return 0, fmt.Errorf("%w: %s %d out of int range", ErrInvalid, name, v)
	}
	return int32(v), nil
}

// anyStrings returns s in the form goavro encodes without reflection. A nil
// slice encodes as an empty Avro array.
func anyStrings(s []string) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}

func lenStrings(s []string) int {
	n := 2
	for _, v := range s {
		n += 2 + len(v)
	}
	return n
}
