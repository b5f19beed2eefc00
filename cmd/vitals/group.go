package main

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
)

// group runs the long-lived parts of a process. When one returns, the
// group's context is cancelled so the others stop; Wait returns the first
// error once every part has ended. It is the single owner of every
// goroutine a subcommand starts.
type group struct {
	ctx    context.Context
	cancel context.CancelFunc
	log    *slog.Logger
	wg     sync.WaitGroup
	once   sync.Once
	err    error
}

func newGroup(ctx context.Context, log *slog.Logger) *group {
	ctx, cancel := context.WithCancel(ctx)
	return &group{ctx: ctx, cancel: cancel, log: log}
}

// Go starts fn under the group's context.
func (g *group) Go(name string, fn func(ctx context.Context) error) {
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		err := fn(g.ctx)
		if err != nil && g.ctx.Err() == nil {
			g.once.Do(func() { g.err = fmt.Errorf("%s: %w", name, err) })
			g.log.Error("component failed; stopping", "component", name, "err", err)
		} else if g.ctx.Err() == nil {
			g.log.Info("component ended; stopping", "component", name)
		}
		g.cancel()
	}()
}

// Wait blocks until every part ended and returns the first failure.
func (g *group) Wait() error {
	g.wg.Wait()
	g.cancel()
	return g.err
}

// Stop cancels the group's context.
func (g *group) Stop() { g.cancel() }
