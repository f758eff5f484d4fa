package repository

import (
	"context"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"

	"github.com/snapkeep/snapkeep/objstore"
)

func candidateKeys(rep CollectReport) []string {
	keys := make([]string, len(rep.Candidates))
	for i, c := range rep.Candidates {
		keys[i] = c.Key
	}
	return keys
}

// TestCollectModel: random snapshots of two clusters sharing files, garbage objects,
// random removals of entries and random protected keys. Collect never deletes a
// referenced or protected key, deletes every other unreferenced one (grace 0), a dry
// run lists exactly what the real run then deletes, and once every entry is gone only
// the marker and the latest index generation remain.
func TestCollectModel(t *testing.T) {
	t.Parallel()
	for seed := range uint64(6) {
		t.Run(fmt.Sprint("seed=", seed), func(t *testing.T) {
			t.Parallel()
			collectModel(t, seed)
		})
	}
}

func collectModel(t *testing.T, seed uint64) {
	ctx := t.Context()
	rng := rand.New(rand.NewPCG(seed, 99))
	store := newEmbeddedStore(t)
	// Updates keep 50 generations; Collect keeps fewer, so it has old ones to delete.
	r, _, err := Init(ctx, store, prefix, "cluster-a", t0, Options{KeepGenerations: 50})
	require.NoError(t, err)
	keys := r.Keys()
	sources := []*source{newSource(rng, "cluster-a", 42, 6+rng.IntN(6)), newSource(rng, "cluster-b", 43, 6+rng.IntN(6))}

	var snaps []snapshot
	for range 3 + rng.IntN(5) {
		src := sources[rng.IntN(len(sources))]
		var segs []int
		for range 1 + rng.IntN(len(src.segments)) {
			segs = append(segs, rng.IntN(len(src.segments)))
		}
		s := src.export(t, store, keys, segs)
		snaps = append(snaps, s)
		addEntries(t, r, "cluster-a", s.entry)
	}
	// Garbage: data objects nothing references, an orphan manifest.
	for i := range 1 + rng.IntN(5) {
		c := sources[rng.IntN(len(sources))].cluster
		put(t, store, keys.Data(c, fmt.Sprintf("collections/9/segments/%d/insert/1/1", i+1)), []byte("garbage"))
	}
	put(t, store, keys.Manifest(NewID()), []byte("orphan manifest"))

	// Remove a random subset of the entries, one update each.
	live := map[string]snapshot{}
	for _, s := range snaps {
		live[s.entry.ID] = s
	}
	for _, s := range snaps {
		if rng.IntN(2) == 0 {
			removeEntries(t, r, "cluster-a", s.entry.ID)
			delete(live, s.entry.ID)
		}
	}
	ix, err := r.Latest(ctx)
	require.NoError(t, err)
	require.Len(t, ix.Snapshots, len(live))

	referenced := map[string]bool{}
	for _, s := range live {
		referenced[keys.Manifest(s.entry.ID)] = true
		for k := range s.data {
			referenced[k] = true
		}
	}
	before := listAll(t, store, keys.Prefix())
	protected := map[string]bool{}
	for _, k := range before {
		if rng.IntN(5) == 0 {
			protected[k] = true
		}
	}
	keep := 1 + rng.IntN(4)
	var want []string
	for _, k := range before {
		info, _ := keys.Parse(k)
		switch {
		case protected[k]:
		case info.Kind == KeyIndex && info.Generation+uint64(keep) <= ix.Generation:
			want = append(want, k)
		case (info.Kind == KeyData || info.Kind == KeyManifest) && !referenced[k]:
			want = append(want, k)
		}
	}
	opts := CollectOptions{Protected: func(k string) bool { return protected[k] }, KeepGenerations: keep, MaxListed: 1 << 20}

	// With a grace period covering everything, only old generations go.
	young := opts
	young.DryRun, young.Grace, young.Now = true, 24*time.Hour, time.Now()
	yrep, err := r.Collect(ctx, young)
	require.NoError(t, err)
	for _, c := range yrep.Candidates {
		require.Equal(t, KeyIndex, c.Kind, c.Key)
	}

	dry := opts
	dry.DryRun = true
	drep, err := r.Collect(ctx, dry)
	require.NoError(t, err)
	require.Equal(t, want, candidateKeys(drep))
	require.EqualValues(t, len(want), drep.CandidateCount)
	require.Zero(t, drep.Deleted)
	require.Equal(t, before, listAll(t, store, keys.Prefix()), "a dry run deletes nothing")
	require.Equal(t, yrep.Young+uint64(len(yrep.Candidates)), drep.CandidateCount, "grace kept exactly the data and manifests")

	rep, err := r.Collect(ctx, opts)
	require.NoError(t, err)
	require.Equal(t, candidateKeys(drep), candidateKeys(rep), "the dry run listed exactly what the real run deleted")
	require.EqualValues(t, len(want), rep.Deleted)
	require.Equal(t, drep.CandidateBytes, rep.DeletedBytes)
	require.Zero(t, rep.ErrorCount)
	require.EqualValues(t, ix.Generation, rep.Generation)
	t.Logf("%d snapshots, %d live, %d objects, %d protected, %d deleted (%d index generations kept)",
		len(snaps), len(live), len(before), rep.Protected, rep.Deleted, keep)

	after := listAll(t, store, keys.Prefix())
	remaining := map[string]bool{}
	for _, k := range after {
		remaining[k] = true
	}
	for k := range referenced {
		require.True(t, remaining[k], "referenced key %s deleted", k)
	}
	for k := range protected {
		require.True(t, remaining[k], "protected key %s deleted", k)
	}
	for _, k := range want {
		require.False(t, remaining[k], "candidate %s still there", k)
	}
	require.Len(t, after, len(before)-len(want))
	vrep, err := r.Verify(ctx, VerifyOptions{Deep: true})
	require.NoError(t, err)
	require.True(t, vrep.OK(), "%v", vrep.Problems)

	// A second run finds nothing more.
	again, err := r.Collect(ctx, opts)
	require.NoError(t, err)
	require.Zero(t, again.CandidateCount)

	// Every entry gone: only the marker and the latest generation remain.
	final := removeEntries(t, r, "cluster-a", slices.Collect(maps.Keys(live))...)
	require.Empty(t, final.Snapshots)
	_, err = r.Collect(ctx, CollectOptions{KeepGenerations: 1})
	require.NoError(t, err)
	require.Equal(t, []string{keys.Index(final.Generation), keys.Marker()}, listAll(t, store, keys.Prefix()))
}

// TestCollectSparesNewEntries: an entry added while Collect runs (here: from the
// Protected callback, between the listing and the deletes) keeps what it references.
func TestCollectSparesNewEntries(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := newEmbeddedStore(t)
	r, _, err := Init(ctx, store, prefix, "cluster-a", t0, Options{})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(7, 7))
	src := newSource(rng, "cluster-a", 42, 4)
	late := src.export(t, store, r.Keys(), []int{0, 1, 2, 3}) // written, not yet in the index
	added := false
	rep, err := r.Collect(ctx, CollectOptions{Protected: func(string) bool {
		if !added {
			added = true
			addEntries(t, r, "cluster-a", late.entry)
		}
		return false
	}})
	require.NoError(t, err)
	require.True(t, added)
	require.EqualValues(t, len(late.data)+1, rep.Spared)
	require.Zero(t, rep.CandidateCount)
	vrep, err := r.Verify(ctx, VerifyOptions{Deep: true})
	require.NoError(t, err)
	require.True(t, vrep.OK(), "%v", vrep.Problems)
}

// TestCollectRefusesUnknownReferences: a referenced manifest that cannot be read
// stops Collect before it deletes anything.
func TestCollectRefusesUnknownReferences(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := newEmbeddedStore(t)
	r, _, err := Init(ctx, store, prefix, "cluster-a", t0, Options{})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(8, 8))
	src := newSource(rng, "cluster-a", 42, 4)
	s := src.export(t, store, r.Keys(), []int{0, 1})
	addEntries(t, r, "cluster-a", s.entry)
	put(t, store, r.Keys().Data("cluster-a", "garbage"), []byte("x"))
	require.NoError(t, deleteKeys(store, r.Keys().Manifest(s.entry.ID)))
	before := listAll(t, store, r.Keys().Prefix())
	rep, err := r.Collect(ctx, CollectOptions{})
	require.ErrorIs(t, err, objstore.ErrNotFound)
	require.ErrorContains(t, err, s.entry.ID)
	require.ErrorContains(t, err, "deleting nothing")
	require.Zero(t, rep.Deleted)
	require.Equal(t, before, listAll(t, store, r.Keys().Prefix()))
}

func TestCollectContextCanceled(t *testing.T) {
	t.Parallel()
	store := newEmbeddedStore(t)
	r, _, err := Init(t.Context(), store, prefix, "cluster-a", t0, Options{})
	require.NoError(t, err)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err = r.Collect(ctx, CollectOptions{})
	require.ErrorIs(t, err, context.Canceled)
}

// recordingStore records the size of every Delete.
type recordingStore struct {
	objstore.Store
	mu      sync.Mutex
	deletes []int
}

func (s *recordingStore) Delete(ctx context.Context, keys []string) (objstore.DeleteResult, error) {
	s.mu.Lock()
	s.deletes = append(s.deletes, len(keys))
	s.mu.Unlock()
	return s.Store.Delete(ctx, keys)
}

// TestCollectBatches: more garbage than one DeleteObjects takes is deleted in batches
// of at most objstore.MaxDeleteBatch keys.
func TestCollectBatches(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := &recordingStore{Store: newEmbeddedStore(t)}
	r, _, err := Init(ctx, store, prefix, "cluster-a", t0, Options{})
	require.NoError(t, err)
	const n = 2*objstore.MaxDeleteBatch + 17
	var g errgroup.Group
	g.SetLimit(16)
	for i := range n {
		g.Go(func() error {
			_, err := store.Put(ctx, r.Keys().Data("cluster-a", fmt.Sprintf("garbage/%05d", i)), strings.NewReader("x"), 1, objstore.PutOptions{})
			return err
		})
	}
	require.NoError(t, g.Wait())
	rep, err := r.Collect(ctx, CollectOptions{MaxListed: 10})
	require.NoError(t, err)
	require.EqualValues(t, n, rep.Deleted)
	require.EqualValues(t, n, rep.CandidateCount)
	require.Len(t, rep.Candidates, 10)
	require.Equal(t, []int{objstore.MaxDeleteBatch, objstore.MaxDeleteBatch, 17}, store.deletes)
	require.Equal(t, []string{r.Keys().Marker()}, listAll(t, store, r.Keys().Prefix()))
}
