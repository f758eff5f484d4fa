// Package cluster runs the cluster under test: an S3 server (versitygw) behind the
// S3 fault proxy and three `snapkeep server` processes on 127.0.0.1, each in its own
// process group with its log in the run directory, and every node's peer traffic
// through the harness's link proxies (jepsen/netproxy).
//
// Raft: one proxy per ordered pair (a,b); node a's --peers names b at the (a,b) proxy,
// so each directed Raft link can be cut, delayed or made lossy on its own.
//
// Internal gRPC (forwarding writes, ReadIndex, restore leases, node status): a node
// finds its peers' gRPC addresses in the node registry of the FSM, where each node
// registers the one address it advertises (--grpc-advertise). One advertised address
// cannot differ per source, so gRPC is proxied per destination: all node-to-node gRPC
// to b goes through b's gRPC proxy, which can only be cut as a whole (every source at
// once). A partition therefore cuts Raft per directed link and gRPC per destination
// (see nemesis). Clients (the workload) dial each node's gRPC listener directly.
//
// Each node bootstraps its own copy of the Raft configuration (its own peer addresses,
// the per-link proxies). A follower that installs a raft snapshot from the leader takes
// the leader's copy, and from then on dials its peers through the leader's link proxies:
// traffic still reaches the right node, but faults on that node's links hit other
// links. With raft's default thresholds (a snapshot every 8,192 entries, 10,240 kept)
// a few-minute run rarely installs one; for the same reason no nemesis changes the
// configuration (see nemesis).
package cluster

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/jepsen/netproxy"
	"github.com/snapkeep/snapkeep/jepsen/s3proxy"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/versitygw"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// Root is the key prefix the nodes use in the bucket.
const Root = "snapkeep"

// RepoRoot is the directory holding go.mod, found upwards from the working directory.
func RepoRoot() (string, error) {
	dir, err := os.Getwd()
	if err != nil {
		return "", err
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir, nil
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return "", errors.New("no go.mod above the working directory")
		}
		dir = parent
	}
}

// Build compiles the snapkeep binary into dir as snapkeep (or, with -tags jepsenbug
// when bug is set, snapkeep-jepsenbug) and returns its path.
func Build(ctx context.Context, dir string, bug bool) (string, error) {
	root, err := RepoRoot()
	if err != nil {
		return "", err
	}
	name := "snapkeep"
	if bug {
		name = "snapkeep-jepsenbug"
	}
	out, err := filepath.Abs(filepath.Join(dir, name))
	if err != nil {
		return "", err
	}
	args := []string{"build", "-o", out}
	if bug {
		args = append(args, "-tags", "jepsenbug")
	}
	args = append(args, "./cmd/snapkeep")
	cmd := exec.CommandContext(ctx, "go", args...)
	cmd.Dir = root
	if b, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("go %s: %w\n%s", strings.Join(args, " "), err, b)
	}
	return out, nil
}

// Options configure a cluster.
type Options struct {
	Dir    string // run directory: data dirs, logs
	Binary string // the snapkeep binary (Build)
	Bug    string // SNAPKEEP_BUG for every node (needs a jepsenbug binary)
	Nodes  int    // default 3
}

// Node is one snapkeep server process.
type Node struct {
	ID       string
	RaftAddr string // where its Raft transport listens
	GRPCAddr string // where its gRPC listens (clients dial it)
	HTTPAddr string
	DataDir  string
	LogPath  string
	args     []string

	mu     sync.Mutex
	cmd    *exec.Cmd
	exited chan struct{}
	paused bool
}

// Cluster is the running cluster under test.
type Cluster struct {
	opts  Options
	Nodes []*Node
	// Raft link proxies by [from, to]; gRPC proxies by destination.
	Raft map[[2]string]*netproxy.Proxy
	GRPC map[string]*netproxy.Proxy
	S3   *s3proxy.Proxy
	GW   *versitygw.Process
	// Store reads the bucket directly (not through the fault proxy).
	Store  objstore.Store
	Bucket string
	env    []string
	gwLog  *os.File
}

var (
	portsMu sync.Mutex
	ports   = map[int]bool{} // handed out by this process
)

// freeAddr picks a free port on 127.0.0.1 for a node to listen on, for the whole run
// (a restarted node binds it again). It is below Linux's ephemeral range (32768+):
// a port from that range, once released, can be taken by any outgoing connection or
// by a proxy listening on port 0 before the node binds it.
func freeAddr() (string, error) {
	portsMu.Lock()
	defer portsMu.Unlock()
	for range 1000 {
		port := 20000 + rand.IntN(12000)
		if ports[port] {
			continue
		}
		addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
		ln, err := net.Listen("tcp", addr)
		if err != nil {
			continue
		}
		_ = ln.Close()
		ports[port] = true
		return addr, nil
	}
	return "", errors.New("no free port in 20000-32000 on 127.0.0.1")
}

// Start starts the S3 server, the proxies and the nodes, and waits for a leader.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	c = &Cluster{opts: opts, Raft: map[[2]string]*netproxy.Proxy{}, GRPC: map[string]*netproxy.Proxy{}}
	defer func() {
		if err != nil {
			c.Close()
		}
	}()
	logDir := filepath.Join(opts.Dir, "logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		return nil, err
	}
	gwLog, err := os.Create(filepath.Join(logDir, "versitygw.log"))
	if err != nil {
		return nil, err
	}
	c.gwLog = gwLog
	gwDir := filepath.Join(opts.Dir, "s3")
	if err := os.MkdirAll(gwDir, 0o755); err != nil {
		return nil, err
	}
	c.GW, err = versitygw.StartProcess(ctx, versitygw.Options{Dir: gwDir, Log: gwLog})
	if err != nil {
		return nil, err
	}
	c.Bucket = c.GW.Bucket()
	if c.Store, err = objstore.NewS3(ctx, c.GW.Config()); err != nil {
		return nil, err
	}
	if c.S3, err = s3proxy.Start(c.GW.Endpoint()); err != nil {
		return nil, err
	}
	for i := 1; i <= opts.Nodes; i++ {
		n := &Node{ID: fmt.Sprintf("n%d", i), DataDir: filepath.Join(opts.Dir, "data", fmt.Sprintf("n%d", i)),
			LogPath: filepath.Join(logDir, fmt.Sprintf("n%d.log", i))}
		for _, a := range []*string{&n.RaftAddr, &n.GRPCAddr, &n.HTTPAddr} {
			if *a, err = freeAddr(); err != nil {
				return nil, err
			}
		}
		c.Nodes = append(c.Nodes, n)
	}
	for _, b := range c.Nodes {
		p, err := netproxy.Start("grpc->"+b.ID, "", b.GRPCAddr)
		if err != nil {
			return nil, err
		}
		c.GRPC[b.ID] = p
		for _, a := range c.Nodes {
			if a == b {
				continue
			}
			p, err := netproxy.Start(a.ID+"->"+b.ID, "", b.RaftAddr)
			if err != nil {
				return nil, err
			}
			c.Raft[[2]string{a.ID, b.ID}] = p
		}
	}
	gw := c.GW.Config()
	for _, n := range c.Nodes {
		var peers []string
		for _, b := range c.Nodes {
			addr := b.RaftAddr
			if b != n {
				addr = c.Raft[[2]string{n.ID, b.ID}].Addr()
			}
			peers = append(peers, b.ID+"="+addr)
		}
		n.args = []string{"server",
			"--node-id", n.ID, "--data-dir", n.DataDir,
			"--raft-addr", n.RaftAddr, "--grpc-addr", n.GRPCAddr,
			"--grpc-advertise", c.GRPC[n.ID].Addr(), "--http-addr", n.HTTPAddr,
			"--peers", strings.Join(peers, ","),
			"--s3-endpoint", c.S3.Endpoint(), "--s3-bucket", gw.Bucket, "--s3-path-style",
			"--s3-access-key", gw.AccessKey, "--s3-secret-key", gw.SecretKey,
			"--root", Root,
			// Short enough that the end of a 1-minute run sees work a killed node held
			// handed back: restore leases and pending snapshots.
			"--restore-lease", "10s", "--snapshot-timeout", "30s",
			"--log-level", "debug",
		}
	}
	c.env = os.Environ()
	if opts.Bug != "" {
		c.env = append(c.env, "SNAPKEEP_BUG="+opts.Bug)
	}
	for _, n := range c.Nodes {
		if err := c.startNode(n); err != nil {
			return nil, err
		}
	}
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	if _, err := c.WaitLeader(wctx); err != nil {
		return nil, fmt.Errorf("no leader after start: %w", err)
	}
	// every node must be up, not just a quorum
	for _, n := range c.Nodes {
		for {
			sctx, scancel := context.WithTimeout(wctx, 3*time.Second)
			_, _, err := c.SelfStatus(sctx, n.ID)
			scancel()
			if err == nil {
				break
			}
			if !n.Running() || wctx.Err() != nil {
				return nil, fmt.Errorf("node %s did not start (see %s): %v", n.ID, n.LogPath, err)
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	return c, nil
}

func (c *Cluster) startNode(n *Node) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd != nil {
		select {
		case <-n.exited:
		default:
			return nil // running
		}
	}
	logf, err := os.OpenFile(n.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	fmt.Fprintf(logf, "=== jepsen: start %s at %s\n", n.ID, time.Now().UTC().Format(time.RFC3339Nano))
	cmd := exec.Command(c.opts.Binary, n.args...)
	cmd.Env = c.env
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logf.Close()
		return fmt.Errorf("start %s: %w", n.ID, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		_ = logf.Close()
		close(exited)
	}()
	n.cmd, n.exited, n.paused = cmd, exited, false
	return nil
}

// Node returns the node with this id.
func (c *Cluster) Node(id string) *Node {
	for _, n := range c.Nodes {
		if n.ID == id {
			return n
		}
	}
	return nil
}

// IDs returns the node ids.
func (c *Cluster) IDs() []string {
	var ids []string
	for _, n := range c.Nodes {
		ids = append(ids, n.ID)
	}
	return ids
}

// Running reports whether the node's process is alive (paused counts as alive).
func (n *Node) Running() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil {
		return false
	}
	select {
	case <-n.exited:
		return false
	default:
		return true
	}
}

func (n *Node) signal(sig syscall.Signal) error {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.cmd == nil || n.cmd.Process == nil {
		return fmt.Errorf("%s not started", n.ID)
	}
	return syscall.Kill(-n.cmd.Process.Pid, sig)
}

// Kill sends SIGKILL to the node's process group and waits for it to exit.
func (c *Cluster) Kill(id string) error {
	n := c.Node(id)
	_ = n.signal(syscall.SIGCONT)
	if err := n.signal(syscall.SIGKILL); err != nil {
		return err
	}
	n.mu.Lock()
	exited := n.exited
	n.paused = false
	n.mu.Unlock()
	select {
	case <-exited:
		return nil
	case <-time.After(10 * time.Second):
		return fmt.Errorf("%s did not exit after SIGKILL", id)
	}
}

// Restart starts a node that is not running (no-op otherwise).
func (c *Cluster) Restart(id string) error { return c.startNode(c.Node(id)) }

// Pause stops the node's process group with SIGSTOP; Resume continues it.
func (c *Cluster) Pause(id string) error {
	n := c.Node(id)
	n.mu.Lock()
	n.paused = true
	n.mu.Unlock()
	return n.signal(syscall.SIGSTOP)
}

// Resume sends SIGCONT.
func (c *Cluster) Resume(id string) error {
	n := c.Node(id)
	n.mu.Lock()
	n.paused = false
	n.mu.Unlock()
	return n.signal(syscall.SIGCONT)
}

// HealNetwork makes every link healthy and ends the S3 fault window.
func (c *Cluster) HealNetwork() {
	for _, p := range c.Raft {
		p.Heal()
	}
	for _, p := range c.GRPC {
		p.Heal()
	}
	c.S3.Set(s3proxy.Faults{})
}

// HealAll heals the network, resumes paused nodes and restarts dead ones.
func (c *Cluster) HealAll() error {
	c.HealNetwork()
	var errs []error
	for _, n := range c.Nodes {
		_ = n.signal(syscall.SIGCONT)
		n.mu.Lock()
		n.paused = false
		n.mu.Unlock()
		if !n.Running() {
			errs = append(errs, c.Restart(n.ID))
		}
	}
	return errors.Join(errs...)
}

// Partition cuts every Raft link between nodes of different groups, both ways, and
// the gRPC proxy of every node in a group of size one (gRPC is cut per destination, so
// only an isolated node's inbound gRPC can be cut without cutting others too).
func (c *Cluster) Partition(groups ...[]string) {
	group := map[string]int{}
	for i, g := range groups {
		for _, id := range g {
			group[id] = i
		}
	}
	for link, p := range c.Raft {
		if group[link[0]] != group[link[1]] {
			p.Set(netproxy.State{Cut: true})
		}
	}
	for _, g := range groups {
		if len(g) == 1 {
			c.GRPC[g[0]].Set(netproxy.State{Cut: true})
		}
	}
}

// CutPair cuts the Raft links between a and b (both ways) only: the third node sees
// both, a and b do not see each other.
func (c *Cluster) CutPair(a, b string) {
	c.Raft[[2]string{a, b}].Set(netproxy.State{Cut: true})
	c.Raft[[2]string{b, a}].Set(netproxy.State{Cut: true})
}

// NodeClient is a client bound to exactly one node: no retries, no leader following,
// so each call is one attempt on that node.
func (c *Cluster) NodeClient(ctx context.Context, id string) (*client.Client, error) {
	return client.NewWithConfig(ctx, client.Config{Endpoints: []string{c.Node(id).GRPCAddr}, MaxRetries: -1, NoLeaderFollowing: true})
}

// Client is a client of the whole cluster with the client's default retries: for the
// end-of-run audits.
func (c *Cluster) Client(ctx context.Context) (*client.Client, error) {
	var eps []string
	for _, n := range c.Nodes {
		eps = append(eps, n.GRPCAddr)
	}
	return client.NewWithConfig(ctx, client.Config{Endpoints: eps})
}

// SelfStatus asks node id for its own status (no other node is involved in it).
func (c *Cluster) SelfStatus(ctx context.Context, id string) (*snapkeepv1.NodeStatus, string, error) {
	cl, err := c.NodeClient(ctx, id)
	if err != nil {
		return nil, "", err
	}
	defer cl.Close()
	resp, err := cl.ClusterStatus(ctx, client.WithFSMHash())
	if err != nil {
		return nil, "", err
	}
	for _, st := range resp.Nodes {
		if st.Id == id {
			return st, resp.LeaderId, nil
		}
	}
	return nil, "", fmt.Errorf("%s is not in its own configuration", id)
}

// Leader returns the id of the node that reports itself leader with the highest term.
func (c *Cluster) Leader(ctx context.Context) (string, error) {
	type res struct {
		id  string
		st  *snapkeepv1.NodeStatus
		err error
	}
	ch := make(chan res, len(c.Nodes))
	for _, n := range c.Nodes {
		go func() {
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			defer cancel()
			st, _, err := c.SelfStatus(sctx, n.ID)
			ch <- res{n.ID, st, err}
		}()
	}
	best, term := "", uint64(0)
	for range c.Nodes {
		r := <-ch
		if r.err == nil && r.st.Role == snapkeepv1.NodeRole_NODE_ROLE_LEADER && r.st.Term >= term {
			best, term = r.id, r.st.Term
		}
	}
	if best == "" {
		return "", errors.New("no node reports itself leader")
	}
	return best, nil
}

// WaitLeader waits until some node leads.
func (c *Cluster) WaitLeader(ctx context.Context) (string, error) {
	for {
		id, err := c.Leader(ctx)
		if err == nil {
			return id, nil
		}
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("%w (last: %v)", ctx.Err(), err)
		case <-time.After(250 * time.Millisecond):
		}
	}
}

// Quiesce waits for a leader and for every node to have applied the same index, and
// returns each node's FSM hash at that index (errs explains nodes it could not get).
func (c *Cluster) Quiesce(ctx context.Context) (hashes, errs map[string]string, err error) {
	if _, err := c.WaitLeader(ctx); err != nil {
		return nil, nil, err
	}
	var last string
	for {
		hashes, errs = map[string]string{}, map[string]string{}
		indexes := map[uint64]bool{}
		for _, n := range c.Nodes {
			sctx, cancel := context.WithTimeout(ctx, 3*time.Second)
			st, _, err := c.SelfStatus(sctx, n.ID)
			cancel()
			if err != nil {
				errs[n.ID] = err.Error()
				continue
			}
			hashes[n.ID] = st.FsmHash
			indexes[st.FsmHashIndex] = true
			if st.FsmHash == "" {
				errs[n.ID] = "the node reports no fsm_hash"
			}
		}
		if len(errs) == 0 && len(indexes) == 1 {
			return hashes, errs, nil
		}
		last = fmt.Sprintf("applied indexes %v, errors %v", keys(indexes), errs)
		select {
		case <-ctx.Done():
			for id := range hashes {
				if _, bad := errs[id]; !bad {
					errs[id] = "not quiesced: " + last
				}
			}
			return map[string]string{}, errs, fmt.Errorf("cluster did not quiesce: %s", last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func keys(m map[uint64]bool) []uint64 {
	var out []uint64
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool { return out[i] < out[j] })
	return out
}

// Close kills every node's process group and stops the proxies and the S3 server.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		if n.Running() {
			_ = c.Kill(n.ID)
		}
	}
	for _, p := range c.Raft {
		p.Close()
	}
	for _, p := range c.GRPC {
		p.Close()
	}
	if c.S3 != nil {
		c.S3.Close()
	}
	if c.GW != nil {
		_ = c.GW.Stop()
	}
	if c.gwLog != nil {
		_ = c.gwLog.Close()
	}
}
