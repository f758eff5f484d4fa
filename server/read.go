package server

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// readView returns a view of the FSM fresh enough for the requested consistency.
//
// Linearizable (the default): the ReadIndex protocol. The leader notes the index of the
// last command its FSM has applied — every acknowledged write is at or below it, since
// a write is acknowledged only after the leader applied it — then confirms with a
// quorum that it is still the leader, so no newer leader can have acknowledged more.
// The view is taken once this node has applied up to that index; a follower asks the
// leader for the index and then serves the read itself. Stale: the local state as is.
//
// The index is a command index, not Raft's commit index: no-op and configuration
// entries never reach the FSM, so a follower could wait forever for them.
func (n *Node) readView(ctx context.Context, c snapkeepv1.ReadConsistency) (*fsm.View, error) {
	if c == snapkeepv1.ReadConsistency_READ_CONSISTENCY_STALE {
		return n.fsm.View(), nil
	}
	if bugStaleReads && n.raft.State() != raft.Leader {
		// jepsenbug stale-describe only (false in normal builds): skip ReadIndex.
		return n.fsm.View(), nil
	}
	index, err := n.readIndex(ctx)
	if err != nil {
		return nil, err
	}
	if err := n.waitApplied(ctx, index); err != nil {
		return nil, err
	}
	return n.fsm.View(), nil
}

func (n *Node) readIndex(ctx context.Context) (uint64, error) {
	if n.raft.State() == raft.Leader {
		return n.leaderReadIndex(ctx)
	}
	conn, leaderID, err := n.leaderConn()
	if err != nil {
		return 0, err
	}
	out, err := internalv1.NewInternalClient(conn).ReadIndex(ctx, &internalv1.ReadIndexRequest{})
	if err != nil {
		if code := status.Code(err); code == codes.FailedPrecondition || code == codes.Unavailable {
			return 0, status.Errorf(codes.Unavailable, "leader %s could not confirm a read index (%v); retry", leaderID, status.Convert(err).Message())
		}
		return 0, err
	}
	return out.Index, nil
}

// leaderReadIndex is the leader's applied command index, confirmed by a quorum
// heartbeat. The leader must have passed its term's barrier, so it has applied every
// entry earlier leaders committed.
func (n *Node) leaderReadIndex(ctx context.Context) (uint64, error) {
	if !n.isLeaderReady() {
		return 0, status.Error(codes.Unavailable, "the leader was just elected and is catching up; retry")
	}
	index := n.fsm.AppliedIndex()
	if err := awaitFuture(ctx, n.raft.VerifyLeader()); err != nil {
		return 0, err
	}
	return index, nil
}

// waitApplied waits until the FSM has applied index.
func (n *Node) waitApplied(ctx context.Context, index uint64) error {
	timer := time.NewTimer(30 * time.Second)
	defer timer.Stop()
	for {
		applied, changed := n.fsm.AppliedCh()
		if applied >= index {
			return nil
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return status.FromContextError(ctx.Err()).Err()
		case <-n.stop:
			return status.Error(codes.Unavailable, "the node is shutting down; retry on another node")
		case <-timer.C:
			return status.Errorf(codes.Unavailable, "this node is far behind the leader (applied %d, need %d); retry on another node", applied, index)
		}
	}
}

// isLeaderReady reports whether this node leads and has passed a barrier in its
// current term (set by the duties loop).
func (n *Node) isLeaderReady() bool {
	n.mu.Lock()
	ready := n.readyTerm
	n.mu.Unlock()
	return ready != 0 && n.raft.State() == raft.Leader && n.raft.CurrentTerm() == ready
}
