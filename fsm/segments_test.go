package fsm

import (
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

func TestFlushKeepsFilesExactly(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	s := h.allocate("docs")
	require.Equal(t, fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED, s.State)
	require.Equal(t, h.now+60*second, s.LeaseDeadline)

	in := files(s, 8)
	in[3].Kind, in[3].Key = fsmpb.FileKind_FILE_KIND_DELTA, SegmentPrefix(s.CollectionId, s.Id)+"delta/ünïcode file+%.bin"
	var resp fsmpb.SegmentResponse
	h.ok(&fsmpb.FlushSegment{SegmentId: s.Id, RowCount: 1234, Files: in}, &resp)
	got, err := filelist.Decode(resp.Segment.Files)
	require.NoError(t, err)
	require.Len(t, got, 8)
	byKey := map[string]filelist.Entry{}
	for _, e := range got {
		byKey[SegmentPrefix(s.CollectionId, s.Id)+e.Key] = e
	}
	for _, f := range in {
		e, ok := byKey[f.Key]
		require.True(t, ok, f.Key)
		require.Equal(t, f.Kind, e.Kind)
		require.Equal(t, f.Size, e.Size)
		require.Equal(t, f.Crc32C, e.CRC32C)
		require.Equal(t, f.FieldId, e.FieldID)
	}
	require.EqualValues(t, 1234, resp.Segment.RowCount)
	require.Zero(t, resp.Segment.LeaseDeadline)
}

func TestCompactionIsAtomic(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	a := h.flushedSegment("docs", 2)
	b := h.flushedSegment("docs", 2)
	out1 := h.allocate("docs")
	out2 := h.allocate("docs")

	// The second output is bad: nothing at all may change.
	h.fails(codeInvalid, &fsmpb.Compact{Inputs: []uint64{a.Id, b.Id}, Outputs: []*fsmpb.CompactOutput{
		{SegmentId: out1.Id, RowCount: 10, Files: files(out1, 2)},
		{SegmentId: out2.Id, RowCount: 10, Files: files(out1, 1)},
	}})
	require.Equal(t, fsmpb.SegmentState_SEGMENT_STATE_FLUSHED, h.segment(a.Id).State)
	require.Equal(t, fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED, h.segment(out1.Id).State)

	var resp fsmpb.SegmentsResponse
	h.ok(&fsmpb.Compact{Inputs: []uint64{a.Id, b.Id}, Outputs: []*fsmpb.CompactOutput{
		{SegmentId: out1.Id, RowCount: 10, Files: files(out1, 2)},
		{SegmentId: out2.Id, RowCount: 10, Files: files(out2, 1)},
	}}, &resp)
	require.Len(t, resp.Segments, 4)
	for _, id := range []uint64{a.Id, b.Id} {
		s := h.segment(id)
		require.Equal(t, fsmpb.SegmentState_SEGMENT_STATE_DROPPED, s.State)
		require.Equal(t, fsmpb.DropReason_DROP_REASON_COMPACTED, s.DropReason)
		require.Equal(t, []uint64{out1.Id, out2.Id}, s.CompactedTo)
		require.NotEmpty(t, s.Files, "a compacted segment keeps its file list")
	}
	for _, id := range []uint64{out1.Id, out2.Id} {
		s := h.segment(id)
		require.Equal(t, fsmpb.SegmentState_SEGMENT_STATE_FLUSHED, s.State)
		require.Equal(t, []uint64{a.Id, b.Id}, s.CompactedFrom)
	}
	msg := h.fails(codePrecondition, &fsmpb.Compact{Inputs: []uint64{a.Id}})
	require.Contains(t, msg, fmt.Sprintf("compacted into %d, %d", out1.Id, out2.Id))
}

func TestIndexBuilds(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "docs", Name: "vec", FieldId: 101}, nil)
	s := h.flushedSegment("docs", 1)

	build := func() uint64 {
		var resp fsmpb.IndexBuildResponse
		h.ok(&fsmpb.AllocateIndexBuild{SegmentId: s.Id, Index: "vec", Lease: 60 * second}, &resp)
		return resp.BuildId
	}
	b1 := build()
	prefix := BuildPrefix(s.CollectionId, s.Id, b1)
	indexFile := []*fsmpb.File{{Key: prefix + "HNSW_1", Kind: fsmpb.FileKind_FILE_KIND_INDEX, Size: 10}}
	msg := h.fails(codeInvalid, &fsmpb.AddIndexBuild{SegmentId: s.Id, BuildId: b1, Files: []*fsmpb.File{{Key: prefix + "x", Kind: fsmpb.FileKind_FILE_KIND_INSERT}}})
	require.Contains(t, msg, "only files of kind index")
	msg = h.fails(codeInvalid, &fsmpb.AddIndexBuild{SegmentId: s.Id, BuildId: b1, Files: []*fsmpb.File{{Key: SegmentPrefix(s.CollectionId, s.Id) + "index/999/x", Kind: fsmpb.FileKind_FILE_KIND_INDEX}}})
	require.Contains(t, msg, "outside")
	h.ok(&fsmpb.AddIndexBuild{SegmentId: s.Id, BuildId: b1, Files: indexFile}, nil)
	h.fails(codePrecondition, &fsmpb.AddIndexBuild{SegmentId: s.Id, BuildId: b1, Files: indexFile})

	// A rebuild supersedes the first build.
	b2 := build()
	h.ok(&fsmpb.AddIndexBuild{SegmentId: s.Id, BuildId: b2, Files: []*fsmpb.File{{Key: BuildPrefix(s.CollectionId, s.Id, b2) + "HNSW_1", Kind: fsmpb.FileKind_FILE_KIND_INDEX}}}, nil)
	builds := h.segment(s.Id).IndexBuilds
	require.Len(t, builds, 2)
	require.Equal(t, fsmpb.BuildState_BUILD_STATE_DROPPED, builds[0].State)
	require.Equal(t, fsmpb.DropReason_DROP_REASON_SUPERSEDED, builds[0].DropReason)
	require.Equal(t, fsmpb.BuildState_BUILD_STATE_READY, builds[1].State)

	// Dropping the index drops its builds.
	h.ok(&fsmpb.DropIndex{Collection: "docs", Name: "vec"}, nil)
	builds = h.segment(s.Id).IndexBuilds
	require.Equal(t, fsmpb.BuildState_BUILD_STATE_DROPPED, builds[1].State)
	require.Equal(t, fsmpb.DropReason_DROP_REASON_INDEX_DROPPED, builds[1].DropReason)
}

func TestExpireAllocations(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "docs", Name: "vec", FieldId: 101}, nil)
	early := h.allocate("docs") // deadline now+60s
	h.now += 30 * second
	late := h.allocate("docs") // deadline now+60s = t0+90s
	s := h.flushedSegment("docs", 1)
	var br fsmpb.IndexBuildResponse
	h.ok(&fsmpb.AllocateIndexBuild{SegmentId: s.Id, Index: "vec", Lease: 40 * second}, &br) // t0+70s

	d, ok := h.f.View().NextLeaseDeadline()
	require.True(t, ok)
	require.Equal(t, early.LeaseDeadline, d)

	h.now += 45 * second // t0+75s: early and the build are due, late is not
	var resp fsmpb.ExpireAllocationsResponse
	h.ok(&fsmpb.ExpireAllocations{}, &resp)
	require.Equal(t, []uint64{early.Id}, resp.SegmentIds)
	require.Equal(t, []uint64{br.BuildId}, resp.BuildIds)
	require.Equal(t, fsmpb.DropReason_DROP_REASON_LEASE_EXPIRED, h.segment(early.Id).DropReason)
	require.Equal(t, fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED, h.segment(late.Id).State)
	require.Equal(t, fsmpb.SegmentState_SEGMENT_STATE_FLUSHED, h.segment(s.Id).State)
	require.Equal(t, fsmpb.BuildState_BUILD_STATE_DROPPED, h.segment(s.Id).IndexBuilds[0].State)

	d, ok = h.f.View().NextLeaseDeadline()
	require.True(t, ok)
	require.Equal(t, late.LeaseDeadline, d)
	h.fails(codePrecondition, &fsmpb.FlushSegment{SegmentId: early.Id})
}

func TestListSegmentsInOrder(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "a"}, nil)
	h.ok(&fsmpb.CreateCollection{Name: "b"}, nil)
	var want []uint64
	for i := 0; i < 50; i++ {
		want = append(want, h.allocate("a").Id)
		h.allocate("b")
	}
	coll := h.collection("a")
	var got []uint64
	after := uint64(0)
	for {
		n := 0
		h.f.View().EachSegment(coll.Id, after, func(s *fsmpb.Segment) bool {
			got = append(got, s.Id)
			after = s.Id
			n++
			return n < 7
		})
		if n < 7 {
			break
		}
	}
	require.Equal(t, want, got)
}

func TestRequestDeduplication(t *testing.T) {
	h := newHarness(t)
	first := h.apply("req-1", &fsmpb.CreateCollection{Name: "docs"})
	require.Equal(t, fsmpb.ErrorCode_ERROR_CODE_OK, first.Code)
	lastID := h.f.View().r.meta().LastId

	// A retry answers with the first result and applies nothing.
	again := h.apply("req-1", &fsmpb.CreateCollection{Name: "docs"})
	require.Equal(t, first.Response, again.Response)
	require.Equal(t, lastID, h.f.View().r.meta().LastId)

	// The same id for something else is refused.
	other := h.apply("req-1", &fsmpb.CreateCollection{Name: "other"})
	require.Equal(t, codeInvalid, other.Code)
	require.Contains(t, other.Message, "already used")

	// A failed request is remembered too.
	bad := h.apply("req-2", &fsmpb.DropCollection{Name: "nope"})
	require.Equal(t, codeNotFound, bad.Code)
	h.ok(&fsmpb.CreateCollection{Name: "nope"}, nil)
	require.Equal(t, bad, h.apply("req-2", &fsmpb.DropCollection{Name: "nope"}))
}

func TestRequestWindowIsBounded(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < RequestWindow+10; i++ {
		h.apply(fmt.Sprintf("r%d", i), &fsmpb.RegisterNode{Node: &fsmpb.Node{Id: "n1"}})
	}
	tx := h.f.current()
	require.Equal(t, RequestWindow, tx.requests.len())
	require.Nil(t, (reader{tx}).request("r0"))
	require.NotNil(t, (reader{tx}).request(fmt.Sprintf("r%d", RequestWindow+9)))
}

// A flush retried after its answer was lost succeeds with the segment as flushed (in
// any file order); a different flush of a flushed segment is refused, naming the
// difference; nothing changes either way.
func TestFlushIsIdempotent(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	s := h.allocate("docs")
	fs := files(s, 3)
	var first, again fsmpb.SegmentResponse
	h.ok(&fsmpb.FlushSegment{SegmentId: s.Id, RowCount: 100, Files: fs}, &first)
	before := h.stateHash()
	reordered := []*fsmpb.File{fs[2], fs[0], fs[1]}
	h.ok(&fsmpb.FlushSegment{SegmentId: s.Id, RowCount: 100, Files: reordered}, &again)
	require.True(t, proto.Equal(first.Segment, again.Segment))

	bigger := proto.CloneOf(fs[1])
	bigger.Size++
	for _, tc := range []struct {
		cmd  *fsmpb.FlushSegment
		want string
	}{
		{&fsmpb.FlushSegment{SegmentId: s.Id, RowCount: 99, Files: fs}, "100 rows were flushed, this flush says 99"},
		{&fsmpb.FlushSegment{SegmentId: s.Id, RowCount: 100, Files: fs[:2]}, "3 files were flushed, this flush lists 2"},
		{&fsmpb.FlushSegment{SegmentId: s.Id, RowCount: 100, Files: []*fsmpb.File{fs[0], bigger, fs[2]}}, "was flushed with size 4097"},
	} {
		msg := h.fails(codePrecondition, tc.cmd)
		require.Contains(t, msg, "already flushed, differently")
		require.Contains(t, msg, tc.want)
	}
	// A flush that is invalid in itself stays InvalidArgument.
	h.fails(codeInvalid, &fsmpb.FlushSegment{SegmentId: s.Id, RowCount: 100, Files: []*fsmpb.File{{Key: "elsewhere/x", Kind: fsmpb.FileKind_FILE_KIND_INSERT}}})
	require.Equal(t, before, h.stateHash(), "neither the retry nor the refusals changed anything")
}
