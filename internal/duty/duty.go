// Package duty guards a node's background duties (garbage collection, the snapshot
// finisher, the restore coordinator and executors, membership, backups): one pass of
// a duty that panics is recovered, logged with its stack and counted, and the duty
// backs off before its next pass, so a node never dies because one duty failed.
package duty

import (
	"context"
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

// Kicker wakes a loop before its interval is up; kicks coalesce while the loop is
// busy. Make one with NewKicker.
type Kicker chan struct{}

// NewKicker returns a Kicker that holds one pending kick.
func NewKicker() Kicker { return make(Kicker, 1) }

// Kick wakes the loop, or does nothing if a kick is already pending.
func (k Kicker) Kick() {
	select {
	case k <- struct{}{}:
	default:
	}
}

// Loop is a duty that runs passes until its context ends.
type Loop struct {
	// Name labels the duty's logs, panic metric and backoff.
	Name string
	// Every is the longest wait between two passes.
	Every time.Duration
	// Kick, when set, starts the next pass at once.
	Kick Kicker
	// Changed, when set, is called before each wait; the channel it returns (closed
	// when the replicated state changes, say) starts the next pass at once.
	Changed func() <-chan struct{}
	// Pass is one pass; it returns soon after ctx ends.
	Pass func(ctx context.Context)
	// Finally, when set, runs once the loop ends (to wait for workers passes started).
	Finally func()
}

// RunLoop runs l's passes until ctx ends: a pass at once, then one after every wait
// of l.Every, l.Kick or l.Changed. After a pass that panicked the loop waits out the
// duty's backoff first (Run), so a duty that fails on every pass cannot spin.
func (g *Guard) RunLoop(ctx context.Context, l Loop) {
	if l.Finally != nil {
		defer l.Finally()
	}
	ticker := time.NewTicker(l.Every)
	defer ticker.Stop()
	for ctx.Err() == nil {
		if err := g.Run(l.Name, func() { l.Pass(ctx) }); err != nil {
			if !g.Wait(l.Name, ctx.Done()) {
				return
			}
		}
		var changed <-chan struct{}
		if l.Changed != nil {
			changed = l.Changed()
		}
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
		case <-l.Kick:
		case <-changed:
		}
	}
}
