package fsm

import (
	"bytes"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// arena packs the records a node keeps for as long as a segment lives — a flushed
// segment's record, its file list and its metadata — densely into chunks of their own.
// Allocated one by one they share the heap's spans with the garbage each command
// leaves (its decoded body, the copy-on-write B-tree nodes, the allocated record the
// flush replaces); after a garbage collection those spans stay in use, part empty, and
// a node that applied a million flushes held ~12% more heap than it keeps
// (BenchmarkCatalogMemory; docs/BENCHMARKS-GO.md).
//
// A chunk is freed when nothing in it is referenced, so a record that outlives its
// neighbours keeps their space: the same granularity as the heap's own 8 KiB spans,
// which is why the chunks are about that size. Only Raft's apply goroutine uses a
// node's arena (Validate's throwaway copies allocate normally); the zero value is
// ready, and a nil *arena allocates normally.
type arena struct {
	chunk []byte
	segs  []fsmpb.Segment
}

const (
	arenaBytesChunk = 16 << 10
	arenaSegChunk   = 32 // records per chunk of segments (~9 KiB)
)

// bytes returns a copy of b in the arena (b itself when empty; a large b gets an
// allocation of its own, as it would waste most of a chunk).
func (a *arena) bytes(b []byte) []byte {
	if len(b) == 0 {
		return b
	}
	if a == nil || len(b) > arenaBytesChunk/16 {
		return bytes.Clone(b)
	}
	if cap(a.chunk)-len(a.chunk) < len(b) {
		a.chunk = make([]byte, 0, arenaBytesChunk)
	}
	start := len(a.chunk)
	a.chunk = append(a.chunk, b...)
	return a.chunk[start:len(a.chunk):len(a.chunk)]
}

// segment returns a copy of seg in the arena.
func (a *arena) segment(seg *fsmpb.Segment) *fsmpb.Segment {
	if a == nil {
		return proto.CloneOf(seg)
	}
	if len(a.segs) == cap(a.segs) {
		a.segs = make([]fsmpb.Segment, 0, arenaSegChunk)
	}
	a.segs = a.segs[:len(a.segs)+1]
	next := &a.segs[len(a.segs)-1]
	proto.Merge(next, seg)
	return next
}
