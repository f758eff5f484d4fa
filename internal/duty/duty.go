// Package duty guards a node's background duties (garbage collection, the snapshot
// finisher, the restore coordinator and executors, membership, backups): one pass of
// a duty that panics is recovered, logged with its stack and counted, and the duty
// backs off before its next pass, so a node never dies because one duty failed.
package duty

import (
	"errors"
	"fmt"
	"log/slog"
	"runtime/debug"
	"sync"
	"time"
)

// ErrPanicked is wrapped by the error Guard returns for a pass that panicked.
var ErrPanicked = errors.New("duty panicked")

// Backoff bounds: the first wait after a panic, and the most a duty waits.
const (
	FirstBackoff = time.Second
	MaxBackoff   = time.Minute
)

// Guard runs background duties' passes. Its methods are safe for concurrent use.
type Guard struct {
	Logger *slog.Logger
	// OnPanic, when set, is called with the duty's name after each recovered panic
	// (a metric counts them).
	OnPanic func(duty string)
	// Inject, when set, is asked before each pass and makes the pass panic when it
	// says so: the fault-injection hook that proves the recovery (tests only).
	Inject func(duty string) bool

	mu      sync.Mutex
	backoff map[string]time.Duration // the next wait of each duty that panicked
}

// Run runs one pass of the named duty. A panic is recovered: logged at error level
// with its stack, counted, and returned as an error wrapping ErrPanicked; the duty's
// backoff then grows (FirstBackoff, doubling, up to MaxBackoff) until a pass returns.
func (g *Guard) Run(name string, pass func()) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("%w: %s: %v", ErrPanicked, name, r)
			g.logger().Error("background duty panicked; it backs off and runs again", "duty", name, "panic", fmt.Sprint(r), "stack", string(debug.Stack()))
			if g.OnPanic != nil {
				g.OnPanic(name)
			}
			g.mu.Lock()
			if g.backoff == nil {
				g.backoff = map[string]time.Duration{}
			}
			g.backoff[name] = min(max(2*g.backoff[name], FirstBackoff), MaxBackoff)
			g.mu.Unlock()
		}
	}()
	if g.Inject != nil && g.Inject(name) {
		panic("injected fault in duty " + name)
	}
	pass()
	g.mu.Lock()
	delete(g.backoff, name)
	g.mu.Unlock()
	return nil
}

// Backoff is how long the named duty should wait before its next pass: 0 unless its
// last pass panicked.
func (g *Guard) Backoff(name string) time.Duration {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.backoff[name]
}

// Wait sleeps the duty's backoff, if any; it returns false when stop closed first.
func (g *Guard) Wait(name string, stop <-chan struct{}) bool {
	d := g.Backoff(name)
	if d == 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-stop:
		return false
	}
}

// Go runs fn in a goroutine under the guard: for one-shot work a duty starts (a
// worker), whose panic must not take the process down.
func (g *Guard) Go(name string, wg *sync.WaitGroup, fn func()) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		_ = g.Run(name, fn)
	}()
}

func (g *Guard) logger() *slog.Logger {
	if g.Logger == nil {
		return slog.Default()
	}
	return g.Logger
}
