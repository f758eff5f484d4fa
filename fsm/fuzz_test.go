package fsm

import (
	"bytes"
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
