package server

import (
	"context"
	"log/slog"
	"sync"
	"time"

	"github.com/hashicorp/raft"

	"github.com/snapkeep/snapkeep/internal/duty"
	"github.com/snapkeep/snapkeep/internal/wallclock"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
)

// Cluster time: the leader stamps every command with its cluster clock
// (server/clustertime), which follows the median of the voters' wall clocks and never
// runs backwards. Every node samples the other voters' clocks each clockSampleInterval,
// so a node that becomes leader has fresh readings at once.

const (
	clockSampleInterval = time.Second
	clockSampleTimeout  = time.Second
	// clockWarnOffset: a voter's clock further off than this is logged (and shows in
	// snapkeep_clock_offset_seconds).
	clockWarnOffset = time.Second
)

// wallClock reads this node's wall clock.
func (n *Node) wallClock() time.Time {
	if n.cfg.WallClock != nil {
		return n.cfg.WallClock()
	}
	return wallclock.Now()
}

// stampTime is the time the leader stamps on a command it proposes (Unix ns).
func (n *Node) stampTime() int64 {
	if bugWallClock {
		return n.wallClock().UnixNano()
	}
	n.clock.Observe(n.fsm.LastNow())
	return n.clock.Now()
}

// clusterNow is the cluster clock's reading for the leader's duties that compare it
// with times in the catalog (lease deadlines, graces, schedules).
func (n *Node) clusterNow() time.Time { return time.Unix(0, n.stampTime()) }

// clockLoop is the node duty sampling the other voters' clocks.
func (n *Node) clockLoop() duty.Loop {
	return duty.Loop{Name: "clock-sample", Every: clockSampleInterval, Pass: n.sampleClocks}
}

// sampleClocks reads every other voter's wall clock once.
func (n *Node) sampleClocks(ctx context.Context) {
	future := n.raft.GetConfiguration()
	if future.Error() != nil {
		return
	}
	var others []string
	for _, srv := range future.Configuration().Servers {
		if srv.Suffrage == raft.Voter && string(srv.ID) != n.cfg.NodeID {
			others = append(others, string(srv.ID))
		}
	}
	n.clock.SetVoters(others)
	var wg sync.WaitGroup
	for _, id := range others {
		addr := n.nodeGRPCAddr(id)
		if addr == "" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n.sampleClock(ctx, id, addr)
		}()
	}
	wg.Wait()
	// Log when a voter's clock goes off and when it comes back, not every pass.
	offsets := n.clock.Offsets()
	for id, off := range offsets {
		switch off := off.Abs() > clockWarnOffset; {
		case off && !n.clockWarned[id]:
			n.logger.LogAttrs(ctx, slog.LevelWarn, "a voter's clock differs from this node's; the cluster clock follows the median of the voters' clocks",
				slog.String("peer", id), slog.Duration("offset", offsets[id]))
		case !off && n.clockWarned[id]:
			n.logger.Info("a voter's clock agrees with this node's again", "peer", id, "offset", offsets[id])
		}
		n.clockWarned[id] = offsets[id].Abs() > clockWarnOffset
	}
}

func (n *Node) sampleClock(ctx context.Context, id, addr string) {
	conn, err := n.peers.get(addr)
	if err != nil {
		return
	}
	ctx, cancel := context.WithTimeout(ctx, clockSampleTimeout)
	defer cancel()
	sent := time.Now()
	resp, err := internalv1.NewInternalClient(conn).ReadClock(ctx, &internalv1.ReadClockRequest{})
	if err != nil || resp.GetNode() != id {
		return
	}
	n.clock.Sample(id, resp.GetWallUnixNano(), sent, time.Now())
}

// ReadClock answers another node's clock sample.
func (s *internalService) ReadClock(context.Context, *internalv1.ReadClockRequest) (*internalv1.ReadClockResponse, error) {
	return &internalv1.ReadClockResponse{Node: s.n.cfg.NodeID, WallUnixNano: s.n.wallClock().UnixNano()}, nil
}

// ClockOffsets returns each other voter's wall clock minus this node's, from the
// samples younger than clustertime.Fresh (snapkeep_clock_offset_seconds).
func (n *Node) ClockOffsets() map[string]time.Duration { return n.clock.Offsets() }
