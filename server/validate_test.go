package server_test

import (
	"context"
	"fmt"
	"path/filepath"
	"sync/atomic"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/internal/raftstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// largestEntryLogStore remembers the largest entry a node's log stored since armed.
type largestEntryLogStore struct {
	raft.LogStore
	armed   *atomic.Bool
	largest *atomic.Int64
}

func (s largestEntryLogStore) StoreLog(l *raft.Log) error {
	return s.StoreLogs([]*raft.Log{l})
}

func (s largestEntryLogStore) StoreLogs(logs []*raft.Log) error {
	if s.armed.Load() {
		for _, l := range logs {
			if n := int64(len(l.Data)); n > s.largest.Load() {
				s.largest.Store(n)
			}
		}
	}
	return s.LogStore.StoreLogs(logs)
}

// A command Apply would reject never reaches the log: five flushes of 20,000 or 9,000
// files (over the per-segment limit, or with a key outside the segment) are refused
// before they are proposed, so no node's log grows by their 0.4–0.9 MB each (the WAL's
// written bytes, or raft.db's size with the bolt store; 200,000-file flushes used to
// add 130 MB to every node's raft.db), and the answer says why.
func TestRejectedCommandsDoNotReachTheLog(t *testing.T) {
	var armed atomic.Bool
	largest := make([]*atomic.Int64, 3)
	c := servertest.Start(t, 3, servertest.Options{Configure: func(i int, cfg *server.Config) {
		largest[i] = &atomic.Int64{}
		cfg.WrapLogStore = func(s raft.LogStore) raft.LogStore {
			return largestEntryLogStore{LogStore: s, armed: &armed, largest: largest[i]}
		}
	}})
	cl, err := client.New(context.Background(), c.Endpoints()...)
	require.NoError(t, err)
	defer cl.Close()
	ctx := context.Background()
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	seg, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs"))
	require.NoError(t, err)
	c.WaitConverged()

	sizes := func() []int64 {
		var out []int64
		for i := range c.Nodes {
			n, err := raftstore.LogBytes(filepath.Join(c.DataDir(i), "raft"))
			require.NoError(t, err)
			out = append(out, n)
		}
		return out
	}
	// The WAL's bytes are exact: less than one flush (and the nodes' own entries take a
	// few kB). bolt grows its file in steps.
	maxGrowth := int64(256 << 10)
	if servertest.RaftLogStore() == raftstore.Bolt {
		maxGrowth = 4 << 20
	}
	before := sizes()
	armed.Store(true)

	files := func(prefix string) []*pb.File {
		fs := make([]*pb.File, 20_000) // twice the limit, ~0.9 MB encoded
		for i := range fs {
			fs[i] = &pb.File{Key: fmt.Sprintf("%sinsert/101/%d", prefix, 100000+i), Kind: pb.FileKind_FILE_KIND_INSERT, FieldId: 101, Size: 1}
		}
		return fs
	}
	tooMany := files(seg.Prefix)
	for i := range 5 {
		fs := tooMany
		if i%2 == 1 {
			fs = files(seg.Prefix[:len(seg.Prefix)-2] + "9/") // another segment's prefix
			fs = fs[:9000]
		}
		_, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(seg.Id).WithRowCount(1).WithFiles(fs...))
		require.Error(t, err, "flush %d", i)
		if i%2 == 0 {
			require.ErrorIs(t, err, client.ErrResourceExhausted, "flush %d: %v", i, err)
			require.Contains(t, err.Error(), "20000 files given; the limit is 10000")
		} else {
			require.ErrorIs(t, err, client.ErrInvalidArgument, "flush %d: %v", i, err)
			require.Contains(t, err.Error(), "outside")
		}
	}
	// Nothing the flushes carried was appended: the smallest of them (9,000 files) is
	// over 300 kB encoded, while the nodes' own duties (and the no-op of a new leader,
	// should a busy CI machine lose one) append entries of a few hundred bytes. Counting
	// entries instead failed on a slow machine where leadership changed twice.
	for i := range largest {
		require.Less(t, largest[i].Load(), int64(64<<10), "node %d stored an entry of %d bytes", i, largest[i].Load())
	}
	for i, after := range sizes() {
		require.Less(t, after-before[i], maxGrowth, "node %d's Raft log grew from %d to %d bytes", i, before[i], after)
	}
	got, err := cl.GetSegment(ctx, client.NewGetSegmentOption(seg.Id))
	require.NoError(t, err)
	require.Equal(t, pb.SegmentState_SEGMENT_STATE_ALLOCATED, got.State)
}
