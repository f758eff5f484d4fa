package fsm

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// harness applies commands to one FSM the way Raft would: increasing indexes, and a
// leader clock that the test moves by hand.
type harness struct {
	t     testing.TB
	f     *FSM
	index uint64
	now   int64
}

const second = int64(1e9)

func newHarness(t testing.TB) *harness {
	return &harness{t: t, f: New(nil), now: 1_700_000_000 * second}
}

// applyRaw applies raw entry data.
func (h *harness) applyRaw(data []byte) *fsmpb.Result {
	h.index++
	res := h.f.Apply(&raft.Log{Index: h.index, Term: 1, Type: raft.LogCommand, Data: data})
	return res.(*ApplyResult).Result
}

// apply applies a command with a request id ("" for none) and returns its result.
func (h *harness) apply(requestID string, cmd proto.Message) *fsmpb.Result {
	h.t.Helper()
	data, err := EncodeCommand(requestID, h.now, cmd)
	require.NoError(h.t, err)
	return h.applyRaw(data)
}

// ok applies a command that must succeed and decodes its response into resp (if not nil).
func (h *harness) ok(cmd proto.Message, resp proto.Message) {
	h.t.Helper()
	res := h.apply("", cmd)
	require.Equal(h.t, fsmpb.ErrorCode_ERROR_CODE_OK, res.Code, "%T: %s", cmd, res.Message)
	if resp != nil {
		require.NoError(h.t, proto.Unmarshal(res.Response, resp))
	}
}

// fails applies a command that must be rejected with code, and checks that it changed
// nothing but the applied index.
func (h *harness) fails(code fsmpb.ErrorCode, cmd proto.Message) string {
	h.t.Helper()
	before := h.stateHash()
	res := h.apply("", cmd)
	require.Equal(h.t, code, res.Code, "%T: %s", cmd, res.Message)
	require.NotEmpty(h.t, res.Message)
	require.Equal(h.t, before, h.stateHash(), "a rejected %T changed the state", cmd)
	return res.Message
}

// stateHash hashes the state without the applied index, to compare states at
// different indexes.
func (h *harness) stateHash() string {
	t := h.f.current()
	meta := proto.CloneOf(t.meta)
	meta.AppliedIndex = 0
	t.meta = meta
	g := New(nil)
	g.committed = t
	return g.Hash()
}

func (h *harness) collection(name string) *fsmpb.Collection {
	h.t.Helper()
	c, _, err := h.f.View().Collection("", name)
	require.NoError(h.t, err)
	return c
}

func (h *harness) segment(id uint64) *fsmpb.Segment {
	h.t.Helper()
	s, err := h.f.View().Segment(id)
	require.NoError(h.t, err)
	return s
}

// allocate allocates a segment in a collection's default partition.
func (h *harness) allocate(coll string) *fsmpb.Segment {
	h.t.Helper()
	var resp fsmpb.SegmentResponse
	h.ok(&fsmpb.AllocateSegment{Collection: coll, Lease: 60 * second}, &resp)
	return resp.Segment
}

// files returns n insert files under the segment's prefix.
func files(s *fsmpb.Segment, n int) []*fsmpb.File {
	out := make([]*fsmpb.File, n)
	for i := range out {
		out[i] = &fsmpb.File{
			Key:     fmt.Sprintf("%sinsert/%d/%d", SegmentPrefix(s.CollectionId, s.Id), 100+i%3, 1000+i),
			Kind:    fsmpb.FileKind_FILE_KIND_INSERT,
			FieldId: int64(100 + i%3),
			Size:    uint64(4096 + i),
			Crc32C:  uint32(i * 7919),
		}
	}
	return out
}

// flushedSegment allocates and flushes a segment with n files.
func (h *harness) flushedSegment(coll string, n int) *fsmpb.Segment {
	h.t.Helper()
	s := h.allocate(coll)
	var resp fsmpb.SegmentResponse
	h.ok(&fsmpb.FlushSegment{SegmentId: s.Id, RowCount: 100, Files: files(s, n)}, &resp)
	return resp.Segment
}
