package faults_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"sync"
	"testing"

	"github.com/aws/smithy-go"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/faults"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func newEmbedded(t *testing.T) *objstore.S3 {
	t.Helper()
	e, err := objstore.StartEmbedded(context.Background(), objstore.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	s, err := objstore.NewS3(context.Background(), e.Config())
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func put(t *testing.T, s objstore.Store, key, data string) {
	t.Helper()
	_, err := s.Put(t.Context(), key, bytes.NewReader([]byte(data)), int64(len(data)), objstore.PutOptions{})
	require.NoError(t, err)
}

// pattern records which of n heads of each key fail.
func pattern(t *testing.T, s *faults.Store, keys []string, n int, concurrent bool) map[string][]bool {
	t.Helper()
	out := map[string][]bool{}
	var mu sync.Mutex
	var wg sync.WaitGroup
	for _, key := range keys {
		run := func() {
			fails := make([]bool, n)
			for i := range n {
				_, err := s.Head(t.Context(), key)
				fails[i] = err != nil
			}
			mu.Lock()
			out[key] = fails
			mu.Unlock()
		}
		if concurrent {
			wg.Go(run)
		} else {
			run()
		}
	}
	wg.Wait()
	return out
}

func TestTransientFaults(t *testing.T) {
	inner := newEmbedded(t)
	var keys []string
	for i := range 20 {
		key := fmt.Sprintf("k/%02d", i)
		put(t, inner, key, "data")
		keys = append(keys, key)
	}

	t.Run("deterministic-whatever-the-interleaving", func(t *testing.T) {
		opts := faults.Options{Seed: 7, TransientRate: 0.3}
		a := pattern(t, faults.Wrap(inner, opts), keys, 10, false)
		b := pattern(t, faults.Wrap(inner, opts), keys, 10, true)
		require.Equal(t, a, b)
		opts.Seed = 8
		c := pattern(t, faults.Wrap(inner, opts), keys, 10, true)
		require.NotEqual(t, a, c, "another seed, another pattern")
	})

	t.Run("rate-counters-and-classification", func(t *testing.T) {
		s := faults.Wrap(inner, faults.Options{Seed: 1, TransientRate: 0.2})
		failures := 0
		for i := range 1000 {
			_, err := s.Head(t.Context(), keys[i%len(keys)])
			if err != nil {
				failures++
				require.True(t, objstore.IsTransient(err), "%v", err)
				require.NotErrorIs(t, err, objstore.ErrNotFound)
				var apiErr smithy.APIError
				require.ErrorAs(t, err, &apiErr)
				require.Equal(t, "SlowDown", apiErr.ErrorCode())
				var injected *faults.Error
				require.ErrorAs(t, err, &injected)
				require.Equal(t, "head", injected.Op)
			}
		}
		require.InDelta(t, 200, failures, 60)
		require.Equal(t, 1000, s.Calls(faults.OpHead))
		require.Equal(t, failures, s.Injected(faults.OpHead))
		require.Zero(t, s.Calls(faults.OpGet))
	})

	t.Run("only-chosen-ops", func(t *testing.T) {
		s := faults.Wrap(inner, faults.Options{Seed: 1, TransientRate: 1, Ops: []string{faults.OpCopy}})
		_, err := s.Head(t.Context(), keys[0])
		require.NoError(t, err)
		_, err = s.Copy(t.Context(), keys[0], "copied")
		require.Error(t, err)
		require.True(t, objstore.IsTransient(err))
		require.Equal(t, 1, s.Injected(faults.OpCopy))
		require.Zero(t, s.Injected(faults.OpHead))
		_, err = inner.Head(t.Context(), "copied")
		require.ErrorIs(t, err, objstore.ErrNotFound, "a failure before the call: no copy made")
		require.Panics(t, func() { faults.Wrap(inner, faults.Options{Ops: []string{"copyy"}}) })
	})

	t.Run("max-consecutive", func(t *testing.T) {
		s := faults.Wrap(inner, faults.Options{Seed: 1, TransientRate: 1, MaxConsecutive: 2})
		var got []bool
		for range 6 {
			_, err := s.Head(t.Context(), keys[0])
			got = append(got, err != nil)
		}
		require.Equal(t, []bool{true, true, false, true, true, false}, got)
	})

	t.Run("after-the-call", func(t *testing.T) {
		s := faults.Wrap(inner, faults.Options{Seed: 1, TransientRate: 1, AfterRate: 1})
		_, err := s.Copy(t.Context(), keys[1], "copied-after")
		require.Error(t, err)
		require.True(t, objstore.IsTransient(err))
		_, err = inner.Head(t.Context(), "copied-after")
		require.NoError(t, err, "the copy took effect although the caller saw an error")

		// A Get fails in the middle of the body.
		rc, _, err := s.Get(t.Context(), keys[1])
		require.NoError(t, err)
		_, err = io.ReadAll(rc)
		require.Error(t, err)
		require.True(t, objstore.IsTransient(err))
		require.NoError(t, rc.Close())
	})

	t.Run("set-rate", func(t *testing.T) {
		s := faults.Wrap(inner, faults.Options{Seed: 1, TransientRate: 1})
		_, err := s.Head(t.Context(), keys[0])
		require.Error(t, err)
		s.SetTransientRate(0)
		_, err = s.Head(t.Context(), keys[0])
		require.NoError(t, err)
	})
}

func TestFailKeys(t *testing.T) {
	inner := newEmbedded(t)
	put(t, inner, "src/a", "a")
	put(t, inner, "src/b", "b")
	s := faults.Wrap(inner, faults.Options{})

	s.FailKeys(faults.OpCopy, "src/a")
	s.FailKeysWith(faults.OpGet, objstore.ErrNotFound, "src/b")
	s.FailKeys(faults.OpList, "src/")
	s.FailKeys(faults.OpDelete, "src/a")

	for range 3 {
		_, err := s.Copy(t.Context(), "src/a", "dst/a")
		require.ErrorIs(t, err, objstore.ErrAccessDenied)
		require.False(t, objstore.IsTransient(err))
		require.Contains(t, err.Error(), `"src/a"`)
	}
	_, err := s.Copy(t.Context(), "src/b", "dst/b")
	require.NoError(t, err)
	_, err = s.Copy(t.Context(), "src/b", "src/a")
	require.ErrorIs(t, err, objstore.ErrAccessDenied, "the destination key counts too")
	require.Equal(t, 4, s.Failed(faults.OpCopy))
	require.Equal(t, 5, s.Calls(faults.OpCopy))

	_, _, err = s.Get(t.Context(), "src/b")
	require.ErrorIs(t, err, objstore.ErrNotFound)
	_, err = s.GetRange(t.Context(), "src/b", 0, 1)
	require.ErrorIs(t, err, objstore.ErrNotFound)

	_, err = s.List(t.Context(), "src/", "", 0)
	require.ErrorIs(t, err, objstore.ErrAccessDenied)
	page, err := s.List(t.Context(), "dst/", "", 0)
	require.NoError(t, err)
	require.Len(t, page.Objects, 1)

	res, err := s.Delete(t.Context(), []string{"src/a", "src/b"})
	require.NoError(t, err)
	require.Equal(t, []string{"src/b"}, res.Deleted)
	require.ErrorIs(t, res.Failed["src/a"], objstore.ErrAccessDenied)
	_, err = inner.Head(t.Context(), "src/a")
	require.NoError(t, err, "a refused key is not deleted")

	s.FailKeysWith(faults.OpCopy, nil, "src/a")
	_, err = s.Copy(t.Context(), "src/a", "dst/a")
	require.NoError(t, err, "cleared")
}

// TestCopyingFrom: a faults.Store passes objstore.BucketCopier through, with the
// same faults and counters; a faults.Store wrapping a CopyingFrom store works too.
func TestCopyingFrom(t *testing.T) {
	e, err := objstore.StartEmbedded(context.Background(), objstore.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	newS3 := func(bucket string) *objstore.S3 {
		cfg := e.Config()
		cfg.Bucket = bucket
		s, err := objstore.NewS3(context.Background(), cfg)
		require.NoError(t, err)
		t.Cleanup(func() { _ = s.Close() })
		return s
	}
	src, dst := newS3("source"), newS3(e.Bucket())
	require.NoError(t, src.CreateBucket(t.Context()))
	put(t, src, "k", "from the source bucket")

	store := faults.Wrap(dst, faults.Options{})
	from := store.CopyingFrom("source")
	store.FailKeys(faults.OpCopy, "denied")
	_, err = from.Copy(t.Context(), "denied", "x")
	require.ErrorIs(t, err, objstore.ErrAccessDenied, "the same faults")
	_, err = from.Copy(t.Context(), "k", "k-copy")
	require.NoError(t, err)
	require.Equal(t, 2, store.Calls(faults.OpCopy), "counted together")
	rc, _, err := store.Get(t.Context(), "k-copy")
	require.NoError(t, err)
	got, err := io.ReadAll(rc)
	require.NoError(t, rc.Close())
	require.NoError(t, err)
	require.Equal(t, "from the source bucket", string(got))

	wrapped := faults.Wrap(dst.CopyingFrom("source"), faults.Options{TransientRate: 1, Ops: []string{faults.OpCopy}})
	_, err = wrapped.Copy(t.Context(), "k", "k-copy2")
	require.True(t, objstore.IsTransient(err))
	wrapped.SetTransientRate(0)
	_, err = wrapped.Copy(t.Context(), "k", "k-copy2")
	require.NoError(t, err)

	require.Panics(t, func() { faults.Wrap(onlyStore{dst}, faults.Options{}).CopyingFrom("source") })
}

// onlyStore hides every method but objstore.Store's.
type onlyStore struct{ objstore.Store }

func TestPutMultipartCountsAsPut(t *testing.T) {
	inner := newEmbedded(t)
	store := faults.Wrap(inner, faults.Options{TransientRate: 1, Ops: []string{faults.OpPut}, MaxConsecutive: 1})
	data := []byte("multipart body")
	_, err := store.PutMultipart(t.Context(), "k", bytes.NewReader(data), int64(len(data)), 5<<20, objstore.PutOptions{})
	require.True(t, objstore.IsTransient(err))
	_, err = store.PutMultipart(t.Context(), "k", bytes.NewReader(data), int64(len(data)), 5<<20, objstore.PutOptions{})
	require.NoError(t, err)
	require.Equal(t, 2, store.Calls(faults.OpPut))
	require.Equal(t, 1, store.Injected(faults.OpPut))
}
