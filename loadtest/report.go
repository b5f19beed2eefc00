package loadtest

import (
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// SchemaVersion is the version of the JSON report's shape; it changes when
// a field is renamed or removed, so comparisons across runs can tell.
const SchemaVersion = 1

// Report is everything one run measured. Its JSON form is written to
// <results-dir>/<timestamp>.json for comparing runs.
type Report struct {
	SchemaVersion int           `json:"schema_version"`
	StartedAt     time.Time     `json:"started_at"`
	ElapsedS      float64       `json:"elapsed_s"`
	Machine       Machine       `json:"machine"`
	Settings      Settings      `json:"settings"`
	Figures       []Figure      `json:"figures"`
	Latency       []LatencyRun  `json:"latency"`
	Resources     []Resources   `json:"resources"`
	Memory        *MemoryTrend  `json:"memory_trend,omitempty"`
	Profiles      []ProfileFile `json:"profiles"`
	Notes         []string      `json:"notes"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUModel  string  `json:"cpu_model"`
	CPUs      int     `json:"cpus"`
	MemoryGiB float64 `json:"memory_gib"`
	OS        string  `json:"os"`
	Arch      string  `json:"arch"`
	GoVersion string  `json:"go_version"`
	Vitals    string  `json:"vitals_version"`
	// LoadAvg are the 1-minute load averages at the start and the end of
	// the run: well above 0 at the start means something else was busy.
	LoadAvgStart float64 `json:"load_avg_start"`
	LoadAvgEnd   float64 `json:"load_avg_end"`
}

// Settings are the knobs the run used.
type Settings struct {
	Broker         string    `json:"broker"`
	DurationS      float64   `json:"duration_s"`
	WarmupS        float64   `json:"warmup_s"`
	E2ERates       []float64 `json:"e2e_rates"`
	IngestWorkers  int       `json:"ingest_workers"`
	BatchWorkers   int       `json:"batch_workers"`
	BatchSize      int       `json:"batch_size"`
	StateCustomers int       `json:"state_customers"`
	SoakS          float64   `json:"soak_s"`
	RateLimits     []string  `json:"rate_limits"`
	Analytics      string    `json:"analytics"`
}

// Figure is one measured number, with the baseline measured beside it in
// the same run, the ratio to it, and the target it is held to.
type Figure struct {
	ID       string    `json:"id"` // stable key for comparing runs, e.g. "ingest.single.requests_per_s"
	Stage    string    `json:"stage"`
	Name     string    `json:"name"`
	Value    *float64  `json:"value"` // null: not measured in this run (see Note)
	Unit     string    `json:"unit"`
	Baseline *Baseline `json:"baseline,omitempty"`
	Ratio    *float64  `json:"ratio,omitempty"` // Value / Baseline.Value
	Target   *Target   `json:"target,omitempty"`
	Met      *bool     `json:"met,omitempty"`
	Note     string    `json:"note,omitempty"`
}

// Baseline is the reference a figure is compared with.
type Baseline struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

// Target is a figure's goal: a bound on its value, or on its ratio to the
// baseline when OfRatio.
type Target struct {
	Text    string   `json:"text"`
	Min     *float64 `json:"min,omitempty"`
	Max     *float64 `json:"max,omitempty"`
	OfRatio bool     `json:"of_ratio,omitempty"`
}

// LatencyRun is one open-loop end-to-end run at a fixed offered rate.
type LatencyRun struct {
	Name             string         `json:"name"`
	OfferedPerS      float64        `json:"offered_events_per_s"`
	EventsPerRequest int            `json:"events_per_request"`
	DurationS        float64        `json:"duration_s"`
	Scheduled        int            `json:"scheduled_events"`
	Accepted         int            `json:"accepted_events"`
	Refused          int            `json:"refused_events"`
	Latency          LatencySummary `json:"latency"`
	SenderLate       int            `json:"sender_late_requests"`
	SenderMaxLagMs   float64        `json:"sender_max_lag_ms"`
}

// Resources are what one process spent in one measured window.
type Resources struct {
	Stage          string   `json:"stage"`
	Process        string   `json:"process"`
	Events         int64    `json:"events"`
	CPUSeconds     float64  `json:"cpu_s"`
	CPUPer1k       *float64 `json:"cpu_s_per_1k_events"`
	PeakRSSMiB     float64  `json:"peak_rss_mib"`
	Allocs         float64  `json:"allocs"`
	AllocsPerEvent *float64 `json:"allocs_per_event"`
	// WindowS is the wall time the row covers; HarnessCPUSeconds what
	// this process (load generator, receiver, embedded broker) used in it,
	// so CPU seconds of both over WindowS show how busy the machine was.
	WindowS           float64 `json:"window_s"`
	HarnessCPUSeconds float64 `json:"harness_cpu_s"`
	// CeilingPerS is the rate this process's CPU cost per event allows
	// with every CPU of the machine to itself: a bound that holds on a
	// shared or noisy machine, where wall-clock rates do not.
	CeilingPerS *float64 `json:"cpu_ceiling_events_per_s"`
}

// MemoryTrend is the soak run's memory over time.
type MemoryTrend struct {
	OfferedPerS  float64   `json:"offered_events_per_s"`
	DurationS    float64   `json:"duration_s"`
	SampleEveryS float64   `json:"sample_every_s"`
	RSSMiB       []float64 `json:"rss_mib"`
	HeapMiB      []float64 `json:"heap_inuse_mib"`
	// SlopeMiBPerMin is the least-squares slope of RSS after the first
	// fifth of the run (warm-up excluded).
	SlopeMiBPerMin float64 `json:"rss_slope_mib_per_min"`
	HeapSlope      float64 `json:"heap_slope_mib_per_min"`
	GrowthPct      float64 `json:"rss_growth_pct"` // fitted growth over the measured part, % of its mean
}

// ProfileFile names the pprof profiles of one stage and what dominated them.
type ProfileFile struct {
	Stage  string   `json:"stage"`
	CPU    string   `json:"cpu,omitempty"`
	Allocs string   `json:"allocs,omitempty"`
	TopCPU []string `json:"top_cpu,omitempty"`
	TopMem []string `json:"top_alloc_space,omitempty"`
}

// add appends a figure, computing its ratio and whether it met its target.
func (r *Report) add(f Figure) {
	if f.Value != nil && f.Baseline != nil && f.Baseline.Value > 0 {
		f.Ratio = ptr(*f.Value / f.Baseline.Value)
	}
	if t := f.Target; t != nil {
		subject := f.Value
		if t.OfRatio {
			subject = f.Ratio
		}
		if subject != nil {
			ok := (t.Min == nil || *subject >= *t.Min) && (t.Max == nil || *subject <= *t.Max)
			f.Met = &ok
		}
	}
	r.Figures = append(r.Figures, f)
}

// note adds a line to the report's notes.
func (r *Report) note(format string, args ...any) {
	r.Notes = append(r.Notes, fmt.Sprintf(format, args...))
}

// WriteJSON writes the report as indented JSON to path, creating its
// directory.
func (r *Report) WriteJSON(path string) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return fmt.Errorf("results dir: %w", err)
	}
	b, err := json.MarshalIndent(r, "", "  ")
	if err != nil {
		return fmt.Errorf("encode report: %w", err)
	}
	if err := os.WriteFile(path, append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write report: %w", err)
	}
	return nil
}

// WriteTable writes the report as aligned tables for a terminal.
func (r *Report) WriteTable(w io.Writer) error {
	var b strings.Builder
	m := r.Machine
	fmt.Fprintf(&b, "vitals bench — %s, %d CPUs, %.0f GiB, %s/%s, %s, vitals %s\n", m.CPUModel, m.CPUs, m.MemoryGiB, m.OS, m.Arch, m.GoVersion, m.Vitals)
	fmt.Fprintf(&b, "load average (1 min): %.2f at the start, %.2f at the end\n", m.LoadAvgStart, m.LoadAvgEnd)
	fmt.Fprintf(&b, "broker: %s; window %gs per stage after %gs warm-up; started %s, took %s\n\n",
		r.Settings.Broker, r.Settings.DurationS, r.Settings.WarmupS, r.StartedAt.Format(time.RFC3339), time.Duration(r.ElapsedS*float64(time.Second)).Round(time.Second))
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "stage\tfigure\tvalue\tunit\tbaseline (same run)\tbaseline\tratio\ttarget\tmet\t")
	for _, f := range r.Figures {
		base, bv, ratio := "", "", ""
		if f.Baseline != nil {
			base, bv = f.Baseline.Name, num(f.Baseline.Value)
		}
		if f.Ratio != nil {
			ratio = fmt.Sprintf("%.2fx", *f.Ratio)
		}
		target, met := "", ""
		if f.Target != nil {
			target = f.Target.Text
		}
		switch {
		case f.Met != nil && *f.Met:
			met = "yes"
		case f.Met != nil:
			met = "NO"
		case f.Target != nil:
			met = "-"
		}
		val := "-"
		if f.Value != nil {
			val = num(*f.Value)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t\n", f.Stage, f.Name, val, f.Unit, base, bv, ratio, target, met)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if len(r.Latency) > 0 {
		fmt.Fprintln(&b, "\nend to end (open loop; latency from the scheduled send time to the webhook at the receiver)")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "run\toffered/s\tevents/request\tscheduled\taccepted\trefused\tdelivered\tlost\tp50 ms\tp95 ms\tp99 ms\tmax ms\tsender late\t")
		for _, l := range r.Latency {
			s := l.Latency
			fmt.Fprintf(tw, "%s\t%s\t%d\t%d\t%d\t%d\t%d\t%d\t%s\t%s\t%s\t%s\t%d\t\n", l.Name, num(l.OfferedPerS), l.EventsPerRequest, l.Scheduled,
				l.Accepted, l.Refused, s.Count, s.Missing, ms(s.P50), ms(s.P95), ms(s.P99), ms(s.Max), l.SenderLate)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if len(r.Resources) > 0 {
		fmt.Fprintln(&b, "\nresources (the measured vitals process, during its window: /proc/<pid> and its /metrics; peak RSS since it started)")
		tw = tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
		fmt.Fprintf(tw, "stage\tprocess\tevents\twindow s\tCPU s\tCPU s/1k events\tCPU ceiling events/s (%d CPUs)\tpeak RSS MiB\tallocs/event\tharness CPU s\t\n", r.Machine.CPUs)
		for _, x := range r.Resources {
			ceiling := "-"
			if x.CeilingPerS != nil {
				ceiling = num(*x.CeilingPerS)
			}
			fmt.Fprintf(tw, "%s\t%s\t%d\t%.1f\t%.2f\t%s\t%s\t%.0f\t%s\t%.2f\t\n", x.Stage, x.Process, x.Events, x.WindowS, x.CPUSeconds,
				optNum(x.CPUPer1k, 3), ceiling, x.PeakRSSMiB, optNum(x.AllocsPerEvent, 1), x.HarnessCPUSeconds)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
	}
	if mt := r.Memory; mt != nil {
		fmt.Fprintf(&b, "\nsoak: %s events/s for %s; RSS %s MiB → %s MiB, slope %.2f MiB/min (heap %.2f MiB/min), fitted growth %.1f%%\n",
			num(mt.OfferedPerS), time.Duration(mt.DurationS*float64(time.Second)), first(mt.RSSMiB), last(mt.RSSMiB), mt.SlopeMiBPerMin, mt.HeapSlope, mt.GrowthPct)
	}
	for _, p := range r.Profiles {
		fmt.Fprintf(&b, "\nprofiles of %s: %s %s\n", p.Stage, p.CPU, p.Allocs)
		for _, l := range p.TopCPU {
			fmt.Fprintf(&b, "  cpu    %s\n", l)
		}
		for _, l := range p.TopMem {
			fmt.Fprintf(&b, "  alloc  %s\n", l)
		}
	}
	if len(r.Notes) > 0 {
		fmt.Fprintln(&b, "\nnotes:")
		for _, n := range r.Notes {
			fmt.Fprintf(&b, "  - %s\n", n)
		}
	}
	_, err := io.WriteString(w, b.String())
	return err
}

// num formats v for the table: thousands separated above 1000, three
// significant digits below.
func num(v float64) string {
	switch {
	case math.IsNaN(v) || math.IsInf(v, 0):
		return "-"
	case math.Abs(v) >= 1000:
		s := strconv.FormatInt(int64(math.Round(v)), 10)
		neg := strings.HasPrefix(s, "-")
		s = strings.TrimPrefix(s, "-")
		var out []byte
		for i := range len(s) {
			if i > 0 && (len(s)-i)%3 == 0 {
				out = append(out, ',')
			}
			out = append(out, s[i])
		}
		if neg {
			return "-" + string(out)
		}
		return string(out)
	case math.Abs(v) >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	default:
		return strconv.FormatFloat(v, 'g', 3, 64)
	}
}

func optNum(v *float64, prec int) string {
	if v == nil {
		return "-"
	}
	return strconv.FormatFloat(*v, 'f', prec, 64)
}

func ms(v *float64) string {
	if v == nil {
		return "lost"
	}
	return strconv.FormatFloat(*v, 'f', 1, 64)
}

func first(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	return strconv.FormatFloat(v[0], 'f', 0, 64)
}

func last(v []float64) string {
	if len(v) == 0 {
		return "-"
	}
	return strconv.FormatFloat(v[len(v)-1], 'f', 0, 64)
}

func ptr[T any](v T) *T { return &v }
