package server_test

import (
	"bytes"
	"context"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/server/fsck"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// TestFsckFindsWhatIsWrong: a clean catalog, bucket and manifest check clean (deep
// too); then each kind of damage, one at a time and put back after: a manifest with
// a flipped byte, truncated or deleted; a data file deleted (reported with the
// snapshot it breaks) or overwritten with other bytes of its size (found by deep
// reads only); an object nothing owns (an orphan, which does not make it unclean).
func TestFsckFindsWhatIsWrong(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl := gcClient(t, c)
	store := c.Bucket.Store
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	_, err = cl.CreateIndex(ctx, client.NewCreateIndexOption("docs", "vec", 101))
	require.NoError(t, err)
	segs := gcGenerate(t, c, cl, "docs", 4, 3, 1)
	build := gcAddBuild(t, cl, store, segs[1].Id, 2)
	snap, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "s1"))
	require.NoError(t, err)
	// A dropped segment the snapshot pins must still be there; an unpinned one need not.
	_, err = cl.DropSegments(ctx, client.NewDropSegmentsOption(segs[0].Id))
	require.NoError(t, err)
	extra := gcGenerate(t, c, cl, "docs", 1, 2, 2)
	_, err = cl.DropSegments(ctx, client.NewDropSegmentsOption(extra[0].Id))
	require.NoError(t, err)

	check := func(deep bool) *fsck.Report {
		t.Helper()
		view := c.Nodes[c.Leader()].FSM().View()
		rep, err := fsck.Check(ctx, view, store, layout.Root(c.Root()), fsck.Options{Deep: deep})
		require.NoError(t, err)
		return rep
	}
	kinds := func(rep *fsck.Report) []string {
		var out []string
		for _, p := range rep.Problems {
			out = append(out, p.Kind)
		}
		return out
	}

	rep := check(true)
	require.True(t, rep.Clean(), "%+v", rep.Problems)
	// 4 segments × 3 files (one dropped, pinned) + 2 build files + 2 files of the
	// dropped unpinned segment, which nothing expects any more.
	require.EqualValues(t, 14, rep.FilesExpected)
	require.EqualValues(t, 14, rep.FilesRead)
	require.Equal(t, 1, rep.ManifestsChecked)
	require.Empty(t, rep.Orphans)

	read := func(key string) []byte { return readObject(t, store, key) }
	put := func(key string, body []byte) { putObject(t, store, key, body) }
	del := func(key string) {
		_, err := store.Delete(ctx, []string{key})
		require.NoError(t, err)
	}

	manifestKey := snap.GetManifestKey()
	good := read(manifestKey)
	for _, tc := range []struct {
		name, kind string
		damage     func()
	}{
		{"manifest byte flipped", fsck.ManifestDamaged, func() {
			b := slices.Clone(good)
			b[len(b)/2] ^= 0x40
			put(manifestKey, b)
		}},
		{"manifest truncated", fsck.ManifestDamaged, func() { put(manifestKey, good[:len(good)-9]) }},
		{"manifest deleted", fsck.ManifestMissing, func() { del(manifestKey) }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.damage()
			defer put(manifestKey, good)
			rep := check(false)
			require.Equal(t, []string{tc.kind}, kinds(rep), "%+v", rep.Problems)
			require.Equal(t, manifestKey, rep.Problems[0].Key)
			require.Equal(t, []uint64{snap.GetId()}, rep.BrokenSnapshots())
		})
	}

	t.Run("data file deleted", func(t *testing.T) {
		f := segs[0].Files[1] // of the dropped segment the snapshot pins
		body := read(f.Key)
		del(f.Key)
		defer put(f.Key, body)
		rep := check(false)
		require.Equal(t, []string{fsck.Missing}, kinds(rep), "%+v", rep.Problems)
		p := rep.Problems[0]
		require.Equal(t, f.Key, p.Key)
		require.Equal(t, []uint64{segs[0].Id}, p.Segments)
		require.Equal(t, []uint64{snap.GetId()}, p.Snapshots)
		require.Contains(t, p.Detail, "data loss")
	})
	t.Run("index build file deleted", func(t *testing.T) {
		f := build.Files[0]
		body := read(f.Key)
		del(f.Key)
		defer put(f.Key, body)
		rep := check(false)
		require.Equal(t, []string{fsck.Missing}, kinds(rep), "%+v", rep.Problems)
		require.Equal(t, []uint64{build.BuildId}, rep.Problems[0].Builds)
	})
	t.Run("data file overwritten, same size", func(t *testing.T) {
		f := segs[2].Files[0]
		body := read(f.Key)
		other := slices.Clone(body)
		other[0] ^= 0xff
		put(f.Key, other)
		defer put(f.Key, body)
		require.True(t, check(false).Clean(), "sizes alone cannot see it")
		rep := check(true)
		require.Equal(t, []string{fsck.ChecksumMismatch}, kinds(rep), "%+v", rep.Problems)
		require.Equal(t, f.Key, rep.Problems[0].Key)
		require.Equal(t, []uint64{snap.GetId()}, rep.Problems[0].Snapshots, "segment 2 is live and the snapshot pins it")
		// Through the API, the reads are shared between the three nodes.
		resp, err := cl.Fsck(ctx, client.NewFsckOption().WithDeep(0, 0))
		require.NoError(t, err)
		require.EqualValues(t, 3, resp.GetReaders())
		require.Empty(t, resp.GetReadersFailed())
		require.EqualValues(t, 14, resp.GetFilesRead())
		require.Len(t, resp.GetProblems(), 1)
		require.Equal(t, fsck.ChecksumMismatch, resp.GetProblems()[0].GetKind())
		require.Equal(t, f.Key, resp.GetProblems()[0].GetKey())
	})
	t.Run("orphan", func(t *testing.T) {
		key := segs[3].Prefix + "stray/object"
		put(key, []byte("nobody's"))
		defer del(key)
		rep := check(false)
		require.True(t, rep.Clean(), "%+v", rep.Problems)
		require.Len(t, rep.Orphans, 1)
		require.Equal(t, key, rep.Orphans[0].Key)
	})
	require.True(t, check(true).Clean())
}

// putObject writes body under key.
func putObject(t testing.TB, store objstore.Store, key string, body []byte) {
	t.Helper()
	_, err := store.Put(context.Background(), key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{})
	require.NoError(t, err)
}
