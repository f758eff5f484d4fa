package nemesis

import (
	"context"
	"fmt"
	"time"
)

// gossipFault faults gossip (memberlist, which the Raft and gRPC proxies never touch)
// through a faultinject build's gossip file, in one of two ways:
//
//   - isolate one node (the leader half the time): it and the others drop each
//     other's packets and refuse to dial each other. Half the other times the
//     isolated node is a follower the nemesis asks the leader to remove 3 s in (the
//     cut then lasts until it is removed or 20 s have passed) — the others see it failed in
//     gossip while it is alive and in Raft — and at heal, with gossip back, waits (up
//     to 60 s) until the leader's reconcile loop has added it back as a voter;
//   - delay every node's gossip by 100–400 ms.
type gossipFault struct{}

func (gossipFault) kind() string { return Gossip }

func (gossipFault) inject(ctx context.Context, n *Nemesis, start startFunc) func() {
	if n.rng.IntN(3) == 0 {
		delay := time.Duration(100+n.rng.IntN(301)) * time.Millisecond
		start("all", fmt.Sprintf("gossip delayed %v on every node", delay))
		for _, id := range n.C.IDs() {
			if err := n.C.SetGossip(id, nil, delay); err != nil {
				n.Log("nemesis: gossip %s: %v", id, err)
			}
		}
		return func() { n.healGossip() }
	}
	id := n.random()
	onLeader := n.rng.IntN(2) == 0
	if onLeader {
		id = n.leader(ctx)
	}
	// The leader refuses to remove itself: only an isolated follower is removed.
	remove := !onLeader && n.rng.IntN(2) == 0
	if remove {
		followers := n.others(n.leader(ctx))
		id = followers[n.rng.IntN(len(followers))]
	}
	plan := "gossip cut both ways between it and the others"
	if remove {
		plan += "; RemoveNode 3 s in, and at heal wait until it is a voter again"
	}
	f := start(id, plan)
	others := n.others(id)
	if err := n.C.SetGossip(id, others, 0); err != nil {
		n.Log("nemesis: gossip %s: %v", id, err)
	}
	for _, o := range others {
		if err := n.C.SetGossip(o, []string{id}, 0); err != nil {
			n.Log("nemesis: gossip %s: %v", o, err)
		}
	}
	removed := make(chan bool, 1)
	// Removal is tried until the heal (the leader refuses while gossip still shows the
	// node alive, and refuses to remove itself).
	removing, stopRemoving := context.WithCancel(context.WithoutCancel(ctx))
	if remove {
		go func() {
			if !sleep(removing, 3*time.Second) {
				removed <- false
				return
			}
			took, err := n.removeNode(removing, id)
			if err != nil {
				n.H.AddNote(f, "not removed: "+err.Error())
				removed <- false
				return
			}
			n.H.AddNote(f, fmt.Sprintf("removed while alive after %v", (3*time.Second+took).Round(time.Millisecond)))
			removed <- true
		}()
	} else {
		removed <- false
	}
	began := time.Now()
	return func() {
		// The leader sees the isolated node fail a few seconds after the cut (memberlist's
		// suspicion timeout): the cut lasts at least 20 s when a removal is tried.
		if remove {
			select {
			case r := <-removed:
				removed <- r
			case <-time.After(time.Until(began.Add(20 * time.Second))):
			}
		}
		stopRemoving()
		wasRemoved := <-removed
		n.healGossip()
		if !wasRemoved {
			return
		}
		wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
		defer cancel()
		began := time.Now()
		if err := n.C.WaitVoters(wctx); err != nil {
			n.H.AddNote(f, "not a voter again within 60 s of the heal")
			return
		}
		n.H.AddNote(f, fmt.Sprintf("a voter again %v after the heal", time.Since(began).Round(time.Millisecond)))
	}
}

// healGossip removes every node's gossip faults.
func (n *Nemesis) healGossip() {
	for _, id := range n.C.IDs() {
		if err := n.C.SetGossip(id, nil, 0); err != nil {
			n.Log("nemesis: gossip %s: heal: %v", id, err)
		}
	}
}
