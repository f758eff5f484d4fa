package fsm

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// The external collector's verdicts: whatever a snapshot pins, a restore writes or an
// upload holds is refused with the reason; a live segment or build answered
// deletable is dropped by the same entry, so no later snapshot captures it.
func TestReleaseForDeletion(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "docs", Name: "vec", FieldId: 101}, nil)
	pinned := h.flushedSegment("docs", 2)
	var br fsmpb.IndexBuildResponse
	h.ok(&fsmpb.AllocateIndexBuild{SegmentId: pinned.Id, Index: "vec", Lease: 60 * second}, &br)
	pinnedBuild := br.BuildId
	h.ok(&fsmpb.AddIndexBuild{SegmentId: pinned.Id, BuildId: pinnedBuild, Files: []*fsmpb.File{{Key: BuildPrefix(pinned.CollectionId, pinned.Id, pinnedBuild) + "g", Kind: fsmpb.FileKind_FILE_KIND_INDEX}}}, nil)
	h.ok(&fsmpb.SnapshotBegin{Collection: "docs", Name: "nightly-2026.12.02", MaxPerCollection: 10, PendingTimeout: 3600 * second}, nil)
	free := h.flushedSegment("docs", 2)
	h.ok(&fsmpb.AllocateIndexBuild{SegmentId: free.Id, Index: "vec", Lease: 60 * second}, &br)
	freeBuild := br.BuildId
	h.ok(&fsmpb.AddIndexBuild{SegmentId: free.Id, BuildId: freeBuild, Files: []*fsmpb.File{{Key: BuildPrefix(free.CollectionId, free.Id, freeBuild) + "g", Kind: fsmpb.FileKind_FILE_KIND_INDEX}}}, nil)
	other := h.flushedSegment("docs", 1)
	dropped := h.flushedSegment("docs", 1)
	h.ok(&fsmpb.DropSegments{SegmentIds: []uint64{dropped.Id}}, nil)
	upload := h.allocate("docs")
	h.ok(&fsmpb.AllocateIndexBuild{SegmentId: other.Id, Index: "vec", Lease: 60 * second}, &br)
	building := br.BuildId

	var resp fsmpb.ReleaseForDeletionResponse
	h.ok(&fsmpb.ReleaseForDeletion{
		SegmentIds: []uint64{pinned.Id, upload.Id, dropped.Id, 987654},
		Builds:     []*fsmpb.BuildRef{{SegmentId: pinned.Id, BuildId: pinnedBuild}, {SegmentId: free.Id, BuildId: freeBuild}, {SegmentId: other.Id, BuildId: building}},
		Keys: []string{
			SegmentPrefix(other.Id, other.Id) + "insert/1/1",             // no such segment (wrong collection)
			files(other, 1)[0].Key,                                       // a live segment's file
			SegmentPrefix(other.CollectionId, other.Id) + "insert/9/9",   // not in its list
			SegmentPrefix(upload.CollectionId, upload.Id) + "insert/9/9", // under an upload
			ManifestKey(1),     // no such snapshot: nobody's
			"part_stats/1/2/3", // nobody's
		},
	}, &resp)
	want := []struct {
		ok  bool
		why string
	}{
		{false, `is pinned by snapshot "nightly-2026.12.02"`},
		{false, "an upload in flight"},
		{true, "dropped (dropped on request) and nothing pins it"},
		{true, "segment 987654 is not registered"},
		{false, `is pinned by snapshot "nightly-2026.12.02"`},
		{true, "released: dropped"},
		{false, "an upload in flight"},
		{true, "its segment is not registered"},
		{false, "live segment"},
		{true, "is not in the file list of segment"},
		{false, "an upload in flight"},
		{true, "no registered segment's file"},
		{true, "no registered segment's file"},
	}
	require.Len(t, resp.Verdicts, len(want))
	for i, w := range want {
		require.Equal(t, w.ok, resp.Verdicts[i].Deletable, "%d: %s", i, resp.Verdicts[i].Reason)
		require.Contains(t, resp.Verdicts[i].Reason, w.why, "%d", i)
	}
	b := h.segment(free.Id).IndexBuilds[0]
	require.Equal(t, fsmpb.BuildState_BUILD_STATE_DROPPED, b.State)
	require.Equal(t, fsmpb.DropReason_DROP_REASON_RELEASED, b.DropReason)

	// A live unpinned segment is released: dropped, and no snapshot captures it.
	h.ok(&fsmpb.ReleaseForDeletion{SegmentIds: []uint64{free.Id}}, &resp)
	require.True(t, resp.Verdicts[0].Deletable, resp.Verdicts[0].Reason)
	require.Contains(t, resp.Verdicts[0].Reason, "released")
	s := h.segment(free.Id)
	require.Equal(t, fsmpb.SegmentState_SEGMENT_STATE_DROPPED, s.State)
	require.Equal(t, fsmpb.DropReason_DROP_REASON_RELEASED, s.DropReason)
	var sr fsmpb.SnapshotResponse
	h.ok(&fsmpb.SnapshotBegin{Collection: "docs", Name: "later", MaxPerCollection: 10, PendingTimeout: 3600 * second}, &sr)
	require.NotContains(t, sr.Snapshot.SegmentIds, free.Id)
	// Its files are now answered deletable one by one too; the pinned segment's not.
	h.ok(&fsmpb.ReleaseForDeletion{Keys: []string{files(free, 1)[0].Key, files(pinned, 1)[0].Key}}, &resp)
	require.True(t, resp.Verdicts[0].Deletable, resp.Verdicts[0].Reason)
	require.False(t, resp.Verdicts[1].Deletable)
	require.Contains(t, resp.Verdicts[1].Reason, "pinned by snapshot")

	// A snapshot's manifest is never an external collector's to delete.
	h.ok(&fsmpb.ReleaseForDeletion{Keys: []string{sr.Snapshot.ManifestKey}}, &resp)
	require.False(t, resp.Verdicts[0].Deletable)
	require.Contains(t, resp.Verdicts[0].Reason, "snapshot manifest")

	h.fails(codeInvalid, &fsmpb.ReleaseForDeletion{})
	h.fails(codeInvalid, &fsmpb.ReleaseForDeletion{Builds: []*fsmpb.BuildRef{{SegmentId: 1}}})
}
