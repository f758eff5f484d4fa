package restore

import (
	"context"
	"errors"
	"fmt"
	"io"

	"golang.org/x/time/rate"
)

// Limiter limits the bytes per second an Executor moves: it waits until n more
// bytes may go. *rate.Limiter satisfies it (see NewLimiter). An Executor asks for
// at most the limiter's burst at a time (its Burst method, if it has one; else
// DefaultLimiterChunk), because rate.Limiter refuses larger requests.
type Limiter interface {
	WaitN(ctx context.Context, n int) error
}

// DefaultLimiterChunk is the most bytes an Executor asks a Limiter for at once:
// NewLimiter's largest burst, and the chunk size for a Limiter that does not say
// its burst.
const DefaultLimiterChunk = 1 << 20

// NewLimiter returns a limiter of bytesPerSecond, with a burst of 1 MiB, or one
// second's worth when that is less (a burst larger than the rate would let the
// first second go over it). bytesPerSecond <= 0 means unlimited.
func NewLimiter(bytesPerSecond int64) *rate.Limiter {
	if bytesPerSecond <= 0 {
		return rate.NewLimiter(rate.Inf, 0)
	}
	return rate.NewLimiter(rate.Limit(bytesPerSecond), int(min(bytesPerSecond, DefaultLimiterChunk)))
}

// errLimit marks a Limiter's refusal to wait: ctx ended, or (rate.Limiter) its
// deadline would pass before the bytes may go. Not the task's fault: it is left
// for later, never failed for good.
var errLimit = errors.New("bandwidth limit")

// limiterChunk is the most bytes to ask l for at once.
func limiterChunk(l Limiter) int {
	if b, ok := l.(interface{ Burst() int }); ok && b.Burst() > 0 {
		return b.Burst()
	}
	return DefaultLimiterChunk
}

// waitBytes waits until l lets n bytes go, asking in chunks of at most its burst.
// A nil l does not wait.
func waitBytes(ctx context.Context, l Limiter, n uint64) error {
	if l == nil {
		return nil
	}
	chunk := uint64(limiterChunk(l))
	for n > 0 {
		k := min(n, chunk)
		if err := l.WaitN(ctx, int(k)); err != nil {
			return fmt.Errorf("%w: %w", errLimit, err)
		}
		n -= k
	}
	return nil
}

// limitedReader reads from r at most the limiter's burst at a time and waits, after
// each read, until the limiter lets the bytes read go: the reader, and so the
// writer it feeds, moves no faster than the limit.
type limitedReader struct {
	ctx   context.Context
	r     io.Reader
	l     Limiter
	chunk int
}

// limitReader wraps r in l; a nil l leaves r as it is.
func limitReader(ctx context.Context, r io.Reader, l Limiter) io.Reader {
	if l == nil {
		return r
	}
	return &limitedReader{ctx: ctx, r: r, l: l, chunk: limiterChunk(l)}
}

func (lr *limitedReader) Read(p []byte) (int, error) {
	if len(p) > lr.chunk {
		p = p[:lr.chunk]
	}
	n, err := lr.r.Read(p)
	if n > 0 {
		if werr := lr.l.WaitN(lr.ctx, n); werr != nil {
			return 0, fmt.Errorf("%w: %w", errLimit, werr)
		}
	}
	return n, err
}
