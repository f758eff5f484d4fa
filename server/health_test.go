package server_test

import (
	"context"
	"net/http"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/client"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// faultLogStore fails every log write with ENOSPC while full is set: a full disk.
type faultLogStore struct {
	raft.LogStore
	full *atomic.Bool
}

func (s faultLogStore) StoreLog(l *raft.Log) error {
	if s.full.Load() {
		return syscall.ENOSPC
	}
	return s.LogStore.StoreLog(l)
}

func (s faultLogStore) StoreLogs(logs []*raft.Log) error {
	if s.full.Load() {
		return syscall.ENOSPC
	}
	return s.LogStore.StoreLogs(logs)
}

// TestHealthReportsFullDisk (issue 13 item 4): a follower whose Raft log cannot be
// written and that falls behind the leader used to answer /health 200 and
// snapkeep_node_healthy 1, and calls sent to it hung. Now its health names the log
// write error and the lag, and it refuses client calls at once with Unavailable,
// naming the leader; the Go client moves on to another node. Restarted with the disk
// still full (commit index 0, an empty catalog: it cannot ask the leader anything) it
// is no healthier: the leader's commit index comes with every replication request.
func TestHealthReportsFullDisk(t *testing.T) {
	t.Parallel() // long and mostly waiting: it overlaps the package's other parallel tests
	const maxLag = 5
	full := make([]*atomic.Bool, 3)
	c := servertest.Start(t, 3, servertest.Options{Configure: func(i int, cfg *server.Config) {
		full[i] = &atomic.Bool{}
		cfg.HTTP = server.HTTPConfig{Addr: "127.0.0.1:0"}
		cfg.HealthMaxLag = maxLag
		cfg.WrapLogStore = func(s raft.LogStore) raft.LogStore { return faultLogStore{LogStore: s, full: full[i]} }
	}})
	leader, follower := c.Leader(), c.Follower()
	fn := c.Nodes[follower]
	code, h := healthOf(t, fn.HTTPAddr(), "/health")
	require.Equal(t, http.StatusOK, code, "%+v", h)

	full[follower].Store(true)
	cl, err := client.New(context.Background(), c.Nodes[leader].GRPCAddr())
	require.NoError(t, err)
	defer cl.Close()
	for i := range 3 * maxLag {
		_, err := cl.CreateCollection(shortCtx(t), client.NewCreateCollectionOption("full_"+string(rune('a'+i))))
		require.NoError(t, err)
	}

	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		code, h, err := tryHealth(fn.HTTPAddr(), "/health")
		require.NoError(ct, err)
		require.Equal(ct, http.StatusServiceUnavailable, code)
		require.Contains(ct, h.Reasons, "log_write_error")
		require.Contains(ct, h.Reasons, "behind_leader")
		require.Contains(ct, h.LogWriteError, "no space left on device")
		fams := scrape(t, fn.HTTPAddr())
		require.Equal(ct, 0.0, fams.get(t, "snapkeep_node_healthy"))
		v, _ := fams.value("snapkeep_node_unhealthy_reason", map[string]string{"reason": "log_write_error"})
		require.Equal(ct, 1.0, v)
		v, _ = fams.value("snapkeep_node_unhealthy_reason", map[string]string{"reason": "behind_leader"})
		require.Equal(ct, 1.0, v)
	}, 20*time.Second, 100*time.Millisecond)

	// Reads and writes sent to the node are refused at once, naming the reason and
	// the leader, well before the deadline.
	conn, err := grpc.NewClient(fn.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		// The refusal follows health within a tick (healthInterval), so each
		// attempt gets a short deadline; a refusal comes back at once.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := pb.NewCatalogClient(conn).ListCollections(ctx, &pb.ListCollectionsRequest{})
		require.Equal(ct, codes.Unavailable, status.Code(err), "%v", err)
		require.Contains(ct, status.Convert(err).Message(), "cannot write the Raft log")
		require.Contains(ct, status.Convert(err).Message(), "the leader is "+c.Nodes[leader].ID())
		_, err = pb.NewCatalogClient(conn).CreateCollection(ctx, &pb.CreateCollectionRequest{RequestId: "r-full", Name: "refused"})
		require.Equal(ct, codes.Unavailable, status.Code(err), "%v", err)
	}, 10*time.Second, 100*time.Millisecond)

	// The Go client, given the sick node first, moves on to a healthy one.
	both, err := client.New(context.Background(), fn.GRPCAddr(), c.Nodes[leader].GRPCAddr())
	require.NoError(t, err)
	defer both.Close()
	for range 4 { // stale reads go round-robin, so some start at the sick node
		got, err := both.ListCollections(shortCtx(t), client.NewListCollectionsOption().WithStale())
		require.NoError(t, err)
		require.Len(t, got, 3*maxLag)
	}

	// Restarted with the disk still full, the node starts with commit index 0 and
	// still cannot write the entries it lacks: it must not look healthy then either.
	c.Stop(follower)
	c.Restart(follower)
	fn = c.Nodes[follower]
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		code, h, err := tryHealth(fn.HTTPAddr(), "/health")
		require.NoError(ct, err)
		require.Equal(ct, http.StatusServiceUnavailable, code)
		require.Zero(ct, h.CommitIndex, "the restarted node learned a commit index")
		require.Contains(ct, h.Reasons, "log_write_error")
		require.Contains(ct, h.Reasons, "behind_leader")
		require.Equal(ct, 0.0, scrape(t, fn.HTTPAddr()).get(t, "snapkeep_node_healthy"))
	}, 20*time.Second, 100*time.Millisecond)
	conn2, err := grpc.NewClient(fn.GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn2.Close()
	require.EventuallyWithT(t, func(ct *assert.CollectT) {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		_, err := pb.NewCatalogClient(conn2).ListCollections(ctx, &pb.ListCollectionsRequest{})
		require.Equal(ct, codes.Unavailable, status.Code(err), "%v", err)
		require.Contains(ct, status.Convert(err).Message(), "cannot write the Raft log")
	}, 10*time.Second, 100*time.Millisecond)

	// With disk space back, the node catches up and is healthy again.
	full[follower].Store(false)
	require.Eventually(t, func() bool {
		code, _, err := tryHealth(fn.HTTPAddr(), "/health")
		return err == nil && code == http.StatusOK
	}, 60*time.Second, 200*time.Millisecond)
}
