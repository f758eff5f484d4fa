package server

import (
	"context"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// dutyTick is how often a node checks its duties. Leadership changes wake it at once.
const dutyTick = 250 * time.Millisecond

// runDuties is the node's background loop. On the leader: a barrier once per term
// (after which reads are served), then expiry of allocations whose lease passed. On
// every node: registering its own gRPC address in the FSM, so others can forward to it.
func (n *Node) runDuties() {
	ctx, cancel := n.stopping()
	defer cancel()
	ticker := time.NewTicker(dutyTick)
	defer ticker.Stop()
	var lastExpiry time.Time
	for {
		select {
		case <-n.stop:
			return
		case <-n.raft.LeaderCh():
		case <-ticker.C:
		}
		if !n.pass("node-duties", func() {
			if n.raft.State() == raft.Leader {
				if !n.isLeaderReady() && !n.becomeReady() {
					return
				}
				if time.Since(lastExpiry) >= n.cfg.ExpiryInterval {
					lastExpiry = time.Now()
					n.expireAllocations(ctx)
				}
			}
			n.registerSelf(ctx)
		}) {
			return
		}
	}
}

// pass runs one pass of a background duty under the node's guard (internal/duty): a
// panic is logged with its stack and counted (snapkeep_duty_panics_total), and the
// duty then waits out its backoff. It returns false when the node stops meanwhile.
func (n *Node) pass(name string, fn func()) bool {
	if err := n.duties.Run(name, fn); err != nil {
		return n.duties.Wait(name, n.stop)
	}
	return true
}

// guarded runs one piece of a duty's work (a worker's job) under the guard and
// returns its error, or the recovered panic as an error.
func (n *Node) guarded(name string, fn func() error) (err error) {
	if perr := n.duties.Run(name, func() { err = fn() }); perr != nil {
		return perr
	}
	return err
}

// becomeReady runs a barrier in the current term and marks the leader ready for reads.
func (n *Node) becomeReady() bool {
	term := n.raft.CurrentTerm()
	if err := n.raft.Barrier(applyTimeout).Error(); err != nil {
		n.logger.Warn("leader barrier failed", "err", err)
		return false
	}
	if n.raft.State() != raft.Leader || n.raft.CurrentTerm() != term {
		return false
	}
	n.mu.Lock()
	n.readyTerm = term
	n.mu.Unlock()
	n.logger.Info("leading", "term", term)
	return true
}

// registerSelf records this node's addresses in the FSM when they are missing or stale.
func (n *Node) registerSelf(ctx context.Context) {
	want := &fsmpb.Node{Id: n.cfg.NodeID, RaftAddr: n.RaftAddr(), GrpcAddr: n.grpcAddr, Version: n.cfg.Version}
	for _, node := range n.fsm.View().Nodes() {
		if node.Id == want.Id && node.RaftAddr == want.RaftAddr && node.GrpcAddr == want.GrpcAddr && node.Version == want.Version {
			return
		}
	}
	if n.raft.State() != raft.Leader {
		if addr, _ := n.leaderGRPCAddr(); addr == "" {
			return // forwarding needs the leader's address first
		}
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := n.propose(ctx, "", &fsmpb.RegisterNode{Node: proto.CloneOf(want)}, nil); err != nil {
		n.logger.Debug("register node", "err", err)
	}
}

// expireAllocations proposes ExpireAllocations when the earliest lease has passed by
// the leader's clock; Apply then uses the time stamped in the entry.
func (n *Node) expireAllocations(ctx context.Context) {
	deadline, ok := n.fsm.View().NextLeaseDeadline()
	if !ok || deadline >= time.Now().UnixNano() {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	var resp fsmpb.ExpireAllocationsResponse
	if err := n.propose(ctx, "", &fsmpb.ExpireAllocations{}, &resp); err != nil {
		n.logger.Warn("expire allocations", "err", err)
		return
	}
	if len(resp.SegmentIds)+len(resp.BuildIds) > 0 {
		n.logger.Info("allocations expired", "segments", resp.SegmentIds, "index_builds", resp.BuildIds)
	}
}
