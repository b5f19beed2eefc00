package event

import "time"

// Customer event types accepted by POST /v1/events (the "type" field).
const (
	TypeUsageReported   = "usage_reported"
	TypeLoginRecorded   = "login_recorded"
	TypeSupportTicket   = "support_ticket"
	TypePaymentEvent    = "payment_event"
	TypeNpsResponse     = "nps_response"
	TypeContractUpdated = "contract_updated"
	TypeSponsorChanged  = "sponsor_changed"
)

// CustomerTypes lists every customer event type, in documentation order.
func CustomerTypes() []string {
	return []string{TypeUsageReported, TypeLoginRecorded, TypeSupportTicket,
		TypePaymentEvent, TypeNpsResponse, TypeContractUpdated, TypeSponsorChanged}
}

// CustomerEvent is one accepted piece of customer activity. It is keyed by
// CustomerID on Kafka, so all events of a customer land in one partition.
type CustomerEvent struct {
	EventID    string    // client idempotency key, or generated at ingest
	CustomerID string    // e.g. "cust_12345"
	OccurredAt time.Time // event time (UTC, millisecond precision on the wire)
	Source     string    // who sent it: the OAuth client id, or "simulator"
	Data       Payload   // exactly one of the payload types below
}

// Type reports the event type of e's payload, or "" when it has none.
func (e CustomerEvent) Type() string {
	if e.Data == nil {
		return ""
	}
	return e.Data.EventType()
}

// Payload is the type-specific part of a CustomerEvent.
type Payload interface {
	// EventType returns the ingest "type" string of the payload.
	EventType() string
}

// UsageReported is a usage snapshot: active users against purchased seats
// and the product features in use.
type UsageReported struct {
	ActiveUsers    int64    `json:"active_users"`
	SeatsPurchased int64    `json:"seats_purchased"`
	FeaturesUsed   []string `json:"features_used"`
}

// LoginRecorded is one user login. Role is "user", "admin" or "executive".
type LoginRecorded struct {
	UserID string `json:"user_id"`
	Role   string `json:"role"`
}

// SupportTicket is a support ticket state change. Status is "opened",
// "escalated" or "resolved"; Priority "low", "normal", "high" or "urgent".
type SupportTicket struct {
	TicketID string `json:"ticket_id"`
	Status   string `json:"status"`
	Priority string `json:"priority"`
}

// PaymentEvent is an invoice outcome. Status is "succeeded", "failed" or
// "overdue".
type PaymentEvent struct {
	InvoiceID   string `json:"invoice_id"`
	Status      string `json:"status"`
	AmountCents int64  `json:"amount_cents"`
}

// NpsResponse is one Net Promoter Score answer, 0–10.
type NpsResponse struct {
	Score int32 `json:"score"`
}

// ContractUpdated is the customer's current contract. RenewalDate is a
// calendar date in "YYYY-MM-DD" form.
type ContractUpdated struct {
	Plan         string   `json:"plan"`
	Seats        int64    `json:"seats"`
	ArrCents     int64    `json:"arr_cents"`
	RenewalDate  string   `json:"renewal_date"`
	PlanFeatures []string `json:"plan_features"`
}

// SponsorChanged reports the customer's executive sponsor and champion.
type SponsorChanged struct {
	HasExecSponsor bool `json:"has_exec_sponsor"`
	ChampionLeft   bool `json:"champion_left"`
}

func (UsageReported) EventType() string   { return TypeUsageReported }
func (LoginRecorded) EventType() string   { return TypeLoginRecorded }
func (SupportTicket) EventType() string   { return TypeSupportTicket }
func (PaymentEvent) EventType() string    { return TypePaymentEvent }
func (NpsResponse) EventType() string     { return TypeNpsResponse }
func (ContractUpdated) EventType() string { return TypeContractUpdated }
func (SponsorChanged) EventType() string  { return TypeSponsorChanged }
