package restore

import (
	"context"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"time"

	"github.com/snapkeep/snapkeep/objstore"
)

// backoff is the wait before attempt+1: exponential from base, capped at
// maxWait, with "equal jitter" (between half the step and the step), so that
// many tasks throttled at once do not come back at once, yet none retries
// almost immediately.
func backoff(base, maxWait time.Duration, attempt int) time.Duration {
	step := maxWait
	if attempt-1 < 32 {
		if d := base << (attempt - 1); d > 0 && d < maxWait {
			step = d
		}
	}
	half := step / 2
	return half + rand.N(step-half+1)
}

// sleep waits d or until ctx ends, and reports whether it waited the whole time.
func sleep(ctx context.Context, d time.Duration) bool {
	timer := time.NewTimer(d)
	defer timer.Stop()
	select {
	case <-timer.C:
		return true
	case <-ctx.Done():
		return false
	}
}

// retryPolicy says how often and how patiently to retry.
type retryPolicy struct {
	maxAttempts int
	base, max   time.Duration
	logger      *slog.Logger
}

// retryLoop runs step until it succeeds, fails other than transiently
// (objstore.IsTransient), has been tried maxAttempts times, or ctx ends; it
// returns step's last error. describe gives the attributes that name the step in
// debug logs; it is called only when a retry is logged (a step that succeeds at once,
// the common case, allocates nothing for its logs).
func retryLoop(ctx context.Context, p retryPolicy, step func() error, describe func() []any) error {
	for attempt := 1; ; attempt++ {
		err := step()
		if err == nil {
			return nil
		}
		if ctx.Err() != nil || !objstore.IsTransient(err) || attempt >= p.maxAttempts {
			return err
		}
		wait := backoff(p.base, p.max, attempt)
		p.logger.Debug("restore: retrying", append(describe(), "attempt", attempt, "wait", wait, "err", err)...)
		if !sleep(ctx, wait) {
			return fmt.Errorf("%w; not retried: %w", err, ctx.Err())
		}
	}
}
