package fsm

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

func TestGCRules(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "docs", Name: "vec", FieldId: 101}, nil)
	kept := h.flushedSegment("docs", 2)
	pinnedSeg := h.flushedSegment("docs", 2)
	freeSeg := h.flushedSegment("docs", 2)
	alloc := h.allocate("docs")
	snap := h.snapshot("s") // pins kept, pinnedSeg and freeSeg
	h.ok(&fsmpb.DropSegments{SegmentIds: []uint64{pinnedSeg.Id}}, nil)
	h.ok(&fsmpb.DropSegments{SegmentIds: []uint64{freeSeg.Id}}, nil)
	h.ok(&fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id}, nil)
	snap2 := h.snapshot("s2") // pins kept only: the other two are dropped now

	grace := 10 * second
	v := h.f.View()
	ok, why := v.SegmentReclaim(h.segment(kept.Id), h.now, grace)
	require.False(t, ok)
	require.Equal(t, ReasonLive, why)
	ok, why = v.SegmentReclaim(h.segment(freeSeg.Id), h.now, grace)
	require.False(t, ok)
	require.Equal(t, ReasonWithinGrace, why)
	h.now += 11 * second
	v = h.f.View()
	ok, _ = v.SegmentReclaim(h.segment(freeSeg.Id), h.now, grace)
	require.True(t, ok, "dropped, past grace, pinned by no live snapshot")

	// Ownership of keys, for the orphan scan.
	owned := func(key string) bool {
		o, _ := h.f.View().KeyOwned(key)
		return o
	}
	require.True(t, owned(files(kept, 1)[0].Key))
	require.False(t, owned(SegmentPrefix(kept.CollectionId, kept.Id)+"insert/999/1"), "not in the file list")
	require.True(t, owned(SegmentPrefix(alloc.CollectionId, alloc.Id)+"insert/1/1"), "an upload in flight")
	require.True(t, owned(SegmentPrefix(freeSeg.CollectionId, freeSeg.Id)+"insert/1/1"), "a dropped segment's, until reclaimed")
	require.False(t, owned(SegmentPrefix(kept.CollectionId, 999999)+"x"), "no such segment")
	require.False(t, owned("junk/file"))
	require.True(t, owned(ManifestKey(snap2.Id)))
	require.True(t, owned(ManifestKey(snap.Id)), "a deleting snapshot's manifest goes through its record")
	require.False(t, owned(ManifestKey(424242)))

	// GCCheck answers what may go at its place in the log.
	var check fsmpb.GCCheckResponse
	h.ok(&fsmpb.GCCheck{
		Segments: []uint64{kept.Id, pinnedSeg.Id, freeSeg.Id, 424242},
		Orphans: []*fsmpb.OrphanCandidate{
			{Key: "junk/old", LastModified: h.now - 100*second},
			{Key: "junk/new", LastModified: h.now - second},
			{Key: files(kept, 1)[0].Key, LastModified: 0},
		},
		Grace: grace, OrphanGrace: 60 * second,
	}, &check)
	require.Equal(t, []uint64{pinnedSeg.Id, freeSeg.Id}, check.Segments, "the deleting snapshot no longer pins")
	require.Equal(t, []uint32{0}, check.Orphans)

	// GCRemove removes records, checking again.
	var rm fsmpb.GCRemoveResponse
	h.ok(&fsmpb.GCRemove{Segments: []uint64{kept.Id, freeSeg.Id}, Grace: grace}, &rm)
	require.EqualValues(t, 1, rm.Segments)
	_, err := h.f.View().Segment(freeSeg.Id)
	require.ErrorIs(t, err, ErrNotFound)
	_, err = h.f.View().Segment(kept.Id)
	require.NoError(t, err)
}

func TestGCDroppedBuildsAndCollections(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "docs", Name: "vec", FieldId: 101}, nil)
	s := h.flushedSegment("docs", 1)
	var br fsmpb.IndexBuildResponse
	h.ok(&fsmpb.AllocateIndexBuild{SegmentId: s.Id, Index: "vec", Lease: 60 * second}, &br)
	h.ok(&fsmpb.AddIndexBuild{SegmentId: s.Id, BuildId: br.BuildId, Files: []*fsmpb.File{{Key: BuildPrefix(s.CollectionId, s.Id, br.BuildId) + "g", Kind: fsmpb.FileKind_FILE_KIND_INDEX}}}, nil)
	h.ok(&fsmpb.DropIndex{Collection: "docs", Name: "vec"}, nil)

	var withDropped []uint64
	h.f.View().EachSegmentWithDroppedBuilds(func(seg *fsmpb.Segment) bool {
		withDropped = append(withDropped, seg.Id)
		return true
	})
	require.Equal(t, []uint64{s.Id}, withDropped)
	ref := &fsmpb.BuildRef{SegmentId: s.Id, BuildId: br.BuildId}
	var rm fsmpb.GCRemoveResponse
	h.ok(&fsmpb.GCRemove{Builds: []*fsmpb.BuildRef{ref}}, &rm)
	require.EqualValues(t, 1, rm.Builds)
	require.Empty(t, h.segment(s.Id).IndexBuilds)

	// A dropped collection's record goes once no segment and no snapshot refers to it.
	snap := h.snapshot("keep")
	h.ok(&fsmpb.DropCollection{Name: "docs"}, nil)
	coll, err := h.f.View().CollectionByID(s.CollectionId)
	require.NoError(t, err)
	ok, why := h.f.View().CollectionReclaim(coll)
	require.False(t, ok)
	require.Equal(t, ReasonStillReferenced, why)
	h.ok(&fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id}, nil)
	h.ok(&fsmpb.SnapshotRemove{SnapshotId: snap.Id}, nil)
	h.ok(&fsmpb.GCRemove{Segments: []uint64{s.Id}, Collections: []uint64{coll.Id}}, &rm)
	require.EqualValues(t, 1, rm.Segments)
	require.EqualValues(t, 1, rm.Collections, "segments are removed before collections are checked")
	_, err = h.f.View().CollectionByID(coll.Id)
	require.ErrorIs(t, err, ErrNotFound)
}

func TestGCReportsAreBounded(t *testing.T) {
	h := newHarness(t)
	for i := 0; i < GCReportsKept+5; i++ {
		h.ok(&fsmpb.GCRecordReport{Report: &fsmpb.GCReport{ObjectsDeleted: uint64(i)}}, nil)
	}
	reports := h.f.View().GCReports()
	require.Len(t, reports, GCReportsKept)
	require.EqualValues(t, GCReportsKept+4, reports[0].ObjectsDeleted, "newest first")
}
