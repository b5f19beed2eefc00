package audit

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// ErrUnordered reports a Source that did not yield records ordered by
// Instance, then Seq: a bug in the source, not a finding about the log.
var ErrUnordered = errors.New("audit: source records not ordered by instance and seq")

// Source yields stored audit records for Verify: analytics.AuditStore
// (ClickHouse api_audit), or Records in memory.
type Source interface {
	// ScanAudit calls fn for every stored record with Time >= since (all
	// records when since is zero), ordered by Instance, then Seq. With a
	// non-zero since it also yields, first for each chain, the stored
	// record just before the chain's first one in the window (Seq-1), when
	// there is one, so the window's first link can be checked. Copies of
	// one record (at-least-once loading) may all be yielded. fn's error
	// stops the scan and is returned.
	ScanAudit(ctx context.Context, since time.Time, fn func(Record) error) error
}

// ProblemKind classifies what Verify found wrong with a chain.
type ProblemKind string

// Problem kinds.
const (
	// ProblemAltered: a record's Hash does not recompute from its fields:
	// a field was changed after sealing.
	ProblemAltered ProblemKind = "altered"
	// ProblemGap: records of the chain are missing (removed, or lost before
	// they were stored). Problem.Seq is the first missing one.
	ProblemGap ProblemKind = "gap"
	// ProblemBrokenLink: a record's PrevHash is not the Hash of the record
	// before it: that one was replaced or re-hashed, or the two were
	// reordered.
	ProblemBrokenLink ProblemKind = "broken_link"
	// ProblemConflict: two different records carry the same chain and Seq.
	ProblemConflict ProblemKind = "conflict"
)

// Problem is one finding of Verify, located by chain and sequence number.
type Problem struct {
	Instance string      `json:"instance"`
	Seq      uint64      `json:"seq"`
	Kind     ProblemKind `json:"kind"`
	Detail   string      `json:"detail"`
}

// String formats p for a log line or a test failure.
func (p Problem) String() string {
	return fmt.Sprintf("chain %s seq %d: %s: %s", p.Instance, p.Seq, p.Kind, p.Detail)
}

// ChainReport summarizes one chain as Verify saw it.
type ChainReport struct {
	Instance string    `json:"instance"`
	FirstSeq uint64    `json:"first_seq"`
	LastSeq  uint64    `json:"last_seq"`
	Records  int       `json:"records"` // distinct records read (copies counted once)
	From     time.Time `json:"from"`    // Time of the first record read
	To       time.Time `json:"to"`      // Time of the last record read
	Problems int       `json:"problems"`
}

// Report is the result of Verify.
type Report struct {
	Since      time.Time     `json:"since"` // zero: the whole log
	Chains     []ChainReport `json:"chains"`
	Records    int           `json:"records"`    // distinct records read
	Duplicates int           `json:"duplicates"` // extra identical copies (harmless)
	Problems   []Problem     `json:"problems"`
}

// OK reports whether Verify found no problem.
func (r Report) OK() bool { return len(r.Problems) == 0 }

// Verify reads the records of src (since: the window's start; zero: all)
// and checks each chain:
//
//   - every record's Hash recomputes from its fields (else altered);
//   - sequence numbers are contiguous (else a gap: records removed);
//   - every record's PrevHash is the Hash of the record before it (else a
//     broken link: the one before was replaced or re-hashed, or reordered);
//   - no two different records share a sequence number (conflict);
//   - the chain's first record is Seq 1 with PrevHash Genesis, or, with a
//     since, is the record before the window: the anchor, whose own
//     PrevHash cannot be checked and is accepted. When the record before
//     the window's first is not stored, that is a gap.
//
// Identical copies of a record are counted as duplicates, not problems.
// Removing a chain's last records, or a whole chain, cannot be seen from
// the chain. Verify returns the report so far and an error when the
// source fails or yields records out of order.
func Verify(ctx context.Context, src Source, since time.Time) (Report, error) {
	v := verifier{rep: Report{Since: since}, since: since, seen: map[string]bool{}}
	err := src.ScanAudit(ctx, since, func(r Record) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return v.add(r)
	})
	v.finish()
	if err != nil {
		return v.rep, fmt.Errorf("audit: verify: %w", err)
	}
	return v.rep, nil
}

// verifier is the state of one Verify pass: the chain being read and its
// last distinct record.
type verifier struct {
	rep   Report
	since time.Time
	seen  map[string]bool // instances whose chain was read already

	cur       *ChainReport
	prev      Record
	prevCanon []byte
}

func (v *verifier) problem(r Record, seq uint64, kind ProblemKind, format string, args ...any) {
	v.rep.Problems = append(v.rep.Problems, Problem{Instance: r.Instance, Seq: seq, Kind: kind, Detail: fmt.Sprintf(format, args...)})
	v.cur.Problems++
}

// add checks r against the record before it in its chain.
func (v *verifier) add(r Record) error {
	canon := r.Canonical()
	switch {
	case v.cur == nil || r.Instance != v.cur.Instance:
		if v.seen[r.Instance] {
			return fmt.Errorf("%w: chain %s seen again after chain %s", ErrUnordered, r.Instance, v.cur.Instance)
		}
		v.finish()
		v.seen[r.Instance] = true
		v.cur = &ChainReport{Instance: r.Instance, FirstSeq: r.Seq, From: r.Time}
		v.anchor(r)
	case r.Seq < v.prev.Seq:
		return fmt.Errorf("%w: chain %s seq %d after %d", ErrUnordered, r.Instance, r.Seq, v.prev.Seq)
	case r.Seq == v.prev.Seq:
		if r.Hash == v.prev.Hash && bytes.Equal(canon, v.prevCanon) {
			v.rep.Duplicates++
			return nil
		}
		v.problem(r, r.Seq, ProblemConflict, "two different records (ids %s and %s) carry this seq", v.prev.ID, r.ID)
		v.checkHash(r, canon)
		return nil // the first copy stays the link to the next record
	case r.Seq != v.prev.Seq+1:
		v.problem(r, v.prev.Seq+1, ProblemGap, "%s missing (between seq %d and %d)", seqRange(v.prev.Seq+1, r.Seq-1), v.prev.Seq, r.Seq)
	case r.PrevHash != v.prev.Hash:
		v.problem(r, r.Seq, ProblemBrokenLink, "prev_hash is not the hash of seq %d: seq %d was replaced, re-hashed or reordered", v.prev.Seq, v.prev.Seq)
	}
	v.checkHash(r, canon)
	v.prev, v.prevCanon = r, canon
	v.cur.LastSeq, v.cur.To = r.Seq, r.Time
	v.cur.Records++
	v.rep.Records++
	return nil
}

// anchor checks the first record read of a chain.
func (v *verifier) anchor(r Record) {
	switch {
	case r.Seq == 0:
		v.problem(r, 0, ProblemAltered, "seq 0: chains start at 1")
	case r.Seq == 1:
		if r.PrevHash != Genesis {
			v.problem(r, 1, ProblemBrokenLink, "the first record of the chain does not carry the genesis prev_hash")
		}
	case v.since.IsZero():
		v.problem(r, 1, ProblemGap, "%s missing (the chain starts at seq %d)", seqRange(1, r.Seq-1), r.Seq)
	case !r.Time.Before(v.since):
		v.problem(r, r.Seq-1, ProblemGap, "seq %d, the record before the first one since %s, is missing",
			r.Seq-1, v.since.UTC().Format(time.RFC3339))
	}
	// Otherwise r is the record before the window: its PrevHash leads
	// outside what was read and is accepted.
}

func (v *verifier) checkHash(r Record, canon []byte) {
	if r.Hash != hashOf(canon) {
		v.problem(r, r.Seq, ProblemAltered, "hash does not match the record's fields (record %s)", r.ID)
	}
}

// finish closes the chain being read.
func (v *verifier) finish() {
	if v.cur != nil {
		v.rep.Chains = append(v.rep.Chains, *v.cur)
		v.cur = nil
	}
}

func seqRange(from, to uint64) string {
	if from == to {
		return fmt.Sprintf("seq %d", from)
	}
	return fmt.Sprintf("seq %d–%d (%d records)", from, to, to-from+1)
}

// Records is an in-memory Source: tests, and logs read from Kafka.
type Records []Record

// ScanAudit implements Source over a sorted copy of rs.
func (rs Records) ScanAudit(ctx context.Context, since time.Time, fn func(Record) error) error {
	sorted := slices.Clone(rs)
	slices.SortStableFunc(sorted, func(a, b Record) int {
		return cmp.Or(cmp.Compare(a.Instance, b.Instance), cmp.Compare(a.Seq, b.Seq))
	})
	// first[instance] is the Seq of the chain's first record in the window.
	first := map[string]uint64{}
	for _, r := range sorted {
		if _, ok := first[r.Instance]; !ok && (since.IsZero() || !r.Time.Before(since)) {
			first[r.Instance] = r.Seq
		}
	}
	for _, r := range sorted {
		f, ok := first[r.Instance]
		inWindow := since.IsZero() || !r.Time.Before(since)
		if !inWindow && !(ok && r.Seq+1 == f) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if err := fn(r); err != nil {
			return err
		}
	}
	return nil
}
