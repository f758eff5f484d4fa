package fsm

import (
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
)

// SegmentPrefix and BuildPrefix are the snapkeep layout's prefixes, for tests.
func SegmentPrefix(collectionID, segmentID uint64) string {
	return layout.SnapkeepSegmentPrefix(collectionID, segmentID)
}

func BuildPrefix(collectionID, segmentID, buildID uint64) string {
	return layout.SnapkeepBuildPrefix(collectionID, segmentID, buildID)
}

// The stray object of the crash report under a READY build of a flushed segment, and
// its relatives: each is a key nobody owns (an orphan to report), none panics.
func TestKeyOwnedStrayKeysUnderAReadyBuild(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "docs", Name: "vec", FieldId: 101}, nil)
	s := h.flushedSegment("docs", 2)
	var br fsmpb.IndexBuildResponse
	h.ok(&fsmpb.AllocateIndexBuild{SegmentId: s.Id, Index: "vec", Lease: 60 * second}, &br)
	buildPrefix := BuildPrefix(s.CollectionId, s.Id, br.BuildId)
	h.ok(&fsmpb.AddIndexBuild{SegmentId: s.Id, BuildId: br.BuildId, Files: []*fsmpb.File{{Key: buildPrefix + "g", Kind: fsmpb.FileKind_FILE_KIND_INDEX}}}, nil)

	v := h.f.View()
	owned, _ := v.KeyOwned(buildPrefix + "g")
	require.True(t, owned)
	for _, key := range []string{
		strings.TrimSuffix(buildPrefix, "/"), // collections/C/segments/S/index/B
		buildPrefix,
		buildPrefix + "h",
		SegmentPrefix(s.CollectionId, s.Id) + "index",
		SegmentPrefix(s.CollectionId, s.Id),
		"collections/0" + strings.TrimPrefix(buildPrefix, "collections/") + "g", // a leading zero
	} {
		owned, why := v.KeyOwned(key)
		require.False(t, owned, "%q: %s", key, why)
	}
}

// A Milvus-layout collection owns exactly the files in its segments' lists, at
// Milvus's keys; the same ids in the other layout's shape are nobody's.
func TestKeyOwnedMilvusLayout(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "mv", Layout: fsmpb.KeyLayout_KEY_LAYOUT_MILVUS}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "mv", Name: "vec", FieldId: 101}, nil)
	var seg fsmpb.SegmentResponse
	h.ok(&fsmpb.AllocateSegment{Collection: "mv", Lease: 60 * second}, &seg)
	s := seg.Segment
	ids := fmt.Sprintf("%d/%d/%d/", s.CollectionId, s.PartitionId, s.Id)
	files := []*fsmpb.File{
		{Key: "insert_log/" + ids + "101/7", Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldId: 101, Size: 10},
		{Key: "insert_log/" + ids + "0/8", Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldId: 0, Size: 10},
		{Key: "delta_log/" + ids + "9", Kind: fsmpb.FileKind_FILE_KIND_DELTA, Size: 3},
		{Key: "text_log/44/1/" + ids + "102/index.tar", Kind: fsmpb.FileKind_FILE_KIND_TEXT_INDEX, FieldId: 102, Size: 4},
	}
	h.ok(&fsmpb.FlushSegment{SegmentId: s.Id, RowCount: 2, Files: files}, nil)
	var br fsmpb.IndexBuildResponse
	h.ok(&fsmpb.AllocateIndexBuild{SegmentId: s.Id, Index: "vec", Lease: 60 * second}, &br)
	buildKey := fmt.Sprintf("index_files/%d/1/%d/%d/HNSW_0", br.BuildId, s.PartitionId, s.Id)
	h.ok(&fsmpb.AddIndexBuild{SegmentId: s.Id, BuildId: br.BuildId, Files: []*fsmpb.File{{Key: buildKey, Kind: fsmpb.FileKind_FILE_KIND_INDEX, Size: 5}}}, nil)

	v := h.f.View()
	for _, f := range files {
		owned, why := v.KeyOwned(f.Key)
		require.True(t, owned, "%s: %s", f.Key, why)
	}
	owned, why := v.KeyOwned(buildKey)
	require.True(t, owned, why)
	for _, key := range []string{
		"insert_log/" + ids + "101/70", // not in the list
		fmt.Sprintf("insert_log/%d/%d/%d/101/7", s.CollectionId, s.PartitionId+1, s.Id), // another partition
		fmt.Sprintf("index_files/%d/2/%d/%d/HNSW_0", br.BuildId, s.PartitionId, s.Id),   // another version
		SegmentPrefix(s.CollectionId, s.Id) + "insert/101/7",                            // the snapkeep shape
		"part_stats/1/2/3",
	} {
		owned, why := v.KeyOwned(key)
		require.False(t, owned, "%q: %s", key, why)
	}

	// Keys outside Milvus's shapes, or of another segment, are refused at flush.
	var other fsmpb.SegmentResponse
	h.ok(&fsmpb.AllocateSegment{Collection: "mv", Lease: 60 * second}, &other)
	for key, want := range map[string]string{
		SegmentPrefix(s.CollectionId, other.Segment.Id) + "insert/101/1":                          "is not where Milvus keeps one",
		"insert_log/" + ids + "101/1":                                                             "must name collection/partition/segment",
		fmt.Sprintf("insert_log/%d/%d/%d/101/x", s.CollectionId, s.PartitionId, other.Segment.Id): "ends in <field>/<log id>",
	} {
		msg := h.fails(codeInvalid, &fsmpb.FlushSegment{SegmentId: other.Segment.Id, Files: []*fsmpb.File{{Key: key, Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldId: 101}}})
		require.Contains(t, msg, want, key)
	}
}
