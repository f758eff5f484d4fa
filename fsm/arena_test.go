package fsm

import (
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// What the arena hands out is a copy nothing else writes to: neither the original
// nor an append to a neighbour's slice changes it.
func TestArenaCopiesAreIndependent(t *testing.T) {
	var a arena
	in := []byte("first")
	first := a.bytes(in)
	second := a.bytes([]byte("second"))
	in[0] = 'X'
	_ = append(first, "overflow"...) // capped: must not run into second
	require.Equal(t, "first", string(first))
	require.Equal(t, "second", string(second))
	require.Len(t, a.bytes(nil), 0)
	large := make([]byte, arenaBytesChunk)
	require.Equal(t, large, a.bytes(large))

	seg := &fsmpb.Segment{Id: 7, CollectionId: 3, CompactedFrom: []uint64{1, 2}, Files: []byte{1, 2, 3}}
	kept := a.segment(seg)
	require.True(t, proto.Equal(seg, kept))
	seg.CompactedFrom[0], seg.Files[0] = 99, 99
	require.Equal(t, []uint64{1, 2}, kept.CompactedFrom)
	require.Equal(t, []byte{1, 2, 3}, kept.Files)

	var none *arena
	require.Equal(t, "x", string(none.bytes([]byte("x"))))
	require.True(t, proto.Equal(seg, none.segment(seg)))
}

// A flush applied keeps its record in the node's arena; the same flush validated
// (the leader's check before proposing) leaves the arena alone, since what it builds
// is thrown away.
func TestOnlyApplyUsesTheArena(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	a, b := h.allocate("docs"), h.allocate("docs")
	require.Empty(t, h.f.keep.segs)

	data, err := EncodeCommand("", h.now, &fsmpb.FlushSegment{SegmentId: a.Id, RowCount: 1, Files: files(a, 8)})
	require.NoError(t, err)
	require.Nil(t, h.f.Validate(data))
	require.Empty(t, h.f.keep.segs)
	require.Empty(t, h.f.keep.chunk)

	h.ok(&fsmpb.FlushSegment{SegmentId: a.Id, RowCount: 1, Files: files(a, 8)}, nil)
	h.ok(&fsmpb.FlushSegment{SegmentId: b.Id, RowCount: 2, Files: files(b, 8)}, nil)
	require.Len(t, h.f.keep.segs, 2)
	require.Same(t, &h.f.keep.segs[0], h.segment(a.Id))
	require.Same(t, &h.f.keep.segs[1], h.segment(b.Id))
	require.EqualValues(t, 2, h.segment(b.Id).RowCount)
}
