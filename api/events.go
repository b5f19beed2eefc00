package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"mime"
	"net/http"

	"github.com/vitalshq/vitals/problem"
	"github.com/vitalshq/vitals/producer"
)

// postEvents accepts one customer event or an array of them. The whole
// batch is validated first; 202 is sent only after Kafka acknowledged every
// event.
func (s *Server) postEvents(w http.ResponseWriter, r *http.Request) {
	s.ingest(w, r, producer.MaxBatch, producer.MaxBodyBytes, "POST /v1/events/batch (up to 10000, signed)")
}

// postEventsBatch is the bulk ingest route: up to producer.MaxBulkBatch
// events in producer.MaxBulkBodyBytes.
func (s *Server) postEventsBatch(w http.ResponseWriter, r *http.Request) {
	s.ingest(w, r, producer.MaxBulkBatch, producer.MaxBulkBodyBytes, "several requests")
}

// ingest accepts at most maxEvents events in maxBytes; bigger tells where
// larger batches go.
func (s *Server) ingest(w http.ResponseWriter, r *http.Request, maxEvents int, maxBytes int64, bigger string) {
	if !requireJSON(w, r) {
		return
	}
	body, ok := readBody(w, r, maxBytes)
	if !ok {
		return
	}
	source := ""
	if s.d.Source != nil {
		source = s.d.Source(r)
	}
	evs, err := producer.ParseN(body, source, s.now(), maxEvents)
	if err != nil {
		var ie *producer.InvalidEventError
		switch {
		case errors.As(err, &ie):
			p := problem.New(http.StatusBadRequest, "invalid-event", ie.Error()+"; nothing in this request was accepted").
				With("index", ie.Index)
			if ie.Field != "" {
				p = p.With("field", ie.Field)
			}
			problem.Write(w, r, p)
		case errors.Is(err, producer.ErrTooMany):
			problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, "too-many-events",
				fmt.Sprintf("a request holds at most %d events here; split the batch or use %s", maxEvents, bigger)))
		default:
			problem.Write(w, r, problem.New(http.StatusBadRequest, "malformed-request", err.Error()))
		}
		return
	}
	if err := s.d.Producer.Produce(r.Context(), evs); err != nil {
		s.d.Logger.Error("produce events", "count", len(evs), "err", err)
		w.Header().Set("Retry-After", "5")
		problem.Write(w, r, problem.New(http.StatusServiceUnavailable, "ingest-unavailable",
			"the events could not be written to Kafka; none may be considered accepted: retry the same request (event_id makes retries safe)"))
		return
	}
	ids := make([]string, len(evs))
	for i, ev := range evs {
		ids[i] = ev.EventID
	}
	writeJSON(w, http.StatusAccepted, map[string]any{"accepted": len(evs), "event_ids": ids})
}

// requireJSON answers 415 unless the request body is JSON.
func requireJSON(w http.ResponseWriter, r *http.Request) bool {
	ct := r.Header.Get("Content-Type")
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || (len(mt) > 5 && mt[len(mt)-5:] == "+json")) {
		return true
	}
	problem.Write(w, r, problem.New(http.StatusUnsupportedMediaType, "unsupported-media-type",
		fmt.Sprintf("send the body as Content-Type: application/json (got %q)", ct)))
	return false
}

// readBody reads at most limit bytes, answering 413 beyond that.
func readBody(w http.ResponseWriter, r *http.Request, limit int64) ([]byte, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, limit))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			problem.Write(w, r, problem.New(http.StatusRequestEntityTooLarge, "body-too-large",
				fmt.Sprintf("the body exceeds %d bytes; send fewer events per request", limit)))
			return nil, false
		}
		problem.Write(w, r, problem.New(http.StatusBadRequest, "unreadable-body", "the request body could not be read: "+err.Error()))
		return nil, false
	}
	return b, true
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	_ = enc.Encode(v)
}
