package analytics

import (
	"bufio"
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
)

// ErrSpoolLocked reports a spool directory already used by another Writer
// (in this or another process). Each Writer needs a directory of its own.
var ErrSpoolLocked = errors.New("analytics: spool directory is locked by another writer")

const (
	spoolPrefix = "webhook_attempts-"
	spoolSuffix = ".jsonl"
	// spoolSegmentBytes caps a segment file: replay removes whole segments,
	// so this bounds how much is sent again after a crash mid-replay.
	spoolSegmentBytes = 8 << 20
)

// segment is one spool file, webhook_attempts-<seq>.jsonl.
type segment struct {
	seq  uint64
	size int64
}

// spool is the on-disk queue of rows that could not go to ClickHouse: segment
// files of JSON lines, appended and fsync'd before append returns. Replay
// reads the oldest segment first and removes a segment only after ClickHouse
// acked every row in it. Only the Writer's Run goroutine uses a spool.
type spool struct {
	dir      string
	lock     *os.File
	segments []segment // oldest first
	active   *os.File  // open for appends: the last segment, or nil
	// acked is how many bytes of segments[0] ClickHouse already acked during
	// this process's replay, so a replay that failed half-way resumes there.
	acked int64
}

// openSpool opens (creating) the spool in dir, takes its lock and finds the
// segments an earlier run left behind.
func openSpool(dir string) (*spool, error) {
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
	s := &spool{dir: dir, lock: lock}
	entries, err := os.ReadDir(dir)
	if err != nil {
		s.close()
		return nil, fmt.Errorf("open spool %s: %w", dir, err)
	}
	for _, e := range entries {
		name := e.Name()
		if !strings.HasPrefix(name, spoolPrefix) || !strings.HasSuffix(name, spoolSuffix) {
			continue
		}
		seq, err := strconv.ParseUint(strings.TrimSuffix(strings.TrimPrefix(name, spoolPrefix), spoolSuffix), 10, 64)
		if err != nil {
			continue
		}
		info, err := e.Info()
		if err != nil {
			s.close()
			return nil, fmt.Errorf("open spool %s: %w", dir, err)
		}
		s.segments = append(s.segments, segment{seq: seq, size: info.Size()})
	}
	slices.SortFunc(s.segments, func(a, b segment) int { return cmp.Compare(a.seq, b.seq) })
	return s, nil
}

func (s *spool) path(seq uint64) string {
	return filepath.Join(s.dir, fmt.Sprintf("%s%020d%s", spoolPrefix, seq, spoolSuffix))
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
	n, err := s.active.Write(buf.Bytes())
	if err == nil {
		err = s.active.Sync()
	}
	if err != nil {
		// Cut off a torn write so the segment stays whole lines; the caller
		// keeps the rows and tries again.
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
	var seq uint64 = 1
	if len(s.segments) > 0 {
		seq = s.segments[len(s.segments)-1].seq + 1
	}
	f, err := os.OpenFile(s.path(seq), os.O_CREATE|os.O_EXCL|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("spool: %w", err)
	}
	if err := syncDir(s.dir); err != nil {
		f.Close()
		os.Remove(f.Name())
		return err
	}
	s.active = f
	s.segments = append(s.segments, segment{seq: seq})
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
	f, err := os.Open(s.path(seg.seq))
	if err != nil {
		return 0, fmt.Errorf("spool: replay: %w", err)
	}
	defer f.Close()
	if _, err := f.Seek(s.acked, io.SeekStart); err != nil {
		return 0, fmt.Errorf("spool: replay %s: %w", f.Name(), err)
	}
	r := bufio.NewReaderSize(f, 64<<10)
	var (
		rows     = make([]WebhookAttempt, 0, chunk)
		pos      = s.acked // bytes read, as whole lines
		replayed = 0
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
		line, err := r.ReadBytes('\n')
		if err == io.EOF {
			if len(line) > 0 {
				// Only a crash mid-append leaves a line without its newline;
				// that append never returned nil, so the rows were not
				// acknowledged as spooled. Say so rather than skip silently.
				logger.Error("analytics: spool segment ends in a torn line; dropping it",
					"file", f.Name(), "bytes", len(line))
			}
			break
		}
		if err != nil {
			return replayed, fmt.Errorf("spool: replay %s: %w", f.Name(), err)
		}
		pos += int64(len(line))
		var a WebhookAttempt
		if err := json.Unmarshal(line, &a); err != nil {
			logger.Error("analytics: undecodable spool line; dropping it",
				"file", f.Name(), "offset", pos-int64(len(line)), "err", err)
			continue
		}
		rows = append(rows, a)
		if len(rows) >= chunk {
			if err := send(); err != nil {
				return replayed, err
			}
		}
	}
	if err := send(); err != nil {
		return replayed, err
	}
	if err := os.Remove(f.Name()); err != nil {
		return replayed, fmt.Errorf("spool: remove replayed %s: %w", f.Name(), err)
	}
	s.segments = s.segments[1:]
	s.acked = 0
	return replayed, syncDir(s.dir)
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
