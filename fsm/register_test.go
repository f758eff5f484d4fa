package fsm

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// RegisterSegments registers ready index builds whose files are already in the
// bucket (adoption): with the segments of the same entry or on segments registered
// before, with the caller's build ids and Milvus's index ids, every rejection leaving
// the state unchanged, and never a second current build of an index on a segment.
func TestRegisterIndexBuilds(t *testing.T) {
	h := newHarness(t)
	const coll, part = 449_000_000_000_000_001, 449_000_000_000_000_002
	h.ok(&fsmpb.CreateCollection{Name: "mv", Layout: fsmpb.KeyLayout_KEY_LAYOUT_MILVUS, CollectionId: coll, PartitionIds: []uint64{part}}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "mv", Name: "vec", FieldId: 101, IndexId: 449_000_000_000_000_010}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "mv", Name: "title", FieldId: 102, IndexId: 449_000_000_000_000_011}, nil)
	h.ok(&fsmpb.CreateCollection{Name: "other"}, nil)
	const vec, title = 449_000_000_000_000_010, 449_000_000_000_000_011
	segment := func(id uint64) *fsmpb.RegisteredSegment {
		ids := fmt.Sprintf("%d/%d/%d/", coll, part, id)
		return &fsmpb.RegisteredSegment{SegmentId: id, PartitionId: part, Files: []*fsmpb.File{
			{Key: "insert_log/" + ids + "101/7", Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldId: 101, Size: 10},
			{Key: "text_log/44/1/" + ids + "102/index.tar", Kind: fsmpb.FileKind_FILE_KIND_TEXT_INDEX, FieldId: 102, Size: 4},
		}}
	}
	indexFiles := func(build, seg uint64, names ...string) []*fsmpb.File {
		var out []*fsmpb.File
		for _, n := range names {
			out = append(out, &fsmpb.File{Key: fmt.Sprintf("index_files/%d/1/%d/%d/%s", build, part, seg, n), Kind: fsmpb.FileKind_FILE_KIND_INDEX, Size: 5, Crc32C: 77})
		}
		return out
	}
	const s1, s2, s3 = 449_000_000_000_001_001, 449_000_000_000_001_002, 449_000_000_000_001_003
	const b1, b2, b3 = 449_000_000_000_002_001, 449_000_000_000_002_002, 449_000_000_000_002_003

	// Segments and their builds in one entry.
	var resp fsmpb.SegmentsResponse
	h.ok(&fsmpb.RegisterSegments{Collection: "mv", Segments: []*fsmpb.RegisteredSegment{segment(s1), segment(s2)},
		Builds: []*fsmpb.RegisteredBuild{
			{SegmentId: s1, BuildId: b1, IndexId: vec, Files: indexFiles(b1, s1, "HNSW_0", "HNSW_1")},
			{SegmentId: s2, BuildId: b2, IndexId: vec, Files: indexFiles(b2, s2, "HNSW_0")},
		}}, &resp)
	require.Len(t, resp.Segments, 2)
	for _, s := range resp.Segments {
		require.Len(t, s.IndexBuilds, 1, "the response shows the builds, without files")
		require.Nil(t, s.IndexBuilds[0].Files)
	}
	seg := h.segment(s1)
	require.Equal(t, fsmpb.SegmentState_SEGMENT_STATE_FLUSHED, seg.State)
	require.Len(t, seg.IndexBuilds, 1)
	b := seg.IndexBuilds[0]
	require.EqualValues(t, b1, b.BuildId)
	require.EqualValues(t, vec, b.IndexId)
	require.Equal(t, fsmpb.BuildState_BUILD_STATE_READY, b.State)
	require.Equal(t, h.now, b.ReadyAt)
	kept, err := filelist.Decode(b.Files)
	require.NoError(t, err)
	require.Len(t, kept, 2)
	require.Equal(t, "1/HNSW_0", kept[0].Key)
	require.EqualValues(t, 77, kept[0].CRC32C)
	owned, why := h.f.View().KeyOwned(fmt.Sprintf("index_files/%d/1/%d/%d/HNSW_1", b1, part, s1))
	require.True(t, owned, why)

	// Bad builds: each refused with its reason and nothing changed, the valid segment
	// of the same entry included (all or nothing).
	other := h.flushedSegment("other", 1)
	var alloc fsmpb.SegmentResponse
	h.ok(&fsmpb.AllocateSegment{Collection: "mv", Lease: 60 * second}, &alloc)
	for _, tc := range []struct {
		name  string
		code  fsmpb.ErrorCode
		build *fsmpb.RegisteredBuild
		want  string
	}{
		{"no build id", codeInvalid, &fsmpb.RegisteredBuild{SegmentId: s3, IndexId: title, Files: indexFiles(b3, s3, "x")}, "needs its segment id, build id and index id"},
		{"no index id", codeInvalid, &fsmpb.RegisteredBuild{SegmentId: s3, BuildId: b3, Files: indexFiles(b3, s3, "x")}, "needs its segment id, build id and index id"},
		{"no files", codeInvalid, &fsmpb.RegisteredBuild{SegmentId: s3, BuildId: b3, IndexId: title}, "lists its files"},
		{"unknown segment", codeNotFound, &fsmpb.RegisteredBuild{SegmentId: 5, BuildId: b3, IndexId: title, Files: indexFiles(b3, 5, "x")}, "segment 5 not found"},
		{"another collection's segment", codeInvalid, &fsmpb.RegisteredBuild{SegmentId: other.Id, BuildId: b3, IndexId: title, Files: indexFiles(b3, other.Id, "x")}, "not in \"mv\""},
		{"allocated segment", codePrecondition, &fsmpb.RegisteredBuild{SegmentId: alloc.Segment.Id, BuildId: b3, IndexId: title, Files: indexFiles(b3, alloc.Segment.Id, "x")}, "builds are registered on flushed segments"},
		{"unknown index", codeNotFound, &fsmpb.RegisteredBuild{SegmentId: s3, BuildId: b3, IndexId: 12345, Files: indexFiles(b3, s3, "x")}, "index id 12345 is not an index"},
		{"second build of an index", codePrecondition, &fsmpb.RegisteredBuild{SegmentId: s1, BuildId: b3, IndexId: vec, Files: indexFiles(b3, s1, "x")}, fmt.Sprintf("already has build %d of index \"vec\"", b1)},
		{"build id in use", codeExists, &fsmpb.RegisteredBuild{SegmentId: s3, BuildId: b1, IndexId: title, Files: indexFiles(b1, s3, "x")}, "already in use"},
		{"another segment's key", codeInvalid, &fsmpb.RegisteredBuild{SegmentId: s3, BuildId: b3, IndexId: title, Files: indexFiles(b3, s1, "x")}, "an index file of build"},
		{"outside the build's prefix", codeInvalid, &fsmpb.RegisteredBuild{SegmentId: s3, BuildId: b3, IndexId: title, Files: indexFiles(b2, s3, "x")}, "outside index build"},
		{"not an index file", codeInvalid, &fsmpb.RegisteredBuild{SegmentId: s3, BuildId: b3, IndexId: title, Files: []*fsmpb.File{
			{Key: fmt.Sprintf("index_files/%d/1/%d/%d/x", b3, part, s3), Kind: fsmpb.FileKind_FILE_KIND_INSERT}}}, "only files of kind index"},
	} {
		msg := h.fails(tc.code, &fsmpb.RegisterSegments{Collection: "mv", Segments: []*fsmpb.RegisteredSegment{segment(s3)}, Builds: []*fsmpb.RegisteredBuild{tc.build}})
		require.Contains(t, msg, tc.want, tc.name)
	}
	// Within one entry: the same build id twice, or two builds of one index on one
	// segment.
	msg := h.fails(codeExists, &fsmpb.RegisterSegments{Collection: "mv", Segments: []*fsmpb.RegisteredSegment{segment(s3)}, Builds: []*fsmpb.RegisteredBuild{
		{SegmentId: s3, BuildId: b3, IndexId: title, Files: indexFiles(b3, s3, "x")},
		{SegmentId: s3, BuildId: b3, IndexId: vec, Files: indexFiles(b3, s3, "y")},
	}})
	require.Contains(t, msg, "already in use")
	msg = h.fails(codePrecondition, &fsmpb.RegisterSegments{Collection: "mv", Segments: []*fsmpb.RegisteredSegment{segment(s3)}, Builds: []*fsmpb.RegisteredBuild{
		{SegmentId: s3, BuildId: b3, IndexId: title, Files: indexFiles(b3, s3, "x")},
		{SegmentId: s3, BuildId: b3 + 1, IndexId: title, Files: indexFiles(b3+1, s3, "x")},
	}})
	require.Contains(t, msg, "one current build per index")
	require.Contains(t, h.fails(codeInvalid, &fsmpb.RegisterSegments{Collection: "mv"}), "nothing to register")
	require.Contains(t, h.fails(codeInvalid, &fsmpb.RegisterSegments{Collection: "mv", Builds: make([]*fsmpb.RegisteredBuild, maxRegisteredBuilds+1)}), "at most 4000 index builds")
	_, err = h.f.View().Segment(s3)
	require.Error(t, err, "the refused entries registered nothing")

	// Builds alone, on segments registered before (a resumed adoption): the response
	// lists those segments once each.
	resp.Reset()
	h.ok(&fsmpb.RegisterSegments{Collection: "mv", Builds: []*fsmpb.RegisteredBuild{
		{SegmentId: s1, BuildId: b3, IndexId: title, Files: indexFiles(b3, s1, "BITMAP")},
		{SegmentId: s2, BuildId: b3 + 1, IndexId: title, Files: indexFiles(b3+1, s2, "BITMAP")},
	}}, &resp)
	require.Len(t, resp.Segments, 2)
	require.EqualValues(t, s1, resp.Segments[0].Id)
	require.Len(t, h.segment(s1).IndexBuilds, 2)

	// The registered builds behave like built ones: dropping the index drops them.
	h.ok(&fsmpb.DropIndex{Collection: "mv", Name: "title"}, nil)
	for _, b := range h.segment(s2).IndexBuilds {
		if b.IndexId == title {
			require.Equal(t, fsmpb.BuildState_BUILD_STATE_DROPPED, b.State)
		} else {
			require.Equal(t, fsmpb.BuildState_BUILD_STATE_READY, b.State)
		}
	}
	require.NoError(t, h.f.View().CheckDerived())
}
