package server_test

import (
	"context"
	"crypto/sha256"
	"fmt"
	"os"
	"path/filepath"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/internal/raftreplay"
	"github.com/snapkeep/snapkeep/internal/raftstore"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// replayHash rebuilds a stopped node's FSM from its data dir up to index (offline,
// internal/raftreplay) and returns its hash.
func replayHash(t *testing.T, dataDir string, index uint64) string {
	t.Helper()
	src, err := raftreplay.Open(dataDir, dataDir)
	require.NoError(t, err)
	defer src.Close()
	start, err := src.Start("", index)
	require.NoError(t, err)
	r, err := src.NewReplayer(start)
	require.NoError(t, err)
	require.NoError(t, r.To(index))
	return r.FSM.Hash()
}

// logDigest reads a stopped node's Raft log: each entry's term, type and a hash of
// its data, by index.
func logDigest(t *testing.T, dataDir string) (first, last uint64, entries map[uint64]string) {
	t.Helper()
	s, err := raftstore.OpenReadOnly(filepath.Join(dataDir, "raft"))
	require.NoError(t, err)
	defer s.Close()
	first, err = s.FirstIndex()
	require.NoError(t, err)
	last, err = s.LastIndex()
	require.NoError(t, err)
	entries = map[uint64]string{}
	for i := first; i <= last && last > 0; i++ {
		var l raft.Log
		require.NoError(t, s.GetLog(i, &l), "entry %d of %s", i, dataDir)
		entries[i] = fmt.Sprintf("%d/%v/%x/%x", l.Term, l.Type, sha256.Sum256(l.Data), l.Extensions)
	}
	return first, last, entries
}

// A cluster whose data dirs were written by the bolt store, restarted with the default
// store, migrates each node's log to the WAL at start: every entry is in the WAL (the
// FSM replayed from it to the last entry bolt held has the same hash as replayed from
// bolt), the nodes serve every object written before, raft.db is kept as
// raft.db.pre-wal, and the cluster takes writes. One node finds the half-written
// wal.migrating a crash in the middle of a migration leaves, and migrates again.
func TestBoltDataDirsMigrateToTheWALOnStart(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.RaftLogStore = raftstore.Bolt
	}})
	cl, err := client.New(context.Background(), c.Endpoints()...)
	require.NoError(t, err)
	defer cl.Close()
	ctx := context.Background()
	for i := range 30 {
		name := fmt.Sprintf("c%02d", i)
		_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(name))
		require.NoError(t, err)
		_, err = cl.AllocateSegment(ctx, client.NewAllocateSegmentOption(name))
		require.NoError(t, err)
	}
	c.WaitConverged()
	c.StopAll()

	type log struct {
		first, last uint64
		entries     map[uint64]string
		hash        string // the FSM's at last
	}
	before := map[int]log{}
	for i := range c.Nodes {
		raftDir := filepath.Join(c.DataDir(i), "raft")
		_, err := os.Stat(filepath.Join(raftDir, raftstore.BoltFile))
		require.NoError(t, err)
		var l log
		l.first, l.last, l.entries = logDigest(t, c.DataDir(i))
		require.Greater(t, l.last, uint64(60), "node %d", i)
		l.hash = replayHash(t, c.DataDir(i), l.last)
		before[i] = l
		c.Configure(i, func(cfg *server.Config) { cfg.RaftLogStore = "" })
	}
	// Node 1 was killed in the middle of its migration once already.
	half := filepath.Join(c.DataDir(1), "raft", "wal.migrating")
	require.NoError(t, os.Mkdir(half, 0o755))
	require.NoError(t, os.WriteFile(filepath.Join(half, "wal-meta.db"), []byte("half a bolt file"), 0o644))
	require.NoError(t, os.WriteFile(filepath.Join(half, "00000000000000000001-0000000000000001.wal"), make([]byte, 4096), 0o644))

	for i := range c.Nodes {
		c.Restart(i)
	}
	c.WaitReady()
	c.WaitConverged()
	for i := range c.Nodes {
		cols, err := c.Nodes[i].FSM().View().Collections(fsm.DefaultDatabase)
		require.NoError(t, err)
		require.Len(t, cols, 30, "node %d", i)
	}
	for i := range c.Nodes {
		raftDir := filepath.Join(c.DataDir(i), "raft")
		for _, gone := range []string{raftstore.BoltFile, "wal.migrating"} {
			_, err := os.Stat(filepath.Join(raftDir, gone))
			require.ErrorIs(t, err, os.ErrNotExist, "node %d's %s", i, gone)
		}
		for _, kept := range []string{raftstore.WALDir, raftstore.BoltBackup} {
			_, err := os.Stat(filepath.Join(raftDir, kept))
			require.NoError(t, err, "node %d's %s", i, kept)
		}
	}
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("after"))
	require.NoError(t, err)
	c.WaitConverged()
	c.StopAll()

	for i := range c.Nodes {
		first, last, entries := logDigest(t, c.DataDir(i))
		b := before[i]
		require.Equal(t, b.first, first, "node %d: the WAL's first entry", i)
		require.Greater(t, last, b.last, "node %d took entries after the migration", i)
		for idx, want := range b.entries {
			require.Equal(t, want, entries[idx], "node %d: entry %d", i, idx)
		}
		require.Equal(t, b.hash, replayHash(t, c.DataDir(i), b.last), "node %d: the FSM replayed from the WAL", i)
	}
}
