package gc

import (
	"context"
	"sync"
	"time"
)

// limiter paces deletions to a rate (objects per second): each wait reserves its
// objects' time slots in order, so bursts are spread out rather than refused.
type limiter struct {
	rate float64 // 0: unbounded
	mu   sync.Mutex
	next time.Time
}

func newLimiter(rate float64) *limiter { return &limiter{rate: rate} }

func (l *limiter) wait(ctx context.Context, n int) error {
	if l.rate <= 0 {
		return ctx.Err()
	}
	l.mu.Lock()
	now := time.Now()
	if l.next.Before(now) {
		l.next = now
	}
	at := l.next
	l.next = l.next.Add(time.Duration(float64(n) / l.rate * float64(time.Second)))
	l.mu.Unlock()
	if d := time.Until(at); d > 0 {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	return nil
}
