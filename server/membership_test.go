package server_test

import (
	"context"
	"net"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/membership"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// freeGossipAddr returns a 127.0.0.1 address whose port was free for both TCP and UDP
// a moment ago (memberlist binds both).
func freeGossipAddr(t *testing.T) string { return servertest.FreeAddr(t) }

// fastGossip shortens memberlist's timings for loopback tests.
func fastGossip(mc *memberlist.Config) {
	mc.ProbeInterval = 200 * time.Millisecond
	mc.ProbeTimeout = 100 * time.Millisecond
	mc.GossipInterval = 50 * time.Millisecond
	mc.PushPullInterval = time.Second
	mc.SuspicionMult = 3
	mc.TCPTimeout = time.Second
	mc.GossipToTheDeadTime = 2 * time.Second
}

// gossipConfig turns gossip on for node i of addrs, joining every other address.
func gossipConfig(addrs []string, i int) membership.Config {
	var join []string
	for j, a := range addrs {
		if j != i {
			join = append(join, a)
		}
	}
	return membership.Config{Addr: addrs[i], Join: join, Interval: 100 * time.Millisecond, Tune: fastGossip}
}

// startGossipCluster starts a three-node servertest cluster (static peers) with gossip
// on every node; edit, when set, changes each configuration further.
func startGossipCluster(t *testing.T, edit func(i int, cfg *server.Config)) *servertest.Cluster {
	t.Helper()
	addrs := []string{freeGossipAddr(t), freeGossipAddr(t), freeGossipAddr(t)}
	return servertest.Start(t, 3, servertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.Gossip = gossipConfig(addrs, i)
		if edit != nil {
			edit(i, cfg)
		}
	}})
}

// waitMembers waits until the leader reports want for every node it lists.
func waitMembers(t *testing.T, cl *client.Client, want func(m []*pb.Member) bool) []*pb.Member {
	t.Helper()
	var last []*pb.Member
	require.Eventually(t, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		resp, err := cl.ClusterMembers(ctx)
		if err != nil {
			return false
		}
		last = resp.Members
		return want(resp.Members)
	}, 30*time.Second, 50*time.Millisecond, "members: %v", func() []*pb.Member { return last }())
	return last
}

func member(ms []*pb.Member, id string) *pb.Member {
	for _, m := range ms {
		if m.Id == id {
			return m
		}
	}
	return &pb.Member{}
}

func allAliveVoters(n int) func([]*pb.Member) bool {
	return func(ms []*pb.Member) bool {
		ok := 0
		for _, m := range ms {
			if m.Status == pb.MemberStatus_MEMBER_STATUS_ALIVE && m.Voter {
				ok++
			}
		}
		return ok == n && len(ms) == n
	}
}

func gossipClient(t *testing.T, c *servertest.Cluster) *client.Client {
	t.Helper()
	cl, err := client.NewWithConfig(context.Background(), client.Config{Endpoints: c.Endpoints(),
		RetryBackoff: 20 * time.Millisecond, MaxRetryBackoff: 200 * time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	return cl
}

// TestMembershipReplaceWipedNode: a stopped node is shown as left and stays a voter;
// removal refuses the leader, an alive member and an unknown id; the stopped node is
// removed, started again with an empty data dir, found by gossip, added back as a voter
// by the leader, and catches up.
func TestMembershipReplaceWipedNode(t *testing.T) {
	c := startGossipCluster(t, nil)
	cl := gossipClient(t, c)
	ctx := context.Background()
	waitMembers(t, cl, allAliveVoters(3))

	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("before"))
	require.NoError(t, err)
	leader := c.Leader()
	victim := c.Follower()
	other := 3 - leader - victim
	victimID := c.Nodes[victim].ID()

	// The status shows gossip health.
	st, err := cl.ClusterStatus(ctx)
	require.NoError(t, err)
	for _, n := range st.Nodes {
		require.Equal(t, pb.MemberStatus_MEMBER_STATUS_ALIVE, n.GossipStatus, n.Id)
	}

	c.Stop(victim)
	ms := waitMembers(t, cl, func(ms []*pb.Member) bool {
		return member(ms, victimID).Status == pb.MemberStatus_MEMBER_STATUS_LEFT
	})
	require.True(t, member(ms, victimID).Voter, "a failed member stays a voter")

	_, err = cl.RemoveNode(ctx, client.NewRemoveNodeOption(c.Nodes[leader].ID()))
	require.ErrorIs(t, err, client.ErrFailedPrecondition)
	require.ErrorContains(t, err, "transfer leadership first")
	_, err = cl.RemoveNode(ctx, client.NewRemoveNodeOption(c.Nodes[other].ID()))
	require.ErrorIs(t, err, client.ErrFailedPrecondition)
	require.ErrorContains(t, err, "alive in gossip")
	_, err = cl.RemoveNode(ctx, client.NewRemoveNodeOption("n9"))
	require.ErrorIs(t, err, client.ErrNotFound)

	resp, err := cl.RemoveNode(ctx, client.NewRemoveNodeOption(victimID))
	require.NoError(t, err)
	require.NotZero(t, resp.ConfigurationIndex)
	ms = waitMembers(t, cl, func(ms []*pb.Member) bool { return !member(ms, victimID).InRaftConfiguration })
	require.Equal(t, pb.MemberStatus_MEMBER_STATUS_LEFT, member(ms, victimID).Status)

	// Writes go on with two voters.
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("during"))
	require.NoError(t, err)

	// Replace it: an empty data dir, no static peers, bootstrap-expect set (it must not
	// bootstrap: the others have Raft state).
	c.Configure(victim, func(cfg *server.Config) {
		cfg.DataDir = t.TempDir()
		cfg.Peers = nil
		cfg.Gossip.BootstrapExpect = 3
	})
	c.Restart(victim)
	waitMembers(t, cl, allAliveVoters(3))
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("after"))
	require.NoError(t, err)
	c.WaitConverged()
	names := func(n *server.Node) []string {
		var out []string
		colls, err := n.FSM().View().Collections("default")
		require.NoError(t, err)
		for _, coll := range colls {
			out = append(out, coll.Name)
		}
		return out
	}
	require.Subset(t, names(c.Nodes[victim]), []string{"before", "during", "after"})
}

// TestTransferLeadershipToNamedNode hands leadership to a named follower and back to
// whichever follower Raft picks.
func TestTransferLeadershipToNamedNode(t *testing.T) {
	key := []byte("0123456789abcdef0123456789abcdef")
	c := startGossipCluster(t, func(_ int, cfg *server.Config) { cfg.Gossip.Key = key }) // encrypted gossip
	cl := gossipClient(t, c)
	ctx := context.Background()
	waitMembers(t, cl, allAliveVoters(3))

	old := c.Leader()
	target := c.Follower()
	resp, err := cl.TransferLeadership(ctx, client.NewTransferLeadershipOption().WithTarget(c.Nodes[target].ID()))
	require.NoError(t, err)
	require.Equal(t, c.Nodes[target].ID(), resp.LeaderId)
	require.Equal(t, target, c.Leader())
	require.False(t, c.Nodes[old].IsLeader())

	_, err = cl.TransferLeadership(ctx, client.NewTransferLeadershipOption().WithTarget("n9"))
	require.ErrorIs(t, err, client.ErrNotFound)

	resp, err = cl.TransferLeadership(ctx, client.NewTransferLeadershipOption())
	require.NoError(t, err)
	require.NotEqual(t, c.Nodes[target].ID(), resp.LeaderId)

	// The cluster still takes writes.
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("after_transfer"))
	require.NoError(t, err)
	c.WaitConverged()
}

// TestRestoreSchedulerSkipsFailedMember: a node whose gossip stopped (suspect, then
// dead) keeps asking for restore work but gets no leases; the job completes on the
// others.
func TestRestoreSchedulerSkipsFailedMember(t *testing.T) {
	var mu sync.Mutex
	executed := map[int]int{}
	c := startGossipCluster(t, func(i int, cfg *server.Config) {
		cfg.RestoreBatch = 2
		cfg.Failpoints = &server.Failpoints{BeforeRestoreReport: func(context.Context, uint64, uint64) error {
			mu.Lock()
			executed[i]++
			mu.Unlock()
			return nil
		}}
	})
	cl := gossipClient(t, c)
	ctx := context.Background()
	waitMembers(t, cl, allAliveVoters(3))

	victim := c.Follower()
	victimID := c.Nodes[victim].ID()
	c.Nodes[victim].StopGossipForTest()
	ms := waitMembers(t, cl, func(ms []*pb.Member) bool {
		s := member(ms, victimID).Status
		return s == pb.MemberStatus_MEMBER_STATUS_DEAD
	})
	require.True(t, member(ms, victimID).Voter, "a dead member is not removed without --dead-server-timeout")

	restoreSource(t, c, cl, 3)
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy"))
	require.NoError(t, err)
	job := waitJob(t, cl, resp.JobId)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)

	mu.Lock()
	defer mu.Unlock()
	require.Zero(t, executed[victim], "the dead member got leases: %v", executed)
	var total int
	for _, n := range executed {
		total += n
	}
	require.Positive(t, total)
}

// TestDeadServerTimeoutRemovesAFailedVoter: with --dead-server-timeout set, the leader
// removes a voter gossip has reported dead for that long, and only that one.
func TestDeadServerTimeoutRemovesAFailedVoter(t *testing.T) {
	c := startGossipCluster(t, func(_ int, cfg *server.Config) { cfg.Gossip.DeadServerTimeout = time.Second })
	cl := gossipClient(t, c)
	waitMembers(t, cl, allAliveVoters(3))
	victim := c.Follower()
	victimID := c.Nodes[victim].ID()
	c.Nodes[victim].StopGossipForTest()
	waitMembers(t, cl, func(ms []*pb.Member) bool {
		return member(ms, victimID).Status == pb.MemberStatus_MEMBER_STATUS_DEAD && !member(ms, victimID).InRaftConfiguration
	})
	c.Stop(victim)
	ms := waitMembers(t, cl, func(ms []*pb.Member) bool { return true })
	voters := 0
	for _, m := range ms {
		if m.Voter {
			voters++
			require.Equal(t, pb.MemberStatus_MEMBER_STATUS_ALIVE, m.Status, m.Id)
		}
	}
	require.Equal(t, 2, voters)
	// Two voters left, both needed for a quorum: nothing more is removed.
	_, err := cl.CreateCollection(context.Background(), client.NewCreateCollectionOption("still_writable"))
	require.NoError(t, err)
}

// TestStartFailsWhenGossipPortTaken: a node whose gossip port is taken does not start,
// and releases everything it opened (goleak checks the goroutines).
func TestStartFailsWhenGossipPortTaken(t *testing.T) {
	addr := freeGossipAddr(t)
	ln, err := net.Listen("tcp", addr)
	require.NoError(t, err)
	defer ln.Close()
	_, err = server.Start(server.Config{NodeID: "n1", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0",
		Gossip: membership.Config{Addr: addr, BootstrapExpect: 1}, NoSync: true, Auth: server.AuthConfig{Insecure: true}})
	require.ErrorContains(t, err, "start gossip on --gossip-addr")

	_, err = server.Start(server.Config{NodeID: "n1", DataDir: t.TempDir(), RaftAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", Auth: server.AuthConfig{Insecure: true}})
	require.ErrorContains(t, err, "--peers is required")
}

// TestSingleNodeBootstrapExpectOne: --bootstrap-expect 1 with no peers bootstraps a
// lone node by gossip, and a restart does not bootstrap again.
func TestSingleNodeBootstrapExpectOne(t *testing.T) {
	dir := t.TempDir()
	cfg := server.Config{NodeID: "n1", DataDir: dir, RaftAddr: "127.0.0.1:0", GRPCAddr: "127.0.0.1:0", NoSync: true,
		HeartbeatTimeout: 100 * time.Millisecond, ElectionTimeout: 100 * time.Millisecond, LeaderLeaseTimeout: 50 * time.Millisecond,
		Gossip: membership.Config{Addr: freeGossipAddr(t), BootstrapExpect: 1, Interval: 50 * time.Millisecond, Tune: fastGossip},
		Auth:   server.AuthConfig{InternalToken: servertest.ClusterSecret}}
	n, err := server.Start(cfg)
	require.NoError(t, err)
	require.Eventually(t, n.IsLeader, 10*time.Second, 20*time.Millisecond)
	last := n.Raft().LastIndex()
	require.NoError(t, n.Close())

	cfg.Gossip.Addr = freeGossipAddr(t)
	n, err = server.Start(cfg)
	require.NoError(t, err)
	defer n.Close()
	require.Eventually(t, n.IsLeader, 10*time.Second, 20*time.Millisecond)
	require.GreaterOrEqual(t, n.Raft().LastIndex(), last)
	servers := n.Raft().GetConfiguration().Configuration().Servers
	require.Len(t, servers, 1)
}
