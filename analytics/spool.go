package analytics

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// Sealer encrypts spool frames at rest (package keyring's Keyring is one).
// aad binds a frame to its place in the spool; OpenBytes must fail unless
// given the aad SealBytes was.
type Sealer interface {
	SealBytes(plaintext, aad []byte) ([]byte, error)
	OpenBytes(sealed, aad []byte) ([]byte, error)
}

// ErrSpoolLocked reports a spool directory already used by another Writer
// (in this or another process). Each Writer needs a directory of its own.
var ErrSpoolLocked = errors.New("analytics: spool directory is locked by another writer")

// ErrSpoolSealed reports a spool directory holding sealed segments while the
// Writer has no Sealer to open them: starting anyway would strand those rows.
var ErrSpoolSealed = errors.New("analytics: spool holds sealed segments but no spool sealer is configured")

// errTorn, errUnreadable and errCorrupt classify a spool record that replay
// cannot use: the incomplete tail of an append cut short by a crash; a whole
// record that does not decode (or open); framing that cannot be trusted
// from there on.
var (
	errTorn       = errors.New("torn record")
	errUnreadable = errors.New("unreadable record")
	errCorrupt    = errors.New("corrupt frame header")
)

const (
	spoolPrefix = "webhook_attempts-"
	spoolSuffix = ".jsonl"
	// spoolSealedSuffix marks a segment of sealed frames (see spool).
	spoolSealedSuffix = ".sealed"
	// unreadableSuffix is appended to the name of a replayed segment that
	// held records replay could not read: it is kept for inspection rather
	// than removed, and no longer part of the spool.
	unreadableSuffix = ".unreadable"
	// frameHeaderBytes is a sealed frame's length prefix.
	frameHeaderBytes = 4
	// spoolSegmentBytes caps a segment file: replay removes whole segments,
	// so this bounds how much is sent again after a crash mid-replay.
	spoolSegmentBytes = 8 << 20
)

// segment is one spool file: webhook_attempts-<seq>.jsonl, or
// webhook_attempts-<seq>.sealed when its records are sealed frames.
type segment struct {
	seq    uint64
	size   int64
	sealed bool
}

// spool is the on-disk queue of rows that could not go to ClickHouse: segment
// files appended and fsync'd before append returns. Replay reads the oldest
// segment first and removes a segment only after ClickHouse acked every row
// in it. Only the Writer's Run goroutine uses a spool.
//
// Without a Sealer a segment (.jsonl) holds one JSON row per line. With one,
// new segments (.sealed) hold one frame per append: a 4-byte big-endian
// length, then the sealed JSON lines of that append, sealed with the
// segment's sequence number and the frame's offset as AAD, so a frame cannot
// be moved to another segment or place. Each segment's format follows from
// its name, so segments written before a Sealer was configured still replay.
type spool struct {
	dir      string
	sealer   Sealer // nil: new segments are plain JSON lines
	lock     *os.File
	segments []segment // oldest first
	active   *os.File  // open for appends: the last segment, or nil
	// acked is how many bytes of segments[0] ClickHouse already acked during
	// this process's replay, so a replay that failed half-way resumes there.
	acked int64
}

// openSpool opens (creating) the spool in dir, takes its lock and finds the
// segments an earlier run left behind. With a sealer, new segments are
// sealed; without one, finding a sealed segment is ErrSpoolSealed.
func openSpool(dir string, sealer Sealer) (*spool, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	lock, err := os.OpenFile(filepath.Join(dir, ".lock"), os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	if err := syscall.Flock(int(lock.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		lock.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return nil, fmt.Errorf("open spool %s: %w", dir, ErrSpoolLocked)
		}
		return nil, fmt.Errorf("open spool %s: lock: %w", dir, err)
	}
	s := &spool{dir: dir, sealer: sealer, lock: lock}
	entries, err := os.ReadDir(dir)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		rest, ok := strings.CutPrefix(name, spoolPrefix)
		if !ok {
			continue
		}
		var seg segment
		if seqText, ok := strings.CutSuffix(rest, spoolSuffix); ok {
			rest = seqText
		} else if seqText, ok := strings.CutSuffix(rest, spoolSealedSuffix); ok {
			rest, seg.sealed = seqText, true
		} else {
			continue
		}
		if seg.seq, err = strconv.ParseUint(rest, 10, 64); err != nil {
			continue
		}
		if seg.sealed && sealer == nil {
			s.close()
			return nil, fmt.Errorf("open spool %s: %s: %w", dir, name, ErrSpoolSealed)
		}
		info, err := e.Info()
		if err != nil {
			s.close()
			return nil, fmt.Errorf("open spool %s: %w", dir, err)
		}
		seg.size = info.Size()
		s.segments = append(s.segments, seg)
	}
	slices.SortFunc(s.segments, func(a, b segment) int { return cmp.Compare(a.seq, b.seq) })
	return s, nil
}

func (s *spool) path(seg segment) string {
	suffix := spoolSuffix
	if seg.sealed {
		suffix = spoolSealedSuffix
	}
	return filepath.Join(s.dir, fmt.Sprintf("%s%020d%s", spoolPrefix, seg.seq, suffix))
}

// frameAAD is the authenticated data of the sealed frame at offset in
// segment seq.
func frameAAD(seq uint64, offset int64) []byte {
	return fmt.Appendf(nil, "vitals/analytics/spool/v1 segment=%d offset=%d", seq, offset)
}

// empty reports whether no spooled row waits for replay.
func (s *spool) empty() bool { return len(s.segments) == 0 }

// bytes returns the spool's size on disk, acked-but-not-yet-removed included.
func (s *spool) bytes() int64 {
	var n int64
	for _, seg := range s.segments {
		n += seg.size
	}
	return n
}

// append writes rows to the newest segment and fsyncs it. When it returns
// nil the rows survive a crash; on error none of them counts as spooled.
func (s *spool) append(rows []WebhookAttempt) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	for _, r := range rows {
		if err := enc.Encode(r); err != nil {
			return fmt.Errorf("spool: encode %s: %w", r.AttemptID, err)
		}
	}
	if s.active == nil || s.segments[len(s.segments)-1].size >= spoolSegmentBytes {
		if err := s.rotate(); err != nil {
			return err
		}
	}
	last := &s.segments[len(s.segments)-1]
	data := buf.Bytes()
	if last.sealed {
		sealed, err := s.sealer.SealBytes(data, frameAAD(last.seq, last.size))
		if err != nil {
			return fmt.Errorf("spool: seal %d rows: %w", len(rows), err)
		}
		if len(sealed) > math.MaxUint32 {
			return fmt.Errorf("spool: sealed frame of %d rows is %d bytes, too large", len(rows), len(sealed))
		}
		data = binary.BigEndian.AppendUint32(make([]byte, 0, frameHeaderBytes+len(sealed)), uint32(len(sealed)))
		data = append(data, sealed...)
	}
	n, err := s.active.Write(data)
	if err == nil {
		err = s.active.Sync()
	}
	if err != nil {
		// Cut off a torn write so the segment stays whole records; the
		// caller keeps the rows and tries again.
		if n > 0 {
			_ = s.active.Truncate(last.size)
		}
		return fmt.Errorf("spool: write %s: %w", s.active.Name(), err)
	}
	last.size += int64(n)
	return nil
}

// rotate closes the active segment and starts a new one.
func (s *spool) rotate() error {
	if s.active != nil {
		if err := s.active.Close(); err != nil {
			return fmt.Errorf("spool: close %s: %w", s.active.Name(), err)
		}
		s.active = nil
	}
	seg := segment{seq: 1, sealed: s.sealer != nil}
	if len(s.segments) > 0 {
		seg.seq = s.segments[len(s.segments)-1].seq + 1
	}
	f, err := os.OpenFile(s.path(seg), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	s.active = f
	s.segments = append(s.segments, seg)
	return nil
}

// replay sends the spooled rows, oldest first, in chunks of at most chunk
// rows through insert, and removes each segment once all of it was acked.
// It returns how many rows insert acked and the first insert error, after
// which the rest stays spooled for the next replay.
func (s *spool) replay(ctx context.Context, chunk int, insert func(context.Context, []WebhookAttempt) error, logger *slog.Logger) (int, error) {
	replayed := 0
	for len(s.segments) > 0 {
		n, err := s.replaySegment(ctx, chunk, insert, logger)
		replayed += n
		if err != nil {
			return replayed, err
		}
	}
	return replayed, nil
}

func (s *spool) replaySegment(ctx context.Context, chunk int, insert func(context.Context, []WebhookAttempt) error, logger *slog.Logger) (int, error) {
	seg := s.segments[0]
	if len(s.segments) == 1 && s.active != nil {
		// Appends go to a new segment from now on, so this one can be
		// removed once it is replayed.
		if err := s.active.Close(); err != nil {
			return 0, fmt.Errorf("spool: close %s: %w", s.active.Name(), err)
		}
		s.active = nil
	}
	f, err := os.Open(s.path(seg))
	if err != nil {
		return 0, fmt.Errorf("spool: replay: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(s.acked, io.SeekStart); err != nil {
		return 0, fmt.Errorf("spool: replay %s: %w", f.Name(), err)
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var (
		rows       = make([]WebhookAttempt, 0, chunk)
		pos        = s.acked // bytes read, as whole records
		replayed   = 0
		unreadable = false // some record could not be read: keep the file
	)
	send := func() error {
		if len(rows) == 0 {
			s.acked = pos
			return nil
		}
		if err := insert(ctx, rows); err != nil {
			return err
		}
		replayed += len(rows)
		s.acked = pos
		rows = rows[:0]
		return nil
	}
	for {
		var (
			n   int64
			err error
		)
		if seg.sealed {
			rows, n, err = s.readFrame(r, seg, pos, rows)
		} else {
			rows, n, err = readLine(r, rows)
		}
		if err == nil {
			pos += n
			if len(rows) >= chunk {
				if err := send(); err != nil {
					return replayed, err
				}
			}
			continue
		}
		if errors.Is(err, errUnreadable) {
			logger.Error("analytics: unreadable spool record; replaying the rest and keeping the file",
				"file", f.Name(), "offset", pos, "bytes", n, "err", err)
			unreadable = true
			pos += n
			continue
		}
		// Every other outcome ends the segment.
		switch {
		case err == io.EOF:
		case errors.Is(err, errTorn):
			// Only a crash mid-append leaves a record incomplete; that
			// append never returned nil, so the rows were not
			// acknowledged as spooled. Say so rather than skip silently.
			logger.Error("analytics: spool segment ends in a torn line or frame; dropping it",
				"file", f.Name(), "offset", pos, "bytes", n)
		case errors.Is(err, errCorrupt):
			logger.Error("analytics: corrupt spool frame; the rest of the segment cannot be read, keeping the file",
				"file", f.Name(), "offset", pos)
			unreadable = true
		default:
			return replayed, fmt.Errorf("spool: replay %s: %w", f.Name(), err)
		}
		break
	}
	if err := send(); err != nil {
		return replayed, err
	}
	if unreadable {
		kept := f.Name() + unreadableSuffix
		if err := os.Rename(f.Name(), kept); err != nil {
			return replayed, fmt.Errorf("spool: keep unreadable %s: %w", f.Name(), err)
		}
		logger.Error("analytics: spool segment had unreadable records; its readable rows were replayed and the file kept for inspection",
			"file", kept)
	} else if err := os.Remove(f.Name()); err != nil {
		return replayed, fmt.Errorf("spool: remove replayed %s: %w", f.Name(), err)
	}
	s.segments = s.segments[1:]
	s.acked = 0
	return replayed, syncDir(s.dir)
}

// readLine reads one JSON line of a plain segment and appends its row to
// rows. It returns the bytes consumed and io.EOF at the end, errTorn for a
// last line without its newline, errUnreadable for a line that does not
// decode.
func readLine(r *bufio.Reader, rows []WebhookAttempt) ([]WebhookAttempt, int64, error) {
	line, err := r.ReadBytes('\n')
	if err == io.EOF {
		if len(line) > 0 {
			return rows, int64(len(line)), errTorn
		}
		return rows, 0, io.EOF
	}
	if err != nil {
		return rows, 0, err
	}
	var a WebhookAttempt
	if err := json.Unmarshal(line, &a); err != nil {
		return rows, int64(len(line)), fmt.Errorf("%w: %w", errUnreadable, err)
	}
	return append(rows, a), int64(len(line)), nil
}

// readFrame reads the sealed frame at offset pos of seg, opens it and
// appends its rows to rows. It returns the bytes consumed and io.EOF at the
// end, errTorn for a frame cut short by the end of the file, errUnreadable
// for a frame that does not open or decode, errCorrupt for a frame header
// that cannot be right.
func (s *spool) readFrame(r *bufio.Reader, seg segment, pos int64, rows []WebhookAttempt) ([]WebhookAttempt, int64, error) {
	var hdr [frameHeaderBytes]byte
	n, err := io.ReadFull(r, hdr[:])
	switch {
	case err == io.EOF:
		return rows, 0, io.EOF
	case err == io.ErrUnexpectedEOF:
		return rows, int64(n), errTorn
	case err != nil:
		return rows, 0, err
	}
	size := int64(binary.BigEndian.Uint32(hdr[:]))
	if size == 0 {
		return rows, frameHeaderBytes, errCorrupt
	}
	// seg.size is the file's size: a frame reaching past it is the tail of
	// an append cut short (or a corrupt length, which reads the same).
	if pos+frameHeaderBytes+size > seg.size {
		return rows, seg.size - pos, errTorn
	}
	n64 := frameHeaderBytes + size
	sealed := make([]byte, size)
	if _, err := io.ReadFull(r, sealed); err != nil {
		if err == io.ErrUnexpectedEOF || err == io.EOF {
			return rows, n64, errTorn
		}
		return rows, 0, err
	}
	plain, err := s.sealer.OpenBytes(sealed, frameAAD(seg.seq, pos))
	if err != nil {
		return rows, n64, fmt.Errorf("%w: %w", errUnreadable, err)
	}
	had := len(rows)
	for line := range bytes.Lines(plain) {
		var a WebhookAttempt
		if err := json.Unmarshal(line, &a); err != nil {
			return rows[:had], n64, fmt.Errorf("%w: %w", errUnreadable, err)
		}
		rows = append(rows, a)
	}
	return rows, n64, nil
}

// close closes the active segment and releases the lock.
func (s *spool) close() error {
	var err error
	if s.active != nil {
		err = s.active.Close()
		s.active = nil
	}
	if s.lock != nil {
		err = errors.Join(err, s.lock.Close()) // closing releases the flock
		s.lock = nil
	}
	return err
}

// syncDir fsyncs a directory so that created and removed files are durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return fmt.Errorf("spool: sync %s: %w", dir, err)
	}
	defer d.Close()
	if err := d.Sync(); err != nil {
		return fmt.Errorf("spool: sync %s: %w", dir, err)
	}
	return nil
}
