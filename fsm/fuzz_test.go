package fsm

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Fuzz targets for every decoder of untrusted bytes: log entries, file lists and raft
// snapshots. `make test` runs each briefly; `make fuzz FUZZTIME=10m` runs longer. The
// fuzzer minimizes each new interesting input for up to a minute by default and shows
// 0 execs/sec meanwhile; the Makefile caps that with -fuzzminimizetime.

func FuzzApply(f *testing.F) {
	for _, cmd := range []*fsmpb.CreateCollection{{Name: "docs"}, {Name: "x", Partitions: []string{"a"}}} {
		data, err := EncodeCommand("r", 1, cmd)
		require.NoError(f, err)
		f.Add(data)
	}
	s := &fsmpb.Segment{Id: 3, CollectionId: 2}
	data, err := EncodeCommand("", 1, &fsmpb.FlushSegment{SegmentId: 3, Files: files(s, 3)})
	require.NoError(f, err)
	f.Add(data)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		fsm := New(nil)
		fsm.Apply(&raft.Log{Index: 1, Type: raft.LogCommand, Data: mustEncode(t, &fsmpb.CreateCollection{Name: "docs"})})
		res := fsm.Apply(&raft.Log{Index: 2, Type: raft.LogCommand, Data: data}).(*ApplyResult)
		require.NotNil(t, res.Result)
		require.EqualValues(t, 2, fsm.AppliedIndex())
	})
}

func mustEncode(t testing.TB, cmd *fsmpb.CreateCollection) []byte {
	data, err := EncodeCommand("", 1, cmd)
	require.NoError(t, err)
	return data
}

func FuzzFileList(f *testing.F) {
	f.Add(encodeFileList([]FileEntry{{Key: "insert/1/2", Kind: 1, Size: 3}, {Key: "insert/1/3", Kind: 1, FieldID: -4, CRC32C: 9}}))
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 200, 1})
	f.Add(encodeFileList([]FileEntry{{Key: "insert_log/100/449000000000000001", Kind: 1, Size: 3, LogID: 449000000000000001, Entries: 7, TimestampFrom: 5, TimestampTo: 9, MemorySize: 11},
		{Key: "insert_log/101/449000000000000002", Kind: 1, LogID: 449000000000000002, TimestampTo: 1}}))
	golden, err := hex.DecodeString(goldenV2)
	require.NoError(f, err)
	f.Add(golden)
	f.Fuzz(func(t *testing.T, blob []byte) {
		entries, err := DecodeFileList(blob)
		if err != nil {
			return
		}
		// Whatever decodes re-encodes to something that decodes the same.
		again, err := DecodeFileList(encodeFileList(entries))
		require.NoError(t, err)
		if len(entries) == 0 {
			require.Empty(t, again)
			return
		}
		require.Equal(t, entries, again)
	})
}

func FuzzReadSnapshot(f *testing.F) {
	_, ref := randomLog(f, 5, 60)
	var buf bytes.Buffer
	_, err := writeSnapshot(&buf, ref.f.current())
	require.NoError(f, err)
	f.Add(buf.Bytes())
	f.Add([]byte(snapshotMagic))
	f.Fuzz(func(t *testing.T, data []byte) {
		_, _ = readSnapshot(bytes.NewReader(data))
	})
}
