package server_test

import (
	"context"
	"fmt"
	"net"
	"slices"
	"strconv"
	"testing"
	"time"

	"path/filepath"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

func TestMain(m *testing.M) {
	// hashicorp/raft never answers the future of an entry that was committed but not
	// yet applied when it shuts down (runFSM returns with the batch still in
	// fsmMutateCh, and a log future has no shutdown channel): a proposal whose caller
	// gave up as its node closed leaves applyLocal's waiter on that future for good.
	// It can only happen at shutdown, and there is nothing left to wait for.
	goleak.VerifyTestMain(m, goleak.IgnoreTopFunction("github.com/hashicorp/raft.(*deferError).Error"))
}

func dial(t *testing.T, addr string) (pb.CatalogClient, pb.ClusterClient) {
	t.Helper()
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	t.Cleanup(func() { conn.Close() })
	return pb.NewCatalogClient(conn), pb.NewClusterClient(conn)
}

// retry repeats a write until it is not Unavailable (leader changing).
func retry[T any](t *testing.T, fn func() (T, error)) T {
	t.Helper()
	var out T
	var err error
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		out, err = fn()
		if status.Code(err) != codes.Unavailable {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	require.NoError(t, err)
	return out
}

func TestWriteThroughFollowerSurvivesLeaderLoss(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	ctx := context.Background()
	follower := c.Follower()
	cat, cluster := dial(t, c.Nodes[follower].GRPCAddr())

	st, err := cluster.ClusterStatus(ctx, &pb.ClusterStatusRequest{})
	require.NoError(t, err)
	require.Len(t, st.Nodes, 3)
	roles := map[pb.NodeRole]int{}
	for _, n := range st.Nodes {
		roles[n.Role]++
		require.True(t, n.Voter)
	}
	require.Equal(t, 1, roles[pb.NodeRole_NODE_ROLE_LEADER])
	require.Equal(t, 2, roles[pb.NodeRole_NODE_ROLE_FOLLOWER], "%v", st.Nodes)

	// Writes through a follower are forwarded to the leader.
	var acked []string
	for i := 0; i < 20; i++ {
		name := fmt.Sprintf("c%d", i)
		_, err := cat.CreateCollection(ctx, &pb.CreateCollectionRequest{RequestId: "r-" + name, Name: name})
		require.NoError(t, err)
		acked = append(acked, name)
	}

	// Kill the leader: a new one is elected and every acknowledged write is there.
	old := c.Leader()
	c.Stop(old)
	newLeader := c.Leader()
	require.NotEqual(t, old, newLeader)
	survivor := c.Follower()
	cat2, _ := dial(t, c.Nodes[survivor].GRPCAddr())
	list := retry(t, func() (*pb.ListCollectionsResponse, error) {
		return cat2.ListCollections(ctx, &pb.ListCollectionsRequest{})
	})
	var names []string
	for _, coll := range list.Collections {
		names = append(names, coll.Name)
	}
	require.ElementsMatch(t, acked, names)

	// More writes while the old leader is down.
	for i := 20; i < 30; i++ {
		name := fmt.Sprintf("c%d", i)
		retry(t, func() (*pb.CreateCollectionResponse, error) {
			return cat2.CreateCollection(ctx, &pb.CreateCollectionRequest{RequestId: "r-" + name, Name: name})
		})
	}

	// The restarted node catches up and converges.
	c.Restart(old)
	c.WaitConverged()
	cat3, _ := dial(t, c.Nodes[old].GRPCAddr())
	list = retry(t, func() (*pb.ListCollectionsResponse, error) {
		return cat3.ListCollections(ctx, &pb.ListCollectionsRequest{Consistency: pb.ReadConsistency_READ_CONSISTENCY_STALE})
	})
	require.Len(t, list.Collections, 30)
}

// Every answer names the leader: the header as the call came in, and an error's trailer
// as the node knows it when answering — empty while it knows none, which tells the
// client that the node answered and that there is no leader to go to yet.
func TestErrorsNameTheLeaderInTheTrailer(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	ctx := context.Background()
	leader, follower := c.Leader(), c.Follower()
	leaderAddr := c.Nodes[leader].GRPCAddr()
	cat, _ := dial(t, c.Nodes[follower].GRPCAddr())

	var header, trailer metadata.MD
	_, err := cat.DescribeCollection(ctx, &pb.DescribeCollectionRequest{Name: "missing"}, grpc.Header(&header), grpc.Trailer(&trailer))
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
	require.Equal(t, []string{leaderAddr}, header.Get(server.LeaderMetadataKey))
	require.Equal(t, []string{leaderAddr}, trailer.Get(server.LeaderMetadataKey))

	// Without a quorum the survivor ends up knowing no leader, and says so.
	for i := range c.Nodes {
		if i != follower {
			c.Stop(i)
		}
	}
	require.Eventually(t, func() bool {
		var header, trailer metadata.MD
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		defer cancel()
		_, err := cat.CreateCollection(cctx, &pb.CreateCollectionRequest{RequestId: "r-x", Name: "x"}, grpc.Header(&header), grpc.Trailer(&trailer))
		return status.Code(err) == codes.Unavailable && len(header.Get(server.LeaderMetadataKey)) == 0 &&
			slices.Equal([]string{""}, trailer.Get(server.LeaderMetadataKey))
	}, 20*time.Second, 50*time.Millisecond)
}

// TestLaggingNodeCatchesUpFromRaftSnapshot stops a follower, writes enough for the
// leader to take raft snapshots and compact its log, and restarts the follower: it must
// be sent the FSM snapshot (Persist on the leader, Restore on the follower) and end in
// the same state.
func TestLaggingNodeCatchesUpFromRaftSnapshot(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.SnapshotThreshold = 64
		cfg.SnapshotInterval = 200 * time.Millisecond
		cfg.TrailingLogs = 16
		// Small WAL segments: the WAL drops compacted entries a sealed segment at a time
		// and still serves those of its open segment (64 MiB by default, which would
		// hold this whole log), so the leader would send the lagging node entries.
		cfg.RaftWALSegmentSize = 8 << 10
	}})
	ctx := context.Background()
	lagging := c.Follower()
	c.Stop(lagging)
	cat, _ := dial(t, c.Nodes[c.Leader()].GRPCAddr())
	_, err := cat.CreateCollection(ctx, &pb.CreateCollectionRequest{Name: "docs"})
	require.NoError(t, err)
	// Write until the leader has taken two raft snapshots: the log compaction after the
	// first, which runs before the second is taken, has then dropped entries the lagging
	// node misses. (A snapshot's state.bin appears before its compaction: waiting for
	// the file raced with it once writes were fast.)
	leader := c.Nodes[c.Leader()]
	snapshotIndex := func() uint64 {
		v, err := strconv.ParseUint(leader.Raft().Stats()["last_snapshot_index"], 10, 64)
		require.NoError(t, err)
		return v
	}
	written, first := 0, uint64(0)
	for ; written < 300 || first == 0 || snapshotIndex() == first; written++ {
		require.Less(t, written, 5000, "the leader took no second raft snapshot")
		retry(t, func() (*pb.AllocateSegmentResponse, error) {
			return cat.AllocateSegment(ctx, &pb.AllocateSegmentRequest{RequestId: fmt.Sprint("a", written), Collection: "docs"})
		})
		if first == 0 {
			first = snapshotIndex()
		}
	}

	c.Restart(lagging)
	hash := c.WaitConverged()
	installed, err := filepath.Glob(filepath.Join(c.Nodes[lagging].DataDir(), "raft", "snapshots", "*", "state.bin"))
	require.NoError(t, err)
	require.NotEmpty(t, installed, "the lagging node caught up without being sent a snapshot")
	require.Equal(t, hash, c.Nodes[lagging].FSM().Hash())
	d, _, err := c.Nodes[lagging].FSM().View().Collection("", "docs")
	require.NoError(t, err)
	var n int
	c.Nodes[lagging].FSM().View().EachSegment(d.Id, 0, func(*fsmpb.Segment) bool { n++; return true })
	require.Equal(t, written, n)
}

// TestStartFailsCleanly: a node that cannot start (its gRPC port is taken) returns an
// error naming the problem, and leaves nothing running or open.
func TestStartFailsCleanly(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	require.NoError(t, err)
	defer taken.Close()
	_, err = server.Start(server.Config{
		NodeID:   "n1",
		DataDir:  t.TempDir(),
		RaftAddr: "127.0.0.1:0",
		GRPCAddr: taken.Addr().String(),
		Peers:    map[string]string{"n1": "127.0.0.1:1"},
		Auth:     server.AuthConfig{Insecure: true},
	})
	require.ErrorContains(t, err, "listen on --grpc-addr "+taken.Addr().String())

	_, err = server.Start(server.Config{NodeID: "n1", Peers: map[string]string{"n2": "x"}})
	require.ErrorContains(t, err, "--data-dir is required")
	require.ErrorContains(t, err, `--peers does not include this node "n1"`)
	require.ErrorContains(t, err, `--peers: n2="x" is not host:port`)
}
