package analytics

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vitalshq/vitals/keyring"
)

// marker is a value that must never reach the disk in the clear.
const marker = "cust_PLAINTEXT-MARKER-7f3a"

func testKeyring(t *testing.T) *keyring.Keyring {
	t.Helper()
	master := make([]byte, keyring.MasterKeySize)
	if _, err := rand.Read(master); err != nil {
		t.Fatal(err)
	}
	w, err := keyring.NewLocalWrapper(master)
	if err != nil {
		t.Fatal(err)
	}
	kr, err := keyring.New(context.Background(), w, &keyring.MemoryStore{})
	if err != nil {
		t.Fatal(err)
	}
	if err := kr.EnsureKey(context.Background()); err != nil {
		t.Fatal(err)
	}
	return kr
}

func spoolRows(prefix string, n int) []WebhookAttempt {
	ts := time.Date(2025, 12, 5, 8, 20, 0, 0, time.UTC)
	out := make([]WebhookAttempt, n)
	for i := range out {
		out[i] = WebhookAttempt{
			AttemptID: fmt.Sprintf("%s-%03d", prefix, i), EventID: "evt_" + prefix,
			EventType: "churn_risk_detected", CustomerID: marker, EndpointID: "ep_1",
			URLHost: "receiver.example", Attempt: 1, StatusCode: 200, Outcome: OutcomeDelivered,
			LatencyMs: uint32(i), Timestamp: ts.Add(time.Duration(i) * time.Second),
		}
	}
	return out
}

func mustOpenSpool(t *testing.T, dir string, sealer Sealer) *spool {
	t.Helper()
	s, err := openSpool(dir, sealer)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.close() })
	return s
}

func mustAppend(t *testing.T, s *spool, rows []WebhookAttempt) {
	t.Helper()
	if err := s.append(rows); err != nil {
		t.Fatal(err)
	}
}

// collector is a replay insert func that records what it was given.
type collector struct {
	rows   []WebhookAttempt
	calls  int
	failOn int // fail the call with this number (1-based); 0: never
}

func (c *collector) insert(_ context.Context, rows []WebhookAttempt) error {
	c.calls++
	if c.calls == c.failOn {
		return errors.New("clickhouse down")
	}
	c.rows = append(c.rows, rows...)
	return nil
}

func ids(rows []WebhookAttempt) []string {
	out := make([]string, len(rows))
	for i, r := range rows {
		out[i] = r.AttemptID
	}
	return out
}

// spoolFiles returns the names in dir other than the lock file.
func spoolFiles(t *testing.T, dir string) []string {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range entries {
		if e.Name() != ".lock" {
			names = append(names, e.Name())
		}
	}
	return names
}

// rawSpool returns every byte of every file in dir.
func rawSpool(t *testing.T, dir string) []byte {
	t.Helper()
	var all []byte
	for _, name := range spoolFiles(t, dir) {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		all = append(all, b...)
	}
	return all
}

func TestSealedSpoolHoldsNoPlaintextAndReplays(t *testing.T) {
	dir := t.TempDir()
	kr := testKeyring(t)
	s := mustOpenSpool(t, dir, kr)
	rows := spoolRows("sealed", 7)
	mustAppend(t, s, rows[:3])
	mustAppend(t, s, rows[3:4])
	mustAppend(t, s, rows[4:])

	files := spoolFiles(t, dir)
	if len(files) != 1 || !strings.HasSuffix(files[0], spoolSealedSuffix) {
		t.Fatalf("spool files = %v, want one .sealed segment", files)
	}
	raw := rawSpool(t, dir)
	for _, clear := range []string{marker, "sealed-000", "receiver.example", "churn_risk_detected", "attempt_id"} {
		if bytes.Contains(raw, []byte(clear)) {
			t.Fatalf("raw spool bytes contain %q", clear)
		}
	}
	if int64(len(raw)) != s.bytes() {
		t.Errorf("spool reports %d bytes, files hold %d", s.bytes(), len(raw))
	}

	// A restarted writer with the keyring replays every row, in order.
	s.close()
	s = mustOpenSpool(t, dir, kr)
	var c collector
	n, err := s.replay(context.Background(), 2, c.insert, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil || n != len(rows) {
		t.Fatalf("replay = %d, %v; want %d rows", n, err, len(rows))
	}
	if !slices.Equal(c.rows, rows) {
		t.Fatalf("replayed %v, want %v", ids(c.rows), ids(rows))
	}
	if left := spoolFiles(t, dir); len(left) != 0 || !s.empty() {
		t.Fatalf("after replay the spool holds %v", left)
	}
}

func TestSpoolReplaysPlainSegmentsAfterSealingIsTurnedOn(t *testing.T) {
	dir := t.TempDir()
	rows := spoolRows("mixed", 6)
	plain := mustOpenSpool(t, dir, nil)
	mustAppend(t, plain, rows[:3])
	plain.close()
	if files := spoolFiles(t, dir); len(files) != 1 || !strings.HasSuffix(files[0], spoolSuffix) {
		t.Fatalf("spool files without a sealer = %v, want one .jsonl segment", files)
	}

	s := mustOpenSpool(t, dir, testKeyring(t))
	mustAppend(t, s, rows[3:])
	files := spoolFiles(t, dir)
	if len(files) != 2 || !strings.HasSuffix(files[0], spoolSuffix) || !strings.HasSuffix(files[1], spoolSealedSuffix) {
		t.Fatalf("spool files = %v, want the old .jsonl and a new .sealed segment", files)
	}
	var c collector
	if _, err := s.replay(context.Background(), 100, c.insert, slog.New(slog.NewTextHandler(io.Discard, nil))); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.rows, rows) {
		t.Fatalf("replayed %v, want %v", ids(c.rows), ids(rows))
	}
	if left := spoolFiles(t, dir); len(left) != 0 {
		t.Fatalf("after replay the spool holds %v", left)
	}
}

func TestSealedSpoolNeedsASealer(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenSpool(t, dir, testKeyring(t))
	mustAppend(t, s, spoolRows("needs", 1))
	s.close()
	if _, err := openSpool(dir, nil); !errors.Is(err, ErrSpoolSealed) {
		t.Fatalf("openSpool without a sealer over sealed segments: err = %v, want ErrSpoolSealed", err)
	}
	if _, err := NewWriter("", WithSpoolDir(dir)); !errors.Is(err, ErrSpoolSealed) {
		t.Fatalf("NewWriter without a sealer: err = %v, want ErrSpoolSealed", err)
	}
	// Refusing released the lock: a writer with a sealer can still start.
	w, err := NewWriter("", WithSpoolDir(dir), WithSpoolSealer(testKeyring(t)))
	if err != nil {
		t.Fatal(err)
	}
	w.Close()
}

// TestSealedFramesCannotMove: a frame copied to another segment, or to
// another place in its own, does not open. Replay keeps the segment for
// inspection instead of dropping its rows, and replays the rest.
func TestSealedFramesCannotMove(t *testing.T) {
	dir := t.TempDir()
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	s := mustOpenSpool(t, dir, testKeyring(t))
	rows := spoolRows("move", 6)
	mustAppend(t, s, rows[:2])
	mustAppend(t, s, rows[2:4])
	if err := s.rotate(); err != nil {
		t.Fatal(err)
	}
	mustAppend(t, s, rows[4:])
	first, second := s.path(s.segments[0]), s.path(s.segments[1])
	a, err := os.ReadFile(first)
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(second)
	if err != nil {
		t.Fatal(err)
	}
	// Segment 2's frame (offset 0) replaces segment 1's first frame, which
	// also sits at offset 0; segment 1's second frame is repeated at its
	// end, at another offset.
	frame1 := len(a) / 2 // both frames of segment 1 hold two rows: same size
	if len(b) != frame1 {
		t.Fatalf("frames differ in size: %d and %d", frame1, len(b))
	}
	forged := slices.Concat(b, a[frame1:], a[frame1:])
	if err := os.WriteFile(first, forged, 0o600); err != nil {
		t.Fatal(err)
	}
	s.segments[0].size = int64(len(forged))

	var c collector
	if _, err := s.replay(context.Background(), 100, c.insert, logger); err != nil {
		t.Fatal(err)
	}
	want := slices.Concat(rows[2:4], rows[4:]) // only frames in their place
	if !slices.Equal(c.rows, want) {
		t.Fatalf("replayed %v, want %v", ids(c.rows), ids(want))
	}
	if got := strings.Count(logs.String(), "unreadable spool record"); got != 2 {
		t.Errorf("logged %d unreadable records, want 2; log:\n%s", got, logs.String())
	}
	if files := spoolFiles(t, dir); len(files) != 1 || files[0] != filepath.Base(first)+unreadableSuffix {
		t.Fatalf("after replay the spool dir holds %v, want only the kept %s", files, filepath.Base(first)+unreadableSuffix)
	}
	if !s.empty() {
		t.Fatal("a kept unreadable segment still counts as spooled")
	}
}

func TestSealedSpoolTornFrame(t *testing.T) {
	dir := t.TempDir()
	kr := testKeyring(t)
	s := mustOpenSpool(t, dir, kr)
	rows := spoolRows("torn", 4)
	mustAppend(t, s, rows[:2])
	mustAppend(t, s, rows[2:])
	s.close()
	// A crash mid-append leaves part of the last frame.
	path := filepath.Join(dir, spoolFiles(t, dir)[0])
	info, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(path, info.Size()-5); err != nil {
		t.Fatal(err)
	}

	var logs bytes.Buffer
	s = mustOpenSpool(t, dir, kr)
	var c collector
	if _, err := s.replay(context.Background(), 100, c.insert, slog.New(slog.NewTextHandler(&logs, nil))); err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(c.rows, rows[:2]) {
		t.Fatalf("replayed %v, want %v", ids(c.rows), ids(rows[:2]))
	}
	if !strings.Contains(logs.String(), "torn line or frame") {
		t.Errorf("replay did not report the torn frame; log:\n%s", logs.String())
	}
	if left := spoolFiles(t, dir); len(left) != 0 {
		t.Fatalf("after replay the spool holds %v", left)
	}
}

// TestSealedSpoolResumesAfterFailedInsert: a replay cut short by an insert
// error resumes at the first frame not acked, whose AAD names its offset.
func TestSealedSpoolResumesAfterFailedInsert(t *testing.T) {
	dir := t.TempDir()
	s := mustOpenSpool(t, dir, testKeyring(t))
	rows := spoolRows("resume", 6)
	for i := 0; i < len(rows); i += 2 {
		mustAppend(t, s, rows[i:i+2])
	}
	logger := slog.New(slog.NewTextHandler(io.Discard, nil))
	c := collector{failOn: 2}
	if n, err := s.replay(context.Background(), 2, c.insert, logger); err == nil || n != 2 {
		t.Fatalf("replay with a failing insert = %d, %v; want 2 rows and the error", n, err)
	}
	if n, err := s.replay(context.Background(), 2, c.insert, logger); err != nil || n != 4 {
		t.Fatalf("second replay = %d, %v; want the 4 rows left", n, err)
	}
	if !slices.Equal(c.rows, rows) {
		t.Fatalf("replayed %v, want each row once: %v", ids(c.rows), ids(rows))
	}
}
