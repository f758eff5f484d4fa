package raftreplay

import (
	"path/filepath"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/internal/raftstore"
)

// command is the log data of an fsm command.
func command(t *testing.T, typ fsmpb.CommandType, body proto.Message, requestID string) []byte {
	t.Helper()
	b, err := proto.Marshal(body)
	require.NoError(t, err)
	env, err := proto.Marshal(&fsmpb.Envelope{Version: fsm.EnvelopeVersion, Type: typ, Body: b, RequestId: requestID, Now: time.Unix(1700000000, 0).UnixNano()})
	require.NoError(t, err)
	return env
}

// writeLog makes a data directory whose Raft log, in the store kind, holds entries.
func writeLog(t *testing.T, kind string, entries []*raft.Log) string {
	t.Helper()
	dir := t.TempDir()
	store, err := raftstore.Open(filepath.Join(dir, "raft"), raftstore.Options{Kind: kind})
	require.NoError(t, err)
	require.NoError(t, store.StoreLogs(entries))
	require.NoError(t, store.Close())
	return dir
}

// The divergence of the seed-90210417 run, in small: B's leader wrote a no-op and a
// barrier at 3 and 4 in term 2; A, a deposed leader that took term 2 from a heartbeat,
// wrote two client commands there under the same term; both then took the new leader's
// entries from 5 on. The tool must name index 3, and the log-matching check both.
func TestDiffAndLogMatchingFindTheSplit(t *testing.T) {
	for _, kind := range raftstore.Kinds {
		t.Run(kind, func(t *testing.T) { testDiffAndLogMatching(t, kind) })
	}
}

func testDiffAndLogMatching(t *testing.T, kind string) {
	create := func(name, req string) []byte {
		return command(t, fsmpb.CommandType_COMMAND_TYPE_CREATE_DATABASE, &fsmpb.CreateDatabase{Name: name}, req)
	}
	common := []*raft.Log{
		{Index: 1, Term: 1, Type: raft.LogCommand, Data: create("a", "r1")},
		{Index: 2, Term: 1, Type: raft.LogCommand, Data: create("b", "r2")},
	}
	tail := []*raft.Log{
		{Index: 5, Term: 2, Type: raft.LogCommand, Data: create("c", "r3")},
		{Index: 6, Term: 2, Type: raft.LogCommand, Data: create("d", "r4")},
	}
	aLog := append(append(append([]*raft.Log{}, common...),
		&raft.Log{Index: 3, Term: 2, Type: raft.LogCommand, Data: create("stale", "r9")},
		&raft.Log{Index: 4, Term: 2, Type: raft.LogCommand, Data: create("stale2", "r10")}), tail...)
	bLog := append(append(append([]*raft.Log{}, common...),
		&raft.Log{Index: 3, Term: 2, Type: raft.LogNoop},
		&raft.Log{Index: 4, Term: 2, Type: raft.LogBarrier}), tail...)

	a, err := Open("A", writeLog(t, kind, aLog))
	require.NoError(t, err)
	defer a.Close()
	b, err := Open("B", writeLog(t, kind, bLog))
	require.NoError(t, err)
	defer b.Close()

	mm, err := LogMismatches(a, b)
	require.NoError(t, err)
	require.Len(t, mm, 2)
	require.Equal(t, uint64(3), mm[0].Index)
	require.Contains(t, mm[0].String(), "CreateDatabase")

	for _, every := range []int{1, 2, 256} {
		ra, err := a.NewReplayer(nil)
		require.NoError(t, err)
		rb, err := b.NewReplayer(nil)
		require.NoError(t, err)
		d, err := FirstDivergence(ra, rb, 6, every)
		require.NoError(t, err)
		require.NotNil(t, d, "every %d", every)
		require.Equal(t, uint64(3), d.Index, "every %d", every)
		require.NoError(t, d.DerivedA)
		require.Contains(t, d.String(), "B's entry at that index is different")
		require.Contains(t, d.String(), `name:"stale"`)
	}

	// Equal logs agree all the way.
	ra, err := a.NewReplayer(nil)
	require.NoError(t, err)
	ra2, err := a.NewReplayer(nil)
	require.NoError(t, err)
	d, err := FirstDivergence(ra, ra2, 6, 4)
	require.NoError(t, err)
	require.Nil(t, d)
}
