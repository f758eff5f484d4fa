package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/time/rate"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/faults"
	"github.com/snapkeep/snapkeep/objstore/versitygw"
	"github.com/snapkeep/snapkeep/restore"
)

// pair is a source and a destination on two servers (two endpoints, two sets of
// credentials): what an export to, or a restore from, a repository copies between.
type pair struct {
	name     string
	src, dst objstore.S3Config
	// checksums: the destination verifies x-amz-checksum-crc32c (versitygw).
	checksums bool
	// credentials: each server accepts only its own keys (versitygw; gofakes3 takes
	// any).
	credentials bool
}

func embeddedPair(t testing.TB) pair {
	t.Helper()
	src, dst := embeddedBackend(t), embeddedBackend(t)
	// gofakes3 checks no credentials; different ones all the same.
	src.cfg.AccessKey, src.cfg.SecretKey = "repository-key", "repository-secret"
	return pair{name: "embedded", src: src.cfg, dst: dst.cfg}
}

func versityPair(t testing.TB) pair {
	t.Helper()
	src := versitygw.StartWith(t, versitygw.Options{AccessKey: "repository-key", SecretKey: "repository-secret"})
	dst := versitygw.Start(t)
	return pair{name: "versitygw", src: src.Config(), dst: dst.Config(), checksums: true, credentials: true}
}

// forEachPair runs test between two embedded servers and between two versitygw
// processes, in parallel.
func forEachPair(t *testing.T, test func(t *testing.T, p pair)) {
	t.Helper()
	for _, start := range []func(testing.TB) pair{embeddedPair, versityPair} {
		p := start(t)
		t.Run(p.name, func(t *testing.T) {
			t.Parallel()
			test(t, p)
		})
	}
}

// putRecorder records the options of every upload.
type putRecorder struct {
	objstore.Store
	mu        sync.Mutex
	opts      map[string]objstore.PutOptions
	partSizes map[string]int64 // PutMultipart's, by key
}

func newPutRecorder(s objstore.Store) *putRecorder {
	return &putRecorder{Store: s, opts: map[string]objstore.PutOptions{}, partSizes: map[string]int64{}}
}

func (r *putRecorder) Put(ctx context.Context, key string, body io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	r.mu.Lock()
	r.opts[key] = opts
	r.mu.Unlock()
	return r.Store.Put(ctx, key, body, size, opts)
}

func (r *putRecorder) PutMultipart(ctx context.Context, key string, body io.Reader, size, partSize int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	r.mu.Lock()
	r.opts[key] = opts
	r.partSizes[key] = partSize
	r.mu.Unlock()
	return r.Store.PutMultipart(ctx, key, body, size, partSize, opts)
}

func requireVerified(t *testing.T, want restore.Verification, results []restore.Result) {
	t.Helper()
	for i, r := range results {
		require.Equal(t, want, r.Verified, "task %d", i)
	}
}

// requireNothingAt checks that no object is at key.
func requireNothingAt(t *testing.T, store objstore.Store, key string) {
	t.Helper()
	_, err := store.Head(t.Context(), key)
	require.ErrorIs(t, err, objstore.ErrNotFound, "nothing stored at %q", key)
}

func TestStreamCopiesBetweenStores(t *testing.T) {
	forEachPair(t, func(t *testing.T, p pair) {
		srcInner, dstInner := newStore(t, p.src), newStore(t, p.dst)
		f := makeFixture(t, srcInner, "stream/", uploadOpts{})
		// An export keeps a file's key: the same key in the other store.
		same := f.tasks[0]
		same.Index, same.Dst = 1, same.Src
		tasks := append(slices.Clone(f.tasks), same)

		src, dst := faults.Wrap(srcInner, faults.Options{}), faults.Wrap(dstInner, faults.Options{})
		rec := newPutRecorder(dst)
		exec := &restore.Executor{Store: rec, Source: src, Stream: true, Verify: true, Concurrency: 4}
		results := exec.Run(t.Context(), tasks)
		requireCopied(t, dstInner, f, tasks, results)
		requireVerified(t, restore.VerifiedByStream, results)
		n := len(tasks)
		for i, r := range results {
			require.Equal(t, 1, r.Attempts, "task %d", i)
			opts := rec.opts[tasks[i].Dst]
			require.True(t, opts.HasCRC32C, "the upload declares the CRC-32C")
			require.Equal(t, tasks[i].CRC32C, opts.CRC32C)
		}
		require.Equal(t, n, src.Calls(faults.OpGet), "one GET per file")
		require.Equal(t, n, dst.Calls(faults.OpPut), "one upload per file")
		require.Zero(t, src.Calls(faults.OpPut)+src.Calls(faults.OpCopy)+src.Calls(faults.OpHead), "the source is only read")
		require.Zero(t, dst.Calls(faults.OpCopy)+dst.Calls(faults.OpHead)+dst.Calls(faults.OpGet), "no server-side copy, no verification request")
		for _, task := range f.tasks {
			requireNothingAt(t, srcInner, task.Dst) // not copied within the source's bucket
		}

		t.Run("read-back", func(t *testing.T) {
			dst := faults.Wrap(dstInner, faults.Options{})
			exec := &restore.Executor{Store: dst, Source: srcInner, Stream: true, Verify: true, ReadBack: true}
			results := exec.Run(t.Context(), tasks)
			requireCopied(t, dstInner, f, tasks, results)
			requireVerified(t, restore.VerifiedByReadBack, results)
			require.Equal(t, n, dst.Calls(faults.OpGet), "each copy read back once")
		})
		t.Run("without-verify", func(t *testing.T) {
			// The stream's own check costs nothing and is always made.
			results := (&restore.Executor{Store: dstInner, Source: srcInner, Stream: true}).Run(t.Context(), tasks)
			requireCopied(t, dstInner, f, tasks, results)
			requireVerified(t, restore.VerifiedByStream, results)
		})
		t.Run("credentials-differ", func(t *testing.T) {
			if !p.credentials {
				t.Skip("gofakes3 accepts any access key, so there is no refusal to see; the versitygw pair runs this")
			}
			cfg := p.dst
			cfg.AccessKey, cfg.SecretKey = p.src.AccessKey, p.src.SecretKey
			rc, _, err := newStore(t, cfg).Get(t.Context(), tasks[0].Dst)
			if rc != nil {
				_ = rc.Close()
			}
			require.ErrorIs(t, err, objstore.ErrAccessDenied, "the source's keys do not open the destination")
		})
	})
}

// TestStreamWrongChecksumStoresNothing: a source whose bytes are not the task's
// fails for good, and no object is left at the destination. On the embedded
// server, which checks no checksum, that is the executor withholding the last
// bytes of the upload.
func TestStreamWrongChecksumStoresNothing(t *testing.T) {
	forEachPair(t, func(t *testing.T, p pair) {
		srcInner, dstInner := newStore(t, p.src), newStore(t, p.dst)
		const threshold = 6 << 20
		f := makeFixture(t, srcInner, "badcrc/", uploadOpts{sizes: []int{5000, 70_000, 0, 11<<20 + 5}, withCRC: func(int) bool { return false }})
		tasks := slices.Clone(f.tasks)
		for i := range tasks {
			tasks[i].CRC32C ^= 1 // the empty file too: its CRC-32C is 0, not 1
		}
		// A destination that already holds an object keeps it.
		old := []byte("the previous content")
		_, err := dstInner.Put(t.Context(), tasks[0].Dst, bytes.NewReader(old), int64(len(old)), objstore.PutOptions{})
		require.NoError(t, err)

		dst := faults.Wrap(dstInner, faults.Options{})
		exec := &restore.Executor{Store: dst, Source: srcInner, Stream: true, Verify: true,
			MultipartThreshold: threshold, StreamPartSize: restore.MinPartSize}
		results := exec.Run(t.Context(), tasks)
		for i, r := range results {
			task := tasks[i]
			require.ErrorIs(t, r.Err, restore.ErrMismatch, "task %d", i)
			require.True(t, r.Permanent)
			require.Equal(t, 1, r.Attempts, "not retried")
			require.Zero(t, r.Bytes)
			var m *restore.MismatchError
			require.ErrorAs(t, r.Err, &m)
			require.Equal(t, "CRC-32C", m.What)
			require.Equal(t, "the source read while streaming", m.From)
			require.EqualValues(t, task.CRC32C, m.Want)
			require.EqualValues(t, task.CRC32C^1, m.Got)
			require.Contains(t, r.Err.Error(), fmt.Sprintf("%q to %q", task.Src, task.Dst), "names both keys")
			if i == 0 {
				require.Equal(t, old, readAll(t, dstInner, task.Dst))
			} else {
				requireNothingAt(t, dstInner, task.Dst)
			}
		}
		// The non-empty files' uploads were started (and cut short); the empty one
		// is checked before its upload.
		require.Equal(t, 3, dst.Calls(faults.OpPut))
	})
}

// sizeLiar answers GET with the size the task expects, as a server whose
// Content-Length was right but whose body breaks off, or runs on, would.
type sizeLiar struct {
	objstore.Store
	sizes map[string]int64
}

func (s sizeLiar) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	rc, info, err := s.Store.Get(ctx, key)
	if size, ok := s.sizes[key]; ok && err == nil {
		info.Size = size
	}
	return rc, info, err
}

func TestStreamWrongSizeStoresNothing(t *testing.T) {
	forEachPair(t, func(t *testing.T, p pair) {
		srcInner, dstInner := newStore(t, p.src), newStore(t, p.dst)
		f := makeFixture(t, srcInner, "badsize/", uploadOpts{sizes: []int{5000, 70_000, 1000, 4000}})
		tasks := slices.Clone(f.tasks)
		sizes := map[string]int64{}
		for i := range tasks {
			if i%2 == 0 {
				tasks[i].Size++
			} else {
				tasks[i].Size--
			}
			if i >= 2 {
				sizes[tasks[i].Src] = int64(tasks[i].Size)
			}
		}
		dst := faults.Wrap(dstInner, faults.Options{})
		exec := &restore.Executor{Store: dst, Source: sizeLiar{srcInner, sizes}, Stream: true, Verify: true}
		results := exec.Run(t.Context(), tasks)
		for i, r := range results {
			require.ErrorIs(t, r.Err, restore.ErrMismatch, "task %d", i)
			require.True(t, r.Permanent)
			var m *restore.MismatchError
			require.ErrorAs(t, r.Err, &m)
			require.Equal(t, "size", m.What)
			require.EqualValues(t, tasks[i].Size, m.Want)
			if i < 2 {
				// The GET response tells: no upload at all.
				require.Equal(t, "the source's GET response", m.From)
				require.Equal(t, uint64(len(f.data[tasks[i].Src])), m.Got)
			} else {
				// Only the stream tells: the upload is cut short.
				require.Contains(t, m.From, "the source read while streaming")
			}
			requireNothingAt(t, dstInner, tasks[i].Dst)
		}
		require.Equal(t, 2, dst.Calls(faults.OpPut), "uploads only where the GET response did not tell")
	})
}

func TestStreamTransientFaults(t *testing.T) {
	forEachPair(t, func(t *testing.T, p pair) {
		srcInner, dstInner := newStore(t, p.src), newStore(t, p.dst)
		sizes := make([]int, 60)
		for i := range sizes {
			sizes[i] = 3000 + 13*i
		}
		f := makeFixture(t, srcInner, "streamfaults/", uploadOpts{sizes: sizes})
		// Broken GETs (some in the middle of the body), failed uploads (some that
		// took effect), failed read-backs.
		src := faults.Wrap(srcInner, faults.Options{Seed: 5, AfterRate: 0.5, MaxConsecutive: 3})
		dst := faults.Wrap(dstInner, faults.Options{Seed: 6, AfterRate: 0.3, MaxConsecutive: 3})
		src.SetTransientRate(0.2)
		dst.SetTransientRate(0.2)
		exec := fastRetries(&restore.Executor{Store: dst, Source: src, Stream: true, Verify: true, ReadBack: true,
			Concurrency: 8, MaxAttempts: 10})
		results := exec.Run(t.Context(), f.tasks)
		src.SetTransientRate(0)
		dst.SetTransientRate(0)
		requireCopied(t, dstInner, f, f.tasks, results)
		requireVerified(t, restore.VerifiedByReadBack, results)

		retried, attempts := 0, 0
		for _, r := range results {
			attempts += r.Attempts
			if r.Attempts > 1 {
				retried++
			}
		}
		t.Logf("%s: %d of %d streams retried; injected: %d source get, %d put, %d destination get",
			p.name, retried, len(results), src.Injected(faults.OpGet), dst.Injected(faults.OpPut), dst.Injected(faults.OpGet))
		require.Positive(t, retried)
		require.Positive(t, src.Injected(faults.OpGet))
		require.Positive(t, dst.Injected(faults.OpPut))
		require.Equal(t, src.Calls(faults.OpGet), attempts, "every attempt is one GET of the source")
		require.LessOrEqual(t, dst.Calls(faults.OpPut), attempts, "at most one upload per attempt")
	})
}

// countingLimiter counts the bytes an executor asks it for; safe for concurrent use.
type countingLimiter struct {
	burst int
	mu    sync.Mutex
	asked int
	large int // the largest single request
}

func (l *countingLimiter) WaitN(_ context.Context, n int) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.asked += n
	l.large = max(l.large, n)
	return nil
}

func (l *countingLimiter) Burst() int { return l.burst }

func TestExecutorLimiter(t *testing.T) {
	t.Parallel()
	p := embeddedPair(t)
	srcInner, dstInner := newStore(t, p.src), newStore(t, p.dst)
	f := makeFixture(t, srcInner, "limit/", uploadOpts{})
	total := 0
	for _, task := range f.tasks {
		total += int(task.Size)
	}
	require.Positive(t, total)

	t.Run("stream", func(t *testing.T) {
		l := &countingLimiter{burst: 4096}
		results := (&restore.Executor{Store: dstInner, Source: srcInner, Stream: true, Limiter: l}).Run(t.Context(), f.tasks)
		requireCopied(t, dstInner, f, f.tasks, results)
		require.Equal(t, total, l.asked, "every byte streamed was waited for, once")
		require.LessOrEqual(t, l.large, 4096, "never more than the burst at once")
	})
	t.Run("stream-and-read-back", func(t *testing.T) {
		l := &countingLimiter{burst: 4096}
		results := (&restore.Executor{Store: dstInner, Source: srcInner, Stream: true, Verify: true, ReadBack: true, Limiter: l}).Run(t.Context(), f.tasks)
		requireCopied(t, dstInner, f, f.tasks, results)
		require.Equal(t, 2*total, l.asked, "the read-back's bytes count too")
	})
	t.Run("server-side", func(t *testing.T) {
		l := &countingLimiter{burst: 1000}
		// Verify off: only the copies are counted.
		results := (&restore.Executor{Store: srcInner, Limiter: l}).Run(t.Context(), f.tasks)
		requireCopied(t, srcInner, f, f.tasks, results)
		require.Equal(t, total, l.asked, "each copy waited for its size")
		require.LessOrEqual(t, l.large, 1000)
	})
	t.Run("rate-limiter", func(t *testing.T) {
		// A real one, fast enough not to slow the test: the same bytes go through.
		results := (&restore.Executor{Store: dstInner, Source: srcInner, Stream: true, Limiter: restore.NewLimiter(1 << 40)}).Run(t.Context(), f.tasks)
		requireCopied(t, dstInner, f, f.tasks, results)
	})
	t.Run("deadline-too-close", func(t *testing.T) {
		// At a byte every 10^6 s, the second byte would go after the deadline: the
		// rate.Limiter says so at once. Not the task's fault: not permanent.
		ctx, cancel := context.WithTimeout(t.Context(), time.Hour)
		defer cancel()
		big := f.tasks[slices.IndexFunc(f.tasks, func(t restore.Task) bool { return t.Size > 10_000 })]
		for _, stream := range []bool{false, true} {
			exec := &restore.Executor{Store: dstInner, Source: srcInner, Stream: stream, Limiter: rate.NewLimiter(1e-6, 1)}
			if !stream {
				exec.Store, exec.Source = srcInner, nil
			}
			big.Dst = fmt.Sprintf("limit/deadline-%v", stream)
			r := exec.Run(ctx, []restore.Task{big})[0]
			require.Error(t, r.Err, "stream=%v", stream)
			require.False(t, r.Permanent, "stream=%v: %v", stream, r.Err)
			require.ErrorContains(t, r.Err, "bandwidth limit")
			requireNothingAt(t, dstInner, big.Dst)
			requireNothingAt(t, srcInner, big.Dst)
		}
	})
}

// blockingLimiter blocks every wait until ctx ends, saying when it first blocked.
type blockingLimiter struct {
	once    sync.Once
	waiting chan struct{}
}

func (l *blockingLimiter) WaitN(ctx context.Context, _ int) error {
	l.once.Do(func() { close(l.waiting) })
	<-ctx.Done()
	return ctx.Err()
}

func TestStreamCanceled(t *testing.T) {
	t.Parallel()
	p := embeddedPair(t)
	srcInner, dstInner := newStore(t, p.src), newStore(t, p.dst)
	f := makeFixture(t, srcInner, "cancel/", uploadOpts{sizes: []int{100_000, 200_000}})
	l := &blockingLimiter{waiting: make(chan struct{})}
	ctx, cancel := context.WithCancel(t.Context())
	go func() {
		<-l.waiting
		cancel()
	}()
	results := (&restore.Executor{Store: dstInner, Source: srcInner, Stream: true, Limiter: l}).Run(ctx, f.tasks)
	for i, r := range results {
		require.ErrorIs(t, r.Err, context.Canceled, "task %d", i)
		require.False(t, r.Permanent)
		requireNothingAt(t, dstInner, f.tasks[i].Dst)
	}
}

func TestStreamMultipart(t *testing.T) {
	forEachPair(t, func(t *testing.T, p pair) {
		srcInner, dstInner := newStore(t, p.src), newStore(t, p.dst)
		const threshold = 6 << 20
		sizes := []int{11<<20 + 5, threshold, 10 << 20, threshold - 1, 1000}
		f := makeFixture(t, srcInner, "smp/", uploadOpts{sizes: sizes})
		rec := newPutRecorder(dstInner)
		exec := &restore.Executor{Store: rec, Source: srcInner, Stream: true, Verify: true,
			MultipartThreshold: threshold, StreamPartSize: restore.MinPartSize, Concurrency: 2}
		results := exec.Run(t.Context(), f.tasks)
		requireCopied(t, dstInner, f, f.tasks, results) // byte for byte
		requireVerified(t, restore.VerifiedByStream, results)
		multipart := 0
		for _, task := range f.tasks {
			partSize, ok := rec.partSizes[task.Dst]
			require.Equal(t, int(task.Size) >= threshold, ok, "%q: multipart at or above the threshold", task.Dst)
			if ok {
				multipart++
				require.Equal(t, restore.MinPartSize, partSize)
				require.Equal(t, task.CRC32C, rec.opts[task.Dst].CRC32C)
			}
		}
		require.Equal(t, 3, multipart)

		t.Run("read-back", func(t *testing.T) {
			exec := *exec
			exec.ReadBack = true
			results := exec.Run(t.Context(), f.tasks)
			requireCopied(t, dstInner, f, f.tasks, results)
			requireVerified(t, restore.VerifiedByReadBack, results)
		})
	})
}

// TestStreamWithoutChecksum: a file registered without a CRC-32C is streamed
// without declaring one; only its length is checked, unless ReadBack.
func TestStreamWithoutChecksum(t *testing.T) {
	t.Parallel()
	p := embeddedPair(t)
	srcInner, dstInner := newStore(t, p.src), newStore(t, p.dst)
	f := makeFixture(t, srcInner, "nocrc/", uploadOpts{sizes: []int{5000, 7<<20 + 3}})
	tasks := slices.Clone(f.tasks)
	for i := range tasks {
		tasks[i].CRC32C = 0
	}
	rec := newPutRecorder(dstInner)
	exec := &restore.Executor{Store: rec, Source: srcInner, Stream: true, Verify: true,
		MultipartThreshold: 6 << 20, StreamPartSize: restore.MinPartSize}
	results := exec.Run(t.Context(), tasks)
	requireCopied(t, dstInner, f, tasks, results)
	requireVerified(t, restore.NotVerified, results)
	for _, task := range tasks {
		require.False(t, rec.opts[task.Dst].HasCRC32C, "no checksum declared for %q", task.Dst)
	}

	exec.ReadBack = true
	results = exec.Run(t.Context(), tasks)
	requireCopied(t, dstInner, f, tasks, results)
	requireVerified(t, restore.VerifiedByReadBack, results)

	wrong := tasks[0]
	wrong.Size++
	r := exec.Run(t.Context(), []restore.Task{wrong})[0]
	require.ErrorIs(t, r.Err, restore.ErrMismatch)
	require.True(t, r.Permanent)
}

// echoLiar answers uploads with a CRC-32C the bytes do not have.
type echoLiar struct{ objstore.Store }

func (e echoLiar) Put(ctx context.Context, key string, body io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	info, err := e.Store.Put(ctx, key, body, size, opts)
	info.CRC32C, info.HasCRC32C = opts.CRC32C^0xff, true
	return info, err
}

// TestStreamUploadResponseDisagrees: a CRC-32C in the upload's response that is
// not the one streamed is confirmed by reading the copy back; a right copy passes.
func TestStreamUploadResponseDisagrees(t *testing.T) {
	t.Parallel()
	p := embeddedPair(t)
	srcInner, dstInner := newStore(t, p.src), newStore(t, p.dst)
	f := makeFixture(t, srcInner, "echo/", uploadOpts{sizes: []int{5000, 100}})
	dst := faults.Wrap(echoLiar{dstInner}, faults.Options{})
	results := (&restore.Executor{Store: dst, Source: srcInner, Stream: true}).Run(t.Context(), f.tasks)
	requireCopied(t, dstInner, f, f.tasks, results)
	requireVerified(t, restore.VerifiedByReadBack, results)
	require.Equal(t, len(f.tasks), dst.Calls(faults.OpGet), "each copy read back once")
}

func TestStreamMissingOrDeniedSource(t *testing.T) {
	t.Parallel()
	p := embeddedPair(t)
	srcInner, dstInner := newStore(t, p.src), newStore(t, p.dst)
	f := makeFixture(t, srcInner, "gone/", uploadOpts{sizes: []int{10, 20, 30}})
	_, err := srcInner.Delete(t.Context(), []string{f.tasks[0].Src})
	require.NoError(t, err)
	src := faults.Wrap(srcInner, faults.Options{})
	src.FailKeys(faults.OpGet, f.tasks[1].Src)
	results := fastRetries(&restore.Executor{Store: dstInner, Source: src, Stream: true}).Run(t.Context(), f.tasks)

	require.ErrorIs(t, results[0].Err, objstore.ErrNotFound)
	require.ErrorContains(t, results[0].Err, fmt.Sprintf("source object %q is missing", f.tasks[0].Src))
	require.ErrorIs(t, results[1].Err, objstore.ErrAccessDenied)
	require.ErrorContains(t, results[1].Err, fmt.Sprintf("%q to %q", f.tasks[1].Src, f.tasks[1].Dst))
	for _, r := range results[:2] {
		require.True(t, r.Permanent)
		require.Equal(t, 1, r.Attempts)
	}
	for _, task := range f.tasks[:2] {
		requireNothingAt(t, dstInner, task.Dst)
	}
	require.NoError(t, results[2].Err)
}

// TestServerSideCrossBucket: Store from CopyingFrom copies server-side from
// another bucket of the same endpoint; Source, a store on that bucket, is what
// verification reads the sources from.
func TestServerSideCrossBucket(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		srcCfg := b.cfg
		srcCfg.Bucket = "repository"
		srcInner, dstInner := newStore(t, srcCfg), newStore(t, b.cfg)
		require.NoError(t, srcInner.CreateBucket(t.Context()))
		f := makeFixture(t, srcInner, "xb/", uploadOpts{})
		same := f.tasks[0]
		same.Index, same.Dst = 1, same.Src
		tasks := append(slices.Clone(f.tasks), same)

		store := faults.Wrap(dstInner.CopyingFrom(srcCfg.Bucket), faults.Options{})
		src := faults.Wrap(srcInner, faults.Options{})
		exec := &restore.Executor{Store: store, Source: src, Verify: true, Concurrency: 4}
		results := exec.Run(t.Context(), tasks)
		requireCopied(t, dstInner, f, tasks, results)
		want := restore.VerifiedByReadBack // the embedded server keeps no checksums
		if b.copyCRC {
			want = restore.VerifiedByCopyResponse
		}
		requireVerified(t, want, results)
		require.Equal(t, len(tasks), store.Calls(faults.OpCopy))
		require.Zero(t, store.Calls(faults.OpPut), "server-side: nothing streamed")
		require.Zero(t, src.Calls(faults.OpGet), "the sources are not read")

		t.Run("without-checksum-reads-the-source-from-Source", func(t *testing.T) {
			tasks := slices.DeleteFunc(slices.Clone(tasks), func(t restore.Task) bool { return t.Size == 0 })
			for i := range tasks {
				tasks[i].CRC32C = 0
			}
			src := faults.Wrap(srcInner, faults.Options{})
			exec := &restore.Executor{Store: dstInner.CopyingFrom(srcCfg.Bucket), Source: src, Verify: true}
			results := exec.Run(t.Context(), tasks)
			requireCopied(t, dstInner, f, tasks, results)
			requireVerified(t, restore.VerifiedByReadBack, results)
			require.Equal(t, len(tasks), src.Calls(faults.OpGet), "each source read once, from its bucket")
		})
		t.Run("multipart", func(t *testing.T) {
			if !b.multipart {
				t.Skip("gofakes3 lacks UploadPartCopy; the versitygw buckets run this")
			}
			const threshold = 6 << 20
			f := makeFixture(t, srcInner, "xbmp/", uploadOpts{sizes: []int{11<<20 + 5, threshold, 1000}, withCRC: func(int) bool { return false }})
			exec := &restore.Executor{Store: dstInner.CopyingFrom(srcCfg.Bucket), Source: srcInner, Verify: true,
				MultipartThreshold: threshold, PartSize: restore.MinPartSize}
			results := exec.Run(t.Context(), f.tasks)
			requireCopied(t, dstInner, f, f.tasks, results)
			requireVerified(t, restore.VerifiedByCopyResponse, results)
		})
		t.Run("missing-source", func(t *testing.T) {
			// In the destination bucket only: the copy reads the other one.
			task := restore.Task{Index: 9, Src: "xb/only-here", Dst: "xb/only-here-copy", Size: 4, CRC32C: crc32c([]byte("here"))}
			_, err := dstInner.Put(t.Context(), task.Src, bytes.NewReader([]byte("here")), 4, objstore.PutOptions{})
			require.NoError(t, err)
			r := (&restore.Executor{Store: dstInner.CopyingFrom(srcCfg.Bucket), Source: srcInner, Verify: true}).Run(t.Context(), []restore.Task{task})[0]
			require.ErrorIs(t, r.Err, objstore.ErrNotFound)
			require.True(t, r.Permanent)
			requireNothingAt(t, dstInner, task.Dst)
		})
	})
}
