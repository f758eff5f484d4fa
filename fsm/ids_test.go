package fsm

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Ids chosen by the caller (Milvus's allocator) are taken as given, unique per kind;
// ids snapkeep hands out afterwards never meet them; the nested ids (partitions,
// indexes, builds) are indexed and survive a raft snapshot and restore.
func TestCallerIDs(t *testing.T) {
	const base = 449_000_000_000_000_000 // Milvus-sized
	h := newHarness(t)
	var cr fsmpb.CollectionResponse
	h.ok(&fsmpb.CreateCollection{Name: "mv", Partitions: []string{"p1"}, CollectionId: base + 1, PartitionIds: []uint64{base + 2, base + 3}}, &cr)
	require.Equal(t, uint64(base+1), cr.Collection.Id)
	require.Equal(t, []uint64{base + 2, base + 3}, []uint64{cr.Collection.Partitions[0].Id, cr.Collection.Partitions[1].Id})
	h.ok(&fsmpb.CreateIndex{Collection: "mv", Name: "vec", FieldId: 101, IndexId: base + 4}, &cr)
	require.Equal(t, uint64(base+4), cr.Collection.Indexes[0].Id)
	var sr fsmpb.SegmentResponse
	h.ok(&fsmpb.AllocateSegment{Collection: "mv", Partition: "p1", Lease: 60 * second, SegmentId: base + 10}, &sr)
	require.Equal(t, uint64(base+10), sr.Segment.Id)
	h.ok(&fsmpb.FlushSegment{SegmentId: base + 10, RowCount: 1}, nil)
	var br fsmpb.IndexBuildResponse
	h.ok(&fsmpb.AllocateIndexBuild{SegmentId: base + 10, Index: "vec", Lease: 60 * second, BuildId: base + 11}, &br)
	require.Equal(t, uint64(base+11), br.BuildId)

	// Unique per kind: every reuse is refused, naming the kind and the id.
	for _, tc := range []struct {
		cmd  proto.Message
		want string
	}{
		{&fsmpb.CreateCollection{Name: "other", CollectionId: base + 1}, "collection id 449000000000000001 is already in use"},
		{&fsmpb.CreateCollection{Name: "other", PartitionIds: []uint64{base + 3}}, "partition id 449000000000000003 is already in use"},
		{&fsmpb.CreatePartition{Collection: "mv", Name: "p2", PartitionId: base + 2}, "partition id 449000000000000002 is already in use"},
		{&fsmpb.CreateIndex{Collection: "mv", Name: "vec2", FieldId: 102, IndexId: base + 4}, "index id 449000000000000004 is already in use"},
		{&fsmpb.AllocateSegment{Collection: "mv", Lease: 60 * second, SegmentId: base + 10}, "segment id 449000000000000010 is already in use"},
		{&fsmpb.AllocateIndexBuild{SegmentId: base + 10, Index: "vec", Lease: 60 * second, BuildId: base + 11}, "index build id 449000000000000011 is already in use"},
	} {
		msg := h.fails(codeExists, tc.cmd)
		require.Contains(t, msg, tc.want)
	}
	// A command's own ids must differ, and match its partitions in number.
	require.Contains(t, h.fails(codeInvalid, &fsmpb.CreateCollection{Name: "x", Partitions: []string{"a"}, PartitionIds: []uint64{7, 7}}), "given twice")
	require.Contains(t, h.fails(codeInvalid, &fsmpb.CreateCollection{Name: "x", Partitions: []string{"a"}, PartitionIds: []uint64{7}}), "1 partition ids given for 2 partitions")

	// Per kind: a segment may take a collection's id. And snapkeep's own ids come after
	// the largest id any caller chose.
	h.ok(&fsmpb.AllocateSegment{Collection: "mv", Lease: 60 * second, SegmentId: base + 1}, &sr)
	h.ok(&fsmpb.AllocateSegment{Collection: "mv", Lease: 60 * second}, &sr)
	require.Greater(t, sr.Segment.Id, uint64(base+11))
	// An older id, below everything handed out, is taken as long as it is unused.
	h.ok(&fsmpb.AllocateSegment{Collection: "mv", Lease: 60 * second, SegmentId: 5}, &sr)
	require.Equal(t, uint64(5), sr.Segment.Id)

	// The nested ids are derived state: rebuilt from the records, equal.
	require.NoError(t, h.f.View().CheckDerived())
	var buf bytes.Buffer
	snap, err := h.f.Snapshot()
	require.NoError(t, err)
	require.NoError(t, snap.Persist(&memorySink{Buffer: &buf}))
	restored := New(nil)
	require.NoError(t, restored.Restore(nopCloser{bytes.NewReader(buf.Bytes())}))
	require.True(t, restored.View().r.idInUse(idBuild, base+11))
	require.True(t, restored.View().r.idInUse(idPartition, base+3))
	require.False(t, restored.View().r.idInUse(idPartition, base+4))
	require.True(t, restored.View().r.idInUse(idIndex, base+4))
}
