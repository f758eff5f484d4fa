package scenario

import (
	"context"
	"sync"
	"time"
)

// writeAttempt is one write a writer issued: when it was issued, when it returned, and
// whether it was acknowledged.
type writeAttempt struct {
	Issued, Done time.Time
	OK           bool
}

// failoverTime is the time from kill to the acknowledgement of the first write issued
// at or after kill: writes issued before the kill may have been committed by the old
// leader and prove nothing about the new one. ok is false when no write issued after
// the kill was acknowledged.
func failoverTime(history []writeAttempt, kill time.Time) (d time.Duration, ok bool) {
	for _, a := range history {
		if !a.OK || a.Issued.Before(kill) {
			continue
		}
		if since := a.Done.Sub(kill); !ok || since < d {
			d, ok = since, true
		}
	}
	return d, ok
}

// writers runs n goroutines, each issuing one write at a time with a deadline per
// call (a stuck call is abandoned and the next one issued), and records every attempt.
// Writer i's deadline is perCall × (1 + i/n): calls stuck through an election end at
// different moments and are re-issued at once, so some writer issues a fresh call every
// perCall/n or so, whatever the cluster does — with one deadline for all, the
// re-issues would line up and the failover time would come out in multiples of it.
type writers struct {
	cancel context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	history []writeAttempt
	acked   chan struct{} // signalled after each acknowledged write
}

// failedWritePause keeps a writer whose writes fail at once (no leader, connection
// refused) from spinning; it bounds the measurement's resolution.
const failedWritePause = 5 * time.Millisecond

func startWriters(ctx context.Context, n int, perCall time.Duration, write func(ctx context.Context, writer int) error) *writers {
	ctx, cancel := context.WithCancel(ctx)
	w := &writers{cancel: cancel, acked: make(chan struct{}, 1)}
	for i := range n {
		w.wg.Add(1)
		deadline := writerDeadline(i, n, perCall)
		go func() {
			defer w.wg.Done()
			for ctx.Err() == nil {
				cctx, ccancel := context.WithTimeout(ctx, deadline)
				issued := time.Now()
				err := write(cctx, i)
				done := time.Now()
				ccancel()
				if ctx.Err() != nil {
					return // stopped: the attempt was cut short by us, not the cluster
				}
				w.mu.Lock()
				w.history = append(w.history, writeAttempt{Issued: issued, Done: done, OK: err == nil})
				w.mu.Unlock()
				if err == nil {
					select {
					case w.acked <- struct{}{}:
					default:
					}
				} else {
					time.Sleep(failedWritePause)
				}
			}
		}()
	}
	return w
}

// writerDeadline is writer i of n's deadline per call: perCall × (1 + i/n).
func writerDeadline(i, n int, perCall time.Duration) time.Duration {
	return perCall + time.Duration(i)*perCall/time.Duration(n)
}

// snapshot copies the history so far.
func (w *writers) snapshot() []writeAttempt {
	w.mu.Lock()
	defer w.mu.Unlock()
	return append([]writeAttempt(nil), w.history...)
}

// waitAckAfter waits until a write issued at or after t is acknowledged and returns
// the time from t to that acknowledgement; ok is false after timeout.
func (w *writers) waitAckAfter(ctx context.Context, t time.Time, timeout time.Duration) (time.Duration, bool) {
	deadline := time.After(timeout)
	for {
		if d, ok := failoverTime(w.snapshot(), t); ok {
			return d, true
		}
		select {
		case <-w.acked:
		case <-deadline:
			return 0, false
		case <-ctx.Done():
			return 0, false
		}
	}
}

// stop stops the writers and returns every recorded attempt.
func (w *writers) stop() []writeAttempt {
	w.cancel()
	w.wg.Wait()
	return w.snapshot()
}
