package admission

import (
	"errors"
	"fmt"
	"net/http"
	"strconv"

	"github.com/vitalshq/vitals/problem"
)

// ProblemType is the problem+json type slug of a shed request
// (problem.TypeBase + "overloaded").
const ProblemType = "overloaded"

// Middleware admits each request through c before next runs. classify
// returns the request's priority, or bypass true for requests that must
// never wait (health, readiness and metrics endpoints): those run at once,
// without a slot, even when the controller is saturated.
//
// A shed request gets 503 problem+json with Retry-After (whole seconds) and
// a detail naming the shed priority and when to retry; the members
// "priority", "reason" and "retry_after_seconds" carry the same for
// programs. A request whose context ends while it waits gets 503 without
// Retry-After (its client is usually gone).
func (c *Controller) Middleware(classify func(*http.Request) (p Priority, bypass bool), next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		p, bypass := classify(r)
		if bypass {
			c.m.bypassed.Inc()
			next.ServeHTTP(w, r)
			return
		}
		release, err := c.Acquire(r.Context(), p)
		if err != nil {
			c.reject(w, r, p, err)
			return
		}
		defer release()
		next.ServeHTTP(w, r)
	})
}

// reject writes the response of a request Acquire refused.
func (c *Controller) reject(w http.ResponseWriter, r *http.Request, p Priority, err error) {
	var shed *ShedError
	switch {
	case errors.As(err, &shed):
		secs := int(shed.RetryAfter.Seconds())
		w.Header().Set("Retry-After", strconv.Itoa(secs))
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, ProblemType,
			fmt.Sprintf("The server is overloaded and shed this %v-priority request (%s). Retry after %d s.",
				shed.Priority, shed.Reason.text(), secs)).
			With("priority", shed.Priority.String()).
			With("reason", shed.Reason.String()).
			With("retry_after_seconds", secs))
	case errors.Is(err, ErrUnknownPriority):
		c.cfg.log.Error("admission: request classified with an unknown priority", "path", r.URL.Path, "err", err)
		problem.Write(w, r, problem.New(http.StatusInternalServerError, "internal",
			"The server could not classify this request; this is a bug on our side."))
	default: // the request's context ended while it waited
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, ProblemType,
			fmt.Sprintf("The server is overloaded and this %v-priority request ended while it waited for admission (%v).", p, err)).
			With("priority", p.String()).
			With("reason", "abandoned"))
	}
}
