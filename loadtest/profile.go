package loadtest

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// captureProfiles fetches a CPU profile and an allocation profile (the
// allocations of the window only: a delta) of c over the next d, in the
// background. The returned function waits for both and records them in
// the report, with the functions that dominate when `go tool pprof` is at
// hand; calling it again does nothing, so error paths can defer it. Without
// Config.Profile it does nothing.
func (h *harness) captureProfiles(ctx context.Context, stage string, c *child, d time.Duration) (wait func()) {
	if !h.cfg.Profile {
		return func() {}
	}
	secs := max(1, int(d.Round(time.Second)/time.Second))
	base := filepath.Join(h.outDir, fileName(stage))
	pf := ProfileFile{Stage: stage, CPU: base + ".cpu.pprof", Allocs: base + ".allocs.pprof"}
	var wg sync.WaitGroup
	var cpuErr, memErr error
	wg.Go(func() { cpuErr = fetch(ctx, fmt.Sprintf("%s/debug/pprof/profile?seconds=%d", c.pprof, secs), pf.CPU) })
	wg.Go(func() { memErr = fetch(ctx, fmt.Sprintf("%s/debug/pprof/allocs?seconds=%d", c.pprof, secs), pf.Allocs) })
	var once sync.Once
	return func() {
		once.Do(func() {
			wg.Wait()
			if cpuErr != nil {
				h.log.Warn("cpu profile", "stage", stage, "err", cpuErr)
				pf.CPU = ""
			} else {
				pf.TopCPU = pprofTop(pf.CPU, "cpu")
			}
			if memErr != nil {
				h.log.Warn("allocation profile", "stage", stage, "err", memErr)
				pf.Allocs = ""
			} else {
				pf.TopMem = pprofTop(pf.Allocs, "alloc_space")
			}
			h.report.Profiles = append(h.report.Profiles, pf)
		})
	}
}

// fileName turns a stage name ("e2e 1,000/s") into a file name
// ("e2e-1000-s").
func fileName(stage string) string {
	var b strings.Builder
	dash := false
	for _, r := range strings.ToLower(stage) {
		switch {
		case r >= 'a' && r <= 'z', r >= '0' && r <= '9':
			b.WriteRune(r)
			dash = false
		case r == ',':
		default:
			if !dash && b.Len() > 0 {
				b.WriteByte('-')
				dash = true
			}
		}
	}
	return strings.TrimSuffix(b.String(), "-")
}

// fetch writes the body of GET url to path.
func fetch(ctx context.Context, url, path string) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("profile %s: %w", url, err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("profile %s: %s: %s", url, resp.Status, b)
	}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("profile: %w", err)
	}
	if _, err := io.Copy(f, resp.Body); err != nil {
		f.Close()
		return fmt.Errorf("profile %s: %w", url, err)
	}
	return f.Close()
}

// topN is how many functions a profile summary names.
const topN = 8

// pprofTop returns the heaviest functions of a profile by their own
// (flat) weight, as `go tool pprof -top` prints them, or nothing when the
// go command is not installed (the profile file is still there).
func pprofTop(path, index string) []string {
	goBin, err := exec.LookPath("go")
	if err != nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	out, err := exec.CommandContext(ctx, goBin, "tool", "pprof", "-top", "-nodecount="+fmt.Sprint(topN),
		"-sample_index="+index, path).Output()
	if err != nil {
		return nil
	}
	var lines []string
	inTable := false
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if strings.HasPrefix(line, "flat") {
			inTable = true
			continue
		}
		if inTable && line != "" {
			lines = append(lines, strings.Join(strings.Fields(line), " "))
		}
	}
	return lines
}
