package env

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/internal/harness"
)

// BuildSnapkeep compiles the repository's snapkeep binary into <repo>/bin/snapkeep.
func BuildSnapkeep(ctx context.Context) (string, error) {
	root, err := harness.RepoRoot()
	if err != nil {
		return "", fmt.Errorf("env: %w", err)
	}
	return harness.BuildSnapkeep(ctx, harness.BuildOptions{Dir: filepath.Join(root, "bin")})
}

// SnapkeepNode is one server process.
type SnapkeepNode struct {
	*harness.Process
	ID       string
	GRPCAddr string
	RaftAddr string
	DataDir  string
	// HTTPAddr serves /metrics, /health and /debug/pprof/ (SnapkeepOptions.HTTP).
	HTTPAddr string
}

// Snapkeep is a three-node cluster bootstrapped from --peers, fsync on (the default),
// its bucket the given S3 server, periodic GC off (benchmarks run it themselves).
type Snapkeep struct {
	Nodes []*SnapkeepNode
}

// SnapkeepOptions tune the cluster.
type SnapkeepOptions struct {
	Binary string   // default BuildSnapkeep's output
	Root   string   // key prefix in the bucket; default "snapkeep"
	Extra  []string // more server flags for every node
	// HTTP gives every node its own --http-addr with --enable-pprof, so a scenario can
	// take CPU profiles of the servers (SnapkeepNode.HTTPAddr).
	HTTP bool
	// RaftLogStore is every node's --raft-log-store (wal, bolt); empty: the server's
	// default (the WAL).
	RaftLogStore string
	// Env is added to every node's environment (e.g. GOMEMLIMIT).
	Env []string
}

// StartSnapkeep starts three nodes with data and logs under dir and waits until
// every node answers and one leads.
func StartSnapkeep(ctx context.Context, dir string, s3 *S3, opts SnapkeepOptions) (*Snapkeep, error) {
	if opts.Binary == "" {
		b, err := Bin("snapkeep")
		if err != nil {
			return nil, err
		}
		opts.Binary = b
	}
	if opts.Root == "" {
		opts.Root = "snapkeep"
	}
	if err := os.MkdirAll(dir, 0o755); err != nil { // the logs go here
		return nil, err
	}
	c := &Snapkeep{}
	var peers []string
	for i := 1; i <= 3; i++ {
		n := &SnapkeepNode{ID: fmt.Sprintf("n%d", i), DataDir: filepath.Join(dir, fmt.Sprintf("snapkeep-n%d", i))}
		var err error
		if n.GRPCAddr, err = harness.FreeAddr(); err != nil {
			return nil, err
		}
		if n.RaftAddr, err = harness.FreeAddr(); err != nil {
			return nil, err
		}
		if opts.HTTP {
			if n.HTTPAddr, err = harness.FreeAddr(); err != nil {
				return nil, err
			}
		}
		peers = append(peers, n.ID+"="+n.RaftAddr)
		c.Nodes = append(c.Nodes, n)
	}
	gw := s3.Config()
	for _, n := range c.Nodes {
		args := []string{"server", "--node-id", n.ID, "--data-dir", n.DataDir,
			"--raft-addr", n.RaftAddr, "--grpc-addr", n.GRPCAddr,
			"--peers", strings.Join(peers, ","),
			"--s3-endpoint", gw.Endpoint, "--s3-bucket", gw.Bucket, "--s3-path-style",
			"--s3-access-key", gw.AccessKey, "--s3-secret-key", gw.SecretKey,
			"--root", opts.Root, "--gc-disabled", "--log-level", "warn",
			// The nodes share a cluster secret, as production nodes must.
			"--internal-token", ClusterSecret}
		if n.HTTPAddr != "" {
			args = append(args, "--http-addr", n.HTTPAddr, "--enable-pprof")
		}
		if opts.RaftLogStore != "" {
			args = append(args, "--raft-log-store", opts.RaftLogStore)
		}
		args = append(args, opts.Extra...)
		n.Process = &harness.Process{Name: "snapkeep-" + n.ID, Binary: opts.Binary, Args: args, Env: opts.Env, LogPath: filepath.Join(dir, "snapkeep-"+n.ID+".log")}
		if err := n.Start(); err != nil {
			c.Stop()
			return nil, err
		}
	}
	if err := c.WaitReady(ctx, 60*time.Second); err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

// Endpoints are the nodes' gRPC addresses.
func (c *Snapkeep) Endpoints() []string {
	var eps []string
	for _, n := range c.Nodes {
		eps = append(eps, n.GRPCAddr)
	}
	return eps
}

// Client connects to every node (it follows the leader).
func (c *Snapkeep) Client(ctx context.Context) (*client.Client, error) {
	return client.New(ctx, c.Endpoints()...)
}

// WaitReady waits until every running node answers and one of them leads.
func (c *Snapkeep) WaitReady(ctx context.Context, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		cl, err := n.Client(ctx)
		if err != nil {
			return err
		}
		err = n.WaitReady(ctx, 100*time.Millisecond, 2*time.Second, func(ctx context.Context) error {
			st, err := cl.ClusterStatus(ctx)
			if err != nil {
				return err
			}
			if st.LeaderId == "" {
				return errors.New("no leader yet")
			}
			return nil
		})
		_ = cl.Close()
		if err != nil {
			return fmt.Errorf("snapkeep %s not ready: %w", n.ID, err)
		}
	}
	return nil
}

// Leader asks a running node which node leads and returns it.
func (c *Snapkeep) Leader(ctx context.Context) (*SnapkeepNode, error) {
	for _, n := range c.Nodes {
		if !n.Running() {
			continue
		}
		cl, err := n.Client(ctx)
		if err != nil {
			continue
		}
		st, err := cl.ClusterStatus(ctx)
		_ = cl.Close()
		if err != nil || st.LeaderId == "" {
			continue
		}
		for _, m := range c.Nodes {
			if m.ID == st.LeaderId {
				return m, nil
			}
		}
	}
	return nil, errors.New("no node names a leader")
}

// Client talks to this node only: no retries, no following the leader.
func (n *SnapkeepNode) Client(ctx context.Context) (*client.Client, error) {
	return client.NewWithConfig(ctx, client.Config{Endpoints: []string{n.GRPCAddr}, MaxRetries: -1, NoLeaderFollowing: true})
}

// Stop stops every node (SIGTERM, then SIGKILL).
func (c *Snapkeep) Stop() {
	for _, n := range c.Nodes {
		if n.Process != nil {
			_ = n.Stop()
		}
	}
}

// ClusterSecret is the cluster secret (--internal-token) every benchmarked node is
// started with.
const ClusterSecret = "bench-cluster-secret-0123456789"
