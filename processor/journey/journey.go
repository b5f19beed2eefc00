package journey

import (
	"fmt"
	"slices"
	"time"

	"github.com/vitalshq/vitals/event"
)

// Source is the Source of every journey event.
const Source = "simulator"

// Journey names, as accepted by ByName.
const (
	NameHealthy   = "healthy"
	NameChurning  = "churning"
	NameExpanding = "expanding"
)

// Names lists the journeys ByName knows.
func Names() []string { return []string{NameHealthy, NameChurning, NameExpanding} }

// ByName returns the journey called name, or nil when there is none.
func ByName(name string) func(customerID string, start time.Time) []event.CustomerEvent {
	switch name {
	case NameHealthy:
		return Healthy
	case NameChurning:
		return Churning
	case NameExpanding:
		return Expanding
	}
	return nil
}

// Healthy is 60 days of a steady customer: 40 of 50 seats active every day,
// 4 of its 6 plan features in use, daily logins with a weekly executive
// login, a passive NPS of 8, invoices paid, one ticket opened and resolved.
// Its score sits at 95 (green, dipping 2 points while the ticket is open):
// it derives no event at all, neither churn risk nor expansion.
func Healthy(customerID string, start time.Time) []event.CustomerEvent {
	b := builder{name: NameHealthy, customer: customerID, start: start}
	b.contract(0, 50, 6_000_000, 300, []string{"reports", "api", "dashboards", "alerts", "exports", "sso"})
	b.at(0, 9, 1, event.SponsorChanged{HasExecSponsor: true})
	b.at(1, 15, 0, event.NpsResponse{Score: 8})
	for d := range 60 {
		b.usage(d, 40, 50, "reports", "api", "dashboards", "alerts")
		b.logins(d)
		if d%30 == 0 {
			b.payment(d, "succeeded")
		}
	}
	b.at(10, 13, 0, event.SupportTicket{TicketID: b.id("ticket-1"), Status: "opened", Priority: "normal"})
	b.at(12, 13, 0, event.SupportTicket{TicketID: b.id("ticket-1"), Status: "resolved", Priority: "normal"})
	return b.events()
}

// Churning is 60 days of a customer sliding towards churn: 50 of 60 seats
// active for 30 days, then usage falls 40 % (to 30 active users by day 34 and
// stays there); a high-priority ticket opened on day 50 is escalated on day
// 57 and an invoice fails on day 58. The model reports
// usage_decline_30_percent on day 54 (risk medium) and, with the escalation
// and the failed payment, risk high on day 58.
func Churning(customerID string, start time.Time) []event.CustomerEvent {
	b := builder{name: NameChurning, customer: customerID, start: start}
	b.contract(0, 60, 7_200_000, 365, []string{"reports", "api", "dashboards", "alerts", "exports", "sso"})
	b.at(0, 9, 1, event.SponsorChanged{HasExecSponsor: true})
	b.at(2, 15, 0, event.NpsResponse{Score: 7})
	for d := range 60 {
		active := int64(50)
		if d >= 30 {
			active = max(30, 50-4*int64(d-29))
		}
		b.usage(d, active, 60, "reports", "api", "dashboards")
		b.logins(d)
	}
	b.payment(0, "succeeded")
	b.payment(30, "succeeded")
	b.at(50, 14, 0, event.SupportTicket{TicketID: b.id("ticket-1"), Status: "opened", Priority: "high"})
	b.at(57, 14, 0, event.SupportTicket{TicketID: b.id("ticket-1"), Status: "escalated", Priority: "urgent"})
	b.at(58, 8, 0, event.PaymentEvent{InvoiceID: b.id("inv-58"), Status: "failed", AmountCents: 600_000})
	return b.events()
}

// Expanding is 45 days of a healthy customer that grows: 30 of 50 seats
// active for 30 days, then 47 (94 %) from day 30 on with a fourth feature in
// use, a promoter NPS of 10 on day 35 after an 8 on day 0, an executive
// sponsor and weekly executive logins. The model reports a
// health_score_change (usage_growth, 88 → 93) on day 32, when the 7-day
// mean utilisation has risen enough, and an upsell on day 36, the seventh
// day at ≥ 90 % utilisation: 10 extra seats × 1 200 = 12 000.
func Expanding(customerID string, start time.Time) []event.CustomerEvent {
	b := builder{name: NameExpanding, customer: customerID, start: start}
	b.contract(0, 50, 6_000_000, 300, []string{"reports", "api", "dashboards", "alerts", "exports", "sso"})
	b.at(0, 9, 1, event.SponsorChanged{HasExecSponsor: true})
	b.at(0, 15, 0, event.NpsResponse{Score: 8})
	b.at(35, 15, 0, event.NpsResponse{Score: 10})
	for d := range 45 {
		if d < 30 {
			b.usage(d, 30, 50, "reports", "api", "dashboards")
		} else {
			b.usage(d, 47, 50, "reports", "api", "dashboards", "alerts")
		}
		b.logins(d)
		if d%30 == 0 {
			b.payment(d, "succeeded")
		}
	}
	return b.events()
}

// builder accumulates one journey's events.
type builder struct {
	name     string
	customer string
	start    time.Time
	evs      []event.CustomerEvent
}

// at adds payload p at day d, hh:mm after start.
func (b *builder) at(d, hh, mm int, p event.Payload) {
	t := b.start.UTC().Add(time.Duration(d)*24*time.Hour + time.Duration(hh)*time.Hour + time.Duration(mm)*time.Minute)
	b.evs = append(b.evs, event.CustomerEvent{CustomerID: b.customer, OccurredAt: t, Source: Source, Data: p})
}

// id scopes a ticket or invoice id to the customer.
func (b *builder) id(s string) string { return b.customer + "-" + s }

func (b *builder) contract(d int, seats, arrCents int64, renewalDays int, features []string) {
	renewal := b.start.UTC().AddDate(0, 0, renewalDays).Format(time.DateOnly)
	b.at(d, 9, 0, event.ContractUpdated{Plan: "growth", Seats: seats, ArrCents: arrCents,
		RenewalDate: renewal, PlanFeatures: features})
}

func (b *builder) usage(d int, active, seats int64, features ...string) {
	b.at(d, 10, 0, event.UsageReported{ActiveUsers: active, SeatsPurchased: seats, FeaturesUsed: features})
}

// logins adds a user login every day and an executive login every 7th day.
func (b *builder) logins(d int) {
	b.at(d, 11, 0, event.LoginRecorded{UserID: fmt.Sprintf("%s-user-%d", b.customer, d%5), Role: "user"})
	if d%7 == 0 {
		b.at(d, 12, 0, event.LoginRecorded{UserID: b.customer + "-exec", Role: "executive"})
	}
}

func (b *builder) payment(d int, status string) {
	b.at(d, 8, 0, event.PaymentEvent{InvoiceID: b.id(fmt.Sprintf("inv-%d", d)), Status: status, AmountCents: 500_000})
}

// events returns the journey in event-time order with deterministic ids.
func (b *builder) events() []event.CustomerEvent {
	slices.SortStableFunc(b.evs, func(x, y event.CustomerEvent) int { return x.OccurredAt.Compare(y.OccurredAt) })
	for i := range b.evs {
		b.evs[i].EventID = fmt.Sprintf("%s-%s-%04d", b.name, b.customer, i)
	}
	return b.evs
}
