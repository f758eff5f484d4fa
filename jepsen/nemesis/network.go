package nemesis

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/snapkeep/snapkeep/jepsen/netproxy"
)

// partitionLeaderFault: the leader alone on one side, the rest on the other.
type partitionLeaderFault struct{}

func (partitionLeaderFault) kind() string { return PartitionLeader }

func (partitionLeaderFault) inject(ctx context.Context, n *Nemesis, start startFunc) func() {
	// The random node is drawn and discarded so that the seed's schedule stays what it
	// was when both partitions shared one branch.
	_ = n.random()
	return isolate(n, n.leader(ctx), start)
}

// partitionMajorityFault: a random node alone on one side (a minority), the rest on the
// other.
type partitionMajorityFault struct{}

func (partitionMajorityFault) kind() string { return PartitionMajority }

func (partitionMajorityFault) inject(_ context.Context, n *Nemesis, start startFunc) func() {
	return isolate(n, n.random(), start)
}

// isolate cuts every link between id and the others.
func isolate(n *Nemesis, id string, start startFunc) func() {
	rest := n.others(id)
	start(fmt.Sprintf("[%s] | %v", id, rest), "Raft and gRPC cut both ways per link")
	n.C.Partition([]string{id}, rest)
	return n.C.HealNetwork
}

// bridgeFault: two nodes cut from each other, both still linked to the third.
type bridgeFault struct{}

func (bridgeFault) kind() string { return Bridge }

func (bridgeFault) inject(_ context.Context, n *Nemesis, start startFunc) func() {
	mid := n.random()
	o := n.others(mid)
	start(fmt.Sprintf("%s <-> %s cut, bridged by %s", o[0], o[1], mid), "Raft and gRPC links")
	n.C.CutPair(o[0], o[1])
	return n.C.HealNetwork
}

// delayFault: random links delayed by 20-200 ms.
type delayFault struct{}

func (delayFault) kind() string { return Delay }

func (delayFault) inject(_ context.Context, n *Nemesis, start startFunc) func() {
	return degradeLinks(n, start, func() netproxy.State { return netproxy.State{Delay: randomDelay(n)} })
}

// dropFault: random links losing 2-12 % of their traffic.
type dropFault struct{}

func (dropFault) kind() string { return Drop }

func (dropFault) inject(_ context.Context, n *Nemesis, start startFunc) func() {
	return degradeLinks(n, start, func() netproxy.State {
		// A delay is drawn and discarded so that the seed's schedule stays what it was
		// when delay and drop shared one branch.
		_ = randomDelay(n)
		return netproxy.State{Drop: 0.02 + n.rng.Float64()*0.1}
	})
}

func randomDelay(n *Nemesis) time.Duration {
	return time.Duration(20+n.rng.IntN(180)) * time.Millisecond
}

// degradeLinks sets a state drawn by next on about half the Raft links and a third of
// the gRPC links.
func degradeLinks(n *Nemesis, start startFunc, next func() netproxy.State) func() {
	var links []string
	// Map order is random: walk the links sorted so the seed decides the faults.
	for _, link := range sortedLinks(n.C.Raft) {
		if n.rng.IntN(2) == 0 {
			continue
		}
		st := next()
		n.C.Raft[link].Set(st)
		links = append(links, fmt.Sprintf("%s->%s %v", link[0], link[1], describe(st)))
	}
	for _, link := range sortedLinks(n.C.GRPC) {
		if n.rng.IntN(3) > 0 {
			continue
		}
		st := next()
		n.C.GRPC[link].Set(st)
		links = append(links, fmt.Sprintf("grpc %s->%s %v", link[0], link[1], describe(st)))
	}
	sort.Strings(links)
	start(strings.Join(links, ", "), "Raft and gRPC per link")
	return n.C.HealNetwork
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
