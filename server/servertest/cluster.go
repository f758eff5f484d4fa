// Package servertest runs in-process snapkeep clusters for tests: real nodes, real Raft
// over TCP and real gRPC, all on 127.0.0.1, with fast timeouts and unsynced logs.
// Every node is stopped when the test ends.
package servertest

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"runtime/pprof"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/internal/harness"
	"github.com/snapkeep/snapkeep/internal/raftstore"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/server"
)

// Cluster is a set of in-process nodes.
type Cluster struct {
	t       testing.TB
	configs []server.Config
	Nodes   []*server.Node // nil for a stopped node
	Bucket  Bucket
}

// Options tune a test cluster.
type Options struct {
	// Configure, when set, edits each node's configuration before it starts.
	Configure func(i int, cfg *server.Config)
}

// Bucket is the cluster's object store: an in-memory embedded S3 server on
// 127.0.0.1 shared by every node, and a client for it.
type Bucket struct {
	Server *objstore.Embedded
	Store  *objstore.S3
}

// Start starts n nodes that bootstrap one cluster, and waits for a leader that has
// registered every node's address.
func Start(t testing.TB, n int, opts Options) *Cluster {
	t.Helper()
	c := &Cluster{t: t}
	dir := t.TempDir()
	raftAddrs := make([]string, n)
	grpcAddrs := make([]string, n)
	peers := map[string]string{}
	for i := 0; i < n; i++ {
		raftAddrs[i] = FreeAddr(t)
		grpcAddrs[i] = FreeAddr(t)
		peers[nodeID(i)] = raftAddrs[i]
	}
	logger := testLogger(t)
	c.Bucket = startBucket(t)
	for i := 0; i < n; i++ {
		cfg := server.Config{
			NodeID:           nodeID(i),
			DataDir:          filepath.Join(dir, nodeID(i)),
			RaftAddr:         raftAddrs[i],
			GRPCAddr:         grpcAddrs[i],
			Peers:            peers,
			Root:             "snapkeep",
			Storage:          c.Bucket.Server.Config(),
			Store:            c.Bucket.Store,
			HeartbeatTimeout: 500 * time.Millisecond,
			ElectionTimeout:  500 * time.Millisecond,
			// As long as the heartbeat timeout (its upper bound): a -race run on two busy
			// cores starves heartbeats for ~300 ms now and then (seen in CI and on a clean
			// clone), and a leader that loses its lease fails the writes in flight.
			LeaderLeaseTimeout: 500 * time.Millisecond,
			ExpiryInterval:     100 * time.Millisecond,
			GCInterval:         200 * time.Millisecond,
			NoSync:             true,
			RaftLogStore:       RaftLogStore(),
			Logger:             logger.With("test_node", i),
			// Every node needs the cluster secret (Configure may replace it).
			Auth: server.AuthConfig{InternalToken: ClusterSecret},
		}
		if opts.Configure != nil {
			opts.Configure(i, &cfg)
		}
		c.configs = append(c.configs, cfg)
	}
	c.Nodes = make([]*server.Node, n)
	t.Cleanup(c.StopAll) // registered after the bucket's cleanup, so it runs first
	for i := range c.configs {
		c.Restart(i)
	}
	c.WaitReady()
	return c
}

func startBucket(t testing.TB) Bucket {
	t.Helper()
	ctx := context.Background()
	emb, err := objstore.StartEmbedded(ctx, objstore.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { emb.Close() })
	store, err := objstore.NewS3(ctx, emb.Config())
	require.NoError(t, err)
	t.Cleanup(func() { store.Close() })
	return Bucket{Server: emb, Store: store}
}

// RaftLogStore is the Raft log store test nodes use: SNAPKEEP_TEST_RAFT_LOG_STORE
// (wal or bolt), else the default (the WAL).
func RaftLogStore() string {
	if s := os.Getenv("SNAPKEEP_TEST_RAFT_LOG_STORE"); s != "" {
		return s
	}
	return raftstore.WAL
}

// ClusterSecret is the cluster secret the test clusters' nodes share.
const ClusterSecret = "servertest-cluster-secret"

func nodeID(i int) string { return fmt.Sprintf("n%d", i+1) }

// FreeAddr returns a 127.0.0.1 address whose port is free for TCP and UDP, was never
// handed out before in this process, and lies below Linux's ephemeral range, so no
// other process's listener on port 0 or outgoing connection takes it before (or
// between restarts of) the node that binds it (harness.FreeAddr).
func FreeAddr(t testing.TB) string {
	t.Helper()
	addr, err := harness.FreeAddr()
	require.NoError(t, err)
	return addr
}

// testLogger logs warnings and errors to the test log; SNAPKEEP_TEST_LOG=debug shows all.
func testLogger(t testing.TB) *slog.Logger {
	level := slog.LevelWarn
	if strings.EqualFold(os.Getenv("SNAPKEEP_TEST_LOG"), "debug") {
		level = slog.LevelDebug
	}
	return slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: level}))
}

type testWriter struct{ t testing.TB }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// Root is the storage root every node's keys sit under (its first node's).
func (c *Cluster) Root() string { return c.configs[0].Root }

// Restart starts node i (again), with its data dir and addresses.
func (c *Cluster) Restart(i int) {
	c.t.Helper()
	require.Nil(c.t, c.Nodes[i], "node %d is running", i)
	var node *server.Node
	var err error
	// The port was released by a stopped node or by FreeAddr; retry briefly if the
	// kernel has not let go of it yet.
	// Every goroutine of the node carries the profiler label node=<id> (goroutines
	// inherit their creator's labels), so a CPU profile of an in-process cluster splits
	// by node: go tool pprof -tagfocus node=n2.
	labels := pprof.Labels("node", c.configs[i].NodeID)
	for attempt := 0; attempt < 50; attempt++ {
		pprof.Do(context.Background(), labels, func(context.Context) { node, err = server.Start(c.configs[i]) })
		if err == nil || !strings.Contains(err.Error(), "address already in use") {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(c.t, err, "start node %d", i)
	c.Nodes[i] = node
}

// Stop stops node i gracefully.
func (c *Cluster) Stop(i int) {
	c.t.Helper()
	if c.Nodes[i] == nil {
		return
	}
	require.NoError(c.t, c.Nodes[i].Close())
	c.Nodes[i] = nil
}

// StopAll stops every running node.
func (c *Cluster) StopAll() {
	for i := range c.Nodes {
		if c.Nodes[i] != nil {
			_ = c.Nodes[i].Close()
			c.Nodes[i] = nil
		}
	}
}

// Leader waits for a leader among the running nodes and returns its index.
func (c *Cluster) Leader() int {
	c.t.Helper()
	var leader int
	require.Eventually(c.t, func() bool {
		leader = -1
		for i, n := range c.Nodes {
			if n != nil && n.IsLeader() {
				leader = i
			}
		}
		return leader >= 0
	}, 20*time.Second, 20*time.Millisecond, "no leader elected")
	return leader
}

// WaitReady waits for a leader and for every running node to be registered in the
// catalog, so any node can forward to the leader.
func (c *Cluster) WaitReady() {
	c.t.Helper()
	leader := c.Leader()
	require.Eventually(c.t, func() bool {
		registered := map[string]bool{}
		for _, n := range c.Nodes[leader].FSM().View().Nodes() {
			registered[n.Id] = n.GrpcAddr != ""
		}
		for _, n := range c.Nodes {
			if n != nil && !registered[n.ID()] {
				return false
			}
		}
		return true
	}, 20*time.Second, 20*time.Millisecond, "nodes did not register")
}

// Endpoints lists the gRPC addresses of every configured node (running or not).
func (c *Cluster) Endpoints() []string {
	out := make([]string, len(c.configs))
	for i, cfg := range c.configs {
		out[i] = cfg.GRPCAddr
	}
	return out
}

// Follower returns the index of a running node that is not the leader.
func (c *Cluster) Follower() int {
	c.t.Helper()
	leader := c.Leader()
	for i, n := range c.Nodes {
		if n != nil && i != leader {
			return i
		}
	}
	c.t.Fatal("no running follower")
	return -1
}

// WaitConverged waits until every running node has applied the same index and has
// the same FSM hash, and returns the hash.
func (c *Cluster) WaitConverged() string {
	c.t.Helper()
	var hash string
	require.Eventually(c.t, func() bool {
		hash = ""
		var index uint64
		for _, n := range c.Nodes {
			if n == nil {
				continue
			}
			h, i := n.FSM().Hash(), n.FSM().AppliedIndex()
			if hash == "" {
				hash, index = h, i
			} else if h != hash || i != index {
				return false
			}
		}
		return hash != ""
	}, 20*time.Second, 50*time.Millisecond, "nodes did not converge")
	return hash
}

// Configure edits node i's configuration for its next Restart (a new data dir, other
// flags). The node must be stopped.
func (c *Cluster) Configure(i int, fn func(cfg *server.Config)) {
	c.t.Helper()
	require.Nil(c.t, c.Nodes[i], "node %d is running", i)
	fn(&c.configs[i])
}

// DataDir is node i's data directory.
func (c *Cluster) DataDir(i int) string { return c.configs[i].DataDir }
