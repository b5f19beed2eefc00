package receiver

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/vitalshq/vitals/problem"
	"github.com/vitalshq/vitals/webhook"
)

// Defaults of a Handler.
const (
	DefaultMaxBodyBytes = 1 << 20 // 1 MiB
	DefaultRemember     = 10_000  // webhook-ids kept for de-duplication
)

// Event is one verified webhook delivery.
type Event struct {
	ID         string    // webhook-id (the event_id)
	Type       string    // the body's "event" field, "" when absent
	SignedAt   time.Time // webhook-timestamp
	ReceivedAt time.Time
	Body       []byte // raw body, as signed
	// Duplicate is true when this webhook-id was already received: a
	// retry, or a replay. It is still answered with 2xx.
	Duplicate bool
}

// Handler is an http.Handler that receives Standard Webhooks deliveries. It
// answers 401 problem+json when the signature headers are missing or wrong,
// and 200 for every verified delivery, duplicates included (so the sender
// stops retrying). It is safe for concurrent use.
type Handler struct {
	verifier *webhook.Verifier
	out      io.Writer
	onEvent  func(Event)
	maxBody  int64
	remember int
	log      *slog.Logger
	now      func() time.Time

	mu    sync.Mutex // guards seen, order and out
	seen  map[string]struct{}
	order []string // ring of remembered ids, oldest at next
	next  int
}

// Option configures a Handler.
type Option func(*config)

type config struct {
	out          io.Writer
	onEvent      func(Event)
	maxBody      int64
	remember     int
	log          *slog.Logger
	now          func() time.Time
	verifierOpts []webhook.VerifierOption
}

// Output sets where each verified event is printed (default: nowhere).
func Output(w io.Writer) Option { return func(c *config) { c.out = w } }

// OnEvent sets a callback run for each verified event, after printing.
func OnEvent(fn func(Event)) Option { return func(c *config) { c.onEvent = fn } }

// MaxBodyBytes bounds request bodies (default DefaultMaxBodyBytes); larger
// ones get 413.
func MaxBodyBytes(n int64) Option {
	return func(c *config) {
		if n > 0 {
			c.maxBody = n
		}
	}
}

// Remember sets how many recent webhook-ids are kept to detect duplicates
// (default DefaultRemember).
func Remember(n int) Option {
	return func(c *config) {
		if n > 0 {
			c.remember = n
		}
	}
}

// Logger sets the logger for refused requests (default slog.Default()).
func Logger(l *slog.Logger) Option {
	return func(c *config) {
		if l != nil {
			c.log = l
		}
	}
}

// VerifierOptions passes options (tolerance, clock, extra secrets) to the
// webhook.Verifier.
func VerifierOptions(opts ...webhook.VerifierOption) Option {
	return func(c *config) { c.verifierOpts = append(c.verifierOpts, opts...) }
}

// New returns a Handler that accepts deliveries signed with secret.
func New(secret string, opts ...Option) (*Handler, error) {
	c := config{maxBody: DefaultMaxBodyBytes, remember: DefaultRemember, log: slog.Default(), now: time.Now}
	for _, o := range opts {
		o(&c)
	}
	v, err := webhook.NewVerifier(secret, c.verifierOpts...)
	if err != nil {
		return nil, fmt.Errorf("receiver: %w", err)
	}
	return &Handler{
		verifier: v, out: c.out, onEvent: c.onEvent, maxBody: c.maxBody,
		remember: c.remember, log: c.log, now: c.now,
		seen: make(map[string]struct{}, min(c.remember, 1024)),
	}, nil
}

// ServeHTTP verifies and reports one delivery.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		problem.Write(w, r, problem.New(http.StatusMethodNotAllowed, "method-not-allowed",
			"webhooks are delivered with POST"))
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, h.maxBody))
	if err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, "body-too-large",
				fmt.Sprintf("the body exceeds %d bytes", h.maxBody)))
			return
		}
		problem.Write(w, r, problem.New(http.StatusBadRequest, "body-unreadable", "could not read the request body"))
		return
	}
	if err := h.verifier.Verify(r.Header, body); err != nil {
		h.log.Warn("webhook refused", "webhook_id", r.Header.Get(webhook.HeaderID), "err", err)
		problem.Write(w, r, problem.New(http.StatusUnauthorized, "webhook-signature-invalid", detailFor(err)).
			With("reason", reasonFor(err)))
		return
	}

	ev := Event{ID: r.Header.Get(webhook.HeaderID), ReceivedAt: h.now().UTC(), Body: body}
	// Verify parsed it the same way: decimal (fmt.Sscan would read a
	// leading 0 as octal).
	ts, _ := strconv.ParseInt(r.Header.Get(webhook.HeaderTimestamp), 10, 64)
	ev.SignedAt = time.Unix(ts, 0).UTC()
	var head struct {
		Event string `json:"event"`
	}
	if json.Unmarshal(body, &head) == nil {
		ev.Type = head.Event
	}

	h.mu.Lock()
	ev.Duplicate = h.rememberID(ev.ID)
	if h.out != nil {
		h.print(ev)
	}
	h.mu.Unlock()
	if h.onEvent != nil {
		h.onEvent(ev)
	}
	w.WriteHeader(http.StatusOK)
}

// rememberID records id and reports whether it was already known. The
// caller holds h.mu.
func (h *Handler) rememberID(id string) bool {
	if _, ok := h.seen[id]; ok {
		return true
	}
	if len(h.order) < h.remember {
		h.order = append(h.order, id)
	} else {
		delete(h.seen, h.order[h.next])
		h.order[h.next] = id
		h.next = (h.next + 1) % h.remember
	}
	h.seen[id] = struct{}{}
	return false
}

// print writes one event: a summary line, then its indented JSON body. The
// caller holds h.mu so concurrent events do not interleave.
func (h *Handler) print(ev Event) {
	typ := ev.Type
	if typ == "" {
		typ = "(no event field)"
	}
	if ev.Duplicate {
		fmt.Fprintf(h.out, "%s  DUPLICATE %s  %s (already received; answered 200)\n",
			ev.ReceivedAt.Format(time.RFC3339), typ, ev.ID)
		return
	}
	fmt.Fprintf(h.out, "%s  %s  %s  signature verified\n", ev.ReceivedAt.Format(time.RFC3339), typ, ev.ID)
	var pretty bytes.Buffer
	if err := json.Indent(&pretty, ev.Body, "", "  "); err != nil {
		pretty.Reset()
		pretty.Write(ev.Body)
	}
	pretty.WriteByte('\n')
	_, _ = h.out.Write(pretty.Bytes())
}

// reasonFor maps a verification error to a short machine-readable reason.
func reasonFor(err error) string {
	switch {
	case errors.Is(err, webhook.ErrMissingHeaders):
		return "missing_headers"
	case errors.Is(err, webhook.ErrBadTimestamp):
		return "bad_timestamp"
	case errors.Is(err, webhook.ErrTimestampTooOld):
		return "timestamp_too_old"
	case errors.Is(err, webhook.ErrTimestampTooNew):
		return "timestamp_too_new"
	default:
		return "no_matching_signature"
	}
}

// detailFor says what to do about a verification error.
func detailFor(err error) string {
	switch {
	case errors.Is(err, webhook.ErrMissingHeaders):
		return "send webhook-id, webhook-timestamp and webhook-signature headers (Standard Webhooks)"
	case errors.Is(err, webhook.ErrBadTimestamp):
		return "webhook-timestamp must be Unix seconds"
	case errors.Is(err, webhook.ErrTimestampTooOld), errors.Is(err, webhook.ErrTimestampTooNew):
		return "webhook-timestamp is outside the tolerance: check the sender's clock, or this is a replay"
	default:
		return "no v1 signature matches: check that the receiver uses the endpoint's current whsec_ secret"
	}
}
