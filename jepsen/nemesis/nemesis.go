// Package nemesis injects the faults of a run, scheduled from the seed in cycles of
// warm-up, fault, heal and quiesce, each fault recorded in the history
// (StartFault when injected, EndFault when healed).
//
// Network faults act on the per-directed-link proxies (jepsen/cluster): a partition
// cuts every link, Raft and node-to-node gRPC, between the groups both ways.
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
	"sort"
	"strings"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

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
	Member            = "member"
)

// All is every fault kind the nemesis injects.
var All = []string{Kill, Pause, PartitionLeader, PartitionMajority, Bridge, Delay, Drop, LeaderChurn, S3Faults, Member}

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
		start(fmt.Sprintf("[%s] | %v", id, rest), "Raft and gRPC cut both ways per link")
		n.C.Partition([]string{id}, rest)
		heal = n.C.HealNetwork
	case Bridge:
		mid := n.random()
		o := n.others(mid)
		start(fmt.Sprintf("%s <-> %s cut, bridged by %s", o[0], o[1], mid), "Raft and gRPC links")
		n.C.CutPair(o[0], o[1])
		heal = n.C.HealNetwork
	case Delay, Drop:
		var links []string
		// Map order is random: walk the links sorted so the seed decides the faults.
		for _, link := range sortedLinks(n.C.Raft) {
			if n.rng.IntN(2) == 0 {
				continue
			}
			st := netproxy.State{Delay: time.Duration(20+n.rng.IntN(180)) * time.Millisecond}
			if kind == Drop {
				st = netproxy.State{Drop: 0.02 + n.rng.Float64()*0.1}
			}
			n.C.Raft[link].Set(st)
			links = append(links, fmt.Sprintf("%s->%s %v", link[0], link[1], describe(st)))
		}
		for _, link := range sortedLinks(n.C.GRPC) {
			if n.rng.IntN(3) > 0 {
				continue
			}
			st := netproxy.State{Delay: time.Duration(20+n.rng.IntN(180)) * time.Millisecond}
			if kind == Drop {
				st = netproxy.State{Drop: 0.02 + n.rng.Float64()*0.1}
			}
			n.C.GRPC[link].Set(st)
			links = append(links, fmt.Sprintf("grpc %s->%s %v", link[0], link[1], describe(st)))
		}
		sort.Strings(links)
		start(strings.Join(links, ", "), "Raft and gRPC per link")
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
	case Member:
		id := n.random()
		if n.rng.IntN(2) == 0 {
			id = n.leader(ctx)
		}
		wipe := n.rng.IntN(2) == 0
		plan := "kill -9, RemoveNode, at heal restart with its data dir"
		if wipe {
			plan = "kill -9, RemoveNode, at heal wipe its data dir and start it as a new server (no --peers)"
		}
		start(id, plan+"; wait until it is a voter again")
		if err := n.C.Kill(id); err != nil {
			n.Log("nemesis: kill %s: %v", id, err)
		}
		// Not cut short by the end of the run: the heal must know whether it was removed.
		removed, err := n.removeNode(context.WithoutCancel(ctx), id)
		note := "removed"
		if err != nil {
			note = "not removed: " + err.Error()
			n.Log("nemesis: member: remove %s: %v", id, err)
			// A voter still in the configuration must keep its log (and its votes).
			wipe = false
		}
		n.H.AddNote(f, fmt.Sprintf("%s after %v", note, removed.Round(time.Millisecond)))
		heal = func() {
			restart, how := n.C.Restart, "with its data"
			if wipe {
				restart, how = n.C.RestartFresh, "wiped"
			}
			if err := restart(id); err != nil {
				n.Log("nemesis: member: restart %s %s: %v", id, how, err)
				n.H.AddNote(f, fmt.Sprintf("restart %s failed: %v", how, err))
				return
			}
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 60*time.Second)
			defer cancel()
			began := time.Now()
			if err := n.C.WaitVoters(wctx); err != nil {
				n.Log("nemesis: member: %s restarted %s: %v", id, how, err)
				n.H.AddNote(f, fmt.Sprintf("restarted %s; not a voter again within 60 s", how))
				return
			}
			n.Log("nemesis: member: %s restarted %s, a voter again after %v", id, how, time.Since(began).Round(time.Millisecond))
			n.H.AddNote(f, fmt.Sprintf("restarted %s; a voter again after %v", how, time.Since(began).Round(time.Millisecond)))
		}
	default:
		return
	}
	sleep(ctx, d)
	heal()
	n.H.EndFault(f)
	n.Log("nemesis: healed %s", kind)
}

// removeNode asks the leader to remove id until it does or 30 s pass. The leader
// refuses while gossip still reports the killed node alive (a few seconds), and
// refuses to remove itself: a killed leader is removed once the others elected a new
// one. It returns how long it took.
func (n *Nemesis) removeNode(ctx context.Context, id string) (time.Duration, error) {
	began := time.Now()
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	cl, err := n.C.Client(ctx)
	if err != nil {
		return time.Since(began), fmt.Errorf("client: %w", err)
	}
	defer cl.Close()
	for {
		cctx, ccancel := context.WithTimeout(ctx, 5*time.Second)
		_, err := cl.RemoveNode(cctx, client.NewRemoveNodeOption(id))
		ccancel()
		if err == nil || status.Code(err) == codes.NotFound { // NotFound: an earlier attempt removed it
			return time.Since(began), nil
		}
		select {
		case <-ctx.Done():
			return time.Since(began), fmt.Errorf("RemoveNode %s: %w", id, err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

func sortedLinks(m map[[2]string]*netproxy.Proxy) [][2]string {
	links := make([][2]string, 0, len(m))
	for link := range m {
		links = append(links, link)
	}
	sort.Slice(links, func(i, j int) bool {
		if links[i][0] != links[j][0] {
			return links[i][0] < links[j][0]
		}
		return links[i][1] < links[j][1]
	})
	return links
}

func describe(s netproxy.State) string {
	if s.Drop > 0 {
		return fmt.Sprintf("drop %.0f%%", s.Drop*100)
	}
	return "delay " + s.Delay.String()
}
