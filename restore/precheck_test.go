package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/faults"
	"github.com/snapkeep/snapkeep/restore"
)

// putMany uploads n small objects prefix%05d with size i%50 and returns
// tasks naming them as sources.
func putMany(t *testing.T, store objstore.Store, prefix string, n int) []restore.Task {
	t.Helper()
	tasks := make([]restore.Task, n)
	for i := range tasks {
		tasks[i] = restore.Task{Index: uint32(i), Src: fmt.Sprintf("%s%05d", prefix, i), Dst: fmt.Sprintf("elsewhere/%05d", i), Size: uint64(i % 50)}
	}
	parallelDo(t, n, 32, func(i int) error {
		data := bytes.Repeat([]byte{'x'}, int(tasks[i].Size))
		_, err := store.Put(context.Background(), tasks[i].Src, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
		return err
	})
	return tasks
}

func sources(t *testing.T, tasks []restore.Task) *restore.Sources {
	t.Helper()
	s, err := restore.NewSources(tasks)
	require.NoError(t, err)
	return s
}

func TestPrecheck(t *testing.T) {
	t.Parallel()
	b := embeddedBackend(t)
	inner := newStore(t, b.cfg)
	tasks := putMany(t, inner, "pre/src/", 60)
	// Objects under the prefix that no task names are listed and ignored.
	putMany(t, inner, "pre/src/other-", 5)

	t.Run("all-present", func(t *testing.T) {
		store := faults.Wrap(inner, faults.Options{})
		report, err := restore.Precheck(t.Context(), store, "pre/src/", sources(t, tasks))
		require.NoError(t, err)
		require.True(t, report.OK())
		require.Equal(t, restore.PrecheckReport{Expected: 60, Found: 60, Listed: 65, Pages: 1}, report)
		require.Zero(t, store.Calls(faults.OpHead), "no HEAD per file")
		require.Equal(t, 1, store.Calls(faults.OpList))
	})

	t.Run("missing", func(t *testing.T) {
		want := slices.Clone(tasks)
		for _, i := range []int{41, 3, 17} {
			want = append(want, restore.Task{Src: fmt.Sprintf("pre/src/gone-%02d", i), Size: 1})
		}
		want = append(want, restore.Task{Src: "pre/elsewhere/gone", Size: 1})
		report, err := restore.Precheck(t.Context(), inner, "pre/src/", sources(t, want))
		require.NoError(t, err)
		require.False(t, report.OK())
		require.Equal(t, 4, report.MissingCount)
		require.Equal(t, []string{"pre/elsewhere/gone", "pre/src/gone-03", "pre/src/gone-17", "pre/src/gone-41"}, report.Missing, "sorted")
		require.Equal(t, 60, report.Found)
		require.Equal(t, 64, report.Expected)
		require.Zero(t, report.WrongSizeCount)
	})

	t.Run("missing-beyond-max-reported", func(t *testing.T) {
		var want []restore.Task
		for i := 500; i > 0; i-- {
			want = append(want, restore.Task{Src: fmt.Sprintf("pre/src/nope-%04d", i)})
		}
		want = append(want, tasks[:10]...)
		report, err := restore.PrecheckWithOptions(t.Context(), inner, "pre/src/", sources(t, want), restore.PrecheckOptions{MaxReported: 3})
		require.NoError(t, err)
		require.Equal(t, 500, report.MissingCount)
		require.Equal(t, []string{"pre/src/nope-0001", "pre/src/nope-0002", "pre/src/nope-0003"}, report.Missing, "the first ones in key order")
		require.Equal(t, 10, report.Found)
	})

	t.Run("wrong-size", func(t *testing.T) {
		want := slices.Clone(tasks)
		want[7].Size = 1000
		want[2].Size = 0
		report, err := restore.Precheck(t.Context(), inner, "pre/src/", sources(t, want))
		require.NoError(t, err)
		require.False(t, report.OK())
		require.Equal(t, 2, report.WrongSizeCount)
		require.Equal(t, []string{"pre/src/00002: want 0, got 2", "pre/src/00007: want 1000, got 7"}, report.WrongSize)
		require.Zero(t, report.MissingCount)
		require.Equal(t, 60, report.Found, "a wrong-size object was found")
	})

	t.Run("small-pages", func(t *testing.T) {
		store := faults.Wrap(inner, faults.Options{})
		report, err := restore.PrecheckWithOptions(t.Context(), store, "pre/src/", sources(t, tasks), restore.PrecheckOptions{PageSize: 7})
		require.NoError(t, err)
		require.True(t, report.OK())
		require.Equal(t, 65, report.Listed)
		require.Equal(t, 10, report.Pages, "65 objects in pages of 7")
		require.Equal(t, 10, store.Calls(faults.OpList))
	})

	t.Run("transient-list-errors-retried", func(t *testing.T) {
		store := faults.Wrap(inner, faults.Options{Seed: 2, TransientRate: 0.5, Ops: []string{faults.OpList}, MaxConsecutive: 3})
		report, err := restore.PrecheckWithOptions(t.Context(), store, "pre/src/", sources(t, tasks),
			restore.PrecheckOptions{PageSize: 7, BackoffBase: time.Millisecond, BackoffMax: 5 * time.Millisecond})
		require.NoError(t, err)
		require.True(t, report.OK())
		require.Equal(t, 65, report.Listed, "no page counted twice")
		require.Equal(t, 60, report.Found)
		require.Positive(t, store.Injected(faults.OpList))
		require.Equal(t, 10+store.Injected(faults.OpList), store.Calls(faults.OpList))
	})

	t.Run("persistent-list-errors", func(t *testing.T) {
		store := faults.Wrap(inner, faults.Options{TransientRate: 1, Ops: []string{faults.OpList}})
		_, err := restore.PrecheckWithOptions(t.Context(), store, "pre/src/", sources(t, tasks),
			restore.PrecheckOptions{MaxAttempts: 3, BackoffBase: time.Millisecond, BackoffMax: time.Millisecond})
		require.Error(t, err)
		require.True(t, objstore.IsTransient(err), "the caller may try again later")
		require.Equal(t, 3, store.Calls(faults.OpList))

		store = faults.Wrap(inner, faults.Options{})
		store.FailKeys(faults.OpList, "pre/src/")
		_, err = restore.Precheck(t.Context(), store, "pre/src/", sources(t, tasks))
		require.ErrorIs(t, err, objstore.ErrAccessDenied)
		require.Equal(t, 1, store.Calls(faults.OpList), "not retried")
	})

	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		_, err := restore.Precheck(ctx, inner, "pre/src/", sources(t, tasks))
		require.ErrorIs(t, err, context.Canceled)
	})

	t.Run("bad-lookup", func(t *testing.T) {
		_, err := restore.Precheck(t.Context(), inner, "pre/src/", badExpected{})
		require.ErrorContains(t, err, "outside")
	})

	t.Run("nothing-expected", func(t *testing.T) {
		report, err := restore.Precheck(t.Context(), inner, "pre/src/", sources(t, nil))
		require.NoError(t, err)
		require.True(t, report.OK())
		require.Equal(t, 65, report.Listed)
	})

	t.Run("duplicate-sources", func(t *testing.T) {
		_, err := restore.NewSources([]restore.Task{tasks[0], tasks[0]})
		require.ErrorContains(t, err, tasks[0].Src)
	})
}

type badExpected struct{}

func (badExpected) Len() int                          { return 1 }
func (badExpected) Lookup(string) (int, uint64, bool) { return 5, 0, true }
func (badExpected) Key(int) string                    { return "k" }

func TestPrecheckPagination(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		inner := newStore(t, b.cfg)
		tasks := putMany(t, inner, "many/", 2345)
		missing := restore.Task{Src: "many/99999-missing", Size: 1}
		want := append(slices.Clone(tasks), missing)
		want[1500].Size++
		store := faults.Wrap(inner, faults.Options{})
		report, err := restore.Precheck(t.Context(), store, "many/", sources(t, want))
		require.NoError(t, err)
		require.Equal(t, 2345, report.Listed)
		require.Equal(t, 3, report.Pages, "the server's pages of 1000")
		require.Equal(t, 3, store.Calls(faults.OpList))
		require.Equal(t, 2345, report.Found)
		require.Equal(t, []string{missing.Src}, report.Missing)
		require.Equal(t, []string{"many/01500: want 1, got 0"}, report.WrongSize)
	})
}

// TestPrecheckShards: a listing split into shards (prefix+"0" ... prefix+"2") finds
// the same objects as one listing, in parallel.
func TestPrecheckShards(t *testing.T) {
	forEachBackend(t, func(t *testing.T, b backend) {
		inner := newStore(t, b.cfg)
		tasks := putMany(t, inner, "shards/", 2345) // keys shards/00000 ... shards/02344
		missing := restore.Task{Src: "shards/19999", Size: 1}
		want := append(slices.Clone(tasks), missing)
		want[7].Size++
		store := faults.Wrap(inner, faults.Options{})
		report, err := restore.PrecheckWithOptions(t.Context(), store, "shards/", sources(t, want),
			restore.PrecheckOptions{Shards: []string{"0", "1"}, Parallelism: 2})
		require.NoError(t, err)
		require.Equal(t, 2345, report.Listed)
		require.Equal(t, 2345, report.Found)
		require.Equal(t, []string{missing.Src}, report.Missing)
		require.Equal(t, []string{"shards/00007: want 8, got 7"}, report.WrongSize)
		require.Equal(t, 4, store.Calls(faults.OpList), "shard 0: three pages of 1000, 1000 and 345; shard 1: one empty page")
	})
}
