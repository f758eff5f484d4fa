package adopt

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// DefaultChecksumConcurrency is how many files Options.Checksum reads at a time.
const DefaultChecksumConcurrency = 8

// checksumChunk is the most bytes one read takes from the rate limiter; the limiter's
// burst.
const checksumChunk = 64 << 10

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Clock is the time the checksum reads are paced by.
type Clock interface {
	Now() time.Time
	// Sleep waits d, or until ctx is done (then its error).
	Sleep(ctx context.Context, d time.Duration) error
}

type realClock struct{}

func (realClock) Now() time.Time { return time.Now() }

func (realClock) Sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// limiter is a token bucket of bytes: rate bytes per second, up to burst bytes
// saved. A take may run the bucket into debt; the taker then sleeps until the debt is
// paid, so concurrent readers queue behind each other rather than overshoot.
type limiter struct {
	rate, burst float64
	clock       Clock

	mu     sync.Mutex
	tokens float64
	last   time.Time
}

func newLimiter(rate float64, clock Clock) *limiter {
	if rate <= 0 {
		return nil
	}
	if clock == nil {
		clock = realClock{}
	}
	return &limiter{rate: rate, burst: checksumChunk, clock: clock, tokens: checksumChunk}
}

// take takes n bytes from the bucket, sleeping while it is in debt.
func (l *limiter) take(ctx context.Context, n int) error {
	if l == nil {
		return ctx.Err()
	}
	l.mu.Lock()
	now := l.clock.Now()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	l.tokens -= float64(n)
	debt := -l.tokens
	l.mu.Unlock()
	if debt <= 0 {
		return ctx.Err()
	}
	return l.clock.Sleep(ctx, time.Duration(debt/l.rate*float64(time.Second)))
}

// checksum reads every file of the plan (the segments' and the builds to register)
// and records its CRC-32C, ChecksumConcurrency reads at a time, at most ChecksumRate
// bytes per second. An object whose size differs from the listing's, or whose
// CRC-32C differs from one the listing gave, fails the scan.
func checksum(ctx context.Context, store objstore.Store, plan *Plan, opts Options) error {
	var files []*snapkeepv1.File
	for _, s := range plan.Segments {
		files = append(files, s.Files...)
	}
	for _, b := range plan.Builds {
		files = append(files, b.Files...)
	}
	lim := newLimiter(opts.ChecksumRate, opts.Clock)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(opts.ChecksumConcurrency, 0))
	if opts.ChecksumConcurrency <= 0 {
		g.SetLimit(DefaultChecksumConcurrency)
	}
	for _, f := range files {
		g.Go(func() error {
			crc, n, err := read(gctx, store, f.Key, lim)
			switch {
			case err != nil:
				return fmt.Errorf("adopt: checksum of %s: %w", f.Key, err)
			case uint64(n) != f.Size:
				return fmt.Errorf("adopt: checksum of %s: read %d bytes, the listing said %d: the object changed since it was listed; scan again", f.Key, n, f.Size)
			case f.Crc32C != 0 && f.Crc32C != crc:
				return fmt.Errorf("adopt: checksum of %s: read CRC-32C %08x, the listing said %08x", f.Key, crc, f.Crc32C)
			}
			f.Crc32C = crc
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	plan.Checksummed = len(files)
	return nil
}

// read streams an object through CRC-32C, taking each chunk from the limiter.
func read(ctx context.Context, store objstore.Store, key string, lim *limiter) (uint32, int64, error) {
	body, _, err := store.Get(ctx, key)
	if err != nil {
		return 0, 0, err
	}
	defer body.Close()
	var crc uint32
	var n int64
	buf := make([]byte, checksumChunk)
	for {
		k, err := body.Read(buf)
		if k > 0 {
			crc = crc32.Update(crc, castagnoli, buf[:k])
			n += int64(k)
			if err := lim.take(ctx, k); err != nil {
				return 0, 0, err
			}
		}
		if err == io.EOF {
			return crc, n, nil
		}
		if err != nil {
			return 0, 0, err
		}
	}
}
