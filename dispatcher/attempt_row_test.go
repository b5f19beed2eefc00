package dispatcher_test

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/vitalshq/vitals/analytics"
	"github.com/vitalshq/vitals/dispatcher"
	"github.com/vitalshq/vitals/event"
	"github.com/vitalshq/vitals/topics"
)

// TestAttemptRowsCarryBreakerTierAndExcerpt: each attempt row says the
// breaker state it was admitted in, the retry tier the delivery waited in
// (none for the first attempt) and the start of the response body, cut at
// analytics.MaxResponseExcerpt.
func TestAttemptRowsCarryBreakerTierAndExcerpt(t *testing.T) {
	e := newEnv(t)
	long := "busy: " + strings.Repeat("x", 2*analytics.MaxResponseExcerpt)
	var n atomic.Int32
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) {
		if n.Add(1) == 1 {
			w.WriteHeader(http.StatusServiceUnavailable)
			_, _ = w.Write([]byte(long))
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	t.Cleanup(r.srv.Close)
	ep := newEndpoint(t, "ep_rows", r, event.HealthScoreChange)
	sink := &memSink{}
	e.start(staticEndpoints{ep}, dispatcher.WithGroup("g-rows"), dispatcher.WithRetryGroup("g-rows-retry"),
		dispatcher.WithSink(sink))
	e.produce(health("evt_rows_1"))
	eventually(t, "two attempt rows", func() bool { return len(sink.forEndpoint(ep.ID)) >= 2 })

	rows := sink.forEndpoint(ep.ID)
	first, second := rows[0], rows[1]
	if first.Attempt != 1 || first.Outcome != analytics.OutcomeFailed || first.RetryTier != "" ||
		first.BreakerState != "closed" || first.ResponseExcerpt != long[:analytics.MaxResponseExcerpt] {
		t.Errorf("first attempt row: attempt %d, outcome %s, tier %q, breaker %q, excerpt of %d bytes",
			first.Attempt, first.Outcome, first.RetryTier, first.BreakerState, len(first.ResponseExcerpt))
	}
	wantTier := topics.Retry(testSchedule()[0])
	if second.Attempt != 2 || second.Outcome != analytics.OutcomeDelivered || second.RetryTier != wantTier ||
		second.BreakerState != "closed" || second.ResponseExcerpt != `{"ok":true}` {
		t.Errorf("second attempt row: attempt %d, outcome %s, tier %q (want %q), breaker %q, excerpt %q",
			second.Attempt, second.Outcome, second.RetryTier, wantTier, second.BreakerState, second.ResponseExcerpt)
	}
}
