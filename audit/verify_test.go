package audit_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/vitalshq/vitals/audit"
)

var t0 = time.Date(2025, 12, 5, 8, 0, 0, 0, time.UTC)

// chain seals n records one second apart from t0.
func chain(t *testing.T, n int) []audit.Record {
	t.Helper()
	c := audit.NewChain()
	now := t0
	audit.SetClock(c, func() time.Time { return now })
	out := make([]audit.Record, n)
	for i := range out {
		out[i] = c.Seal(audit.Record{
			RequestID: fmt.Sprintf("req-%d", i+1), ClientID: "client_a", SourceIP: "192.0.2.1",
			Method: "GET", Route: "/v1/customers/{id}", Status: 200, LatencyMs: 3,
			Scopes: []string{"customers:read"}, Decision: audit.DecisionAllowed, RateLimitClass: "realtime",
		})
		now = now.Add(time.Second)
	}
	return out
}

func verify(t *testing.T, recs []audit.Record, since time.Time) audit.Report {
	t.Helper()
	rep, err := audit.Verify(context.Background(), audit.Records(recs), since)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// wantProblems fails unless rep holds exactly the given (kind, seq) problems.
func wantProblems(t *testing.T, rep audit.Report, want ...audit.Problem) {
	t.Helper()
	var got []audit.Problem
	for _, p := range rep.Problems {
		got = append(got, audit.Problem{Instance: p.Instance, Seq: p.Seq, Kind: p.Kind})
	}
	if !slices.Equal(got, want) {
		t.Fatalf("problems:\n got %v\nwant %v\nall: %v", got, want, rep.Problems)
	}
}

func without(recs []audit.Record, seqs ...uint64) []audit.Record {
	return slices.DeleteFunc(slices.Clone(recs), func(r audit.Record) bool { return slices.Contains(seqs, r.Seq) })
}

func TestVerifyIntactChain(t *testing.T) {
	recs := chain(t, 10)
	rep := verify(t, recs, time.Time{})
	wantProblems(t, rep)
	if rep.Records != 10 || len(rep.Chains) != 1 || rep.Chains[0].FirstSeq != 1 || rep.Chains[0].LastSeq != 10 {
		t.Errorf("report %+v", rep)
	}
	// Copies from an at-least-once load are duplicates, not problems.
	rep = verify(t, append(slices.Clone(recs), recs[2], recs[2], recs[9]), time.Time{})
	wantProblems(t, rep)
	if rep.Duplicates != 3 || rep.Records != 10 {
		t.Errorf("duplicates %d records %d, want 3 and 10", rep.Duplicates, rep.Records)
	}
}

func TestVerifyAlteredField(t *testing.T) {
	recs := chain(t, 10)
	inst := recs[0].Instance
	recs[3].Status = 403 // seq 4, hash left as it was
	wantProblems(t, verify(t, recs, time.Time{}), audit.Problem{Instance: inst, Seq: 4, Kind: audit.ProblemAltered})

	// Altered and re-hashed: the record itself checks out, the next link
	// does not.
	recs = chain(t, 10)
	inst = recs[0].Instance
	recs[3].Decision, recs[3].Reason = audit.DecisionDenied, audit.ReasonIPDenied
	recs[3].Hash = recs[3].ComputeHash()
	wantProblems(t, verify(t, recs, time.Time{}), audit.Problem{Instance: inst, Seq: 5, Kind: audit.ProblemBrokenLink})
}

func TestVerifyRemovedRecord(t *testing.T) {
	recs := chain(t, 10)
	inst := recs[0].Instance
	rep := verify(t, without(recs, 5), time.Time{})
	wantProblems(t, rep, audit.Problem{Instance: inst, Seq: 5, Kind: audit.ProblemGap})

	rep = verify(t, without(recs, 4, 5, 6), time.Time{})
	wantProblems(t, rep, audit.Problem{Instance: inst, Seq: 4, Kind: audit.ProblemGap})
	if d := rep.Problems[0].Detail; d != "seq 4–6 (3 records) missing (between seq 3 and 7)" {
		t.Errorf("detail %q", d)
	}

	// The chain's first records: nothing comes before them, but a chain
	// starts at 1.
	wantProblems(t, verify(t, without(recs, 1, 2), time.Time{}), audit.Problem{Instance: inst, Seq: 1, Kind: audit.ProblemGap})
}

func TestVerifyReordered(t *testing.T) {
	// Two records swap places (their seqs exchanged).
	recs := chain(t, 10)
	inst := recs[0].Instance
	recs[3].Seq, recs[4].Seq = recs[4].Seq, recs[3].Seq
	wantProblems(t, verify(t, recs, time.Time{}),
		audit.Problem{Instance: inst, Seq: 4, Kind: audit.ProblemBrokenLink},
		audit.Problem{Instance: inst, Seq: 4, Kind: audit.ProblemAltered},
		audit.Problem{Instance: inst, Seq: 5, Kind: audit.ProblemBrokenLink},
		audit.Problem{Instance: inst, Seq: 5, Kind: audit.ProblemAltered},
		audit.Problem{Instance: inst, Seq: 6, Kind: audit.ProblemBrokenLink})

	// The same, re-hashed by someone who knows the encoding: the links
	// give it away.
	recs = chain(t, 10)
	inst = recs[0].Instance
	recs[3].Seq, recs[4].Seq = recs[4].Seq, recs[3].Seq
	recs[3].Hash, recs[4].Hash = recs[3].ComputeHash(), recs[4].ComputeHash()
	rep := verify(t, recs, time.Time{})
	wantProblems(t, rep,
		audit.Problem{Instance: inst, Seq: 4, Kind: audit.ProblemBrokenLink},
		audit.Problem{Instance: inst, Seq: 5, Kind: audit.ProblemBrokenLink},
		audit.Problem{Instance: inst, Seq: 6, Kind: audit.ProblemBrokenLink})
}

func TestVerifyConflictingCopies(t *testing.T) {
	recs := chain(t, 5)
	forged := recs[1]
	forged.ID, forged.UserID = "forged", "someone-else"
	forged.Hash = forged.ComputeHash()
	wantProblems(t, verify(t, append(recs, forged), time.Time{}),
		audit.Problem{Instance: recs[0].Instance, Seq: 2, Kind: audit.ProblemConflict})
}

func TestVerifyGenesis(t *testing.T) {
	recs := chain(t, 3)
	recs[0].PrevHash = recs[2].Hash
	recs[0].Hash = recs[0].ComputeHash()
	recs[1].PrevHash = recs[0].Hash
	recs[1].Hash = recs[1].ComputeHash()
	recs[2].PrevHash = recs[1].Hash
	recs[2].Hash = recs[2].ComputeHash()
	wantProblems(t, verify(t, recs, time.Time{}), audit.Problem{Instance: recs[0].Instance, Seq: 1, Kind: audit.ProblemBrokenLink})
}

func TestVerifySince(t *testing.T) {
	recs := chain(t, 10)
	inst := recs[0].Instance
	since := recs[4].Time // seq 5 onwards; seq 4 anchors

	rep := verify(t, recs, since)
	wantProblems(t, rep)
	if c := rep.Chains[0]; c.FirstSeq != 4 || c.LastSeq != 10 || c.Records != 7 {
		t.Errorf("chain report %+v, want seq 4 (anchor) to 10", c)
	}
	// Records before the window do not count, even broken ones.
	early := slices.Clone(recs)
	early[1].Status = 500
	wantProblems(t, verify(t, early, since))
	// The anchor's own prev_hash leads outside the window and is accepted,
	// but the anchor's hash and its link to the window are checked.
	anchor := slices.Clone(recs)
	anchor[3].Status = 500
	wantProblems(t, verify(t, anchor, since), audit.Problem{Instance: inst, Seq: 4, Kind: audit.ProblemAltered})
	// The window's first record removed: the anchor (seq 4) is still read,
	// so the gap shows.
	wantProblems(t, verify(t, without(recs, 5), since), audit.Problem{Instance: inst, Seq: 5, Kind: audit.ProblemGap})
	// The record before the window removed: nothing anchors seq 5.
	wantProblems(t, verify(t, without(recs, 4), since), audit.Problem{Instance: inst, Seq: 4, Kind: audit.ProblemGap})
	// A chain started inside the window needs no anchor.
	wantProblems(t, verify(t, recs, t0.Add(-time.Hour)))
}

func TestVerifyManyChains(t *testing.T) {
	a, b, c := chain(t, 5), chain(t, 7), chain(t, 3)
	mixed := slices.Concat(b, a, c)
	slices.Reverse(mixed)
	rep := verify(t, mixed, time.Time{})
	wantProblems(t, rep)
	if len(rep.Chains) != 3 || rep.Records != 15 {
		t.Fatalf("chains %d records %d, want 3 and 15", len(rep.Chains), rep.Records)
	}
	rep = verify(t, slices.Concat(without(a, 2), b, without(c, 3)), time.Time{})
	if len(rep.Problems) != 1 || rep.Problems[0].Instance != a[0].Instance || rep.Problems[0].Seq != 2 {
		t.Errorf("problems %v: want a gap at seq 2 of chain %s only (a missing last record is invisible)", rep.Problems, a[0].Instance)
	}
}

// sourceFunc is a Source that yields records as given, in that order.
type sourceFunc []audit.Record

func (s sourceFunc) ScanAudit(_ context.Context, _ time.Time, fn func(audit.Record) error) error {
	for _, r := range s {
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}

func TestVerifyRefusesUnorderedSource(t *testing.T) {
	a, b := chain(t, 3), chain(t, 3)
	for name, recs := range map[string][]audit.Record{
		"seq back":        {a[0], a[2], a[1]},
		"chain revisited": {a[0], b[0], a[1]},
	} {
		_, err := audit.Verify(context.Background(), sourceFunc(recs), time.Time{})
		if !errors.Is(err, audit.ErrUnordered) {
			t.Errorf("%s: err = %v, want ErrUnordered", name, err)
		}
	}
}
