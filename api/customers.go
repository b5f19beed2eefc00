package api

import (
	"fmt"
	"net/http"

	"github.com/vitalshq/vitals/problem"
)

// customerHealth serves the read model: score, band, components, active
// churn indicators and the last derived events of one customer.
func (s *Server) customerHealth(w http.ResponseWriter, r *http.Request) {
	id := r.PathValue("id")
	v, ok := s.d.Health.Get(id)
	if !ok {
		problem.Write(w, r, problem.New(http.StatusNotFound, "customer-not-found",
			fmt.Sprintf("no health for customer %q yet: it has sent no events, or the processor has not handled them; events become visible here within seconds of their 202", id)))
		return
	}
	writeJSON(w, http.StatusOK, v)
}
