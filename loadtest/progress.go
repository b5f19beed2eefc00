package loadtest

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/mattn/go-isatty"
)

// Progress draws a one-line progress bar — elapsed time against the
// run's estimated length, and the stage being measured — on a terminal.
// On anything that is not a terminal (a pipe, a file, a buffer) it writes
// nothing, so logs and CI output stay clean.
type Progress struct {
	w        io.Writer
	estimate time.Duration
	start    time.Time

	mu    sync.Mutex
	stage string

	stop chan struct{}
	done chan struct{}
}

// NewProgress returns a bar for a run expected to take about estimate,
// drawn on w when w is a terminal.
func NewProgress(w io.Writer, estimate time.Duration) *Progress {
	p := &Progress{estimate: estimate}
	if f, ok := w.(*os.File); ok && (isatty.IsTerminal(f.Fd()) || isatty.IsCygwinTerminal(f.Fd())) {
		p.w = w
	}
	return p
}

// Start begins redrawing the bar four times a second until Stop.
func (p *Progress) Start() {
	if p.w == nil {
		return
	}
	p.start = time.Now()
	p.stop, p.done = make(chan struct{}), make(chan struct{})
	go func() {
		defer close(p.done)
		t := time.NewTicker(250 * time.Millisecond)
		defer t.Stop()
		for {
			p.draw()
			select {
			case <-t.C:
			case <-p.stop:
				fmt.Fprint(p.w, "\r\033[K")
				return
			}
		}
	}()
}

// Stage names what is being measured now.
func (p *Progress) Stage(name string) {
	p.mu.Lock()
	p.stage = name
	p.mu.Unlock()
}

// Stop clears the bar and ends its goroutine.
func (p *Progress) Stop() {
	if p.w == nil || p.stop == nil {
		return
	}
	close(p.stop)
	<-p.done
	p.stop = nil
}

func (p *Progress) draw() {
	p.mu.Lock()
	stage := p.stage
	p.mu.Unlock()
	elapsed := time.Since(p.start)
	frac := 0.0
	if p.estimate > 0 {
		frac = min(0.99, elapsed.Seconds()/p.estimate.Seconds())
	}
	const width = 30
	n := int(frac * width)
	fmt.Fprintf(p.w, "\r\033[K[%s%s] %3.0f%% %s  %s", strings.Repeat("#", n), strings.Repeat(".", width-n),
		frac*100, elapsed.Round(time.Second), stage)
}
