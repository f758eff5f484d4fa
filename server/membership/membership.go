// Package membership is discovery and membership over hashicorp/memberlist (gossip).
//
// Every node gossips a small Meta: its id, Raft and gRPC addresses, version, its
// --bootstrap-expect and whether it has Raft state. Two jobs run on that:
//
//   - Bootstrap (--bootstrap-expect N, the Consul/Nomad way). A node without Raft state
//     waits until gossip shows exactly N alive servers, all started with the same N and
//     none with Raft state (checked again over gRPC with NodeStatus, since gossip may
//     lag); then it bootstraps with the configuration of those N, sorted by id. Every
//     node that gets there bootstraps the same configuration, which Raft accepts (the
//     same entry at index 1, term 1); a node that sees a peer with state first does
//     not bootstrap and is brought in by that peer's election. A node with Raft state
//     never bootstraps; seeing more than N servers without state is an operator error
//     and blocks bootstrap (logged).
//   - Reconcile (leader only). An alive member missing from the Raft configuration (or
//     a non-voter, or one at another Raft address) is added as a voter with AddVoter,
//     compare-and-set on the configuration index. A member gossip reports suspect, dead
//     or left, or does not know, is logged and shown in members/status but stays in the
//     configuration. Only with DeadServerTimeout > 0, a server gossip reports dead or
//     left that has been failed that long by this leader's clock is removed, and only
//     when the healthy voters still make a quorum of the smaller configuration.
package membership

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"

	"github.com/snapkeep/snapkeep/internal/duty"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// Config configures discovery and membership. Gossip is off when Addr is empty.
type Config struct {
	// Addr is where memberlist listens, TCP and UDP ("host:port"). Advertise, when set,
	// is the address other members are told instead.
	Addr      string
	Advertise string
	// Join lists gossip addresses of other nodes; the node retries joining until one
	// answers. Joining one live member is enough.
	Join []string
	// BootstrapExpect is how many servers form a new cluster: once gossip shows that
	// many, with no Raft state anywhere, they bootstrap together. 0: never bootstrap
	// from gossip (the node waits to be added, or bootstraps from Peers).
	BootstrapExpect int
	// Key encrypts gossip (AES, 16, 24 or 32 bytes); every node needs the same key.
	Key []byte
	// DeadServerTimeout is how long a server must have been dead or left in gossip
	// before the leader removes it from the Raft configuration, if the healthy voters
	// still make a quorum without it. 0: never.
	DeadServerTimeout time.Duration
	// Interval is how often bootstrap, join and reconcile are checked (default 500ms).
	Interval time.Duration
	// Tune, when set, edits memberlist's configuration (based on DefaultLANConfig)
	// before it starts; tests shorten its timings with it.
	Tune func(*memberlist.Config)
}

// ParseKey decodes a base64 gossip key of 16, 24 or 32 bytes.
func ParseKey(s string) ([]byte, error) {
	key, err := base64.StdEncoding.DecodeString(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("not base64: %w", err)
	}
	switch len(key) {
	case 16, 24, 32:
		return key, nil
	}
	return nil, fmt.Errorf("%d bytes; want 16, 24 or 32 (for example: head -c 32 /dev/urandom | base64)", len(key))
}

// Enabled reports whether gossip is on.
func (g *Config) Enabled() bool { return g.Addr != "" }

// Validate reports each of the gossip settings' problems to bad.
func (g *Config) Validate(bad func(string, ...any)) {
	if !g.Enabled() {
		if len(g.Join) > 0 || g.BootstrapExpect > 0 {
			bad("--join and --bootstrap-expect need --gossip-addr")
		}
		return
	}
	if _, _, err := net.SplitHostPort(g.Addr); err != nil {
		bad("--gossip-addr %q is not host:port: %v", g.Addr, err)
	}
	if g.Advertise != "" {
		if _, _, err := net.SplitHostPort(g.Advertise); err != nil {
			bad("--gossip-advertise %q is not host:port: %v", g.Advertise, err)
		}
	}
	for _, j := range g.Join {
		if _, _, err := net.SplitHostPort(j); err != nil {
			bad("--join %q is not host:port: %v", j, err)
		}
	}
	if g.BootstrapExpect < 0 || g.BootstrapExpect > 15 {
		bad("--bootstrap-expect %d must be between 0 and 15", g.BootstrapExpect)
	}
	if l := len(g.Key); l != 0 && l != 16 && l != 24 && l != 32 {
		bad("--gossip-key is %d bytes; want 16, 24 or 32", l)
	}
	if g.DeadServerTimeout < 0 {
		bad("--dead-server-timeout cannot be negative")
	}
}

// memberMeta is what each node gossips about itself (memberlist node Meta, ≤ 512 bytes).
type memberMeta struct {
	ID, RaftAddr, GRPCAddr, Version string
	Expect                          int
	HasState                        bool
	// Leaving is set just before a graceful leave, so others record "left", not "dead"
	// (memberlist's events do not say which).
	Leaving bool
}

const metaFormat = 1

func (m memberMeta) encode() []byte {
	b := []byte{metaFormat, 0}
	if m.HasState {
		b[1] |= 1
	}
	if m.Leaving {
		b[1] |= 2
	}
	b = binary.AppendUvarint(b, uint64(m.Expect))
	for _, s := range []string{m.ID, m.RaftAddr, m.GRPCAddr, m.Version} {
		b = binary.AppendUvarint(b, uint64(len(s)))
		b = append(b, s...)
	}
	return b
}

func decodeMeta(b []byte) (memberMeta, error) {
	var m memberMeta
	if len(b) < 2 || b[0] != metaFormat {
		return m, errors.New("not a snapkeep server")
	}
	m.HasState = b[1]&1 != 0
	m.Leaving = b[1]&2 != 0
	b = b[2:]
	v, k := binary.Uvarint(b)
	if k <= 0 {
		return m, errors.New("bad meta")
	}
	m.Expect, b = int(v), b[k:]
	for _, s := range []*string{&m.ID, &m.RaftAddr, &m.GRPCAddr, &m.Version} {
		l, k := binary.Uvarint(b)
		if k <= 0 || uint64(len(b)-k) < l {
			return m, errors.New("bad meta")
		}
		*s, b = string(b[k:k+int(l)]), b[k+int(l):]
	}
	return m, nil
}

// Node is what membership needs of its node.
type Node struct {
	ID, GRPCAddr, Version string
	RaftAddr              string
	Raft                  *raft.Raft
	// NodeStatus asks a peer, at its gRPC address, for its status (bootstrap checks
	// that no peer has Raft state yet).
	NodeStatus func(ctx context.Context, grpcAddr string) (*internalv1.NodeStatusResponse, error)
	Logger     *slog.Logger
}

// Membership is a node's gossip state. Its methods are safe for concurrent use.
type Membership struct {
	cfg    Config
	n      Node
	ml     *memberlist.Memberlist
	kick   duty.Kicker
	logger *slog.Logger
	// halted is set once memberlist is shut down (memberlist panics on Leave after).
	halted atomic.Bool

	mu           sync.Mutex
	hasState     bool // as last advertised
	leaving      bool
	nodes        map[string]trackedNode
	suspectAfter time.Duration
	failedSince  map[string]time.Time // leader: when each failed voter was first seen failed
	warned       map[string]string    // last warning per topic, to log changes once
}

// Start starts memberlist; nil (and no error) when gossip is off. Its duty is Loop.
func Start(g Config, n Node) (*Membership, error) {
	if !g.Enabled() {
		return nil, nil
	}
	m := &Membership{cfg: g, n: n, kick: duty.NewKicker(), logger: n.Logger.With("component", "gossip"),
		failedSince: map[string]time.Time{}, warned: map[string]string{}, nodes: map[string]trackedNode{}}
	m.hasState = m.hasRaftState()
	mc := memberlist.DefaultLANConfig()
	mc.Name = n.ID
	host, port, err := splitHostPort(g.Addr)
	if err != nil {
		return nil, fmt.Errorf("--gossip-addr: %w", err)
	}
	mc.BindAddr, mc.BindPort = host, port
	mc.AdvertisePort = port
	if g.Advertise != "" {
		if mc.AdvertiseAddr, mc.AdvertisePort, err = splitHostPort(g.Advertise); err != nil {
			return nil, fmt.Errorf("--gossip-advertise: %w", err)
		}
	}
	mc.SecretKey = g.Key
	mc.Delegate = m
	mc.Events = m
	mc.Ping = m
	mc.Logger = log.New(&gossipLogWriter{logger: m.logger}, "", 0)
	if g.Tune != nil {
		g.Tune(mc)
	}
	// Each node is probed about once per ProbeInterval × (members − 1); a few missed
	// rounds make it suspect here.
	m.suspectAfter = 6*mc.ProbeInterval + mc.ProbeTimeout
	if l := len(m.meta().encode()); l > memberlist.MetaMaxSize {
		return nil, fmt.Errorf("gossip meta is %d bytes, over memberlist's %d: shorten the node id or addresses", l, memberlist.MetaMaxSize)
	}
	if err := injectGossipFaults(mc); err != nil { // faultinject builds only
		return nil, fmt.Errorf("start gossip on --gossip-addr %s: %w", g.Addr, err)
	}
	ml, err := memberlist.Create(mc)
	if err != nil {
		return nil, fmt.Errorf("start gossip on --gossip-addr %s: %w", g.Addr, err)
	}
	m.ml = ml
	m.logger.Info("gossip started", "addr", ml.LocalNode().Address(), "encrypted", len(g.Key) > 0, "bootstrap_expect", g.BootstrapExpect)
	return m, nil
}

func splitHostPort(addr string) (string, int, error) {
	host, p, err := net.SplitHostPort(addr)
	if err != nil {
		return "", 0, err
	}
	port, err := strconv.Atoi(p)
	if err != nil {
		return "", 0, fmt.Errorf("port %q: %v", p, err)
	}
	if host == "" {
		host = "0.0.0.0"
	}
	return host, port, nil
}

// Leave leaves the gossip pool (others see the node as left, not dead) and stops
// memberlist. Safe to call more than once, and on a nil Membership (gossip off).
func (m *Membership) Leave() {
	if m == nil || m.halted.Load() {
		return
	}
	m.mu.Lock()
	m.leaving = true
	m.mu.Unlock()
	if err := m.ml.UpdateNode(500 * time.Millisecond); err != nil {
		m.logger.Debug("announce leave", "err", err)
	}
	if err := m.ml.Leave(time.Second); err != nil {
		m.logger.Debug("leave gossip", "err", err)
	}
	m.Halt()
}

// Halt stops memberlist without leaving (others see the node as dead).
func (m *Membership) Halt() {
	if m.halted.Swap(true) {
		return
	}
	if err := m.ml.Shutdown(); err != nil {
		m.logger.Warn("stop gossip", "err", err)
	}
}

func (m *Membership) hasRaftState() bool {
	return m.n.Raft != nil && m.n.Raft.LastIndex() > 0
}

// Loop is the membership duty: joining gossip (again, when alone), bootstrapping, and
// on the leader reconciling the Raft configuration with gossip.
func (m *Membership) Loop() duty.Loop {
	n, g := m.n, m.cfg
	interval := g.Interval
	if interval <= 0 {
		interval = 500 * time.Millisecond
	}
	joined := len(g.Join) == 0
	var lastJoin time.Time
	return duty.Loop{Name: "membership", Every: interval, Kick: m.kick, Pass: func(ctx context.Context) {
		if !joined && !m.halted.Load() && time.Since(lastJoin) >= 2*interval {
			lastJoin = time.Now()
			if k, err := m.ml.Join(g.Join); err != nil {
				m.warnOnce("join", fmt.Sprintf("join gossip: %v; retrying", err))
			} else {
				joined = true
				m.logger.Info("joined gossip", "contacted", k)
			}
		}
		if joined && len(g.Join) > 0 && m.aliveOthers() == 0 {
			joined = false // alone (everyone restarted, or a long partition): join again
		}
		m.updateState()
		if g.BootstrapExpect > 0 && !m.hasStateNow() {
			m.maybeBootstrap(ctx)
		}
		if n.Raft.State() == raft.Leader {
			m.reconcile(ctx)
		} else {
			m.mu.Lock()
			clear(m.failedSince)
			m.mu.Unlock()
		}
	}}
}

// aliveOthers counts the other members gossip reports alive.
func (m *Membership) aliveOthers() int {
	k := 0
	for id, mem := range m.Members() {
		if id != m.n.ID && mem.State == memberlist.StateAlive {
			k++
		}
	}
	return k
}

func (m *Membership) hasStateNow() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hasState
}

// updateState re-advertises the node's meta once it has Raft state.
func (m *Membership) updateState() {
	has := m.hasRaftState()
	m.mu.Lock()
	changed := has != m.hasState
	m.hasState = has
	m.mu.Unlock()
	if changed && !m.halted.Load() {
		if err := m.ml.UpdateNode(time.Second); err != nil {
			m.logger.Debug("update gossip meta", "err", err)
		}
	}
}

// warnOnce logs msg at warn level unless it is what was last logged for topic.
func (m *Membership) warnOnce(topic, msg string, args ...any) {
	m.mu.Lock()
	same := m.warned[topic] == msg
	m.warned[topic] = msg
	m.mu.Unlock()
	if !same {
		m.logger.Warn(msg, args...)
	}
}

func (m *Membership) meta() memberMeta {
	n := m.n
	m.mu.Lock()
	defer m.mu.Unlock()
	return memberMeta{ID: n.ID, RaftAddr: n.RaftAddr, GRPCAddr: n.GRPCAddr, Version: n.Version,
		Expect: m.cfg.BootstrapExpect, HasState: m.hasState, Leaving: m.leaving}
}

// Member is one member as this node sees it.
type Member struct {
	ID, RaftAddr, GRPCAddr, Version string
	Expect                          int
	HasState                        bool
	Addr                            string // its gossip address
	State                           memberlist.NodeStateType
}

// trackedNode is a copy of what memberlist told the event delegate (memberlist's own
// Node structs change under its lock, so they are copied in the callbacks, which run
// under that lock, and never read later).
type trackedNode struct {
	meta    memberMeta
	addr    string
	state   memberlist.NodeStateType
	lastAck time.Time // last successful direct probe by this node (or join)
}

// Members returns the snapkeep servers gossip knows, by id, dead and left ones
// included. memberlist does not report suspicion to delegates, so an alive member
// this node's own probes have not reached for suspectAfter is reported suspect.
func (m *Membership) Members() map[string]Member {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := make(map[string]Member, len(m.nodes))
	now := time.Now()
	for id, t := range m.nodes {
		st := t.state
		if st == memberlist.StateAlive && id != m.n.ID && now.Sub(t.lastAck) > m.suspectAfter {
			st = memberlist.StateSuspect
		}
		out[id] = Member{ID: t.meta.ID, RaftAddr: t.meta.RaftAddr, GRPCAddr: t.meta.GRPCAddr, Version: t.meta.Version,
			Expect: t.meta.Expect, HasState: t.meta.HasState, Addr: t.addr, State: st}
	}
	return out
}

// track records what an event said. memberlist's Node.State in events is not the
// node's state (memberlist keeps that elsewhere): events mean alive, except leave,
// which means left when the node announced it was leaving, dead otherwise.
func (m *Membership) track(node *memberlist.Node, state memberlist.NodeStateType, ack bool) (memberMeta, bool) {
	meta, err := decodeMeta(node.Meta)
	if err != nil || meta.ID != node.Name {
		return meta, false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	t := m.nodes[node.Name]
	if state == memberlist.StateDead && meta.Leaving {
		state = memberlist.StateLeft
	}
	t.meta, t.addr, t.state = meta, node.Address(), state
	if ack || t.lastAck.IsZero() {
		t.lastAck = time.Now()
	}
	m.nodes[node.Name] = t
	return meta, true
}

// NotifyPingComplete (memberlist.PingDelegate) records a successful probe.
func (m *Membership) NotifyPingComplete(other *memberlist.Node, _ time.Duration, _ []byte) {
	m.mu.Lock()
	if t, ok := m.nodes[other.Name]; ok {
		t.lastAck = time.Now()
		m.nodes[other.Name] = t
	}
	m.mu.Unlock()
}

// AckPayload (memberlist.PingDelegate) sends nothing extra.
func (m *Membership) AckPayload() []byte { return nil }

// Healthy reports whether gossip considers the node alive. Without gossip (a nil
// Membership) every node is healthy; a node gossip does not know is not.
func (m *Membership) Healthy(id string) bool {
	if m == nil || id == m.n.ID {
		return true
	}
	mem, ok := m.Members()[id]
	return ok && mem.State == memberlist.StateAlive
}

func (m *Membership) maybeBootstrap(ctx context.Context) {
	n := m.n
	expect := m.cfg.BootstrapExpect
	var servers []Member
	for _, mem := range m.Members() {
		if mem.State != memberlist.StateAlive {
			continue
		}
		if mem.HasState {
			return // a cluster exists: its leader adds this node
		}
		if mem.Expect != expect {
			m.warnOnce("bootstrap", fmt.Sprintf("not bootstrapping: node %s has --bootstrap-expect %d, this node %d", mem.ID, mem.Expect, expect))
			return
		}
		servers = append(servers, mem)
	}
	if len(servers) < expect {
		return
	}
	if len(servers) > expect {
		m.warnOnce("bootstrap", fmt.Sprintf("not bootstrapping: gossip shows %d servers without Raft state but --bootstrap-expect is %d; stop the extra ones or fix the flag", len(servers), expect))
		return
	}
	// Gossip may lag: ask every peer whether it has Raft state.
	for _, mem := range servers {
		if mem.ID == n.ID {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
		st, err := n.NodeStatus(cctx, mem.GRPCAddr)
		cancel()
		if err != nil {
			m.logger.Debug("bootstrap: peer did not answer", "peer", mem.ID, "err", err)
			return
		}
		if st.LastLogIndex > 0 || st.Term > 0 {
			return
		}
	}
	sort.Slice(servers, func(i, j int) bool { return servers[i].ID < servers[j].ID })
	var cfg raft.Configuration
	ids := make([]string, len(servers))
	for i, mem := range servers {
		cfg.Servers = append(cfg.Servers, raft.Server{Suffrage: raft.Voter, ID: raft.ServerID(mem.ID), Address: raft.ServerAddress(mem.RaftAddr)})
		ids[i] = mem.ID
	}
	err := n.Raft.BootstrapCluster(cfg).Error()
	switch {
	case errors.Is(err, raft.ErrCantBootstrap):
		m.logger.Info("not bootstrapping: Raft state arrived from a peer meanwhile")
	case err != nil:
		m.logger.Error("bootstrap from gossip failed; will retry", "err", err)
	default:
		m.logger.Info("bootstrapped a new cluster from gossip", "servers", ids)
	}
	m.updateState()
}

// reconcile runs on the leader: alive members become voters; failed ones are reported
// and, after DeadServerTimeout (when set), removed if quorum allows.
func (m *Membership) reconcile(ctx context.Context) {
	n := m.n
	future := n.Raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return
	}
	index := future.Index()
	servers := future.Configuration().Servers
	inConfig := map[string]raft.Server{}
	for _, s := range servers {
		inConfig[string(s.ID)] = s
	}
	members := m.Members()
	ids := make([]string, 0, len(members))
	for id := range members {
		ids = append(ids, id)
	}
	sort.Strings(ids)
	for _, id := range ids {
		mem := members[id]
		if id == n.ID || mem.State != memberlist.StateAlive {
			continue
		}
		s, ok := inConfig[id]
		if ok && s.Suffrage == raft.Voter && string(s.Address) == mem.RaftAddr {
			continue
		}
		if ctx.Err() != nil {
			return
		}
		err := n.Raft.AddVoter(raft.ServerID(id), raft.ServerAddress(mem.RaftAddr), index, 10*time.Second).Error()
		if err != nil {
			// For example its Raft address is still held by a removed-to-be server:
			// Raft refuses duplicate addresses. Others may still be added.
			m.warnOnce("add:"+id, fmt.Sprintf("could not add member as a voter; will retry: %v", err), "member", id, "raft_addr", mem.RaftAddr)
			if refreshed := n.Raft.GetConfiguration(); refreshed.Error() == nil {
				index = refreshed.Index()
			}
			continue
		}
		m.logger.Info("added member as a voter", "member", id, "raft_addr", mem.RaftAddr, "was_in_configuration", ok)
		return // the configuration index changed: the next round sees the new one
	}

	now := time.Now()
	voters, healthyVoters := 0, 0
	var failed []string
	for _, s := range servers {
		id := string(s.ID)
		mem, known := members[id]
		ok := id == n.ID || (known && mem.State == memberlist.StateAlive)
		if s.Suffrage == raft.Voter {
			voters++
			if ok {
				healthyVoters++
			}
		}
		m.mu.Lock()
		if ok {
			if _, was := m.failedSince[id]; was {
				delete(m.failedSince, id)
				m.mu.Unlock()
				m.logger.Info("member is healthy again", "member", id)
				continue
			}
			m.mu.Unlock()
			continue
		}
		if _, was := m.failedSince[id]; !was {
			m.failedSince[id] = now
			m.mu.Unlock()
			state := "unknown to gossip"
			if known {
				state = StateName(mem.State)
			}
			m.logger.Warn("member failed; it stays in the Raft configuration", "member", id, "state", state,
				"dead_server_timeout", m.cfg.DeadServerTimeout)
			continue
		}
		m.mu.Unlock()
		// Only what gossip confirms: a server gossip does not know (say, one running
		// without gossip) is reported but never removed.
		if known && (mem.State == memberlist.StateDead || mem.State == memberlist.StateLeft) {
			failed = append(failed, id)
		}
	}
	timeout := m.cfg.DeadServerTimeout
	if timeout <= 0 {
		return
	}
	for _, id := range failed {
		m.mu.Lock()
		since := m.failedSince[id]
		m.mu.Unlock()
		if now.Sub(since) < timeout {
			continue
		}
		s := inConfig[id]
		if s.Suffrage == raft.Voter {
			if reason := RemovalUnsafe(voters, healthyVoters); reason != "" {
				m.warnOnce("remove:"+id, "dead server timeout passed but not removing: "+reason, "member", id)
				continue
			}
		}
		if err := n.Raft.RemoveServer(s.ID, index, 10*time.Second).Error(); err != nil {
			m.warnOnce("remove:"+id, "could not remove dead server; will retry", "member", id, "err", err)
			return
		}
		m.mu.Lock()
		delete(m.failedSince, id)
		m.mu.Unlock()
		m.logger.Warn("removed dead server from the Raft configuration", "member", id, "failed_for", now.Sub(since).Round(time.Second))
		return
	}
}

// RemovalUnsafe says why removing one failed voter would be unsafe, or "".
func RemovalUnsafe(voters, healthyVoters int) string {
	if voters <= 1 {
		return "it is the last voter"
	}
	after := voters - 1
	if healthyVoters < after/2+1 {
		return fmt.Sprintf("only %d of the %d remaining voters are healthy, short of a quorum of %d", healthyVoters, after, after/2+1)
	}
	return ""
}

// StateName is a gossip state's name in logs.
func StateName(s memberlist.NodeStateType) string {
	switch s {
	case memberlist.StateAlive:
		return "alive"
	case memberlist.StateSuspect:
		return "suspect"
	case memberlist.StateDead:
		return "dead"
	case memberlist.StateLeft:
		return "left"
	}
	return "unknown"
}

// Status is a gossip state as the API reports it.
func Status(s memberlist.NodeStateType) pb.MemberStatus {
	switch s {
	case memberlist.StateAlive:
		return pb.MemberStatus_MEMBER_STATUS_ALIVE
	case memberlist.StateSuspect:
		return pb.MemberStatus_MEMBER_STATUS_SUSPECT
	case memberlist.StateDead:
		return pb.MemberStatus_MEMBER_STATUS_DEAD
	case memberlist.StateLeft:
		return pb.MemberStatus_MEMBER_STATUS_LEFT
	}
	return pb.MemberStatus_MEMBER_STATUS_UNKNOWN
}

// StatusOf is a node's gossip health for cluster status (UNSPECIFIED without gossip:
// a nil Membership).
func (m *Membership) StatusOf(id string) pb.MemberStatus {
	if m == nil {
		return pb.MemberStatus_MEMBER_STATUS_UNSPECIFIED
	}
	mem, ok := m.Members()[id]
	if !ok {
		return pb.MemberStatus_MEMBER_STATUS_UNKNOWN
	}
	return Status(mem.State)
}

// memberlist.Delegate: only the node meta is used.

func (m *Membership) NodeMeta(limit int) []byte {
	b := m.meta().encode()
	if len(b) > limit {
		m.logger.Error("gossip meta too large", "bytes", len(b), "limit", limit)
		return nil
	}
	return b
}
func (m *Membership) NotifyMsg([]byte)                           {}
func (m *Membership) GetBroadcasts(overhead, limit int) [][]byte { return nil }
func (m *Membership) LocalState(join bool) []byte                { return nil }
func (m *Membership) MergeRemoteState(buf []byte, join bool)     {}

// memberlist.EventDelegate: changes wake the loop.

func (m *Membership) NotifyJoin(node *memberlist.Node) {
	if _, ok := m.track(node, memberlist.StateAlive, true); ok {
		m.logger.Info("member joined", "member", node.Name, "addr", node.Address())
	}
	m.wake()
}
func (m *Membership) NotifyLeave(node *memberlist.Node) {
	if meta, ok := m.track(node, memberlist.StateDead, false); ok {
		if meta.Leaving {
			m.logger.Warn("member left", "member", node.Name)
		} else {
			m.logger.Warn("member failed", "member", node.Name)
		}
	}
	m.wake()
}
func (m *Membership) NotifyUpdate(node *memberlist.Node) {
	m.track(node, memberlist.StateAlive, false)
	m.wake()
}

func (m *Membership) wake() { m.kick.Kick() }

// gossipLogWriter turns memberlist's "[LEVEL] memberlist: msg" lines into slog records.
type gossipLogWriter struct{ logger *slog.Logger }

var _ io.Writer = (*gossipLogWriter)(nil)

func (w *gossipLogWriter) Write(p []byte) (int, error) {
	line := strings.TrimSpace(string(p))
	level := slog.LevelInfo
	for prefix, l := range map[string]slog.Level{"[DEBUG]": slog.LevelDebug, "[INFO]": slog.LevelDebug, "[WARN]": slog.LevelWarn, "[ERR]": slog.LevelError, "[ERROR]": slog.LevelError} {
		if rest, ok := strings.CutPrefix(line, prefix); ok {
			level, line = l, strings.TrimSpace(rest)
			break
		}
	}
	line = strings.TrimPrefix(line, "memberlist: ")
	if strings.Contains(line, "use of closed network connection") {
		level = slog.LevelDebug // shutting down
	}
	w.logger.Log(context.Background(), level, line)
	return len(p), nil
}
