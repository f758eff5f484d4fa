// Package nemesis injects the faults of a run, scheduled from the seed in cycles of
// warm-up, fault, heal and quiesce, each fault recorded in the history
// (StartFault when injected, EndFault when healed).
//
// Not implemented: member-remove (remove a member and re-add it). The harness starts
// the cluster with static --peers, each node with its own per-link proxy addresses
// for its peers; a Raft configuration change replicates the leader's view of those
// addresses to every node, after which a node would dial its peers through the
// leader's link proxies and the per-link faults would hit the wrong links. Re-adding
// a removed node also needs gossip (--join) or an AddVoter API the cluster does not
// have with static peers (docs/OPERATIONS.md: a removed node rejoins only through
// gossip). So this nemesis is left out rather than done wrongly.
package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"time"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/jepsen/cluster"
	"github.com/snapkeep/snapkeep/jepsen/history"
	"github.com/snapkeep/snapkeep/jepsen/netproxy"
	"github.com/snapkeep/snapkeep/jepsen/s3proxy"
)

// Fault kinds (history.Fault.Kind).
const (
	Kill              = "kill"
	Pause             = "pause"
	PartitionLeader   = "partition-leader"
	PartitionMajority = "partition-majority"
	Bridge            = "bridge"
	Delay             = "delay"
	Drop              = "drop"
	LeaderChurn       = "leader-churn"
	S3Faults          = "s3-faults"
)

// All is every fault kind the nemesis injects.
var All = []string{Kill, Pause, PartitionLeader, PartitionMajority, Bridge, Delay, Drop, LeaderChurn, S3Faults}

// Parse turns a --nemesis value (comma list, "all", "none"; "partition" means the
// three partition kinds) into fault kinds.
func Parse(s string) ([]string, error) {
	var out []string
	seen := map[string]bool{}
	addKind := func(k string) {
		if !seen[k] {
			seen[k] = true
			out = append(out, k)
		}
	}
	for _, name := range strings.Split(s, ",") {
		name = strings.TrimSpace(name)
		switch name {
		case "", "none":
		case "all":
			for _, k := range All {
				addKind(k)
			}
		case "partition":
			addKind(PartitionLeader)
			addKind(PartitionMajority)
			addKind(Bridge)
		default:
			ok := false
			for _, k := range All {
				if k == name {
					ok = true
				}
			}
			if !ok {
				return nil, fmt.Errorf("unknown nemesis %q (known: %s, partition, all, none)", name, strings.Join(All, ", "))
			}
			addKind(name)
		}
	}
	return out, nil
}

// Schedule is the cycle's timing.
type Schedule struct {
	WarmUp   time.Duration // before the first fault
	FaultMin time.Duration
	FaultMax time.Duration
	Quiesce  time.Duration // after each heal
}

// DefaultSchedule: 2 s warm-up, 5–10 s faults, 4 s quiet after each heal.
var DefaultSchedule = Schedule{WarmUp: 2 * time.Second, FaultMin: 5 * time.Second, FaultMax: 10 * time.Second, Quiesce: 4 * time.Second}

// Nemesis injects faults into a cluster.
type Nemesis struct {
	C        *cluster.Cluster
	H        *history.History
	Kinds    []string
	Seed     int64
	Schedule Schedule
	// Log receives one line per action (nil: none).
	Log func(format string, args ...any)

	rng *rand.Rand
}

// Run injects faults until ctx is done and returns how many; every fault is healed
// before it returns.
func (n *Nemesis) Run(ctx context.Context) int {
	if len(n.Kinds) == 0 {
		<-ctx.Done()
		return 0
	}
	if n.Log == nil {
		n.Log = func(string, ...any) {}
	}
	n.rng = rand.New(rand.NewPCG(uint64(n.Seed), 0x6e656d))
	s := n.Schedule
	if s.FaultMax == 0 {
		s = DefaultSchedule
	}
	count := 0
	if !sleep(ctx, s.WarmUp) {
		return 0
	}
	for ctx.Err() == nil {
		kind := n.Kinds[n.rng.IntN(len(n.Kinds))]
		d := s.FaultMin + time.Duration(n.rng.Int64N(int64(s.FaultMax-s.FaultMin)+1))
		n.inject(ctx, kind, d)
		count++
		sleep(ctx, s.Quiesce)
	}
	return count
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// leader returns the current leader, or a random node when there is none.
func (n *Nemesis) leader(ctx context.Context) string {
	lctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if id, err := n.C.Leader(lctx); err == nil {
		return id
	}
	return n.random()
}

func (n *Nemesis) random() string {
	ids := n.C.IDs()
	return ids[n.rng.IntN(len(ids))]
}

func (n *Nemesis) others(id string) []string {
	var out []string
	for _, x := range n.C.IDs() {
		if x != id {
			out = append(out, x)
		}
	}
	return out
}

// inject runs one fault for d (or until ctx is done) and heals it.
func (n *Nemesis) inject(ctx context.Context, kind string, d time.Duration) {
	var f *history.Fault
	var heal func()
	start := func(target, note string) {
		f = n.H.StartFault(kind, target, note)
		n.Log("nemesis: %s %s %s", kind, target, note)
	}
	switch kind {
	case Kill:
		id := n.random()
		if n.rng.IntN(2) == 0 {
			id = n.leader(ctx)
		}
		start(id, "kill -9, restart at heal")
		if err := n.C.Kill(id); err != nil {
			n.Log("nemesis: kill %s: %v", id, err)
		}
		heal = func() {
			if err := n.C.Restart(id); err != nil {
				n.Log("nemesis: restart %s: %v", id, err)
			}
		}
	case Pause:
		id := n.leader(ctx)
		start(id, "SIGSTOP the leader, SIGCONT at heal")
		if err := n.C.Pause(id); err != nil {
			n.Log("nemesis: pause %s: %v", id, err)
		}
		heal = func() { _ = n.C.Resume(id) }
	case PartitionLeader, PartitionMajority:
		id := n.random()
		if kind == PartitionLeader {
			id = n.leader(ctx)
		}
		rest := n.others(id)
		start(fmt.Sprintf("[%s] | %v", id, rest), "Raft cut both ways per link; gRPC into the isolated node cut (gRPC is per destination)")
		n.C.Partition([]string{id}, rest)
		heal = n.C.HealNetwork
	case Bridge:
		mid := n.random()
		o := n.others(mid)
		start(fmt.Sprintf("%s <-> %s cut, bridged by %s", o[0], o[1], mid), "Raft links only")
		n.C.CutPair(o[0], o[1])
		heal = n.C.HealNetwork
	case Delay, Drop:
		var links []string
		for link, p := range n.C.Raft {
			if n.rng.IntN(2) == 0 {
				continue
			}
			st := netproxy.State{Delay: time.Duration(20+n.rng.IntN(180)) * time.Millisecond}
			if kind == Drop {
				st = netproxy.State{Drop: 0.02 + n.rng.Float64()*0.1}
			}
			p.Set(st)
			links = append(links, fmt.Sprintf("%s->%s %v", link[0], link[1], describe(st)))
		}
		// node-to-node gRPC, per destination (see cluster)
		for id, p := range n.C.GRPC {
			if n.rng.IntN(3) > 0 {
				continue
			}
			st := netproxy.State{Delay: time.Duration(20+n.rng.IntN(180)) * time.Millisecond}
			if kind == Drop {
				st = netproxy.State{Drop: 0.02 + n.rng.Float64()*0.1}
			}
			p.Set(st)
			links = append(links, fmt.Sprintf("grpc->%s %v", id, describe(st)))
		}
		sort.Strings(links)
		start(strings.Join(links, ", "), "Raft per link, gRPC per destination")
		heal = n.C.HealNetwork
	case LeaderChurn:
		start("leader", "TransferLeadership every 1-2 s")
		done := make(chan struct{})
		stopped := make(chan int)
		go func() {
			transfers := 0
			cl, err := n.C.Client(context.WithoutCancel(ctx))
			if err == nil {
				defer cl.Close()
			}
			for err == nil {
				select {
				case <-done:
					stopped <- transfers
					return
				case <-time.After(time.Duration(1000+n.rng.IntN(1000)) * time.Millisecond):
				}
				tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
				if _, terr := cl.TransferLeadership(tctx, client.NewTransferLeadershipOption()); terr == nil {
					transfers++
				}
				cancel()
			}
			<-done
			stopped <- transfers
		}()
		heal = func() {
			close(done)
			n.Log("nemesis: leader-churn: %d transfers", <-stopped)
		}
	case S3Faults:
		fl := s3proxy.Faults{SlowDownRate: 0.2, HoldRate: 0.1, Hold: 15 * time.Second}
		n.C.S3.Set(fl)
		start("s3", fmt.Sprintf("%.0f%% 503 SlowDown, %.0f%% held %v", fl.SlowDownRate*100, fl.HoldRate*100, fl.Hold))
		before := n.C.S3.Injected.Load()
		heal = func() {
			n.C.S3.Set(s3proxy.Faults{})
			n.Log("nemesis: s3-faults: %d requests faulted", n.C.S3.Injected.Load()-before)
		}
	default:
		return
	}
	sleep(ctx, d)
	heal()
	n.H.EndFault(f)
	n.Log("nemesis: healed %s", kind)
}

func describe(s netproxy.State) string {
	if s.Drop > 0 {
		return fmt.Sprintf("drop %.0f%%", s.Drop*100)
	}
	return "delay " + s.Delay.String()
}
