package journey

import (
	"fmt"
	"math"
	"math/rand/v2"
	"time"

	"github.com/vitalshq/vitals/event"
)

// Cohort describes a population of simulated customers with realistic
// noise, for testing that the health model stays quiet for healthy
// customers and speaks up for the ones that are not. Customer i of a Cohort
// is a pure function of Seed and i: regenerating it gives the same events.
//
// A healthy cohort customer has a contract of 20–200 seats renewing in
// 60–400 days with six plan features; on weekdays 55–85 % of its seats are
// active (±15 % daily noise), on weekends 30–60 % of that; it uses three to
// five of the plan's features; users log in on most weekdays and some
// weekend days, an executive now and then; an invoice is paid every 30 days;
// a support ticket opens on about 4 % of days and is resolved one to four
// days later; about once a month it answers NPS with 7–10.
type Cohort struct {
	Seed      uint64
	Customers int
	Days      int
	Start     time.Time

	// DropShare of the customers (every customer whose index i satisfies
	// i mod round(1/DropShare) == 0) lose Drop of their usage from day
	// DropFromDay on: a 40 % drop is Drop 0.4. Zero DropShare is a healthy
	// cohort.
	DropShare   float64
	Drop        float64
	DropFromDay int
}

// CohortCustomer is one generated customer.
type CohortCustomer struct {
	ID      string
	Dropped bool // its usage drops (Cohort.DropShare)
	Events  []event.CustomerEvent
}

// Customer generates customer i (0 ≤ i < c.Customers), in event-time order
// with deterministic ids.
func (c Cohort) Customer(i int) CohortCustomer {
	rng := rand.New(rand.NewPCG(c.Seed, uint64(i)))
	id := fmt.Sprintf("cohort_%d_%05d", c.Seed, i)
	dropped := false
	if c.DropShare > 0 {
		every := max(1, int(math.Round(1/c.DropShare)))
		dropped = i%every == 0
	}
	b := builder{name: "cohort", customer: id, start: c.Start}

	seats := int64(20 + rng.IntN(181))
	arr := seats * int64(600+rng.IntN(900)) * 100 // 600–1 500 per seat and year
	features := []string{"reports", "api", "dashboards", "alerts", "exports", "sso"}
	renewal := b.start.UTC().AddDate(0, 0, 60+rng.IntN(341)).Format(time.DateOnly)
	b.at(0, 8, 0, event.ContractUpdated{Plan: "growth", Seats: seats, ArrCents: arr, RenewalDate: renewal, PlanFeatures: features})
	b.at(0, 8, 1, event.SponsorChanged{HasExecSponsor: rng.IntN(2) == 0})

	base := 0.55 + 0.30*rng.Float64()    // weekday utilisation
	weekend := 0.30 + 0.30*rng.Float64() // weekend share of it
	used := 3 + rng.IntN(3)              // features in regular use
	payDay := rng.IntN(30)
	ticket := 0
	for d := range c.Days {
		day := b.start.UTC().AddDate(0, 0, d)
		isWeekend := day.Weekday() == time.Saturday || day.Weekday() == time.Sunday

		util := base * (1 + 0.15*(2*rng.Float64()-1))
		if isWeekend {
			util *= weekend
		}
		if dropped && d >= c.DropFromDay {
			util *= 1 - c.Drop
		}
		active := max(1, int64(math.Round(util*float64(seats))))
		var inUse []string
		for _, f := range features[:used] {
			if rng.Float64() < 0.9 {
				inUse = append(inUse, f)
			}
		}
		b.at(d, 18, rng.IntN(60), event.UsageReported{ActiveUsers: active, SeatsPurchased: seats, FeaturesUsed: inUse})

		logins := 0
		switch {
		case !isWeekend && rng.Float64() < 0.95:
			logins = 1 + rng.IntN(4)
		case isWeekend && rng.Float64() < 0.3:
			logins = 1
		}
		for range logins {
			b.at(d, 8+rng.IntN(10), rng.IntN(60), event.LoginRecorded{UserID: fmt.Sprintf("%s-user-%d", id, rng.IntN(int(seats))), Role: "user"})
		}
		if !isWeekend && rng.Float64() < 0.15 {
			b.at(d, 9+rng.IntN(8), rng.IntN(60), event.LoginRecorded{UserID: id + "-exec", Role: "executive"})
		}
		if d%30 == payDay%30 {
			b.at(d, 7, 0, event.PaymentEvent{InvoiceID: b.id(fmt.Sprintf("inv-%d", d)), Status: "succeeded", AmountCents: arr / 12})
		}
		if rng.Float64() < 0.04 {
			ticket++
			tid := b.id(fmt.Sprintf("ticket-%d", ticket))
			prio := []string{"low", "normal", "normal", "high"}[rng.IntN(4)]
			b.at(d, 10+rng.IntN(6), rng.IntN(60), event.SupportTicket{TicketID: tid, Status: "opened", Priority: prio})
			if rd := d + 1 + rng.IntN(4); rd < c.Days {
				b.at(rd, 10+rng.IntN(6), rng.IntN(60), event.SupportTicket{TicketID: tid, Status: "resolved", Priority: prio})
			}
		}
		if rng.Float64() < 1.0/30 {
			b.at(d, 16, rng.IntN(60), event.NpsResponse{Score: int32(7 + rng.IntN(4))})
		}
	}
	return CohortCustomer{ID: id, Dropped: dropped, Events: b.events()}
}
