package duty

import (
	"bytes"
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
)

func TestGuardRecoversLogsCountsAndBacksOff(t *testing.T) {
	defer goleak.VerifyNone(t)
	var logs bytes.Buffer
	var counted []string
	g := &Guard{Logger: slog.New(slog.NewTextHandler(&logs, nil)), OnPanic: func(d string) { counted = append(counted, d) }}

	require.NoError(t, g.Run("gc", func() {}))
	require.Zero(t, g.Backoff("gc"))

	err := g.Run("gc", func() { var m map[string]int; m["x"] = 1 })
	require.ErrorIs(t, err, ErrPanicked)
	require.Equal(t, []string{"gc"}, counted)
	require.Contains(t, logs.String(), "background duty panicked")
	require.Contains(t, logs.String(), "duty_test.go", "the stack is logged")
	require.Equal(t, FirstBackoff, g.Backoff("gc"))
	require.Zero(t, g.Backoff("finisher"), "per duty")

	for range 10 {
		_ = g.Run("gc", func() { panic("again") })
	}
	require.Equal(t, MaxBackoff, g.Backoff("gc"))
	require.NoError(t, g.Run("gc", func() {}))
	require.Zero(t, g.Backoff("gc"), "a pass that returns resets it")

	stop := make(chan struct{})
	_ = g.Run("x", func() { panic("x") })
	close(stop)
	require.False(t, g.Wait("x", stop))
	require.True(t, g.Wait("gc", stop))
}

func TestGuardInjectAndGo(t *testing.T) {
	defer goleak.VerifyNone(t)
	once := sync.Once{}
	g := &Guard{Logger: slog.New(slog.DiscardHandler), Inject: func(d string) bool {
		hit := false
		if d == "finisher" {
			once.Do(func() { hit = true })
		}
		return hit
	}}
	ran := 0
	require.ErrorIs(t, g.Run("finisher", func() { ran++ }), ErrPanicked)
	require.NoError(t, g.Run("finisher", func() { ran++ }))
	require.Equal(t, 1, ran)

	var wg sync.WaitGroup
	done := make(chan struct{})
	g.Go("worker", &wg, func() { defer close(done); panic("worker") })
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("worker did not run")
	}
	wg.Wait()
	require.Equal(t, FirstBackoff, g.Backoff("worker"))
}

// RunLoop: a pass at once, then on a kick or a state change long before the interval,
// a panic followed by the backoff (not a spin), and a return when the context ends.
func TestRunLoopWakesBacksOffAndStops(t *testing.T) {
	defer goleak.VerifyNone(t)
	g := &Guard{Logger: slog.New(slog.DiscardHandler)}
	kick := NewKicker()
	changed := make(chan struct{})
	passes := make(chan int, 16)
	n := 0
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		g.RunLoop(ctx, Loop{Name: "loop", Every: time.Hour, Kick: kick,
			Changed: func() <-chan struct{} { return changed },
			Pass: func(ctx context.Context) {
				n++
				select {
				case passes <- n:
				case <-ctx.Done():
				}
				if n == 3 {
					panic("third pass")
				}
			}})
	}()
	next := func() int {
		select {
		case p := <-passes:
			return p
		case <-time.After(5 * time.Second):
			t.Fatal("no pass")
			return 0
		}
	}
	require.Equal(t, 1, next(), "the first pass runs at once")
	kick.Kick()
	kick.Kick() // coalesces with the first
	require.Equal(t, 2, next())
	close(changed) // now every wait ends at once: passes run back to back...
	require.Equal(t, 3, next())
	start := time.Now()
	require.Equal(t, 4, next(), "...except after the panic, which waits out the backoff")
	require.GreaterOrEqual(t, time.Since(start), FirstBackoff-50*time.Millisecond)
	cancel()
	<-done
}
