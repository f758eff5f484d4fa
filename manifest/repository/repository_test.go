package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/objstore"
)

const prefix = "backups/repo1"

// TestInit: Init creates the marker once; a second Init (same or other cluster)
// opens the first marker; Open reads it; a prefix holding other objects is refused.
func TestInit(t *testing.T) {
	t.Parallel()
	store := newEmbeddedStore(t)
	ctx := t.Context()

	_, err := Open(ctx, store, prefix, Options{})
	require.ErrorIs(t, err, ErrNotARepository)
	require.ErrorIs(t, err, objstore.ErrNotFound)

	r1, created, err := Init(ctx, store, prefix, "cluster-a", t0, Options{})
	require.NoError(t, err)
	require.True(t, created)
	m := r1.Marker()
	require.Equal(t, Marker{Format: FormatName, Version: 1, RepositoryID: m.RepositoryID, CreatedAt: t0, WriterClusterID: "cluster-a"}, m)
	require.True(t, ValidID(m.RepositoryID))
	got, err := DecodeMarker(get(t, store, "backups/repo1/snapkeep-repository"))
	require.NoError(t, err)
	require.Equal(t, m, got)

	r2, created, err := Init(ctx, store, prefix+"/", "cluster-a", t0.Add(time.Hour), Options{})
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, m, r2.Marker())

	r3, created, err := Init(ctx, store, prefix, "cluster-b", t0, Options{})
	require.NoError(t, err)
	require.False(t, created)
	require.Equal(t, "cluster-a", r3.Marker().WriterClusterID, "the first cluster's marker; the caller compares")

	r4, err := Open(ctx, store, prefix, Options{})
	require.NoError(t, err)
	require.Equal(t, m, r4.Marker())
	require.Equal(t, "backups/repo1/", r4.Keys().Prefix())

	put(t, store, "other/some-object", []byte("x"))
	_, _, err = Init(ctx, store, "other", "cluster-a", t0, Options{})
	require.ErrorIs(t, err, ErrNotARepository)
	require.ErrorContains(t, err, "other/some-object")

	_, _, err = Init(ctx, store, "fresh", "a/b", t0, Options{})
	require.Error(t, err, "invalid cluster id")

	put(t, store, "notrepo/snapkeep-repository", []byte(`{"format":"something-else","version":1}`))
	_, err = Open(ctx, store, "notrepo", Options{})
	require.ErrorIs(t, err, ErrNotARepository)
	require.ErrorContains(t, err, "notrepo/snapkeep-repository")
	put(t, store, "newer/snapkeep-repository", []byte(`{"format":"snapkeep-repository","version":2}`))
	_, err = Open(ctx, store, "newer", Options{})
	require.ErrorIs(t, err, ErrUnsupportedVersion)
}

// TestInitRace: clusters initialising one prefix at once agree on one marker.
func TestInitRace(t *testing.T) {
	t.Parallel()
	store := newEmbeddedStore(t)
	checkInitRace(t, store, "race")
}

func checkInitRace(t *testing.T, store objstore.Store, prefix string) {
	const n = 6
	var wg sync.WaitGroup
	markers := make([]Marker, n)
	created := make([]bool, n)
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			r, c, err := Init(context.Background(), store, prefix, fmt.Sprintf("cluster-%d", i), t0, Options{})
			errs[i], created[i] = err, c
			if err == nil {
				markers[i] = r.Marker()
			}
		})
	}
	wg.Wait()
	winners := 0
	for i := range n {
		require.NoError(t, errs[i])
		require.Equal(t, markers[0], markers[i], "one marker for all")
		if created[i] {
			winners++
			require.Equal(t, fmt.Sprintf("cluster-%d", i), markers[i].WriterClusterID)
		}
	}
	require.Equal(t, 1, winners)
}

func TestUpdate(t *testing.T) {
	t.Parallel()
	store := newEmbeddedStore(t)
	ctx := t.Context()
	r, _, err := Init(ctx, store, prefix, "cluster-a", t0, Options{})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(1, 1))

	ix, err := r.Latest(ctx)
	require.NoError(t, err)
	require.Equal(t, &Index{RepositoryID: r.Marker().RepositoryID, Snapshots: []Entry{}}, ix, "generation 0: the empty index")

	es := []Entry{sampleEntry(rng), sampleEntry(rng), sampleEntry(rng)}
	for i := range es {
		es[i].SourceClusterID = "cluster-a"
	}
	ix = addEntries(t, r, "cluster-a", es[2], es[0])
	require.EqualValues(t, 1, ix.Generation)
	require.Equal(t, "cluster-a", ix.WriterClusterID)
	require.Equal(t, t0.Add(2*time.Hour), ix.WrittenAt)
	require.True(t, slices.IsSortedFunc(ix.Snapshots, func(a, b Entry) int { return compareIDs(a.ID, b.ID) }))
	latest, err := r.Latest(ctx)
	require.NoError(t, err)
	require.Equal(t, ix, latest)
	require.Equal(t, []string{"backups/repo1/index/00000000000000000001"}, listAll(t, store, r.Keys().IndexPrefix()))

	e, err := r.Snapshot(ctx, es[2].ID)
	require.NoError(t, err)
	require.Equal(t, es[2].ID, e.ID)
	_, err = r.Snapshot(ctx, es[1].ID)
	require.ErrorIs(t, err, ErrNotFound)
	require.ErrorContains(t, err, es[1].ID)

	// A change that changes nothing writes nothing.
	same := addEntries(t, r, "cluster-a", es[0])
	require.Equal(t, ix, same)
	require.Len(t, listAll(t, store, r.Keys().IndexPrefix()), 1)

	// The change's error is returned; nothing is written.
	boom := errors.New("boom")
	_, err = r.Update(ctx, "cluster-a", t0, func(*Index) error { return boom })
	require.ErrorIs(t, err, boom)
	// An invalid result is refused.
	_, err = r.Update(ctx, "cluster-a", t0, func(ix *Index) error {
		ix.Snapshots = append(ix.Snapshots, Entry{ID: "not-a-uuid"})
		return nil
	})
	require.ErrorContains(t, err, "not a UUID")
	require.Len(t, listAll(t, store, r.Keys().IndexPrefix()), 1)

	// Retention: the newest KeepGenerations stay.
	for i := range 8 {
		if i%2 == 0 {
			addEntries(t, r, "cluster-a", es[1])
		} else {
			removeEntries(t, r, "cluster-a", es[1].ID)
		}
	}
	ix, err = r.Latest(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 9, ix.Generation)
	require.Len(t, ix.Snapshots, 2)
	require.Equal(t, []string{
		r.Keys().Index(5), r.Keys().Index(6), r.Keys().Index(7), r.Keys().Index(8), r.Keys().Index(9),
	}, listAll(t, store, r.Keys().IndexPrefix()))
}

func compareIDs(a, b string) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// TestUpdateRace: updaters of one cluster racing (goroutines, separate Repository
// values) all land: no lost update, one generation each.
func TestUpdateRace(t *testing.T) {
	t.Parallel()
	store := newEmbeddedStore(t)
	checkUpdateRace(t, store, prefix)
}

func checkUpdateRace(t *testing.T, store objstore.Store, prefix string) {
	ctx := context.Background()
	_, _, err := Init(ctx, store, prefix, "cluster-a", t0, Options{})
	require.NoError(t, err)
	const n = 8
	rng := rand.New(rand.NewPCG(2, 2))
	es := make([]Entry, n)
	for i := range es {
		es[i] = sampleEntry(rng)
	}
	var wg sync.WaitGroup
	errs := make([]error, n)
	var calls sync.Map
	for i := range n {
		wg.Go(func() {
			r, err := Open(ctx, store, prefix, Options{KeepGenerations: 100})
			if err != nil {
				errs[i] = err
				return
			}
			_, errs[i] = r.Update(ctx, "cluster-a", t0, func(ix *Index) error {
				v, _ := calls.LoadOrStore(i, new(int))
				*v.(*int)++
				ix.Snapshots = append(ix.Snapshots, es[i])
				return nil
			})
		})
	}
	wg.Wait()
	for _, err := range errs {
		require.NoError(t, err)
	}
	r, err := Open(ctx, store, prefix, Options{})
	require.NoError(t, err)
	ix, err := r.Latest(ctx)
	require.NoError(t, err)
	require.EqualValues(t, n, ix.Generation, "each update wrote exactly one generation")
	require.Len(t, ix.Snapshots, n)
	for _, e := range es {
		_, ok := ix.Find(e.ID)
		require.True(t, ok, "entry %s lost", e.ID)
	}
	retried := 0
	calls.Range(func(_, v any) bool {
		retried += *v.(*int) - 1
		return true
	})
	t.Logf("%d updaters, %d retries", n, retried)
}

// TestUpdateOtherWriter: another cluster's update is refused, naming both clusters and
// the way out, and changes nothing; a read-only marker refuses everyone.
func TestUpdateOtherWriter(t *testing.T) {
	t.Parallel()
	store := newEmbeddedStore(t)
	checkOtherWriter(t, store, prefix)
}

func checkOtherWriter(t *testing.T, store objstore.Store, prefix string) {
	ctx := context.Background()
	r, _, err := Init(ctx, store, prefix, "cluster-a", t0, Options{})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(3, 3))

	// Generation 0: the marker decides.
	_, err = r.Update(ctx, "cluster-b", t0, func(ix *Index) error {
		ix.Snapshots = append(ix.Snapshots, sampleEntry(rng))
		return nil
	})
	require.ErrorIs(t, err, ErrOtherWriter)
	require.ErrorContains(t, err, `"cluster-a"`)
	require.ErrorContains(t, err, `"cluster-b"`)
	require.ErrorContains(t, err, "read-only")
	require.Empty(t, listAll(t, store, r.Keys().IndexPrefix()))

	before := addEntries(t, r, "cluster-a", sampleEntry(rng))
	_, err = r.Update(ctx, "cluster-b", t0, func(ix *Index) error {
		ix.Snapshots = nil
		return nil
	})
	require.ErrorIs(t, err, ErrOtherWriter)
	after, err := r.Latest(ctx)
	require.NoError(t, err)
	require.Equal(t, before, after, "nothing lost")

	// A generation written by another cluster (the marker says a): refused too.
	foreign := before.clone()
	foreign.Generation = 2
	foreign.WriterClusterID = "cluster-c"
	b, err := EncodeIndex(foreign)
	require.NoError(t, err)
	put(t, store, r.Keys().Index(2), b)
	_, err = r.Update(ctx, "cluster-a", t0, func(ix *Index) error { ix.Snapshots = nil; return nil })
	require.ErrorIs(t, err, ErrOtherWriter)
	require.ErrorContains(t, err, "index generation 2")
	require.ErrorContains(t, err, `"cluster-c"`)

	// A marker made read-only refuses its former writer.
	m := r.Marker()
	m.WriterClusterID = ""
	mb, err := encodeMarker(m)
	require.NoError(t, err)
	put(t, store, r.Keys().Marker(), mb)
	_, err = r.Update(ctx, "cluster-a", t0, func(ix *Index) error { ix.Snapshots = nil; return nil })
	require.ErrorIs(t, err, ErrOtherWriter)
	require.ErrorContains(t, err, "read-only")
	ix, err := r.Latest(ctx)
	require.NoError(t, err)
	require.Len(t, ix.Snapshots, 1)
}

// TestStrayIndexKeys: keys under P/index/ that are not generations are ignored by
// Latest and Update and reported by Verify; Collect leaves them.
func TestStrayIndexKeys(t *testing.T) {
	t.Parallel()
	store := newEmbeddedStore(t)
	ctx := t.Context()
	r, _, err := Init(ctx, store, prefix, "cluster-a", t0, Options{KeepGenerations: 1})
	require.NoError(t, err)
	strays := []string{
		"backups/repo1/index/garbage",
		"backups/repo1/index/99999999999999999999",
		"backups/repo1/index/00000000000000000007.tmp",
	}
	for _, k := range strays {
		put(t, store, k, []byte("not an index"))
	}
	ix, err := r.Latest(ctx)
	require.NoError(t, err)
	require.Zero(t, ix.Generation)
	rng := rand.New(rand.NewPCG(4, 4))
	addEntries(t, r, "cluster-a", sampleEntry(rng))
	addEntries(t, r, "cluster-a", sampleEntry(rng))
	ix, err = r.Latest(ctx)
	require.NoError(t, err)
	require.EqualValues(t, 2, ix.Generation)

	rep, err := r.Verify(ctx, VerifyOptions{})
	require.NoError(t, err)
	for _, k := range strays {
		require.Contains(t, rep.UnknownKeys, k)
	}
	crep, err := r.Collect(ctx, CollectOptions{})
	require.Error(t, err, "the sample entries have no manifests: Collect refuses")
	require.Zero(t, crep.Deleted)
	removeEntries(t, r, "cluster-a", ix.Snapshots[0].ID, ix.Snapshots[1].ID)
	crep, err = r.Collect(ctx, CollectOptions{})
	require.NoError(t, err)
	require.EqualValues(t, len(strays), crep.UnknownCount)
	keys := listAll(t, store, r.Keys().IndexPrefix())
	for _, k := range strays {
		require.Contains(t, keys, k)
	}
}

// TestLatestCorrupt: a damaged newest generation is an error naming it; Latest does
// not fall back to an older one, and Update writes nothing.
func TestLatestCorrupt(t *testing.T) {
	t.Parallel()
	store := newEmbeddedStore(t)
	ctx := t.Context()
	r, _, err := Init(ctx, store, prefix, "cluster-a", t0, Options{})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(5, 5))
	addEntries(t, r, "cluster-a", sampleEntry(rng))
	addEntries(t, r, "cluster-a", sampleEntry(rng))
	b := get(t, store, r.Keys().Index(2))
	b[len(b)-1] ^= 1
	put(t, store, r.Keys().Index(2), b)
	_, err = r.Latest(ctx)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, r.Keys().Index(2))
	_, err = r.Update(ctx, "cluster-a", t0, func(ix *Index) error { ix.Snapshots = nil; return nil })
	require.ErrorIs(t, err, ErrCorrupt)
	require.Len(t, listAll(t, store, r.Keys().IndexPrefix()), 2)

	// An index of another repository is refused too.
	other := sampleIndex(rng, 3, 1)
	ob, err := EncodeIndex(other)
	require.NoError(t, err)
	put(t, store, r.Keys().Index(3), ob)
	_, err = r.Latest(ctx)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "belongs to repository")
}

// TestManifestAndFiles: OpenManifest and Files give back what an export wrote;
// a manifest whose size, bytes or content disagree with the entry is refused, naming
// the snapshot and the key.
func TestManifestAndFiles(t *testing.T) {
	t.Parallel()
	store := newEmbeddedStore(t)
	ctx := t.Context()
	r, _, err := Init(ctx, store, prefix, "cluster-a", t0, Options{})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(6, 6))
	src := newSource(rng, "cluster-a", 42, 6)
	snap := src.export(t, store, r.Keys(), []int{0, 2, 3, 5})
	addEntries(t, r, "cluster-a", snap.entry)

	e, err := r.Snapshot(ctx, snap.entry.ID)
	require.NoError(t, err)
	require.Equal(t, snap.entry, e)
	require.Equal(t, "snap-101", e.Name)
	require.Equal(t, "coll-42", e.Collection)
	require.Equal(t, LayoutSnapkeep, e.Layout)
	require.Equal(t, t0, e.CreatedAt)
	require.Equal(t, map[string]string{"tier": "gold"}, e.Labels)

	rd, err := r.OpenManifest(ctx, e)
	require.NoError(t, err)
	require.EqualValues(t, 101, rd.Header().GetSnapshotId())

	got := map[string]File{}
	require.NoError(t, r.Files(ctx, e, func(f File) error {
		require.NotContains(t, got, f.Key)
		got[f.Key] = f
		return nil
	}))
	require.Len(t, got, len(snap.data))
	require.EqualValues(t, len(snap.data), e.Files)
	for key, data := range snap.data {
		f, ok := got[key]
		require.True(t, ok, key)
		require.Equal(t, r.Keys().Data("cluster-a", f.Rel), key)
		require.EqualValues(t, len(data), f.Size)
		require.Equal(t, crc32c(data), f.CRC32C)
	}
	stop := errors.New("stop")
	n := 0
	require.ErrorIs(t, r.Files(ctx, e, func(File) error { n++; return stop }), stop)
	require.Equal(t, 1, n, "fn's error stops the walk and is returned as is")

	mkey := r.Keys().Manifest(e.ID)
	check := func(what string, wantNotFound bool) {
		_, err := r.OpenManifest(ctx, e)
		if wantNotFound {
			require.ErrorIs(t, err, objstore.ErrNotFound, what)
		} else {
			require.ErrorIs(t, err, ErrCorrupt, what)
		}
		require.ErrorContains(t, err, e.ID, what)
		require.ErrorContains(t, err, mkey, what)
		require.Error(t, r.Files(ctx, e, func(File) error { return nil }), what)
	}
	flipped := bytes.Clone(snap.manifest)
	flipped[len(flipped)/2] ^= 0x10
	put(t, store, mkey, flipped)
	check("flipped byte", false)
	put(t, store, mkey, snap.manifest[:len(snap.manifest)-1])
	check("truncated", false)
	require.NoError(t, deleteKeys(store, mkey))
	check("missing", true)
	put(t, store, mkey, snap.manifest)

	// An entry that disagrees with its (intact) manifest.
	bad := e
	bad.Rows++
	_, err = r.OpenManifest(ctx, bad)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "rows")
	bad = e
	bad.SourceSnapshotID++
	_, err = r.OpenManifest(ctx, bad)
	require.ErrorIs(t, err, ErrCorrupt)
	require.ErrorContains(t, err, "snapshot 101")
}

func deleteKeys(store objstore.Store, keys ...string) error {
	res, err := store.Delete(context.Background(), keys)
	if err != nil {
		return err
	}
	for k, err := range res.Failed {
		return fmt.Errorf("%s: %w", k, err)
	}
	return nil
}

// ignoringStore is a server that ignores If-None-Match, with a hook run after each
// Put (to play a concurrent writer).
type ignoringStore struct {
	objstore.Store
	afterPut func(key string)
}

func (s *ignoringStore) Put(ctx context.Context, key string, body io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	opts.IfNoneMatch = false
	info, err := s.Store.Put(ctx, key, body, size, opts)
	if err == nil && s.afterPut != nil {
		s.afterPut(key)
	}
	return info, err
}

// TestUpdateOverwrittenGeneration: on a server ignoring If-None-Match, a generation
// overwritten by another writer right after the put is noticed (ETag) and the update
// is redone on top of the other writer's generation: nothing is lost.
func TestUpdateOverwrittenGeneration(t *testing.T) {
	t.Parallel()
	ctx := t.Context()
	store := &ignoringStore{Store: newEmbeddedStore(t)}
	r, _, err := Init(ctx, store, prefix, "cluster-a", t0, Options{})
	require.NoError(t, err)
	rng := rand.New(rand.NewPCG(12, 12))
	ours, theirs := sampleEntry(rng), sampleEntry(rng)
	overwritten := false
	store.afterPut = func(key string) {
		if key != r.Keys().Index(1) || overwritten {
			return
		}
		overwritten = true
		other := &Index{RepositoryID: r.Marker().RepositoryID, Generation: 1, WriterClusterID: "cluster-a", WrittenAt: t0, Snapshots: []Entry{theirs}}
		b, err := EncodeIndex(other)
		require.NoError(t, err)
		put(t, store.Store, key, b)
	}
	ix := addEntries(t, r, "cluster-a", ours)
	require.True(t, overwritten)
	require.EqualValues(t, 2, ix.Generation)
	_, ok := ix.Find(ours.ID)
	require.True(t, ok)
	_, ok = ix.Find(theirs.ID)
	require.True(t, ok, "the other writer's update is kept")
}
