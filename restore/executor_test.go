package restore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/faults"
	"github.com/snapkeep/snapkeep/restore"
)

func TestExecutorCopiesAndVerifies(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		inner := newStore(t, b.cfg)
		f := makeFixture(t, inner, "copy/", uploadOpts{})
		store := faults.Wrap(inner, faults.Options{}) // no faults: it counts requests
		exec := &restore.Executor{Store: store, Verify: true, Concurrency: 4}
		results := exec.Run(t.Context(), f.tasks)
		requireCopied(t, inner, f, f.tasks, results)
		for _, r := range results {
			require.Equal(t, 1, r.Attempts)
		}

		n := len(f.tasks)
		require.Equal(t, n, store.Calls(faults.OpCopy))
		if b.copyCRC {
			// The copy response carries the CRC-32C: verification costs no
			// request at all.
			require.Zero(t, store.Calls(faults.OpHead), "no HEAD")
			require.Zero(t, store.Calls(faults.OpGet), "no GET")
		} else {
			// The embedded server keeps no checksums: a HEAD per file, then every
			// file is read back.
			require.Equal(t, n, store.Calls(faults.OpHead))
			require.Equal(t, n, store.Calls(faults.OpGet))
		}

		t.Run("again-is-harmless", func(t *testing.T) {
			results := exec.Run(t.Context(), f.tasks)
			requireCopied(t, inner, f, f.tasks, results)
		})
		t.Run("without-verify", func(t *testing.T) {
			store := faults.Wrap(inner, faults.Options{})
			exec := &restore.Executor{Store: store}
			results := exec.Run(t.Context(), f.tasks)
			requireCopied(t, inner, f, f.tasks, results)
			require.Zero(t, store.Calls(faults.OpHead)+store.Calls(faults.OpGet), "nothing but copies")
		})
	})
}

// multipartCounter counts MultipartCopy calls.
type multipartCounter struct {
	objstore.Store
	multipart, single atomic.Int64
}

func (m *multipartCounter) Copy(ctx context.Context, src, dst string) (objstore.CopyInfo, error) {
	m.single.Add(1)
	return m.Store.Copy(ctx, src, dst)
}

func (m *multipartCounter) MultipartCopy(ctx context.Context, src, dst string, size, partSize int64) (objstore.CopyInfo, error) {
	m.multipart.Add(1)
	require.Equal(nil, restore.MinPartSize, partSize)
	return m.Store.MultipartCopy(ctx, src, dst, size, partSize)
}

func TestExecutorMultipart(t *testing.T) {
	t.Parallel()
	// gofakes3 lacks UploadPartCopy: versitygw only.
	b := versityBackend(t)
	inner := newStore(t, b.cfg)
	const threshold = 6 << 20
	sizes := []int{11<<20 + 5, 11<<20 + 5, threshold, 10 << 20, threshold - 1, 1000}
	f := makeFixture(t, inner, "mp/", uploadOpts{
		sizes: sizes,
		// Files 0 and 2 carry a CRC-32C from their upload: versitygw then
		// reports wrong part checksums, objstore redoes those copies without
		// checksums, and the executor reads them back.
		withCRC: func(i int) bool { return i == 0 || i == 2 },
	})
	counter := &multipartCounter{Store: inner}
	store := faults.Wrap(counter, faults.Options{})
	exec := &restore.Executor{
		Store:              store,
		Verify:             true,
		MultipartThreshold: threshold,
		PartSize:           restore.MinPartSize,
		Concurrency:        1, // files in order: the multipart checksum fault is found on file 0
	}
	tasks := f.tasks
	results := exec.Run(t.Context(), tasks)
	requireCopied(t, inner, f, tasks, results)
	require.EqualValues(t, 4, counter.multipart.Load(), "files at or above the threshold")
	require.EqualValues(t, 2, counter.single.Load())
	require.Positive(t, store.Calls(faults.OpGet), "copies without a trustworthy checksum were read back")

	t.Run("verified-by-the-copy-response", func(t *testing.T) {
		// A fresh client, and sources without an upload checksum: the
		// multipart copies' full-object CRC-32C is trusted, nothing is read.
		inner := newStore(t, b.cfg)
		f := makeFixture(t, inner, "mp-plain/", uploadOpts{sizes: []int{11<<20 + 5, threshold}, withCRC: func(int) bool { return false }})
		store := faults.Wrap(inner, faults.Options{})
		exec := &restore.Executor{Store: store, Verify: true, MultipartThreshold: threshold, PartSize: restore.MinPartSize}
		results := exec.Run(t.Context(), f.tasks)
		requireCopied(t, inner, f, f.tasks, results)
		require.Zero(t, store.Calls(faults.OpHead)+store.Calls(faults.OpGet))
	})
	t.Run("corrupted-expectation", func(t *testing.T) {
		inner := newStore(t, b.cfg)
		f := makeFixture(t, inner, "mp-bad/", uploadOpts{sizes: []int{11 << 20, 11 << 20}, withCRC: func(int) bool { return false }})
		tasks := append([]restore.Task(nil), f.tasks...)
		tasks[0].CRC32C ^= 1
		tasks[1].Size -= 1000 // the copy is cut short there: its checksum differs
		exec := &restore.Executor{Store: inner, Verify: true, MultipartThreshold: threshold, PartSize: restore.MinPartSize}
		results := exec.Run(t.Context(), tasks)
		for i, r := range results {
			require.Error(t, r.Err)
			require.True(t, r.Permanent, "%v", r.Err)
			require.ErrorIs(t, r.Err, restore.ErrMismatch)
			require.Contains(t, r.Err.Error(), fmt.Sprintf("%q", tasks[i].Dst))
			require.Equal(t, 1, r.Attempts)
		}
		require.Contains(t, results[0].Err.Error(), fmt.Sprintf("want %08x, got %08x", tasks[0].CRC32C, f.tasks[0].CRC32C))
	})
}

func TestExecutorTransientFaults(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		inner := newStore(t, b.cfg)
		sizes := make([]int, 120)
		for i := range sizes {
			sizes[i] = 3000 + 13*i
		}
		f := makeFixture(t, inner, "faults/", uploadOpts{sizes: sizes})
		store := faults.Wrap(inner, faults.Options{
			Seed:          3,
			TransientRate: 0.2, // every operation: copies, HEADs and GETs
			AfterRate:     0.3, // some copies take effect although they "fail"
		})
		exec := fastRetries(&restore.Executor{Store: store, Verify: true, Concurrency: 8, MaxAttempts: 8})
		results := exec.Run(t.Context(), f.tasks)
		requireCopied(t, inner, f, f.tasks, results)

		retried, attempts := 0, 0
		for _, r := range results {
			attempts += r.Attempts
			if r.Attempts > 1 {
				retried++
			}
		}
		t.Logf("%s: %d of %d tasks retried their copy; injected: %d copy, %d head, %d get",
			b.name, retried, len(results), store.Injected(faults.OpCopy), store.Injected(faults.OpHead), store.Injected(faults.OpGet))
		require.Positive(t, retried, "some copies needed more than one attempt")
		require.Equal(t, store.Calls(faults.OpCopy), attempts, "Attempts counts every copy request")
		require.Equal(t, len(f.tasks)+store.Injected(faults.OpCopy), attempts)
		if !b.copyCRC {
			require.Positive(t, store.Injected(faults.OpHead)+store.Injected(faults.OpGet), "verification requests failed too")
		}
	})
}

func TestExecutorGivesUpOnPersistentTransientErrors(t *testing.T) {
	t.Parallel()
	b := embeddedBackend(t)
	inner := newStore(t, b.cfg)
	f := makeFixture(t, inner, "always/", uploadOpts{sizes: []int{10, 20}})
	store := faults.Wrap(inner, faults.Options{TransientRate: 1, Ops: []string{faults.OpCopy}})
	exec := fastRetries(&restore.Executor{Store: store, Verify: true, MaxAttempts: 3})
	results := exec.Run(t.Context(), f.tasks)
	for _, r := range results {
		require.Error(t, r.Err)
		require.False(t, r.Permanent, "a transient failure is not the job's end")
		require.Equal(t, 3, r.Attempts)
		require.True(t, objstore.IsTransient(r.Err))
		require.Contains(t, r.Err.Error(), "gave up after 3 attempts")
		require.Zero(t, r.Bytes)
	}
}

func TestExecutorMissingSource(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		inner := newStore(t, b.cfg)
		f := makeFixture(t, inner, "missing/", uploadOpts{sizes: []int{10, 20, 30}})
		tasks := append([]restore.Task(nil), f.tasks...)
		gone := tasks[1].Src
		res, err := inner.Delete(t.Context(), []string{gone})
		require.NoError(t, err)
		require.Empty(t, res.Failed)

		store := faults.Wrap(inner, faults.Options{})
		exec := fastRetries(&restore.Executor{Store: store, Verify: true})
		results := exec.Run(t.Context(), tasks)
		r := results[1]
		require.Error(t, r.Err)
		require.True(t, r.Permanent)
		require.ErrorIs(t, r.Err, objstore.ErrNotFound)
		require.Contains(t, r.Err.Error(), fmt.Sprintf("source object %q is missing", gone))
		require.Equal(t, 1, r.Attempts, "not retried")
		require.Zero(t, r.Bytes)
		_, err = inner.Head(t.Context(), tasks[1].Dst)
		require.ErrorIs(t, err, objstore.ErrNotFound, "nothing was created")
		for _, i := range []int{0, 2} {
			require.NoError(t, results[i].Err)
			require.Equal(t, tasks[i].Index, results[i].Index)
		}
	})
}

func TestExecutorAccessDenied(t *testing.T) {
	t.Parallel()
	b := embeddedBackend(t)
	inner := newStore(t, b.cfg)
	f := makeFixture(t, inner, "denied/", uploadOpts{sizes: []int{10, 20}})
	store := faults.Wrap(inner, faults.Options{})
	store.FailKeys(faults.OpCopy, f.tasks[0].Src)
	exec := fastRetries(&restore.Executor{Store: store, Verify: true})
	results := exec.Run(t.Context(), f.tasks)
	require.Error(t, results[0].Err)
	require.True(t, results[0].Permanent)
	require.ErrorIs(t, results[0].Err, objstore.ErrAccessDenied)
	require.Contains(t, results[0].Err.Error(), fmt.Sprintf("%q", f.tasks[0].Src))
	require.Equal(t, 1, results[0].Attempts)
	require.NoError(t, results[1].Err)
}

func TestExecutorCorruptedExpectation(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		inner := newStore(t, b.cfg)
		f := makeFixture(t, inner, "corrupt/", uploadOpts{sizes: []int{5000, 6000, 7000, 8000}, withCRC: func(i int) bool { return i < 2 }})
		// Tasks in upload order: 0 and 1 were uploaded with a CRC-32C.
		byName := map[string]restore.Task{}
		for _, task := range f.tasks {
			byName[task.Src] = task
		}
		task := func(i int) restore.Task { return byName[fmt.Sprintf("corrupt/src/%05d/file %d+x", i, i)] }
		tasks := []restore.Task{task(0), task(1), task(2), task(3)}
		tasks[0].CRC32C ^= 0x80 // the catalog says another checksum
		tasks[2].CRC32C ^= 0x80
		tasks[3].Size++         // the catalog says another size
		tasks[3].CRC32C ^= 0x01 // ... and checksum

		store := faults.Wrap(inner, faults.Options{})
		exec := &restore.Executor{Store: store, Verify: true}
		results := exec.Run(t.Context(), tasks)

		for _, i := range []int{0, 2, 3} {
			r := results[i]
			require.Error(t, r.Err, "task %d", i)
			require.True(t, r.Permanent, "task %d: %v", i, r.Err)
			require.ErrorIs(t, r.Err, restore.ErrMismatch)
			var mm *restore.MismatchError
			require.ErrorAs(t, r.Err, &mm)
			require.Equal(t, tasks[i].Dst, mm.Dst)
			require.Contains(t, r.Err.Error(), fmt.Sprintf("%q", tasks[i].Dst))
			require.Contains(t, r.Err.Error(), "want ")
			require.Contains(t, r.Err.Error(), "got ")
			require.Equal(t, 1, r.Attempts, "a mismatch is not retried")
			t.Logf("task %d: %v", i, r.Err)
		}
		require.NoError(t, results[1].Err)

		var mm *restore.MismatchError
		require.ErrorAs(t, results[0].Err, &mm)
		require.Equal(t, "CRC-32C", mm.What)
		require.EqualValues(t, tasks[0].CRC32C, mm.Want)
		require.EqualValues(t, task(0).CRC32C, mm.Got)
		require.ErrorAs(t, results[3].Err, &mm)
		if b.copyCRC {
			// The copy response's checksum disagrees; reading the copy back
			// (before failing the task) finds the size differs.
			require.Equal(t, "size", mm.What)
			require.Equal(t, "the content read back", mm.From)
			require.Contains(t, mm.Reported, "the copy response had reported CRC-32C")
		} else {
			// HEAD tells the size first.
			require.Equal(t, "size", mm.What)
			require.Equal(t, "HEAD", mm.From)
			require.EqualValues(t, tasks[3].Size, mm.Want)
			require.EqualValues(t, task(3).Size, mm.Got)
		}
	})
}

// TestExecutorWrongSizeRightChecksum: a catalog whose size alone is wrong. On a
// server whose copy response carries the CRC-32C the executor does not learn
// the size (that is Precheck's job, by listing); where it learns the size, a
// mismatch fails the task.
func TestExecutorWrongSizeRightChecksum(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		inner := newStore(t, b.cfg)
		f := makeFixture(t, inner, "size/", uploadOpts{sizes: []int{5000}})
		tasks := append([]restore.Task(nil), f.tasks...)
		tasks[0].Size = 5001
		results := (&restore.Executor{Store: inner, Verify: true}).Run(t.Context(), tasks)
		if b.copyCRC {
			require.NoError(t, results[0].Err)
		} else {
			require.ErrorIs(t, results[0].Err, restore.ErrMismatch)
			require.True(t, results[0].Permanent)
		}
		sources, err := restore.NewSources(tasks)
		require.NoError(t, err)
		report, err := restore.Precheck(t.Context(), inner, "size/src/", sources)
		require.NoError(t, err)
		require.Equal(t, 1, report.WrongSizeCount, "the precheck catches it either way")
	})
}

// TestExecutorServerReportsWrongChecksum: an upload with a wrong checksum header
// leaves no checksum on the embedded server (which keeps none, as it verifies
// none), so the executor reads the copy back and judges by the content.
func TestExecutorServerReportsWrongChecksum(t *testing.T) {
	t.Parallel()
	b := embeddedBackend(t)
	inner := newStore(t, b.cfg)
	data := bytes.Repeat([]byte("payload "), 1000)
	_, err := inner.Put(t.Context(), "lie/src", bytes.NewReader(data), int64(len(data)),
		objstore.PutOptions{CRC32C: 0xdeadbeef, HasCRC32C: true})
	require.NoError(t, err)
	store := faults.Wrap(inner, faults.Options{})
	task := restore.Task{Index: 1, Src: "lie/src", Dst: "lie/dst", Size: uint64(len(data)), CRC32C: crc32c(data)}
	results := (&restore.Executor{Store: store, Verify: true}).Run(t.Context(), []restore.Task{task})
	require.NoError(t, results[0].Err)
	require.Equal(t, 1, store.Calls(faults.OpGet), "read back once")

	// And when the content is wrong too, the error says what the server claimed.
	task.CRC32C ^= 1
	results = (&restore.Executor{Store: store, Verify: true}).Run(t.Context(), []restore.Task{task})
	require.ErrorIs(t, results[0].Err, restore.ErrMismatch)
	require.Contains(t, results[0].Err.Error(), "from the content read back")
}

// TestExecutorReadBackResumes: a read-back that breaks off continues with a
// range GET where it stopped.
func TestExecutorReadBackResumes(t *testing.T) {
	t.Parallel()
	b := embeddedBackend(t)
	inner := newStore(t, b.cfg)
	// Sources without an upload checksum: gofakes3 verification reads them back.
	f := makeFixture(t, inner, "resume/", uploadOpts{sizes: []int{100_000, 3000}, withCRC: func(int) bool { return false }})
	// Every read breaks off after its first 512 bytes, twice in a row.
	store := faults.Wrap(inner, faults.Options{TransientRate: 1, AfterRate: 1, Ops: []string{faults.OpGet}, MaxConsecutive: 2})
	ranges := &rangeRecorder{Store: store, offsets: map[string][]int64{}}
	exec := fastRetries(&restore.Executor{Store: ranges, Verify: true})
	results := exec.Run(t.Context(), f.tasks)
	requireCopied(t, inner, f, f.tasks, results)
	require.Equal(t, 4, store.Injected(faults.OpGet), "two broken reads per file")
	require.Equal(t, 6, store.Calls(faults.OpGet), "a GET and two range GETs per file")
	for _, task := range f.tasks {
		require.Equal(t, []int64{512, 1024}, ranges.offsets[task.Dst], "each read continues where the last stopped")
	}
}

// rangeRecorder records the offsets of range GETs.
type rangeRecorder struct {
	objstore.Store
	mu      sync.Mutex
	offsets map[string][]int64
}

func (r *rangeRecorder) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	r.mu.Lock()
	r.offsets[key] = append(r.offsets[key], offset)
	r.mu.Unlock()
	return r.Store.GetRange(ctx, key, offset, length)
}

func TestExecutorInvalidTasks(t *testing.T) {
	t.Parallel()
	b := embeddedBackend(t)
	store := faults.Wrap(newStore(t, b.cfg), faults.Options{})
	tasks := []restore.Task{
		{Index: 1, Src: "", Dst: "x"},
		{Index: 2, Src: "same", Dst: "same"},
	}
	results := (&restore.Executor{Store: store}).Run(t.Context(), tasks)
	for i, r := range results {
		require.Equal(t, tasks[i].Index, r.Index)
		require.Error(t, r.Err)
		require.True(t, r.Permanent)
		require.Zero(t, r.Attempts)
	}
	require.Zero(t, store.Calls(faults.OpCopy))
	require.Empty(t, (&restore.Executor{Store: store}).Run(t.Context(), nil))
}

// slowStore makes every copy take a while (or until its context ends).
type slowStore struct {
	objstore.Store
	delay  time.Duration
	copies atomic.Int64
}

func (s *slowStore) Copy(ctx context.Context, src, dst string) (objstore.CopyInfo, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return objstore.CopyInfo{}, fmt.Errorf("copy %q to %q: %w", src, dst, ctx.Err())
	}
	s.copies.Add(1)
	return s.Store.Copy(ctx, src, dst)
}

func TestExecutorCancel(t *testing.T) {
	t.Parallel()
	b := embeddedBackend(t)
	inner := newStore(t, b.cfg)
	sizes := make([]int, 200)
	for i := range sizes {
		sizes[i] = 100 + i
	}
	f := makeFixture(t, inner, "cancel/", uploadOpts{sizes: sizes})

	t.Run("during-copies", func(t *testing.T) {
		store := &slowStore{Store: inner, delay: 20 * time.Millisecond}
		ctx, cancel := context.WithCancel(t.Context())
		// Cancel once 12 copies have started: each of the 4 workers runs its tasks one
		// after another, so at least 8 are then complete (a deadline instead saw none
		// complete on a loaded machine).
		go func() {
			for store.copies.Load() < 12 && ctx.Err() == nil {
				time.Sleep(time.Millisecond)
			}
			cancel()
		}()
		start := time.Now()
		results := (&restore.Executor{Store: store, Verify: true, Concurrency: 4}).Run(ctx, f.tasks)
		took := time.Since(start)
		require.Less(t, took, 2*time.Second, "stops promptly")

		done, canceled := 0, 0
		for i, r := range results {
			require.Equal(t, f.tasks[i].Index, r.Index, "results are in input order")
			if r.Err == nil {
				done++
				continue
			}
			canceled++
			require.False(t, r.Permanent, "%v", r.Err)
			require.ErrorIs(t, r.Err, context.Canceled)
			require.Contains(t, r.Err.Error(), fmt.Sprintf("%q", f.tasks[i].Src))
		}
		t.Logf("%d done, %d canceled in %v", done, canceled, took)
		require.Positive(t, done)
		require.Positive(t, canceled)
		require.Less(t, int(store.copies.Load()), len(f.tasks), "not every task was copied")
	})

	t.Run("during-backoff", func(t *testing.T) {
		store := faults.Wrap(inner, faults.Options{TransientRate: 1})
		ctx, cancel := context.WithCancel(t.Context())
		time.AfterFunc(100*time.Millisecond, cancel)
		start := time.Now()
		exec := &restore.Executor{Store: store, Verify: true, BackoffBase: time.Minute, BackoffMax: time.Minute}
		results := exec.Run(ctx, f.tasks[:20])
		require.Less(t, time.Since(start), 2*time.Second, "a backoff does not outlast the context")
		for _, r := range results {
			require.Error(t, r.Err)
			require.False(t, r.Permanent)
			require.ErrorIs(t, r.Err, context.Canceled)
		}
	})

	t.Run("already-canceled", func(t *testing.T) {
		store := faults.Wrap(inner, faults.Options{})
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		results := (&restore.Executor{Store: store}).Run(ctx, f.tasks)
		for _, r := range results {
			require.ErrorIs(t, r.Err, context.Canceled)
			require.False(t, r.Permanent)
			require.Zero(t, r.Attempts)
			require.Contains(t, r.Err.Error(), "not started")
		}
		require.Zero(t, store.Calls(faults.OpCopy))
	})

	t.Run("deadline", func(t *testing.T) {
		store := &slowStore{Store: inner, delay: 20 * time.Millisecond}
		ctx, cancel := context.WithTimeout(t.Context(), 60*time.Millisecond)
		defer cancel()
		results := (&restore.Executor{Store: store, Concurrency: 2}).Run(ctx, f.tasks)
		last := results[len(results)-1]
		require.ErrorIs(t, last.Err, context.DeadlineExceeded)
		require.False(t, last.Permanent)
		require.False(t, objstore.IsTransient(last.Err), "the caller's deadline")
	})
}

func TestMismatchError(t *testing.T) {
	err := error(&restore.MismatchError{Src: "a", Dst: "b", What: "CRC-32C", Want: 0xabc, Got: 0x1, From: "HEAD"})
	require.ErrorIs(t, err, restore.ErrMismatch)
	require.Equal(t, `copy of "a" to "b": CRC-32C mismatch: want 00000abc, got 00000001 (from HEAD)`, err.Error())
	err = &restore.MismatchError{Src: "a", Dst: "b", What: "size", Want: 10, Got: 9, From: "the content read back"}
	require.True(t, strings.Contains(err.Error(), "want 10 bytes, got 9 bytes"), err.Error())
	require.False(t, errors.Is(errors.New("x"), restore.ErrMismatch))
}

// vanishingStore deletes every copy right after making it, as a concurrent
// garbage collector might.
type vanishingStore struct{ objstore.Store }

func (v vanishingStore) Copy(ctx context.Context, src, dst string) (objstore.CopyInfo, error) {
	info, err := v.Store.Copy(ctx, src, dst)
	if err == nil {
		_, err = v.Store.Delete(ctx, []string{dst})
	}
	return info, err
}

func TestExecutorDestinationVanishes(t *testing.T) {
	t.Parallel()
	b := embeddedBackend(t) // no checksum in the copy response: verification HEADs the copy
	inner := newStore(t, b.cfg)
	f := makeFixture(t, inner, "vanish/", uploadOpts{sizes: []int{10}})
	results := (&restore.Executor{Store: vanishingStore{inner}, Verify: true}).Run(t.Context(), f.tasks)
	r := results[0]
	require.Error(t, r.Err)
	require.False(t, r.Permanent, "not the source's fault: try again later")
	require.Contains(t, r.Err.Error(), "vanished")
	require.Contains(t, r.Err.Error(), fmt.Sprintf("verify copy of %q to %q", f.tasks[0].Src, f.tasks[0].Dst))
}

// TestExecutorWithoutChecksum: files registered without a CRC-32C (0) are verified by
// reading the source and the copy in full and comparing both (size and CRC-32C); a
// size the source does not have fails the task.
func TestExecutorWithoutChecksum(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		inner := newStore(t, b.cfg)
		f := makeFixture(t, inner, "nocrc/", uploadOpts{})
		tasks := slices.DeleteFunc(slices.Clone(f.tasks), func(t restore.Task) bool { return t.Size == 0 }) // an empty file's CRC-32C is 0 anyway
		for i := range tasks {
			tasks[i].CRC32C = 0
		}
		store := faults.Wrap(inner, faults.Options{})
		exec := &restore.Executor{Store: store, Verify: true, Concurrency: 4}
		results := exec.Run(t.Context(), tasks)
		for i, r := range results {
			require.NoError(t, r.Err, "task %d", i)
			require.Equal(t, restore.VerifiedByReadBack, r.Verified)
		}
		require.Equal(t, 2*len(tasks), store.Calls(faults.OpGet), "the source and the copy, each read once")

		wrong := tasks[0]
		wrong.Size++
		r := exec.Run(t.Context(), []restore.Task{wrong})[0]
		require.ErrorIs(t, r.Err, restore.ErrMismatch)
		require.True(t, r.Permanent)
		require.ErrorContains(t, r.Err, "the source read in full")
	})
}
