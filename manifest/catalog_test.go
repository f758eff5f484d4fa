package manifest

import (
	"cmp"
	"fmt"
	"maps"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/manifest/manifestpb"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// The tests take their file lists from a real FSM — flushed segments and index builds
// applied as commands — so they exercise the one file-list codec the project has,
// exactly as the manifest writer will meet it.

// catalog drives an FSM directly (no Raft).
type catalog struct {
	tb    testing.TB
	f     *fsm.FSM
	index uint64
	now   int64
}

func newCatalog(tb testing.TB) *catalog {
	return &catalog{tb: tb, f: fsm.New(nil), now: 1_700_000_000_000_000_000}
}

func (c *catalog) apply(cmd, resp proto.Message) {
	c.tb.Helper()
	data, err := fsm.EncodeCommand("", c.now, cmd)
	require.NoError(c.tb, err)
	c.index++
	c.now += 1000
	res := c.f.Apply(&raft.Log{Index: c.index, Term: 1, Type: raft.LogCommand, Data: data}).(*fsm.ApplyResult)
	require.NoError(c.tb, res.Err(), "%T", cmd)
	if resp != nil {
		require.NoError(c.tb, proto.Unmarshal(res.Result.Response, resp))
	}
}

// collection creates a collection with extra partitions and indexes (name → field).
func (c *catalog) collection(name string, partitions []string, indexes map[string]int64) *fsmpb.Collection {
	c.tb.Helper()
	c.apply(&fsmpb.CreateCollection{
		Name: name, Schema: []byte("schema of " + name), Partitions: partitions, Description: "collection " + name,
		Properties: map[string]string{"collection.ttl.seconds": "86400", "mmap.enabled": "true"},
	}, nil)
	for _, ix := range slices.Sorted(maps.Keys(indexes)) {
		c.apply(&fsmpb.CreateIndex{Collection: name, Name: ix, FieldId: indexes[ix], Params: map[string]string{"index_type": "HNSW", "M": "16"}}, nil)
	}
	coll, _, err := c.f.View().Collection("", name)
	require.NoError(c.tb, err)
	return coll
}

// flush allocates and flushes a segment with the files files(prefix) returns.
func (c *catalog) flush(coll *fsmpb.Collection, partition string, rows int64, files func(prefix string) []*fsmpb.File) *fsmpb.Segment {
	c.tb.Helper()
	var resp fsmpb.SegmentResponse
	c.apply(&fsmpb.AllocateSegment{Collection: coll.Name, Partition: partition, Lease: 3600e9}, &resp)
	id := resp.Segment.Id
	c.apply(&fsmpb.FlushSegment{SegmentId: id, RowCount: rows, Files: files(layout.SnapkeepSegmentPrefix(coll.Id, id))}, &resp)
	return resp.Segment
}

// build adds a ready index build to a flushed segment.
func (c *catalog) build(seg *fsmpb.Segment, index string, files func(prefix string) []*fsmpb.File) *fsmpb.Segment {
	c.tb.Helper()
	var alloc fsmpb.IndexBuildResponse
	c.apply(&fsmpb.AllocateIndexBuild{SegmentId: seg.Id, Index: index, Lease: 3600e9}, &alloc)
	var resp fsmpb.SegmentResponse
	c.apply(&fsmpb.AddIndexBuild{SegmentId: seg.Id, BuildId: alloc.BuildId, Files: files(layout.SnapkeepBuildPrefix(seg.CollectionId, seg.Id, alloc.BuildId))}, &resp)
	return resp.Segment
}

// headerFor builds a manifest header for a collection, as the snapshot finisher will.
func headerFor(coll *fsmpb.Collection, snapshotID uint64) *manifestpb.Header {
	h := &manifestpb.Header{
		SnapshotId: snapshotID, SnapshotName: fmt.Sprintf("snap-%d", snapshotID),
		CollectionId: coll.Id, CollectionName: coll.Name, DatabaseId: coll.DatabaseId, DatabaseName: "default",
		CreatedAt: 1_700_000_123_000_000_000, CapturedIndex: 42, Description: "nightly ✓",
		Labels: map[string]string{"team": "search", "tier": "gold"}, Schema: coll.Schema, Properties: coll.Properties,
		CollectionDescription: coll.Description, CollectionCreatedAt: coll.CreatedAt, Writer: "manifest tests",
	}
	for _, p := range coll.Partitions {
		h.Partitions = append(h.Partitions, &manifestpb.Partition{Id: p.Id, Name: p.Name, CreatedAt: p.CreatedAt})
	}
	for _, ix := range coll.Indexes {
		h.Indexes = append(h.Indexes, &manifestpb.IndexDef{Id: ix.Id, Name: ix.Name, FieldId: ix.FieldId, Params: ix.Params, CreatedAt: ix.CreatedAt})
	}
	return h
}

// segmentOf converts an FSM segment (its ready builds) to a manifest segment.
func segmentOf(s *fsmpb.Segment) Segment {
	out := Segment{ID: s.Id, PartitionID: s.PartitionId, RowCount: s.RowCount, Files: s.Files}
	for _, b := range s.IndexBuilds {
		if b.State == fsmpb.BuildState_BUILD_STATE_READY {
			out.IndexBuilds = append(out.IndexBuilds, IndexBuild{BuildID: b.BuildId, IndexID: b.IndexId, Files: b.Files})
		}
	}
	return out
}

// sortSegments puts segments in manifest order.
func sortSegments(segs []Segment) {
	slices.SortFunc(segs, func(a, b Segment) int {
		return cmp.Or(cmp.Compare(a.PartitionID, b.PartitionID), cmp.Compare(a.ID, b.ID))
	})
}

var dataKinds = []fsmpb.FileKind{fsmpb.FileKind_FILE_KIND_INSERT, fsmpb.FileKind_FILE_KIND_DELTA, fsmpb.FileKind_FILE_KIND_STATS, fsmpb.FileKind_FILE_KIND_BM25}

// randomFiles returns n segment files with unique keys of many shapes: Milvus-like
// log ids, long names (hundreds of bytes), unicode, nested directories.
func randomFiles(rng *rand.Rand, n int) func(prefix string) []*fsmpb.File {
	return func(prefix string) []*fsmpb.File {
		seen := map[string]bool{}
		out := make([]*fsmpb.File, 0, n)
		logID := 449_000_000_000_000_000 + rng.Uint64N(1e12)
		for len(out) < n {
			kind := dataKinds[rng.IntN(len(dataKinds))]
			field := int64(rng.IntN(5))
			if rng.IntN(4) == 0 {
				field = rng.Int64N(1 << 40)
			}
			dir := layout.KindDir(kind)
			var rel string
			switch rng.IntN(6) {
			case 0: // long name
				budget := 1024 - len(prefix) - len(dir) - 30
				rel = fmt.Sprintf("%s/%d/%s", dir, field, strings.Repeat(string(rune('a'+rng.IntN(26))), 100+rng.IntN(max(1, budget-100))))
			case 1: // unicode
				rel = fmt.Sprintf("%s/ünïcödé/日本語-файл-%d-😀.bin", dir, rng.IntN(1000))
			case 2: // nested, non-numeric
				rel = fmt.Sprintf("%s/%d/part-%05d/chunk_%x", dir, field, rng.IntN(100), rng.Uint32())
			case 3: // top level in the kind dir, leading zero (kept as text)
				rel = fmt.Sprintf("%s/0%d", dir, rng.IntN(1000))
			default: // Milvus: <kind>/<field>/<log id>
				logID += 1 + rng.Uint64N(100)
				rel = fmt.Sprintf("%s/%d/%d", dir, field, logID)
			}
			if seen[rel] || len(prefix)+len(rel) > fsm.MaxKeyBytes {
				continue
			}
			seen[rel] = true
			out = append(out, &fsmpb.File{Key: prefix + rel, Kind: kind, FieldId: field, Size: rng.Uint64N(5 << 40), Crc32C: rng.Uint32()})
		}
		return out
	}
}

// randomIndexFiles returns n index files.
func randomIndexFiles(rng *rand.Rand, n int) func(prefix string) []*fsmpb.File {
	return func(prefix string) []*fsmpb.File {
		out := make([]*fsmpb.File, 0, n)
		for i := range n {
			name := fmt.Sprintf("HNSW_%d", i)
			if rng.IntN(3) == 0 {
				name = fmt.Sprintf("index_files/%d/ïndex-%d.bin", rng.IntN(10), i)
			}
			out = append(out, &fsmpb.File{Key: prefix + name, Kind: fsmpb.FileKind_FILE_KIND_INDEX, FieldId: 101, Size: rng.Uint64N(1 << 34), Crc32C: rng.Uint32()})
		}
		return out
	}
}

// fileCount returns a random number of files: mostly a handful, sometimes none,
// sometimes thousands.
func fileCount(rng *rand.Rand) int {
	switch r := rng.IntN(100); {
	case r < 10:
		return 0
	case r < 85:
		return 1 + rng.IntN(12)
	case r < 98:
		return 13 + rng.IntN(200)
	default:
		return 500 + rng.IntN(3000)
	}
}

// pool is a set of real segments from one FSM collection, whose file lists random
// manifests reuse (a file list is relative to its segment's prefix, so it is valid
// under any segment id).
type pool struct {
	coll     *fsmpb.Collection
	segments []Segment // as flushed, in id order
}

var testPools = map[uint64]*pool{}

// newPool builds (once per seed) a collection with 8 partitions, 3 indexes and n
// random segments, some with index builds.
func newPool(tb testing.TB, seed uint64, n int) *pool {
	if p := testPools[seed]; p != nil && len(p.segments) >= n {
		return p
	}
	rng := rand.New(rand.NewPCG(seed, 1))
	c := newCatalog(tb)
	parts := []string{"p1", "p2", "p3", "p4", "p5", "p6", "p7"}
	coll := c.collection("docs", parts, map[string]int64{"vec": 101, "text": 102, "scalar": 103})
	p := &pool{coll: coll}
	for range n {
		part := coll.Partitions[rng.IntN(len(coll.Partitions))].Name
		seg := c.flush(coll, part, rng.Int64N(1<<40), randomFiles(rng, fileCount(rng)))
		for _, ix := range coll.Indexes {
			if rng.IntN(3) == 0 {
				seg = c.build(seg, ix.Name, randomIndexFiles(rng, rng.IntN(12)))
			}
		}
		if rng.IntN(20) == 0 { // a superseded build: only the newest ready one counts
			seg = c.build(seg, coll.Indexes[0].Name, randomIndexFiles(rng, 3))
			seg = c.build(seg, coll.Indexes[0].Name, randomIndexFiles(rng, 2))
		}
		p.segments = append(p.segments, segmentOf(seg))
	}
	testPools[seed] = p
	return p
}

// randomSegments returns n segments in manifest order with ids, partitions and row
// counts drawn at random and file lists (and builds) taken from the pool. Some of the
// collection's partitions get no segments.
func (p *pool) randomSegments(rng *rand.Rand, n int) []Segment {
	parts := make([]uint64, 0, len(p.coll.Partitions))
	for _, part := range p.coll.Partitions {
		if rng.IntN(4) > 0 { // about a quarter stay empty
			parts = append(parts, part.Id)
		}
	}
	if len(parts) == 0 {
		parts = append(parts, p.coll.Partitions[0].Id)
	}
	out := make([]Segment, 0, n)
	id := uint64(0)
	for range n {
		switch rng.IntN(10) {
		case 0:
			id += rng.Uint64N(1 << 40)
		default:
			id += 1 + rng.Uint64N(8)
		}
		t := p.segments[rng.IntN(len(p.segments))]
		s := Segment{ID: id, PartitionID: parts[rng.IntN(len(parts))], RowCount: rng.Int64N(1 << 40), Files: t.Files}
		for _, b := range t.IndexBuilds {
			s.IndexBuilds = append(s.IndexBuilds, IndexBuild{BuildID: rng.Uint64(), IndexID: b.IndexID, Files: b.Files})
		}
		out = append(out, s)
	}
	if n > 0 && rng.IntN(5) == 0 {
		out[0].ID = 1                   // the smallest id
		out[len(out)-1].ID = ^uint64(0) // the largest
	}
	if len(out) == 0 {
		return nil
	}
	sortSegments(out)
	// Ids must be unique within a partition once sorted.
	return slices.CompactFunc(out, func(a, b Segment) bool { return a.PartitionID == b.PartitionID && a.ID == b.ID })
}

// expectedSummary computes a summary independently, from fully decoded file lists
// (memoized: random manifests reuse the pool's file lists many times).
func expectedSummary(t testing.TB, segs []Segment) Summary {
	var s Summary
	kinds := map[fsmpb.FileKind]*KindTotals{}
	add := func(blob []byte) {
		if len(blob) == 0 {
			return
		}
		entries, ok := decodedLists[&blob[0]]
		if !ok {
			var err error
			entries, err = filelist.Decode(blob)
			require.NoError(t, err)
			decodedLists[&blob[0]] = entries
		}
		for _, e := range entries {
			k := kinds[e.Kind]
			if k == nil {
				k = &KindTotals{Kind: e.Kind}
				kinds[e.Kind] = k
			}
			k.Files++
			k.Bytes += e.Size
			s.Files++
			s.Bytes += e.Size
		}
	}
	for _, seg := range segs {
		s.Segments++
		s.Rows += seg.RowCount
		s.IndexBuilds += uint64(len(seg.IndexBuilds))
		add(seg.Files)
		for _, b := range seg.IndexBuilds {
			add(b.Files)
		}
	}
	for _, k := range slices.Sorted(maps.Keys(kinds)) {
		s.ByKind = append(s.ByKind, *kinds[k])
	}
	return s
}

var decodedLists = map[*byte][]filelist.Entry{}
