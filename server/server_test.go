package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/servertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
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
