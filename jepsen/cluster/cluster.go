// Package cluster runs the cluster under test: an S3 server (versitygw) behind the
// S3 fault proxy and three `snapkeep server` processes on 127.0.0.1, each in its own
// process group with its log in the run directory, and every node's peer traffic
// through the harness's link proxies (jepsen/netproxy).
//
// Every node has the same Raft configuration, with the real addresses: --peers names
// each node at the address its Raft transport listens on, and each node advertises
// its real gRPC address (--grpc-advertise), which is what the FSM node registry holds.
// The proxies come in on the dialing side only: node a starts with --dial-via mapping
// each peer b's real Raft address to the (a,b) Raft proxy and b's real gRPC address to
// the (a,b) gRPC proxy. So every directed link, Raft and node-to-node gRPC alike, can
// be cut, delayed or made lossy on its own, and a configuration change (the member
// nemesis removes and re-adds nodes) or a raft snapshot install replicates addresses
// that mean the same on every node. Clients (the workload) dial each node's gRPC
// listener directly.
//
// Gossip (memberlist, --gossip-addr, every node --join's the others) runs on every
// node so that the leader's reconcile loop adds a live member missing from the Raft
// configuration back as a voter. Gossip is not proxied: partitions and lossy links do
// not touch it, so a node cut off by the nemesis still looks alive in gossip.
package cluster

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/internal/harness"
	"github.com/snapkeep/snapkeep/jepsen/netproxy"
	"github.com/snapkeep/snapkeep/jepsen/s3proxy"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/versitygw"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// Root is the key prefix the nodes use in the bucket.
const Root = "snapkeep"

// Options configure a cluster.
type Options struct {
	Dir    string // run directory: data dirs, logs
	Binary string // the snapkeep binary (harness.BuildSnapkeep)
	Bug    string // SNAPKEEP_BUG for every node (needs a jepsenbug binary)
	Nodes  int    // default 3
	// ExtraArgs are appended to every node's arguments (a later flag overrides an
	// earlier one, e.g. --restore-lease).
	ExtraArgs []string
}

// Node is one snapkeep server process.
type Node struct {
	ID         string
	RaftAddr   string // where its Raft transport listens
	GRPCAddr   string // where its gRPC listens (clients dial it)
	HTTPAddr   string
	GossipAddr string
	DataDir    string
	LogPath    string
	// ClockFile skews the node's wall clock, DiskFile fails or slows its Raft writes
	// and GossipFile cuts or delays its gossip (SNAPKEEP_FAULT_CLOCK_FILE,
	// SNAPKEEP_FAULT_DISK_FILE, SNAPKEEP_FAULT_GOSSIP_FILE of a faultinject build; see
	// SetClock, SetDisk, SetGossip).
	ClockFile, DiskFile, GossipFile string
	// args start the node as a member of the initial cluster (--peers); freshArgs
	// start it without --peers, as a new server with an empty data dir that waits for
	// the leader to add it (RestartFresh).
	args, freshArgs []string

	proc *harness.Process

	mu sync.Mutex
	// fresh: the data dir was wiped and the node has not yet been seen as a voter;
	// until then a restart must not bootstrap it from --peers.
	fresh bool
}

// Cluster is the running cluster under test.
type Cluster struct {
	Nodes []*Node
	// Link proxies by [from, to]: Raft, and node-to-node gRPC.
	Raft map[[2]string]*netproxy.Proxy
	GRPC map[[2]string]*netproxy.Proxy
	S3   *s3proxy.Proxy
	GW   *versitygw.Process
	// Store reads the bucket directly (not through the fault proxy).
	Store  objstore.Store
	Bucket string
	gwLog  *os.File
}

// Start starts the S3 server, the proxies and the nodes, and waits for a leader.
func Start(ctx context.Context, opts Options) (c *Cluster, err error) {
	if opts.Nodes == 0 {
		opts.Nodes = 3
	}
	c = &Cluster{Raft: map[[2]string]*netproxy.Proxy{}, GRPC: map[[2]string]*netproxy.Proxy{}}
	started := c // a failed start returns nil: stop what it started
	defer func() {
		if err != nil {
			started.Close()
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
	var env []string
	if opts.Bug != "" {
		env = append(env, "SNAPKEEP_BUG="+opts.Bug)
	}
	for i := 1; i <= opts.Nodes; i++ {
		n := &Node{ID: fmt.Sprintf("n%d", i), DataDir: filepath.Join(opts.Dir, "data", fmt.Sprintf("n%d", i)),
			LogPath: filepath.Join(logDir, fmt.Sprintf("n%d.log", i)), ClockFile: filepath.Join(opts.Dir, "faults", fmt.Sprintf("n%d.clock", i)),
			DiskFile:   filepath.Join(opts.Dir, "faults", fmt.Sprintf("n%d.disk", i)),
			GossipFile: filepath.Join(opts.Dir, "faults", fmt.Sprintf("n%d.gossip", i))}
		nodeEnv := append(slices.Clip(env), "SNAPKEEP_FAULT_CLOCK_FILE="+n.ClockFile, "SNAPKEEP_FAULT_DISK_FILE="+n.DiskFile,
			"SNAPKEEP_FAULT_GOSSIP_FILE="+n.GossipFile)
		n.proc = &harness.Process{Name: n.ID, Binary: opts.Binary, Env: nodeEnv, LogPath: n.LogPath}
		for _, a := range []*string{&n.RaftAddr, &n.GRPCAddr, &n.HTTPAddr, &n.GossipAddr} {
			if *a, err = harness.FreeAddr(); err != nil {
				return nil, err
			}
		}
		c.Nodes = append(c.Nodes, n)
	}
	for _, b := range c.Nodes {
		for _, a := range c.Nodes {
			if a == b {
				continue
			}
			link := [2]string{a.ID, b.ID}
			p, err := netproxy.Start(a.ID+"->"+b.ID, "", b.RaftAddr)
			if err != nil {
				return nil, err
			}
			c.Raft[link] = p
			if p, err = netproxy.Start("grpc "+a.ID+"->"+b.ID, "", b.GRPCAddr); err != nil {
				return nil, err
			}
			c.GRPC[link] = p
		}
	}
	gw := c.GW.Config()
	var peers []string
	for _, b := range c.Nodes {
		peers = append(peers, b.ID+"="+b.RaftAddr)
	}
	for _, n := range c.Nodes {
		var via, join []string
		for _, b := range c.Nodes {
			if b == n {
				continue
			}
			link := [2]string{n.ID, b.ID}
			via = append(via, b.RaftAddr+"="+c.Raft[link].Addr(), b.GRPCAddr+"="+c.GRPC[link].Addr())
			join = append(join, "--join", b.GossipAddr)
		}
		n.freshArgs = []string{"server",
			"--node-id", n.ID, "--data-dir", n.DataDir,
			"--raft-addr", n.RaftAddr, "--grpc-addr", n.GRPCAddr,
			"--grpc-advertise", n.GRPCAddr, "--http-addr", n.HTTPAddr,
			// Goroutine dumps when a run ends with the cluster stuck (Goroutines).
			"--enable-pprof",
			"--dial-via", strings.Join(via, ","),
			"--gossip-addr", n.GossipAddr,
			// The nodes share a cluster secret, as production nodes must.
			"--internal-token", ClusterSecret,
		}
		n.freshArgs = append(n.freshArgs, join...)
		n.freshArgs = append(n.freshArgs,
			"--s3-endpoint", c.S3.Endpoint(), "--s3-bucket", gw.Bucket, "--s3-path-style",
			"--s3-access-key", gw.AccessKey, "--s3-secret-key", gw.SecretKey,
			"--root", Root,
			// Short enough that the end of a 1-minute run sees work a killed node held
			// handed back: restore leases and pending snapshots.
			"--restore-lease", "10s", "--snapshot-timeout", "30s",
			"--log-level", "debug",
		)
		n.freshArgs = append(n.freshArgs, opts.ExtraArgs...)
		n.args = append(slices.Clone(n.freshArgs), "--peers", strings.Join(peers, ","))
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
		if err := n.proc.WaitReady(wctx, 200*time.Millisecond, 3*time.Second, func(ctx context.Context) error {
			_, _, err := c.SelfStatus(ctx, n.ID)
			return err
		}); err != nil {
			return nil, fmt.Errorf("node %s did not start: %w", n.ID, err)
		}
	}
	return c, nil
}

func (c *Cluster) startNode(n *Node) error {
	n.mu.Lock()
	args, how := n.args, ""
	if n.fresh {
		args, how = n.freshArgs, " (data dir wiped: no --peers, waits to be added)"
	}
	n.mu.Unlock()
	banner := fmt.Sprintf("=== jepsen: start %s at %s%s", n.ID, time.Now().UTC().Format(time.RFC3339Nano), how)
	return n.proc.StartWith(args, banner)
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
func (n *Node) Running() bool { return n.proc.Running() }

// Kill sends SIGKILL to the node's process group and waits for it to exit.
func (c *Cluster) Kill(id string) error { return c.Node(id).proc.Kill() }

// SetClock skews node id's wall clock by offset (0: heals it). The node reads it
// within 20 ms; it outlives a restart of the node. Only a faultinject build reads it.
func (c *Cluster) SetClock(id string, offset time.Duration) error {
	if offset == 0 {
		return writeFault(c.Node(id).ClockFile, "")
	}
	return writeFault(c.Node(id).ClockFile, strconv.FormatInt(int64(offset), 10))
}

// SetDisk makes node id's Raft log, stable store and snapshot writes fail or slow
// down: "enospc", "eio", "slow 400ms"; "" heals. The node reads it within 20 ms; it
// outlives a restart. Only a faultinject build reads it.
func (c *Cluster) SetDisk(id, fault string) error {
	return writeFault(c.Node(id).DiskFile, fault)
}

// SetGossip faults node id's gossip: it drops every packet to and from the gossip
// addresses of the nodes in blocked and refuses to dial them, and holds every packet
// and dial for delay. Cutting a link takes both sides' calls. SetGossip(id, nil, 0)
// heals. Only a faultinject build reads it.
func (c *Cluster) SetGossip(id string, blocked []string, delay time.Duration) error {
	var lines []string
	for _, b := range blocked {
		lines = append(lines, "block "+c.Node(b).GossipAddr)
	}
	if delay > 0 {
		lines = append(lines, "delay "+delay.String())
	}
	return writeFault(c.Node(id).GossipFile, strings.Join(lines, "\n"))
}

// writeFault writes a fault file whole (renamed into place: a node never reads half
// of it), or removes it for "".
func writeFault(path, content string) error {
	if content == "" {
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, []byte(content), 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// Health is a node's /health as the harness reads it.
type Health struct {
	Healthy  bool     `json:"healthy"`
	Status   string   `json:"status"`
	Role     string   `json:"role"`
	Reasons  []string `json:"reasons,omitempty"`
	Problems []string `json:"problems,omitempty"`
	Degraded []string `json:"degraded,omitempty"`
}

// Health reads node id's /health (an unhealthy node answers 503 with the same body).
func (c *Cluster) Health(ctx context.Context, id string) (Health, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Node(id).HTTPAddr+"/health", nil)
	if err != nil {
		return Health{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return Health{}, err
	}
	defer resp.Body.Close()
	var h Health
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil {
		return Health{}, fmt.Errorf("%s /health (%s): %w", id, resp.Status, err)
	}
	return h, nil
}

// Goroutines is a running node's goroutine dump (every stack, as a panic prints
// them), for a run that ends with the cluster stuck.
func (c *Cluster) Goroutines(ctx context.Context, id string) ([]byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+c.Node(id).HTTPAddr+"/debug/pprof/goroutine?debug=2", nil)
	if err != nil {
		return nil, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("%s goroutine dump: %s", id, resp.Status)
	}
	return io.ReadAll(resp.Body)
}

// Restart starts a node that is not running (no-op otherwise).
func (c *Cluster) Restart(id string) error { return c.startNode(c.Node(id)) }

// RestartFresh wipes the data dir of a node that is not running and starts it as a new
// server: without --peers, so it does not bootstrap but waits for the leader to add it
// (gossip). It must have been removed from the Raft configuration first: a voter that
// forgets its log and votes is unsafe.
func (c *Cluster) RestartFresh(id string) error {
	n := c.Node(id)
	if n.Running() {
		return fmt.Errorf("%s is running: kill it before wiping its data dir", id)
	}
	if err := os.RemoveAll(n.DataDir); err != nil {
		return fmt.Errorf("wipe %s: %w", n.DataDir, err)
	}
	n.mu.Lock()
	n.fresh = true
	n.mu.Unlock()
	return c.startNode(n)
}

// Voters asks the leader for its Raft configuration and returns the ids of its voters.
func (c *Cluster) Voters(ctx context.Context) ([]string, error) {
	leader, err := c.Leader(ctx)
	if err != nil {
		return nil, err
	}
	cl, err := c.NodeClient(ctx, leader)
	if err != nil {
		return nil, err
	}
	defer cl.Close()
	resp, err := cl.ClusterMembers(ctx)
	if err != nil {
		return nil, fmt.Errorf("members from leader %s: %w", leader, err)
	}
	var voters []string
	for _, m := range resp.Members {
		if m.InRaftConfiguration && m.Voter {
			voters = append(voters, m.Id)
		}
	}
	return voters, nil
}

// WaitVoters waits until the leader's configuration has every node as a voter (the
// reconcile loop re-adds a removed node once gossip shows it alive). A wiped node seen
// as a voter is no longer fresh.
func (c *Cluster) WaitVoters(ctx context.Context) error {
	var last string
	for {
		qctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		voters, err := c.Voters(qctx)
		cancel()
		if err == nil {
			missing := []string{}
			for _, n := range c.Nodes {
				if slices.Contains(voters, n.ID) {
					n.mu.Lock()
					n.fresh = false
					n.mu.Unlock()
				} else {
					missing = append(missing, n.ID)
				}
			}
			if len(missing) == 0 {
				return nil
			}
			last = fmt.Sprintf("voters %v, missing %v", voters, missing)
		} else {
			last = err.Error()
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("not every node is a voter: %w (last: %s)", ctx.Err(), last)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// Pause stops the node's process group with SIGSTOP; Resume continues it.
func (c *Cluster) Pause(id string) error { return c.Node(id).proc.Pause() }

// Resume sends SIGCONT.
func (c *Cluster) Resume(id string) error { return c.Node(id).proc.Resume() }

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

// HealAll heals the network, resumes paused nodes, restarts dead ones and waits (until
// ctx is done) for every node to be a voter again: the end-of-run checks compare every
// node's FSM.
func (c *Cluster) HealAll(ctx context.Context) error {
	c.HealNetwork()
	var errs []error
	for _, n := range c.Nodes {
		_ = n.proc.Resume()
		if !n.Running() {
			errs = append(errs, c.Restart(n.ID))
		}
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	return c.WaitVoters(ctx)
}

// Partition cuts every link, Raft and node-to-node gRPC, between nodes of different
// groups, both ways.
func (c *Cluster) Partition(groups ...[]string) {
	group := map[string]int{}
	for i, g := range groups {
		for _, id := range g {
			group[id] = i
		}
	}
	for _, links := range []map[[2]string]*netproxy.Proxy{c.Raft, c.GRPC} {
		for link, p := range links {
			if group[link[0]] != group[link[1]] {
				p.Set(netproxy.State{Cut: true})
			}
		}
	}
}

// CutPair cuts the links, Raft and gRPC, between a and b (both ways) only: the third
// node sees both, a and b do not see each other.
func (c *Cluster) CutPair(a, b string) {
	for _, link := range [][2]string{{a, b}, {b, a}} {
		c.Raft[link].Set(netproxy.State{Cut: true})
		c.GRPC[link].Set(netproxy.State{Cut: true})
	}
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

// DataDirs is each node's data directory, by node id.
func (c *Cluster) DataDirs() map[string]string {
	out := map[string]string{}
	for _, n := range c.Nodes {
		out[n.ID] = n.DataDir
	}
	return out
}

// StopNodes kills every running node (the data directories stay, for the checkers that
// read them).
func (c *Cluster) StopNodes() {
	for _, n := range c.Nodes {
		if n.Running() {
			_ = c.Kill(n.ID)
		}
	}
}

// Close kills every node's process group and stops the proxies and the S3 server.
func (c *Cluster) Close() {
	for _, n := range c.Nodes {
		_ = n.proc.Kill()
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

// ClusterSecret is the cluster secret (--internal-token) every node of a test
// cluster is started with.
const ClusterSecret = "jepsen-cluster-secret-0123456789"
