package fsm

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/fsmtest"
)

const testChannel = fsmtest.MilvusChannel

func TestPackSegmentMeta(t *testing.T) {
	pchannel := "by-dev-rootcoord-dml_3"
	cases := []struct {
		name string
		meta *fsmpb.SegmentMeta
		// maxPacked bounds the packed size (0: no bound checked).
		maxPacked int
	}{
		{"nil", nil, 0},
		{"empty", &fsmpb.SegmentMeta{}, 0},
		{"level only", &fsmpb.SegmentMeta{Level: fsmpb.SegmentLevel_SEGMENT_LEVEL_L0}, 9},
		{"negative storage version", &fsmpb.SegmentMeta{StorageVersion: -3, IsSorted: true}, 9},
		{"positions name the channel", &fsmpb.SegmentMeta{Level: fsmpb.SegmentLevel_SEGMENT_LEVEL_L1, Channel: testChannel,
			StartPosition: fsmtest.MsgPosition(testChannel, 8, 449000000000000001),
			DmlPosition:   fsmtest.MsgPosition(testChannel, 8, 449000000000009999), StorageVersion: 2, IsSorted: true},
			// the channel once, not three times
			4 + len(testChannel) + 2*(3+2+10+2+len(fsmtest.MilvusMsgGroup)+10) + 8},
		{"positions name the physical channel", &fsmpb.SegmentMeta{Channel: testChannel,
			StartPosition: fsmtest.MsgPosition(pchannel, 1, 7), DmlPosition: fsmtest.MsgPosition(pchannel, 1, 8)},
			// the physical channel (the virtual one's leading part) taken out of each
			5 + len(testChannel) + 2*(3+len(fsmtest.MsgPosition(pchannel, 1, 7))-len(pchannel))},
		{"positions without the channel", &fsmpb.SegmentMeta{Channel: testChannel, StartPosition: []byte("opaque"), DmlPosition: []byte{0, 1, 2}}, 0},
		{"channel shorter than the shared minimum", &fsmpb.SegmentMeta{Channel: "dml_0", StartPosition: []byte("dml_0dml_0")}, 0},
		{"channel twice in a position", &fsmpb.SegmentMeta{Channel: "abcdefghij", StartPosition: []byte("xxabcdefghXabcdefghijyy"), DmlPosition: []byte("abcdefghij")}, 0},
		{"position is the channel's prefix at the end", &fsmpb.SegmentMeta{Channel: "abcdefghij", StartPosition: []byte("--abcdefgh")}, 0},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			packed := packSegmentMeta(tc.meta)
			if tc.meta == nil || proto.Size(tc.meta) == 0 {
				require.Nil(t, packed)
			}
			if tc.maxPacked > 0 {
				require.LessOrEqual(t, len(packed), tc.maxPacked)
			}
			got, err := unpackSegmentMeta(packed)
			require.NoError(t, err)
			if len(packed) == 0 {
				require.Nil(t, got)
				return
			}
			require.True(t, proto.Equal(tc.meta, got), "want %v, got %v", tc.meta, got)
			require.Equal(t, packed, packSegmentMeta(got), "packing is a function of the metadata")
		})
	}
}

func TestUnpackSegmentMetaRefusesCorruptBlobs(t *testing.T) {
	good := packSegmentMeta(&fsmpb.SegmentMeta{Channel: testChannel, StartPosition: fsmtest.MsgPosition(testChannel, 1, 2)})
	for _, blob := range [][]byte{
		{2},                          // unknown version
		{1},                          // truncated
		good[:len(good)-1],           // short
		append(bytes.Clone(good), 0), // trailing bytes
		{1, 0, 0, 0, 0, 3, 0, 0},     // shared channel longer than the channel
	} {
		_, err := unpackSegmentMeta(blob)
		require.ErrorIs(t, err, errBadPackedMeta, "blob %v", blob)
	}
}

func FuzzPackedSegmentMeta(f *testing.F) {
	f.Add(packSegmentMeta(&fsmpb.SegmentMeta{Level: 3, Channel: testChannel, StartPosition: fsmtest.MsgPosition(testChannel, 1, 2),
		DmlPosition: fsmtest.MsgPosition(testChannel, 1, 4), StorageVersion: 2, IsSorted: true}))
	f.Add(packSegmentMeta(&fsmpb.SegmentMeta{Channel: "x", StartPosition: []byte("y")}))
	f.Add([]byte{1, 0, 0, 0, 0, 9, 0, 1, 0})
	f.Fuzz(func(t *testing.T, blob []byte) {
		m, err := unpackSegmentMeta(blob)
		if err != nil || m == nil {
			return
		}
		// Whatever unpacks packs to something that unpacks the same.
		again, err := unpackSegmentMeta(packSegmentMeta(m))
		require.NoError(t, err)
		if proto.Size(m) == 0 {
			require.Nil(t, again)
			return
		}
		require.True(t, proto.Equal(m, again), "%v != %v", m, again)
	})
}

// A raft snapshot written before metadata was packed holds it as a message, and file
// lists as version 2: loading it packs the one and rewrites the other.
func TestSnapshotWithUnpackedMetaLoads(t *testing.T) {
	meta := &fsmpb.SegmentMeta{Level: fsmpb.SegmentLevel_SEGMENT_LEVEL_L2, Channel: testChannel,
		StartPosition: fsmtest.MsgPosition(testChannel, 2, 3), StorageVersion: 2}
	f := New(nil)
	put := func(index uint64, cmd proto.Message) *ApplyResult {
		data, err := EncodeCommand("", 1, cmd)
		require.NoError(t, err)
		res := f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(*ApplyResult)
		require.NoError(t, res.Err())
		return res
	}
	put(1, &fsmpb.CreateCollection{Name: "docs", Layout: fsmpb.KeyLayout_KEY_LAYOUT_MILVUS})
	coll, _, err := f.View().Collection("", "docs")
	require.NoError(t, err)
	put(2, &fsmpb.AllocateSegment{Collection: "docs", Lease: 3600 * second})
	sid := f.View().r.meta().LastId
	put(3, &fsmpb.FlushSegment{SegmentId: sid, RowCount: 10, Meta: meta,
		Files: fsmtest.MilvusFiles(coll.Id, coll.Partitions[0].Id, sid)})

	// Rewrite the stored segment the old way, then snapshot and load.
	cur := f.current()
	seg, ok := cur.segments.get(&fsmpb.Segment{Id: sid})
	require.True(t, ok)
	require.NotEmpty(t, seg.PackedMeta)
	old := proto.CloneOf(seg)
	old.PackedMeta = nil
	legacy, err := proto.Marshal(meta)
	require.NoError(t, err)
	old.ProtoReflect().SetUnknown(protowire.AppendBytes(protowire.AppendTag(nil, legacyMetaField, protowire.BytesType), legacy))
	// and its files as a version 2 list
	old.Files, err = hex.DecodeString(fsmtest.GoldenFileListV2)
	require.NoError(t, err)
	cur.segments.put(old)
	var buf bytes.Buffer
	_, err = writeSnapshot(&buf, cur)
	require.NoError(t, err)

	loaded, err := readSnapshot(&buf)
	require.NoError(t, err)
	got, ok := loaded.segments.get(&fsmpb.Segment{Id: sid})
	require.True(t, ok)
	require.Empty(t, got.ProtoReflect().GetUnknown())
	require.Equal(t, seg.PackedMeta, got.PackedMeta)
	require.EqualValues(t, 3, got.Files[0], "the file list is rewritten as version 3")
	entries, err := filelist.Decode(got.Files)
	require.NoError(t, err)
	v2, err := hex.DecodeString(fsmtest.GoldenFileListV2)
	require.NoError(t, err)
	want, err := filelist.Decode(v2)
	require.NoError(t, err)
	require.Equal(t, want, entries)
	back, err := SegmentMetaOf(got)
	require.NoError(t, err)
	require.True(t, proto.Equal(meta, back))
}
