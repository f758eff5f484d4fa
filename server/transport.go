package server

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/hashicorp/raft"
)

// tcpStreamLayer is the Raft transport's stream layer: plain TCP on a listener the node
// owns. Keeping it ours (rather than raft.NewTCPTransport) lets tests hand in a
// listener bound to port 0, and lets Close end every connection: raft's transport
// leaves pooled and accepted connections open, which would keep goroutines (and peers'
// goroutines) alive after an in-process node stops.
type tcpStreamLayer struct {
	net.Listener
	advertise net.Addr
	via       dialVia // Config.DialVia

	mu     sync.Mutex
	conns  map[*trackedConn]struct{}
	closed bool
}

func newTCPStreamLayer(ln net.Listener, advertise string, via map[string]string) (*tcpStreamLayer, error) {
	addr := ln.Addr()
	if advertise != "" {
		resolved, err := net.ResolveTCPAddr("tcp", advertise)
		if err != nil {
			return nil, fmt.Errorf("raft advertise address %q: %w", advertise, err)
		}
		addr = resolved
	}
	if tcp, ok := addr.(*net.TCPAddr); ok && tcp.IP.IsUnspecified() {
		return nil, errors.New("the Raft address to advertise is unspecified (0.0.0.0); set --raft-advertise")
	}
	return &tcpStreamLayer{Listener: ln, advertise: addr, via: via, conns: map[*trackedConn]struct{}{}}, nil
}

// Addr is the address peers dial.
func (t *tcpStreamLayer) Addr() net.Addr { return t.advertise }

// Accept waits for a peer's connection.
func (t *tcpStreamLayer) Accept() (net.Conn, error) {
	c, err := t.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return t.track(c)
}

// Dial opens a connection to a peer, at the address DialVia maps it to if any.
func (t *tcpStreamLayer) Dial(address raft.ServerAddress, timeout time.Duration) (net.Conn, error) {
	target := t.via.target(string(address))
	c, err := net.DialTimeout("tcp", target, timeout)
	if err != nil {
		if target != string(address) {
			return nil, fmt.Errorf("dial %s via %s: %w", address, target, err)
		}
		return nil, err
	}
	return t.track(c)
}

func (t *tcpStreamLayer) track(c net.Conn) (net.Conn, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.closed {
		c.Close()
		return nil, errors.New("raft stream layer closed")
	}
	tc := &trackedConn{Conn: c, layer: t}
	t.conns[tc] = struct{}{}
	return tc, nil
}

// Close stops listening and closes every open connection.
func (t *tcpStreamLayer) Close() error {
	t.mu.Lock()
	t.closed = true
	conns := t.conns
	t.conns = map[*trackedConn]struct{}{}
	t.mu.Unlock()
	for c := range conns {
		c.Conn.Close()
	}
	return t.Listener.Close()
}

type trackedConn struct {
	net.Conn
	layer *tcpStreamLayer
	once  sync.Once
}

func (c *trackedConn) Close() error {
	c.once.Do(func() {
		c.layer.mu.Lock()
		delete(c.layer.conns, c)
		c.layer.mu.Unlock()
	})
	return c.Conn.Close()
}

// raftTransport is the node's Raft transport: raft's NetworkTransport whose heartbeat
// fast path only takes heartbeats of a term the node already knows, and which notes
// the leader's commit index on the way.
//
// Heartbeats: hashicorp/raft v1.8 handles a heartbeat on the transport's connection
// goroutine (Raft.processHeartbeat, installed by SetHeartbeatHandler). A heartbeat that
// carries a newer term makes the node a follower of that term from that goroutine,
// unsynchronized with the leader loop: a leader whose loop is between its state check
// and dispatchLogs reads the new term and writes client entries with it at indexes
// where the new leader wrote others of the same term. Log matching no longer holds
// (same index and term, different entries), the new leader's entries are appended
// after the stale ones and the replicas' states part for good. A 30-minute fault run
// found it (SIGSTOP of the leader, see docs/JEPSEN.md); upstream as hashicorp/raft#695.
// So a heartbeat with a term newer than the node's goes through Raft's main loop,
// where the term change is synchronized with everything else.
//
// A heartbeat of the node's own term (or an older one, which raft rejects) still takes
// the fast path: it cannot change the term, and no leader receives one of its own term
// (one leader per term), so it only refreshes a follower's leader contact. That keeps
// a follower answering while its main loop is busy for seconds — installing a large
// snapshot runs the FSM restore on it — instead of letting the leader's lease lapse
// (a 1M-segment catalog restore lost leadership that way). Terms only grow, so a check
// that passed stays true when raft reads the term again.
//
// Commit index: every AppendEntries a leader sends (every CommitTimeout, also with no
// new entries) carries its commit index. A follower that cannot store the entries
// never advances its own commit index (it stays 0 after a restart) and may not even
// know the leader's gRPC address (its catalog is empty), but it still receives these
// requests: health compares what it has applied with the highest commit index seen.
type raftTransport struct {
	*raft.NetworkTransport
	leaderCommit atomic.Uint64

	// fastPath is raft's heartbeat handler; currentTerm the node's term. Until both
	// are set every heartbeat goes through the main loop.
	fastPath    atomic.Pointer[func(raft.RPC)]
	currentTerm atomic.Pointer[func() uint64]

	startOnce sync.Once
	rpcs      chan raft.RPC
	closeOnce sync.Once
	done      chan struct{}

	// fastMu: a heartbeat on the fast path holds it shared while raft handles it;
	// Close takes it exclusively, so once Close returns no handler runs (one that had
	// passed raft's shutdown check could otherwise write the term into a store the
	// node has closed since, and raft panics on a failed term write).
	fastMu sync.RWMutex
	closed bool
}

// Pre-vote needs the transport's RequestPreVote (the embedded NetworkTransport's):
// hashicorp/raft turns pre-vote off for a transport without it, and then a node cut
// off from its peers disrupts the cluster with a higher term when it comes back.
var _ raft.WithPreVote = (*raftTransport)(nil)

// SetHeartbeatHandler keeps raft's handler for heartbeats of a known term.
func (t *raftTransport) SetHeartbeatHandler(handler func(raft.RPC)) {
	if handler == nil {
		t.fastPath.Store(nil)
		return
	}
	t.fastPath.Store(&handler)
}

// answerHeartbeatsFor lets heartbeats of r's current term (or older) take the fast
// path. Call it once r exists.
func (t *raftTransport) answerHeartbeatsFor(r *raft.Raft) {
	term := r.CurrentTerm
	t.currentTerm.Store(&term)
}

// heartbeat runs on the connection goroutine of the network transport, which then
// waits for the response.
func (t *raftTransport) heartbeat(rpc raft.RPC) {
	fn, term := t.fastPath.Load(), t.currentTerm.Load()
	if req, ok := rpc.Command.(*raft.AppendEntriesRequest); ok && fn != nil && term != nil && req.Term <= (*term)() {
		t.fastMu.RLock()
		defer t.fastMu.RUnlock()
		if t.closed {
			rpc.Respond(nil, raft.ErrTransportShutdown)
			return
		}
		(*fn)(rpc)
		return
	}
	select {
	case t.rpcs <- rpc:
	case <-t.done:
		rpc.Respond(nil, raft.ErrTransportShutdown)
	}
}

// Consumer returns the channel Raft reads every incoming RPC from. Raft calls it once.
func (t *raftTransport) Consumer() <-chan raft.RPC {
	t.startOnce.Do(func() { go t.forward(t.NetworkTransport.Consumer()) })
	return t.rpcs
}

// forward passes each RPC on unbuffered, as the network transport does, so a slow
// Raft still pushes back on its peers.
func (t *raftTransport) forward(in <-chan raft.RPC) {
	for {
		select {
		case rpc := <-in:
			if req, ok := rpc.Command.(*raft.AppendEntriesRequest); ok {
				t.noteLeaderCommit(req.LeaderCommitIndex)
			}
			select {
			case t.rpcs <- rpc:
			case <-t.done:
				return
			}
		case <-t.done:
			return
		}
	}
}

func (t *raftTransport) noteLeaderCommit(index uint64) {
	for {
		seen := t.leaderCommit.Load()
		if index <= seen || t.leaderCommit.CompareAndSwap(seen, index) {
			return
		}
	}
}

// LeaderCommitIndex is the highest commit index a leader has sent this node since it
// started (0 before the first AppendEntries).
func (t *raftTransport) LeaderCommitIndex() uint64 { return t.leaderCommit.Load() }

// Close stops forwarding and closes the network transport. Safe to call more than once.
func (t *raftTransport) Close() error {
	t.closeOnce.Do(func() { close(t.done) })
	t.fastMu.Lock()
	t.closed = true
	t.fastMu.Unlock()
	return t.NetworkTransport.Close()
}

// newRaftTransport is the node's Raft transport over stream.
func newRaftTransport(stream raft.StreamLayer, logger *slog.Logger) *raftTransport {
	t := &raftTransport{
		NetworkTransport: raft.NewNetworkTransportWithConfig(&raft.NetworkTransportConfig{
			Stream:  stream,
			MaxPool: 3,
			Timeout: 10 * time.Second,
			// No pipelined replication: every AppendEntries waits for its answer. With
			// pipelining (hashicorp/raft v1.8, MaxRPCsInFlight 2), a follower that answers
			// Success=false — its log store failed to append, say on a full disk — ends
			// the pipeline's decoder while the sender can still start one more send, which
			// then blocks forever on the unbuffered in-flight channel: the leader never
			// replicates to that follower again, and its heartbeats keep it from calling an
			// election (hashicorp/raft#612; our fault-injection smoke run hit it after a disk
			// fault, 2026-12-05). HashiCorp documents pipelining as of little benefit with
			// batching, which the leader does anyway.
			MaxRPCsInFlight: 1,
			Logger:          newHCLog(logger, "raft-net"),
		}),
		rpcs: make(chan raft.RPC),
		done: make(chan struct{}),
	}
	t.NetworkTransport.SetHeartbeatHandler(t.heartbeat)
	return t
}
