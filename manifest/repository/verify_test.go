package repository

import (
	"bytes"
	"context"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/objstore"
)

// verifyFixture is a repository with three snapshots of two clusters: s1 and s2 (of
// cluster-a) share two segments' files; s3 is cluster-b's.
type verifyFixture struct {
	store      objstore.Store
	r          *Repository
	s1, s2, s3 snapshot
	distinct   int // distinct data objects referenced
}

func newVerifyFixture(t *testing.T) *verifyFixture {
	t.Helper()
	store := newEmbeddedStore(t)
	r, _, err := Init(t.Context(), store, prefix, "cluster-a", t0, Options{})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(10, 10))
	a := newSource(rng, "cluster-a", 42, 8)
	b := newSource(rng, "cluster-b", 43, 5)
	f := &verifyFixture{store: store, r: r}
	f.s1 = a.export(t, store, r.Keys(), []int{0, 1, 2, 3, 4})
	f.s2 = a.export(t, store, r.Keys(), []int{3, 4, 5, 6, 7})
	f.s3 = b.export(t, store, r.Keys(), []int{0, 1, 2, 3, 4})
	addEntries(t, r, "cluster-a", f.s1.entry, f.s2.entry)
	addEntries(t, r, "cluster-a", f.s3.entry)
	keys := map[string]bool{}
	for _, s := range []snapshot{f.s1, f.s2, f.s3} {
		for k := range s.data {
			keys[k] = true
		}
	}
	f.distinct = len(keys)
	return f
}

// sharedKey is a data key of s1 that s2 needs too; ownKey one of s3 only.
func (f *verifyFixture) sharedKey() string {
	var shared []string
	for k := range f.s1.data {
		if _, ok := f.s2.data[k]; ok {
			shared = append(shared, k)
		}
	}
	slices.Sort(shared)
	return shared[0]
}

func (f *verifyFixture) ownKey() string {
	keys := make([]string, 0, len(f.s3.data))
	for k := range f.s3.data {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys[0]
}

func verify(t *testing.T, r *Repository, deep bool) VerifyReport {
	t.Helper()
	rep, err := r.Verify(t.Context(), VerifyOptions{Deep: deep, Parallelism: 3})
	require.NoError(t, err)
	return rep
}

// TestVerifyClean: an intact repository verifies, shallow and deep, with every count
// right; unreferenced objects and unknown keys are reported, not problems.
func TestVerifyClean(t *testing.T) {
	t.Parallel()
	f := newVerifyFixture(t)
	put(t, f.store, f.r.Keys().Data("cluster-a", "collections/42/segments/9/insert/1/1"), []byte("orphan"))
	put(t, f.store, f.r.Keys().Prefix()+"README", []byte("hello"))
	for _, deep := range []bool{false, true} {
		rep := verify(t, f.r, deep)
		require.True(t, rep.OK(), "%v", rep.Problems)
		require.EqualValues(t, 2, rep.Generation)
		require.Equal(t, 3, rep.Snapshots)
		require.Equal(t, 3, rep.ManifestsVerified)
		require.EqualValues(t, f.distinct, rep.DataObjects)
		require.EqualValues(t, 1, rep.Unreferenced)
		require.EqualValues(t, 6, rep.UnreferencedBytes)
		require.Equal(t, []string{"backups/repo1/README"}, rep.UnknownKeys)
		if deep {
			require.EqualValues(t, f.distinct, rep.DeepChecked)
		} else {
			require.Zero(t, rep.DeepChecked)
		}
	}
}

func requireProblems(t *testing.T, rep VerifyReport, want map[[2]string]string) {
	t.Helper()
	require.False(t, rep.OK())
	require.Equal(t, len(want), rep.ProblemCount, "%v", rep.Problems)
	for _, p := range rep.Problems {
		detail, ok := want[[2]string{p.Snapshot, p.Key}]
		require.True(t, ok, "unexpected problem %v", p)
		require.Contains(t, p.Detail, detail, "%v", p)
		if p.Snapshot != "" {
			require.Contains(t, p.String(), p.Snapshot)
		}
		require.Contains(t, p.String(), p.Key)
	}
}

func TestVerifyMissingDataObject(t *testing.T) {
	t.Parallel()
	f := newVerifyFixture(t)
	key := f.sharedKey()
	require.NoError(t, deleteKeys(f.store, key))
	for _, deep := range []bool{false, true} {
		requireProblems(t, verify(t, f.r, deep), map[[2]string]string{
			{f.s1.entry.ID, key}: "missing",
			{f.s2.entry.ID, key}: "missing",
		})
	}
}

func TestVerifyMissingCluster(t *testing.T) {
	t.Parallel()
	f := newVerifyFixture(t)
	want := map[[2]string]string{}
	for k := range f.s3.data {
		require.NoError(t, deleteKeys(f.store, k))
		want[[2]string{f.s3.entry.ID, k}] = "missing"
	}
	requireProblems(t, verify(t, f.r, false), want)
}

func TestVerifyWrongSize(t *testing.T) {
	t.Parallel()
	f := newVerifyFixture(t)
	key := f.ownKey()
	put(t, f.store, key, append(bytes.Clone(f.s3.data[key]), 'x'))
	for _, deep := range []bool{false, true} {
		requireProblems(t, verify(t, f.r, deep), map[[2]string]string{
			{f.s3.entry.ID, key}: "bytes; the manifest says",
		})
	}
}

func TestVerifyDeepFlippedByte(t *testing.T) {
	t.Parallel()
	f := newVerifyFixture(t)
	key := f.sharedKey()
	data := bytes.Clone(f.s1.data[key])
	data[len(data)/2] ^= 0x04
	put(t, f.store, key, data)
	require.True(t, verify(t, f.r, false).OK(), "same size: only a deep check sees it")
	rep := verify(t, f.r, true)
	requireProblems(t, rep, map[[2]string]string{
		{f.s1.entry.ID, key}: "CRC-32C",
		{f.s2.entry.ID, key}: "CRC-32C",
	})
	require.EqualValues(t, f.distinct-1, rep.DeepChecked)
}

func TestVerifyDamagedManifest(t *testing.T) {
	t.Parallel()
	f := newVerifyFixture(t)
	mkey := f.r.Keys().Manifest(f.s1.entry.ID)
	damaged := bytes.Clone(f.s1.manifest)
	damaged[len(damaged)/2] ^= 0x01
	put(t, f.store, mkey, damaged)
	rep := verify(t, f.r, false)
	requireProblems(t, rep, map[[2]string]string{{f.s1.entry.ID, mkey}: "xxhash64"})
	require.Equal(t, 2, rep.ManifestsVerified)

	// Damaged before it was recorded: the entry's size and xxhash64 match the bad
	// bytes, the manifest's own checks do not.
	e := f.s1.entry
	e.ManifestXXHash64 = xxhash.Sum64(damaged)
	_, err := f.r.Update(t.Context(), "cluster-a", t0, func(ix *Index) error {
		for i := range ix.Snapshots {
			if ix.Snapshots[i].ID == e.ID {
				ix.Snapshots[i] = e
			}
		}
		return nil
	})
	require.NoError(t, err)
	rep = verify(t, f.r, false)
	requireProblems(t, rep, map[[2]string]string{{f.s1.entry.ID, mkey}: "corrupt"})

	require.NoError(t, deleteKeys(f.store, mkey))
	rep = verify(t, f.r, true)
	requireProblems(t, rep, map[[2]string]string{{f.s1.entry.ID, mkey}: "not found"})
}

// TestVerifyRepositoryProblems: a damaged older generation and a missing marker are
// problems of the repository; a damaged latest generation stops Verify with its error.
func TestVerifyRepositoryProblems(t *testing.T) {
	t.Parallel()
	f := newVerifyFixture(t)
	k1 := f.r.Keys().Index(1)
	b := get(t, f.store, k1)
	b[IndexHeaderLen+1] ^= 0x01
	put(t, f.store, k1, b)
	require.NoError(t, deleteKeys(f.store, f.r.Keys().Marker()))
	rep := verify(t, f.r, false)
	require.Equal(t, 2, rep.ProblemCount, "%v", rep.Problems)
	require.Equal(t, "", rep.Problems[0].Snapshot)
	require.Equal(t, f.r.Keys().Marker(), rep.Problems[0].Key)
	require.Equal(t, k1, rep.Problems[1].Key)
	require.Contains(t, rep.Problems[1].Detail, "CRC-32C")

	k2 := f.r.Keys().Index(2)
	b = get(t, f.store, k2)
	put(t, f.store, k2, b[:len(b)-1])
	rep, err := f.r.Verify(t.Context(), VerifyOptions{})
	require.ErrorIs(t, err, ErrCorrupt)
	require.True(t, slices.ContainsFunc(rep.Problems, func(p Problem) bool {
		return p.Key == k2 && strings.Contains(p.Detail, "latest generation")
	}), "%v", rep.Problems)
}

func TestVerifyContextCanceled(t *testing.T) {
	t.Parallel()
	f := newVerifyFixture(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := f.r.Verify(ctx, VerifyOptions{Deep: true})
	require.ErrorIs(t, err, context.Canceled)
}
