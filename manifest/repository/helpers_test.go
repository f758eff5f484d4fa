package repository

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"slices"
	"sort"
	"testing"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/manifest/manifestpb"
	"github.com/snapkeep/snapkeep/objstore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// t0 is the tests' clock: times are passed in, never read.
var t0 = time.Date(2025, 3, 14, 15, 9, 26, 535897932, time.UTC)

// newEmbeddedStore starts an in-memory embedded S3 server for one test.
func newEmbeddedStore(t *testing.T) objstore.Store {
	t.Helper()
	e, err := objstore.StartEmbedded(t.Context(), objstore.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return newS3(t, e.Config())
}

func newS3(t *testing.T, cfg objstore.S3Config) objstore.Store {
	t.Helper()
	s, err := objstore.NewS3(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func put(t *testing.T, store objstore.Store, key string, data []byte) {
	t.Helper()
	_, err := store.Put(context.Background(), key, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
	require.NoError(t, err, "put %q", key)
}

func get(t *testing.T, store objstore.Store, key string) []byte {
	t.Helper()
	rc, _, err := store.Get(context.Background(), key)
	require.NoError(t, err, "get %q", key)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

// listAll returns every key under prefix, sorted.
func listAll(t *testing.T, store objstore.Store, prefix string) []string {
	t.Helper()
	var keys []string
	token := ""
	for {
		page, err := store.List(context.Background(), prefix, token, 0)
		require.NoError(t, err)
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
		}
		if page.NextToken == "" {
			return keys
		}
		token = page.NextToken
	}
}

func crc32c(b []byte) uint32 { return crc32.Checksum(b, crc32.MakeTable(crc32.Castagnoli)) }

// testSegment is a segment of a source collection: its files (relative to the
// segment's or build's prefix) and their contents.
type testSegment struct {
	id       uint64
	files    []filelist.Entry
	build    []filelist.Entry // one index build's files; may be empty
	buildID  uint64
	contents map[string][]byte // by Rel (root-relative key)
}

// source is a source cluster's collection: a pool of segments that snapshots pick
// from, so snapshots share files.
type source struct {
	cluster    string
	collection uint64
	segments   []*testSegment
	nextSnap   uint64
}

const testIndexID = 7

func newSource(rng *rand.Rand, cluster string, collection uint64, nsegs int) *source {
	s := &source{cluster: cluster, collection: collection, nextSnap: 100}
	for i := range nsegs {
		seg := &testSegment{id: uint64(1000 + i*3), contents: map[string][]byte{}}
		segPrefix := fmt.Sprintf("collections/%d/segments/%d/", collection, seg.id)
		for j := range 1 + rng.IntN(4) {
			data := make([]byte, 1+rng.IntN(64))
			for k := range data {
				data[k] = byte(rng.Uint32())
			}
			rel := fmt.Sprintf("insert/101/%d", 400000+j)
			seg.files = append(seg.files, filelist.Entry{Key: rel, Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldID: 101, Size: uint64(len(data)), CRC32C: crc32c(data)})
			seg.contents[segPrefix+rel] = data
		}
		if rng.IntN(2) == 0 {
			seg.buildID = 5000 + seg.id
			data := []byte(fmt.Sprintf("index of segment %d", seg.id))
			seg.build = append(seg.build, filelist.Entry{Key: "HNSW_0", Kind: fsmpb.FileKind_FILE_KIND_INDEX, FieldID: 101, Size: uint64(len(data)), CRC32C: crc32c(data)})
			seg.contents[fmt.Sprintf("%sindex/%d/HNSW_0", segPrefix, seg.buildID)] = data
		}
		s.segments = append(s.segments, seg)
	}
	return s
}

// snapshot is an exported snapshot as the tests know it.
type snapshot struct {
	entry    Entry
	manifest []byte
	data     map[string][]byte // full data key → content
}

// export writes the data objects and the manifest of a snapshot of segs (indexes into
// the source's pool) and returns its entry (not yet in the index).
func (s *source) export(t *testing.T, store objstore.Store, keys Keys, segs []int) snapshot {
	t.Helper()
	s.nextSnap++
	hdr := &manifestpb.Header{
		SnapshotId: s.nextSnap, SnapshotName: fmt.Sprintf("snap-%d", s.nextSnap),
		CollectionId: s.collection, CollectionName: fmt.Sprintf("coll-%d", s.collection), DatabaseId: 1, DatabaseName: "default",
		CreatedAt: t0.UnixNano(), Labels: map[string]string{"tier": "gold"}, Description: "nightly",
		Partitions: []*manifestpb.Partition{{Id: 1, Name: "_default"}},
		Indexes:    []*manifestpb.IndexDef{{Id: testIndexID, Name: "vec", FieldId: 101}},
	}
	segs = slices.Clone(segs)
	sort.Ints(segs)
	segs = slices.Compact(segs)
	var buf bytes.Buffer
	w, err := manifest.NewWriter(&buf, hdr, manifest.WriterOptions{BlockSize: 200})
	require.NoError(t, err)
	snap := snapshot{data: map[string][]byte{}}
	for _, i := range segs {
		seg := s.segments[i]
		files, err := filelist.Encode(seg.files)
		require.NoError(t, err)
		ms := manifest.Segment{ID: seg.id, PartitionID: 1, RowCount: int64(len(seg.files)) * 10, Files: files}
		if len(seg.build) > 0 {
			bf, err := filelist.Encode(seg.build)
			require.NoError(t, err)
			ms.IndexBuilds = []manifest.IndexBuild{{BuildID: seg.buildID, IndexID: testIndexID, Files: bf}}
		}
		require.NoError(t, w.Add(&ms))
		for rel, data := range seg.contents {
			snap.data[keys.Data(s.cluster, rel)] = data
		}
	}
	res, err := w.Close()
	require.NoError(t, err)
	snap.manifest = buf.Bytes()
	rd, err := manifest.Open(bytes.NewReader(snap.manifest), res.Size)
	require.NoError(t, err)
	id := NewID()
	snap.entry = NewEntry(rd, id, s.cluster, res.Size, res.Checksum, t0.Add(time.Hour))
	require.Equal(t, xxhash.Sum64(snap.manifest), snap.entry.ManifestXXHash64)
	for k, data := range snap.data {
		put(t, store, k, data)
	}
	put(t, store, keys.Manifest(id), snap.manifest)
	return snap
}

// addEntries adds entries to the index (one update).
func addEntries(t *testing.T, r *Repository, writer string, es ...Entry) *Index {
	t.Helper()
	ix, err := r.Update(context.Background(), writer, t0.Add(2*time.Hour), func(ix *Index) error {
		for _, e := range es {
			if _, ok := ix.Find(e.ID); !ok {
				ix.Snapshots = append(ix.Snapshots, e)
			}
		}
		return nil
	})
	require.NoError(t, err)
	return ix
}

// removeEntries removes entries from the index (one update).
func removeEntries(t *testing.T, r *Repository, writer string, ids ...string) *Index {
	t.Helper()
	ix, err := r.Update(context.Background(), writer, t0.Add(3*time.Hour), func(ix *Index) error {
		ix.Snapshots = slices.DeleteFunc(ix.Snapshots, func(e Entry) bool { return slices.Contains(ids, e.ID) })
		return nil
	})
	require.NoError(t, err)
	return ix
}

// sampleEntry is a valid entry with made-up values.
func sampleEntry(rng *rand.Rand) Entry {
	id := NewID()
	e := Entry{
		ID: id, Name: fmt.Sprintf("snap-%d ✓", rng.IntN(1000)), Database: "default", Collection: "docs",
		CollectionID: rng.Uint64(), SourceClusterID: []string{"cluster-a", "cluster_b.2", "c"}[rng.IntN(3)],
		SourceSnapshotID: rng.Uint64(), Layout: []string{LayoutSnapkeep, LayoutMilvus}[rng.IntN(2)],
		CreatedAt: t0.Add(time.Duration(rng.Int64N(1 << 50))), ExportedAt: t0.Add(time.Duration(rng.Int64N(1 << 50))),
		ManifestKey: ManifestRel(id), ManifestSize: 1 + rng.Int64N(MaxManifestSize), ManifestXXHash64: rng.Uint64(),
		Segments: rng.Uint64N(1 << 20), Rows: rng.Int64N(1 << 60), Files: rng.Uint64N(1 << 30), Bytes: rng.Uint64(),
		Description: []string{"", "nightly", "quotes \" and \\ and \n"}[rng.IntN(3)],
	}
	if rng.IntN(2) == 0 {
		e.Labels = map[string]string{"team": "search", "k": fmt.Sprint(rng.IntN(9))}
	}
	return e
}

// sampleIndex is a valid index of n entries.
func sampleIndex(rng *rand.Rand, gen uint64, n int) *Index {
	ix := &Index{RepositoryID: NewID(), Generation: gen, WriterClusterID: "cluster-a", WrittenAt: t0, Snapshots: []Entry{}}
	for range n {
		ix.Snapshots = append(ix.Snapshots, sampleEntry(rng))
	}
	sortEntries(ix.Snapshots)
	return ix
}
