package fsm

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

func begin(name string) *fsmpb.SnapshotBegin {
	return &fsmpb.SnapshotBegin{Collection: "docs", Name: name, MaxPerCollection: 10, PendingTimeout: 600 * second}
}

func (h *harness) snapshot(name string) *fsmpb.Snapshot {
	h.t.Helper()
	var resp fsmpb.SnapshotResponse
	h.ok(begin(name), &resp)
	s, err := h.f.View().Snapshot(resp.Snapshot.Id)
	require.NoError(h.t, err)
	return s
}

func commitFor(s *fsmpb.Snapshot) *fsmpb.SnapshotCommit {
	return &fsmpb.SnapshotCommit{SnapshotId: s.Id, ManifestSize: 100, ManifestChecksum: 7,
		Summary: &fsmpb.SnapshotSummary{Segments: uint64(len(s.SegmentIds)), IndexBuilds: uint64(len(s.BuildIds))}}
}

func TestSnapshotCaptureIsExactAtItsIndex(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "docs", Name: "vec", FieldId: 101}, nil)
	a := h.flushedSegment("docs", 3)
	b := h.flushedSegment("docs", 2)
	var br fsmpb.IndexBuildResponse
	h.ok(&fsmpb.AllocateIndexBuild{SegmentId: a.Id, Index: "vec", Lease: 60 * second}, &br)
	h.ok(&fsmpb.AddIndexBuild{SegmentId: a.Id, BuildId: br.BuildId, Files: []*fsmpb.File{{Key: BuildPrefix(a.CollectionId, a.Id, br.BuildId) + "x", Kind: fsmpb.FileKind_FILE_KIND_INDEX}}}, nil)
	pending := h.allocate("docs") // allocated, not flushed: not captured

	snap := h.snapshot("nightly")
	require.Equal(t, []uint64{a.Id, b.Id}, snap.SegmentIds)
	require.Equal(t, []uint64{br.BuildId}, snap.BuildIds)
	require.Equal(t, h.index, snap.CapturedIndex)
	require.Equal(t, fsmpb.SnapshotState_SNAPSHOT_STATE_PENDING, snap.State)
	require.EqualValues(t, 2, snap.Summary.Segments)
	require.Equal(t, "snapshots/"+formatUint(snap.Id)+".skm", snap.ManifestKey)
	require.Equal(t, []uint64{snap.Id}, h.f.View().SegmentPinnedBy(a.Id))
	require.Equal(t, []uint64{snap.Id}, h.f.View().BuildPinnedBy(br.BuildId))

	// After Begin: a new flush is not in the snapshot; a compaction, a drop and an
	// index drop change nothing it sees.
	h.ok(&fsmpb.FlushSegment{SegmentId: pending.Id, RowCount: 1, Files: files(pending, 1)}, nil)
	out := h.allocate("docs")
	h.ok(&fsmpb.Compact{Inputs: []uint64{a.Id}, Outputs: []*fsmpb.CompactOutput{{SegmentId: out.Id, RowCount: 5, Files: files(out, 1)}}}, nil)
	h.ok(&fsmpb.DropSegments{SegmentIds: []uint64{b.Id}}, nil)
	h.ok(&fsmpb.DropIndex{Collection: "docs", Name: "vec"}, nil)
	again, err := h.f.View().Snapshot(snap.Id)
	require.NoError(t, err)
	require.Equal(t, snap.SegmentIds, again.SegmentIds)
	require.Equal(t, snap.BuildIds, again.BuildIds)
	segA := h.segment(a.Id)
	require.Equal(t, fsmpb.SegmentState_SEGMENT_STATE_DROPPED, segA.State)
	require.Equal(t, a.Files, segA.Files, "a compacted segment keeps its original files")
	require.Equal(t, fsmpb.BuildState_BUILD_STATE_DROPPED, segA.IndexBuilds[0].State)
	require.NotEmpty(t, segA.IndexBuilds[0].Files, "a dropped build keeps its files for the snapshot")

	// Commit, then drop: pins go at MarkDeleting, the record at Remove.
	h.ok(commitFor(snap), nil)
	h.fails(codePrecondition, commitFor(snap))
	h.fails(codePrecondition, &fsmpb.SnapshotRemove{SnapshotId: snap.Id})
	h.ok(&fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id, Reason: "dropped by a user"}, nil)
	require.Empty(t, h.f.View().SegmentPinnedBy(a.Id))
	require.Empty(t, h.f.View().BuildPinnedBy(br.BuildId))
	h.ok(&fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id}, nil) // idempotent
	h.ok(&fsmpb.SnapshotRemove{SnapshotId: snap.Id}, nil)
	_, err = h.f.View().Snapshot(snap.Id)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestSnapshotsOutliveTheirCollection(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs", Schema: []byte("v1"), Properties: map[string]string{"p": "1"}}, nil)
	seg := h.flushedSegment("docs", 2)
	old := h.snapshot("nightly")
	h.ok(commitFor(old), nil)
	h.ok(&fsmpb.DropCollection{Name: "docs"}, nil)

	// Still describable by name after the drop, with what it captured.
	got, err := h.f.View().SnapshotByName("", "docs", "nightly")
	require.NoError(t, err)
	require.Equal(t, old.Id, got.Id)
	require.Equal(t, []byte("v1"), got.Schema)
	require.Equal(t, map[string]string{"p": "1"}, got.Properties)
	require.Equal(t, []uint64{old.Id}, h.f.View().SegmentPinnedBy(seg.Id))

	// A new collection of the same name gets its own "nightly", found first by name.
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	fresh := h.snapshot("nightly")
	got, err = h.f.View().SnapshotByName("", "docs", "nightly")
	require.NoError(t, err)
	require.Equal(t, fresh.Id, got.Id)
	var ids []uint64
	require.NoError(t, h.f.View().EachSnapshot(SnapshotFilter{Collection: "docs"}, 0, func(s *fsmpb.Snapshot) bool {
		ids = append(ids, s.Id)
		return true
	}))
	require.Equal(t, []uint64{old.Id, fresh.Id}, ids)
}

func TestSnapshotRejections(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	first := h.snapshot("a")
	for _, name := range []string{"b", "c"} {
		h.snapshot(name)
	}
	full := begin("d")
	full.MaxPerCollection = 3
	cases := []struct {
		name string
		code fsmpb.ErrorCode
		cmd  *fsmpb.SnapshotBegin
		want string
	}{
		{"empty name", codeInvalid, begin(""), "snapshot name is empty"},
		{"bad name", codeInvalid, begin("no spaces"), "only letters"},
		{"duplicate", codeExists, begin("a"), `snapshot "a" already exists on collection "docs"`},
		{"unknown collection", codeNotFound, &fsmpb.SnapshotBegin{Collection: "nope", Name: "x", MaxPerCollection: 1, PendingTimeout: second}, `collection "nope" not found`},
		{"limit reached", codeExhausted, full, "already has 3 snapshots, the limit"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			h.t = t
			require.Contains(t, h.fails(tc.code, tc.cmd), tc.want)
		})
	}
	h.t = t
	// The name is free again once the snapshot is being deleted.
	h.ok(&fsmpb.SnapshotMarkDeleting{SnapshotId: first.Id}, nil)
	h.snapshot("a")
}

func TestPinsAreRebuiltOnRestore(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	seg := h.flushedSegment("docs", 1)
	kept := h.snapshot("kept")
	gone := h.snapshot("gone")
	h.ok(&fsmpb.SnapshotMarkDeleting{SnapshotId: gone.Id}, nil)

	var buf bytes.Buffer
	snap, err := h.f.Snapshot()
	require.NoError(t, err)
	require.NoError(t, snap.Persist(&memorySink{Buffer: &buf}))
	restored := New(nil)
	require.NoError(t, restored.Restore(nopCloser{bytes.NewReader(buf.Bytes())}))
	require.Equal(t, []uint64{kept.Id}, restored.View().SegmentPinnedBy(seg.Id))
}
