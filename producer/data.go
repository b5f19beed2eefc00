package producer

import (
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/vitalshq/vitals/event"
)

// Wire shapes of the "data" object per type. Pointers tell absent from zero.
type (
	usageIn struct {
		ActiveUsers    *int64   `json:"active_users"`
		SeatsPurchased *int64   `json:"seats_purchased"`
		FeaturesUsed   []string `json:"features_used"`
	}
	loginIn struct {
		UserID *string `json:"user_id"`
		Role   *string `json:"role"`
	}
	ticketIn struct {
		TicketID *string `json:"ticket_id"`
		Status   *string `json:"status"`
		Priority *string `json:"priority"`
	}
	paymentIn struct {
		InvoiceID   *string `json:"invoice_id"`
		Status      *string `json:"status"`
		AmountCents *int64  `json:"amount_cents"`
	}
	npsIn struct {
		Score *int64 `json:"score"`
	}
	contractIn struct {
		Plan         *string  `json:"plan"`
		Seats        *int64   `json:"seats"`
		ArrCents     *int64   `json:"arr_cents"`
		RenewalDate  *string  `json:"renewal_date"`
		PlanFeatures []string `json:"plan_features"`
	}
	sponsorIn struct {
		HasExecSponsor *bool `json:"has_exec_sponsor"`
		ChampionLeft   *bool `json:"champion_left"`
	}
)

// v collects the first validation failure of a data object.
type v struct{ err *InvalidEventError }

func (c *v) fail(field, reason string) {
	if c.err == nil {
		c.err = &InvalidEventError{Field: "data." + field, Reason: reason}
	}
}

func (c *v) int(field string, p *int64, lo, hi int64) int64 {
	switch {
	case p == nil:
		c.fail(field, fmt.Sprintf("is required, an integer %d–%d", lo, hi))
	case *p < lo || *p > hi:
		c.fail(field, fmt.Sprintf("must be an integer %d–%d, got %d", lo, hi, *p))
	default:
		return *p
	}
	return 0
}

func (c *v) str(field string, p *string) string {
	switch {
	case p == nil || *p == "":
		c.fail(field, "is required, a non-empty string")
	case len(*p) > 256:
		c.fail(field, "must be at most 256 characters")
	default:
		return *p
	}
	return ""
}

func (c *v) enum(field string, p *string, allowed ...string) string {
	if p == nil || !slices.Contains(allowed, *p) {
		got := "nothing"
		if p != nil {
			got = fmt.Sprintf("%q", *p)
		}
		c.fail(field, fmt.Sprintf("must be one of %s, got %s", strings.Join(allowed, ", "), got))
		return ""
	}
	return *p
}

func (c *v) bool(field string, p *bool) bool {
	if p == nil {
		c.fail(field, "is required, true or false")
		return false
	}
	return *p
}

func (c *v) strs(field string, s []string) []string {
	if len(s) > 1000 {
		c.fail(field, "must list at most 1000 entries")
	}
	for i, x := range s {
		if x == "" || len(x) > 256 {
			c.fail(fmt.Sprintf("%s[%d]", field, i), "must be a non-empty string of at most 256 characters")
		}
	}
	if s == nil {
		return []string{}
	}
	return s
}

const maxCount = 1 << 40

func parseData(typ string, raw json.RawMessage) (event.Payload, *InvalidEventError) {
	var c v
	decode := func(dst any) bool {
		if err := strictDecode(raw, dst); err != nil {
			if err.Field != "" {
				err.Field = "data." + err.Field
			} else {
				err.Field = "data"
			}
			c.err = err
			return false
		}
		return true
	}
	var p event.Payload
	switch typ {
	case event.TypeUsageReported:
		var in usageIn
		if decode(&in) {
			p = event.UsageReported{
				ActiveUsers:    c.int("active_users", in.ActiveUsers, 0, maxCount),
				SeatsPurchased: c.int("seats_purchased", in.SeatsPurchased, 0, maxCount),
				FeaturesUsed:   c.strs("features_used", in.FeaturesUsed),
			}
		}
	case event.TypeLoginRecorded:
		var in loginIn
		if decode(&in) {
			p = event.LoginRecorded{UserID: c.str("user_id", in.UserID), Role: c.enum("role", in.Role, "user", "admin", "executive")}
		}
	case event.TypeSupportTicket:
		var in ticketIn
		if decode(&in) {
			p = event.SupportTicket{
				TicketID: c.str("ticket_id", in.TicketID),
				Status:   c.enum("status", in.Status, "opened", "escalated", "resolved"),
				Priority: c.enum("priority", in.Priority, "low", "normal", "high", "urgent"),
			}
		}
	case event.TypePaymentEvent:
		var in paymentIn
		if decode(&in) {
			p = event.PaymentEvent{
				InvoiceID:   c.str("invoice_id", in.InvoiceID),
				Status:      c.enum("status", in.Status, "succeeded", "failed", "overdue"),
				AmountCents: c.int("amount_cents", in.AmountCents, 0, 1<<53),
			}
		}
	case event.TypeNpsResponse:
		var in npsIn
		if decode(&in) {
			p = event.NpsResponse{Score: int32(c.int("score", in.Score, 0, 10))}
		}
	case event.TypeContractUpdated:
		var in contractIn
		if decode(&in) {
			ct := event.ContractUpdated{
				Plan:         c.str("plan", in.Plan),
				Seats:        c.int("seats", in.Seats, 0, maxCount),
				ArrCents:     c.int("arr_cents", in.ArrCents, 0, 1<<53),
				PlanFeatures: c.strs("plan_features", in.PlanFeatures),
			}
			switch {
			case in.RenewalDate == nil:
				c.fail("renewal_date", "is required, a date \"YYYY-MM-DD\"")
			default:
				if _, err := time.Parse(time.DateOnly, *in.RenewalDate); err != nil {
					c.fail("renewal_date", fmt.Sprintf("must be a date \"YYYY-MM-DD\", got %q", *in.RenewalDate))
				}
				ct.RenewalDate = *in.RenewalDate
			}
			p = ct
		}
	case event.TypeSponsorChanged:
		var in sponsorIn
		if decode(&in) {
			p = event.SponsorChanged{HasExecSponsor: c.bool("has_exec_sponsor", in.HasExecSponsor), ChampionLeft: c.bool("champion_left", in.ChampionLeft)}
		}
	default:
		return nil, &InvalidEventError{Field: "type", Reason: fmt.Sprintf("%q is not a known event type; use one of %s", typ, strings.Join(event.CustomerTypes(), ", "))}
	}
	if c.err != nil {
		return nil, c.err
	}
	return p, nil
}
