// Package nemesis injects the faults of a run, scheduled from the seed in cycles of
// warm-up, fault, heal and quiesce, each fault recorded in the history
// (StartFault when injected, EndFault when healed).
//
// Each kind of fault is a type of its own (process.go, network.go, churn.go, s3.go,
// member.go). Network faults act on the per-directed-link proxies (jepsen/cluster): a
// partition cuts every link, Raft and node-to-node gRPC, between the groups both ways.
// The member fault changes the Raft configuration: it kills a node, removes it with
// RemoveNode and at heal starts it again, with its data or as a wiped, new server, for
// the leader's reconcile loop to add back (gossip). Every node's configuration holds
// the real addresses and the proxies are picked on the dialing side (--dial-via), so
// the per-link faults stay on their links after a configuration change.
package nemesis

import (
	"context"
	"fmt"
	"math/rand/v2"
	"strings"
	"time"

	"github.com/snapkeep/snapkeep/jepsen/cluster"
	"github.com/snapkeep/snapkeep/jepsen/history"
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
	Member            = "member"
	Clock             = "clock"
	Disk              = "disk"
	Gossip            = "gossip"
)

// faults is every fault the nemesis injects, one type per kind, in the order of All.
var faults = []fault{killFault{}, pauseFault{}, partitionLeaderFault{}, partitionMajorityFault{}, bridgeFault{},
	delayFault{}, dropFault{}, leaderChurnFault{}, s3Fault{}, memberFault{}, clockFault{}, diskFault{}, gossipFault{}}

// All is every fault kind the nemesis injects.
var All = kindsOf(faults)

// byKind finds a kind's fault.
var byKind = func() map[string]fault {
	m := map[string]fault{}
	for _, f := range faults {
		m[f.kind()] = f
	}
	return m
}()

func kindsOf(fs []fault) []string {
	kinds := make([]string, 0, len(fs))
	for _, f := range fs {
		kinds = append(kinds, f.kind())
	}
	return kinds
}

// A fault is one kind of fault. inject chooses its target, starts it and records it
// with start (once, when injected), and returns what heals it. Each fault draws from
// the nemesis's random source in a fixed order, so a seed gives the same schedule.
type fault interface {
	kind() string
	inject(ctx context.Context, n *Nemesis, start startFunc) (heal func())
}

// startFunc records the fault in the history and the log as it starts.
type startFunc func(target, note string) *history.Fault

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
	// clockSkewed, diskFaulted, s3Faulted: a clock, a disk, an s3 fault ran (the first
	// of each is chosen to matter: see clockFault, diskFault, s3Fault).
	clockSkewed, diskFaulted, s3Faulted bool
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
	ft, ok := byKind[kind]
	if !ok {
		return
	}
	var f *history.Fault
	heal := ft.inject(ctx, n, func(target, note string) *history.Fault {
		f = n.H.StartFault(kind, target, note)
		n.Log("nemesis: %s %s %s", kind, target, note)
		return f
	})
	sleep(ctx, d)
	heal()
	n.H.EndFault(f)
	n.Log("nemesis: healed %s", kind)
}
