package audit_test

import (
	"context"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/vitalshq/vitals/audit"
)

func TestChainLinksConcurrentSeals(t *testing.T) {
	c := audit.NewChain()
	const workers, each = 16, 50
	var (
		mu   sync.Mutex
		recs []audit.Record
		wg   sync.WaitGroup
	)
	for w := range workers {
		wg.Go(func() {
			for i := range each {
				r := c.Seal(audit.Record{Method: "GET", Route: "/v1/customers/{id}", Status: 200 + w, LatencyMs: int64(i),
					Decision: audit.DecisionAllowed})
				mu.Lock()
				recs = append(recs, r)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	slices.SortFunc(recs, func(a, b audit.Record) int { return int(a.Seq) - int(b.Seq) })
	ids := map[string]bool{}
	for i, r := range recs {
		if r.Instance != c.Instance() {
			t.Fatalf("record %d: instance %s, want %s", i, r.Instance, c.Instance())
		}
		if r.Seq != uint64(i+1) {
			t.Fatalf("seqs are not 1..%d without gaps or repeats: position %d holds %d", len(recs), i, r.Seq)
		}
		want := audit.Genesis
		if i > 0 {
			want = recs[i-1].Hash
			if r.Time.Before(recs[i-1].Time) {
				t.Errorf("seq %d is older than seq %d", r.Seq, recs[i-1].Seq)
			}
		}
		if r.PrevHash != want {
			t.Fatalf("seq %d: prev_hash %s, want %s", r.Seq, r.PrevHash, want)
		}
		if r.Hash != r.ComputeHash() {
			t.Fatalf("seq %d: hash does not recompute", r.Seq)
		}
		if r.ID == "" || ids[r.ID] {
			t.Fatalf("seq %d: id %q empty or repeated", r.Seq, r.ID)
		}
		ids[r.ID] = true
	}
	rep, err := audit.Verify(context.Background(), audit.Records(recs), time.Time{})
	if err != nil || !rep.OK() || rep.Records != workers*each {
		t.Fatalf("Verify: %v, %d records, problems %v", err, rep.Records, rep.Problems)
	}
	if audit.NewChain().Instance() == c.Instance() {
		t.Error("two chains share an instance id")
	}
}

// TestChainTimeNeverGoesBack: a wall clock stepping back does not make a
// later record older, so a time window selects a suffix of each chain.
func TestChainTimeNeverGoesBack(t *testing.T) {
	c := audit.NewChain()
	t0 := time.Date(2025, 12, 5, 8, 0, 0, 0, time.UTC)
	now := t0
	audit.SetClock(c, func() time.Time { return now })
	a := c.Seal(audit.Record{})
	now = t0.Add(-time.Minute)
	b := c.Seal(audit.Record{})
	if !b.Time.Equal(a.Time) {
		t.Errorf("after the clock stepped back: time %v, want %v (the previous record's)", b.Time, a.Time)
	}
	now = t0.Add(1500 * time.Microsecond)
	if got := c.Seal(audit.Record{}).Time; !got.Equal(t0.Add(time.Millisecond)) {
		t.Errorf("time %v, want %v (milliseconds)", got, t0.Add(time.Millisecond))
	}
}

func TestSealKeepsCallerIDAndFields(t *testing.T) {
	c := audit.NewChain()
	r := c.Seal(audit.Record{ID: "my-id", ClientID: "c1", Scopes: []string{"a"}, Decision: audit.DecisionDenied,
		Reason: audit.ReasonRateLimited, Seq: 99, PrevHash: "forged", Instance: "forged", Hash: "forged"})
	if r.ID != "my-id" || r.ClientID != "c1" || r.Reason != audit.ReasonRateLimited {
		t.Errorf("caller fields changed: %+v", r)
	}
	if r.Seq != 1 || r.PrevHash != audit.Genesis || r.Instance != c.Instance() || r.Hash != r.ComputeHash() {
		t.Errorf("chain fields not set by Seal: seq %d prev %s instance %s", r.Seq, r.PrevHash, r.Instance)
	}
}
