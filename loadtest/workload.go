package loadtest

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/simulate"
)

// Stream traffic: the ingest and processor stages send usage reports and
// logins of streamCustomers customers, each customer's events streamStep
// of event time apart, the way a product reports activity all day.
const (
	streamCustomers = 10_000
	streamStep      = 6 * time.Hour
	streamHistory   = 10 * 365 * 24 * time.Hour // how far back event time starts: room for 146M events
)

// stream hands out the events of the stream traffic. Event i is the
// (i / streamCustomers)-th event of customer i mod streamCustomers, so
// every sender drawing from the same counter keeps each customer's events
// in event-time order (the processor would skip an event more than its
// late grace behind the customer's latest as late).
type stream struct {
	start time.Time
	next  atomic.Int64
}

func newStream(now time.Time) *stream {
	return &stream{start: now.Add(-streamHistory).Truncate(24 * time.Hour)}
}

// take reserves n consecutive events and returns the first one's number.
func (s *stream) take(n int) int64 { return s.next.Add(int64(n)) - int64(n) }

// event returns event i of the stream.
func (s *stream) event(i int64) event.CustomerEvent {
	c, n := i%streamCustomers, i/streamCustomers
	id := "stream-" + strconv.FormatInt(c, 10)
	ev := event.CustomerEvent{EventID: "s-" + strconv.FormatInt(i, 10), CustomerID: id,
		OccurredAt: s.start.Add(time.Duration(n) * streamStep), Source: "bench"}
	h := uint64(i) * 0x9e3779b97f4a7c15 // cheap, deterministic variation
	switch n % 4 {
	case 0, 2:
		features := []string{"reports", "api", "dashboards"}[:1+h%3]
		ev.Data = event.UsageReported{ActiveUsers: int64(20 + h%30), SeatsPurchased: 50, FeaturesUsed: features}
	default:
		role := "user"
		if h%10 == 0 {
			role = "executive"
		}
		ev.Data = event.LoginRecorded{UserID: id + "-u" + strconv.FormatUint(h%7, 10), Role: role}
	}
	return ev
}

// stateEvents returns the events that give state customer i a contract,
// a usage report and a login: a customer of the state measurement.
func stateEvents(prefix string, i int, at time.Time) []event.CustomerEvent {
	id := prefix + strconv.Itoa(i)
	return []event.CustomerEvent{
		{EventID: id + "-c", CustomerID: id, OccurredAt: at, Source: "bench",
			Data: event.ContractUpdated{Plan: "growth", Seats: 50, ArrCents: 6_000_000, RenewalDate: at.AddDate(0, 6, 0).Format(time.DateOnly),
				PlanFeatures: []string{"reports", "api", "dashboards", "alerts", "exports", "sso"}}},
		{EventID: id + "-u", CustomerID: id, OccurredAt: at.Add(time.Minute), Source: "bench",
			Data: event.UsageReported{ActiveUsers: int64(20 + i%30), SeatsPurchased: 50, FeaturesUsed: []string{"reports", "api"}}},
		{EventID: id + "-l", CustomerID: id, OccurredAt: at.Add(2 * time.Minute), Source: "bench",
			Data: event.LoginRecorded{UserID: id + "-u1", Role: "user"}},
	}
}

// churnStep is the event time between two events of a pool customer: more
// than the model's churn repeat interval (24 h), so each rise of risk is
// reported again.
const churnStep = 25 * time.Hour

// churnLoad is end-to-end traffic whose webhooks can be traced back to the
// event that caused them. A sponsor change with the champion gone weighs 2
// risk points (medium risk): on a customer without risk it yields exactly
// one churn_risk_detected webhook.
//
// With Pool 0, event i is the first and only event of customer
// <Prefix>-<i>: every event yields one webhook. With Pool > 0 (the soak,
// whose state must stay bounded), event i is step i / Pool of customer
// <Prefix>-p<i mod Pool>, churnStep of event time after its previous step;
// even steps lose the champion (one webhook), odd steps get it back (none).
// A webhook names its customer and carries its event time, which give i.
type churnLoad struct {
	Prefix string
	Pool   int
	Base   time.Time // event time of step 0, whole seconds
}

// newChurnLoad returns traffic for n events whose latest event time is
// not after now.
func newChurnLoad(prefix string, pool, n int, now time.Time) churnLoad {
	w := churnLoad{Prefix: prefix, Pool: pool, Base: now.UTC().Truncate(time.Second)}
	if pool > 0 {
		steps := n/pool + 1
		w.Base = w.Base.Add(-time.Duration(steps) * churnStep)
	}
	return w
}

// Event returns event i.
func (w churnLoad) Event(i int) event.CustomerEvent {
	if w.Pool == 0 {
		id := w.Prefix + "-" + strconv.Itoa(i)
		return event.CustomerEvent{EventID: id, CustomerID: id, OccurredAt: w.Base, Source: "bench",
			Data: event.SponsorChanged{ChampionLeft: true}}
	}
	idx, step := i%w.Pool, i/w.Pool
	id := w.Prefix + "-p" + strconv.Itoa(idx)
	return event.CustomerEvent{EventID: id + "-" + strconv.Itoa(step), CustomerID: id,
		OccurredAt: w.Base.Add(time.Duration(step) * churnStep), Source: "bench",
		Data: event.SponsorChanged{ChampionLeft: step%2 == 0}}
}

// Emits reports whether event i yields a churn_risk_detected webhook.
func (w churnLoad) Emits(i int) bool { return w.Pool == 0 || (i/w.Pool)%2 == 0 }

// Seq returns the event a churn_risk_detected webhook for customerID with
// event time ts came from, and false for a webhook of other traffic.
func (w churnLoad) Seq(customerID string, ts time.Time) (int, bool) {
	rest, ok := strings.CutPrefix(customerID, w.Prefix+"-")
	if !ok {
		return 0, false
	}
	if w.Pool == 0 {
		i, err := strconv.Atoi(rest)
		return i, err == nil && i >= 0
	}
	p, ok := strings.CutPrefix(rest, "p")
	if !ok {
		return 0, false
	}
	idx, err := strconv.Atoi(p)
	if err != nil || idx < 0 || idx >= w.Pool {
		return 0, false
	}
	d := ts.Sub(w.Base)
	if d < 0 || d%churnStep != 0 {
		return 0, false
	}
	return int(d/churnStep)*w.Pool + idx, true
}

// ingestJSON encodes events as a POST /v1/events body: one object for one
// event, an array for more.
func ingestJSON(evs []event.CustomerEvent) ([]byte, error) {
	in := simulate.Ingest(evs)
	var v any = in
	if len(in) == 1 {
		v = in[0]
	}
	b, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("encode events: %w", err)
	}
	return b, nil
}
