package server

import (
	"context"
	"errors"
	"fmt"
	"net"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
)

// applyTimeout bounds how long a proposal may wait to be enqueued by Raft.
const applyTimeout = 10 * time.Second

// propose applies a command through Raft, on the leader or forwarded to it, and
// decodes its response into resp (which may be nil). A command the FSM rejects comes
// back as an *fsm.Error; Raft trouble as a gRPC Unavailable status (retry with the same
// request id: it is applied at most once).
func (n *Node) propose(ctx context.Context, requestID string, cmd proto.Message, resp proto.Message) error {
	if err := fsm.ValidateRequestID(requestID); err != nil {
		return err
	}
	// A leader stamps its own command with the cluster clock as it encodes it; a
	// forwarded one is stamped by the leader that takes it (applyLocal).
	leader := n.raft.State() == raft.Leader
	var now int64
	if leader {
		now = n.stampTime()
	}
	data, err := fsm.EncodeCommand(requestID, now, cmd)
	if err != nil {
		return status.Errorf(codes.Internal, "encode command: %v", err)
	}
	var result *fsmpb.Result
	if leader {
		result, _, err = n.applyStamped(ctx, data)
	} else {
		result, err = n.proposeEnvelope(ctx, data)
	}
	if err != nil {
		return err
	}
	if err := fsm.ResultError(result); err != nil {
		return err
	}
	if resp != nil {
		if err := proto.Unmarshal(result.Response, resp); err != nil {
			return status.Errorf(codes.Internal, "decode command response: %v", err)
		}
	}
	return nil
}

// proposeEnvelope applies an encoded envelope: locally when leader, else on the
// leader through the internal API, and returns once this node has applied it.
func (n *Node) proposeEnvelope(ctx context.Context, envelope []byte) (*fsmpb.Result, error) {
	if n.raft.State() == raft.Leader {
		res, _, err := n.applyLocal(ctx, envelope)
		return res, err
	}
	conn, leaderID, err := n.leaderConn()
	if err != nil {
		return nil, err
	}
	out, err := internalv1.NewInternalClient(conn).Propose(ctx, &internalv1.ProposeRequest{Envelope: envelope, FromNode: n.cfg.NodeID})
	if err != nil {
		if status.Code(err) == codes.FailedPrecondition || status.Code(err) == codes.Unavailable {
			return nil, status.Errorf(codes.Unavailable, "leader %s could not take the write (%v); retry", leaderID, status.Convert(err).Message())
		}
		return nil, err
	}
	var res fsmpb.Result
	if err := proto.Unmarshal(out.Result, &res); err != nil {
		return nil, status.Errorf(codes.Internal, "decode result from leader: %v", err)
	}
	// Read your writes: what the caller does next on this node (a read, a wait for
	// the entry's effects) must see the write. If this node cannot catch up, the
	// error says retry; the retry with the same request id is deduplicated.
	if err := n.waitApplied(ctx, out.Index); err != nil {
		return nil, err
	}
	return &res, nil
}

// applyLocal stamps the cluster clock on the envelope and applies it through Raft.
func (n *Node) applyLocal(ctx context.Context, envelope []byte) (*fsmpb.Result, uint64, error) {
	var env fsmpb.Envelope
	if err := proto.Unmarshal(envelope, &env); err != nil {
		return nil, 0, status.Errorf(codes.InvalidArgument, "malformed command envelope: %v", err)
	}
	env.Now = n.stampTime()
	data, err := proto.Marshal(&env)
	if err != nil {
		return nil, 0, status.Errorf(codes.Internal, "encode envelope: %v", err)
	}
	return n.applyStamped(ctx, data)
}

// applyStamped applies an envelope stamped with the cluster clock through Raft, once
// Validate accepts it.
func (n *Node) applyStamped(ctx context.Context, data []byte) (*fsmpb.Result, uint64, error) {
	if rejected, index, err := n.validate(ctx, data); err != nil || rejected != nil {
		return rejected, index, err
	}
	defer observeSince(n.metrics.raftApply, time.Now())
	future := n.raft.Apply(data, applyTimeout)
	// On ctx's end the entry may still commit; a retry with the same request id is safe.
	if err := awaitFuture(ctx, future); err != nil {
		return nil, 0, err
	}
	res, ok := future.Response().(*fsm.ApplyResult)
	if !ok {
		return nil, 0, status.Errorf(codes.Internal, "unexpected apply response %T", future.Response())
	}
	return res.Result, res.Index, nil
}

// awaitFuture waits for a Raft future until ctx ends, as a gRPC status error: raft's
// futures take no context, so the wait runs on a goroutine of its own.
func awaitFuture(ctx context.Context, future raft.Future) error {
	done := make(chan error, 1)
	go func() { done <- future.Error() }()
	select {
	case <-ctx.Done():
		return status.FromContextError(ctx.Err()).Err()
	case err := <-done:
		if err != nil {
			return raftError(err)
		}
		return nil
	}
}

// validate runs the command as Apply would on the leader's state (fsm.Validate), so
// that a command Apply would reject never reaches the log (a rejected 200,000-file
// flush used to cost every node its bytes, for good). A rejection seen on the local
// state is confirmed on a linearizable view, as a read is (this node still leads and
// has applied every acknowledged write: a deposed leader's state may be stale), and
// then answered with the index of that view; the command is then not proposed.
func (n *Node) validate(ctx context.Context, data []byte) (*fsmpb.Result, uint64, error) {
	if n.fsm.Validate(data) == nil {
		return nil, 0, nil
	}
	index, err := n.leaderReadIndex(ctx)
	if err != nil {
		return nil, 0, err
	}
	if res := n.fsm.Validate(data); res != nil {
		return res, index, nil
	}
	return nil, 0, nil
}

// raftError maps Raft's errors to gRPC statuses; all of them are worth a retry.
func raftError(err error) error {
	switch {
	case errors.Is(err, raft.ErrNotLeader), errors.Is(err, raft.ErrLeadershipLost),
		errors.Is(err, raft.ErrLeadershipTransferInProgress):
		return status.Errorf(codes.Unavailable, "leadership changed while applying the write (%v); retry", err)
	case errors.Is(err, raft.ErrRaftShutdown):
		return status.Error(codes.Unavailable, "the node is shutting down; retry on another node")
	case errors.Is(err, raft.ErrEnqueueTimeout):
		return status.Error(codes.Unavailable, "the leader is overloaded (write not enqueued in time); retry")
	}
	return status.Errorf(codes.Unavailable, "raft: %v", err)
}

// leaderConn returns a connection to the current leader's gRPC address, as the leader
// registered it in the FSM.
func (n *Node) leaderConn() (*grpc.ClientConn, string, error) {
	addr, id := n.leaderGRPCAddr()
	if id == "" {
		return nil, "", status.Error(codes.Unavailable, "no leader elected right now; retry shortly")
	}
	if addr == "" {
		return nil, id, status.Errorf(codes.Unavailable, "leader %s has not announced its address yet; retry shortly", id)
	}
	conn, err := n.peers.get(addr)
	if err != nil {
		return nil, id, status.Errorf(codes.Unavailable, "connect to leader %s at %s: %v", id, addr, err)
	}
	return conn, id, nil
}

// leaderGRPCAddr returns the leader's id and gRPC address ("" when unknown).
func (n *Node) leaderGRPCAddr() (addr, id string) {
	_, leaderID := n.raft.LeaderWithID()
	if leaderID == "" {
		return "", ""
	}
	if string(leaderID) == n.cfg.NodeID {
		return n.grpcAddr, n.cfg.NodeID
	}
	return n.nodeGRPCAddr(string(leaderID)), string(leaderID)
}

func (n *Node) nodeGRPCAddr(id string) string {
	for _, node := range n.fsm.View().Nodes() {
		if node.Id == id {
			return node.GrpcAddr
		}
	}
	return ""
}

// peerConns keeps one client connection per peer address.
type peerConns struct {
	mu     sync.Mutex
	conns  map[string]*grpc.ClientConn
	closed bool              // after close, get dials nothing: a conn made then would never be closed
	via    dialVia           // Config.DialVia
	opts   []grpc.DialOption // after the defaults: TLS and the cluster secret
}

func newPeerConns(via map[string]string, opts ...grpc.DialOption) *peerConns {
	return &peerConns{conns: map[string]*grpc.ClientConn{}, via: via, opts: opts}
}

func (p *peerConns) get(addr string) (*grpc.ClientConn, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.closed {
		return nil, status.Error(codes.Unavailable, "the node is shutting down")
	}
	if c, ok := p.conns[addr]; ok {
		return c, nil
	}
	target := addr
	opts := []grpc.DialOption{
		grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithDefaultCallOptions(grpc.MaxCallRecvMsgSize(maxMessageBytes), grpc.MaxCallSendMsgSize(maxMessageBytes))}
	if len(p.via) > 0 {
		// passthrough hands the dialer addr itself (not a resolved IP) to translate;
		// the authority, and so the TLS server name, stays addr's.
		target = "passthrough:///" + addr
		opts = append(opts, grpc.WithContextDialer(func(ctx context.Context, a string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", p.via.target(a))
		}))
	}
	c, err := grpc.NewClient(target, append(opts, p.opts...)...)
	if err != nil {
		return nil, fmt.Errorf("dial %s: %w", addr, err)
	}
	p.conns[addr] = c
	return c, nil
}

func (p *peerConns) close() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.closed = true
	for addr, c := range p.conns {
		c.Close()
		delete(p.conns, addr)
	}
}
