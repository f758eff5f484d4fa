package server

import (
	"context"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/internal/duty"
)

// The leadership switch. Every duty that runs only on the leader starts in
// establishLeadership, once the node leads and has passed its term's barrier, and stops
// in revokeLeadership, when it no longer leads or its term changed; monitorLeadership
// flips between the two. Duties every node runs start in startNodeDuties. Each duty is
// a duty.Loop run under the node's guard (internal/duty): one pass that panics is
// logged, counted and backed off, and the node carries on.

// dutyTick is how often the switch checks leadership when raft says nothing, and how
// often a node checks its own registration.
const dutyTick = 250 * time.Millisecond

// leadership is the leader duties of one term.
type leadership struct {
	term    uint64
	cancel  context.CancelFunc
	running sync.WaitGroup
}

// monitorLeadership runs until ctx ends (the node closes), then stops any leader
// duties it started.
func (n *Node) monitorLeadership(ctx context.Context) {
	ticker := time.NewTicker(dutyTick)
	defer ticker.Stop()
	var current *leadership
	defer func() {
		if current != nil {
			n.revokeLeadership(current)
		}
	}()
	for {
		select {
		case <-ctx.Done():
			return
		case <-n.raft.LeaderCh():
		case <-ticker.C:
		}
		err := n.duties.Run("leadership", func() {
			leading, term := n.raft.State() == raft.Leader, n.raft.CurrentTerm()
			if current != nil && (!leading || current.term != term) {
				n.revokeLeadership(current)
				current = nil
			}
			if leading && current == nil && n.becomeReady(term) {
				current = n.establishLeadership(ctx, term)
			}
		})
		if err != nil && !n.duties.Wait("leadership", ctx.Done()) {
			return
		}
	}
}

// becomeReady runs a barrier in term and marks the leader ready for reads: it has
// applied every entry earlier leaders committed.
func (n *Node) becomeReady(term uint64) bool {
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

// establishLeadership starts every leader duty for term.
func (n *Node) establishLeadership(ctx context.Context, term uint64) *leadership {
	ctx, cancel := context.WithCancel(ctx)
	l := &leadership{term: term, cancel: cancel}
	for _, loop := range n.leaderDuties() {
		l.running.Add(1)
		go func() {
			defer l.running.Done()
			n.duties.RunLoop(ctx, loop)
		}()
	}
	return l
}

// revokeLeadership stops the leader duties of l and waits for their loops; work they
// started (a manifest upload, a pre-check) sees its context cancelled, and the next
// leader redoes it from the replicated state.
func (n *Node) revokeLeadership(l *leadership) {
	l.cancel()
	l.running.Wait()
	n.logger.Info("leader duties stopped", "term", l.term)
}

// leaderDuties are the duties of one term as leader, fresh for each term.
func (n *Node) leaderDuties() []duty.Loop {
	loops := []duty.Loop{
		{Name: "allocation-expiry", Every: n.cfg.ExpiryInterval, Pass: n.expireAllocations},
		n.finisher.Loop(),
		n.coord.Loop(),
		n.policies.Loop(),
		n.policies.ExportLoop(),
	}
	if !n.cfg.GCDisabled {
		loops = append(loops, n.gc.Loop())
	}
	if !n.cfg.ScrubDisabled {
		loops = append(loops, n.scrubber.Loop())
	}
	if n.cfg.Backup.Interval > 0 {
		loops = append(loops, n.backupLoop())
	}
	return loops
}

// startNodeDuties starts the duties every node runs, until the node closes.
func (n *Node) startNodeDuties() {
	ctx, cancel := n.stopping()
	loops := []duty.Loop{
		{Name: "register-node", Every: dutyTick, Pass: n.registerSelf},
		{Name: "health", Every: healthInterval, Pass: func(context.Context) { n.updateGRPCHealth() }},
		n.clockLoop(),
	}
	var running sync.WaitGroup
	loops = append(loops, n.runner.Loops(ctx, &running)...)
	if n.members != nil {
		loops = append(loops, n.members.Loop())
	}
	for _, loop := range loops {
		running.Add(1)
		go func() {
			defer running.Done()
			n.duties.RunLoop(ctx, loop)
		}()
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		n.monitorLeadership(ctx)
		running.Wait()
		cancel()
	}()
}

// fsmChanged returns a channel closed when the FSM applies its next command.
func (n *Node) fsmChanged() <-chan struct{} {
	_, changed := n.fsm.AppliedCh()
	return changed
}

// guarded runs one piece of a duty's work (a worker's job) under the guard and
// returns its error, or the recovered panic as an error.
func (n *Node) guarded(name string, fn func() error) (err error) {
	if perr := n.duties.Run(name, func() { err = fn() }); perr != nil {
		return perr
	}
	return err
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
// the cluster clock; Apply then uses the time stamped in the entry.
func (n *Node) expireAllocations(ctx context.Context) {
	deadline, ok := n.fsm.View().NextLeaseDeadline()
	if !ok || deadline >= n.stampTime() {
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
