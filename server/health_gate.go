package server

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
)

// healthGate is why this node refuses client calls right now. A node that cannot write
// its log, is far behind the leader or has known no leader for a while would make
// reads and writes hang until the client's deadline; answering Unavailable at once
// sends the client to another node instead.
type healthGate struct {
	message string
}

// gatedServices are the client services an unhealthy node refuses. Cluster, GC,
// Backup, Health and Internal stay open: operators and peers need them to see and
// repair the node.
var gatedServices = []string{"/snapkeep.v1.Catalog/", "/snapkeep.v1.Snapshots/", "/snapkeep.v1.Restores/"}

func (n *Node) healthMaxLag() uint64 {
	if n.cfg.HealthMaxLag > 0 {
		return n.cfg.HealthMaxLag
	}
	return defaultHealthMaxLag
}

// updateHealthGate decides from the latest health whether client calls are refused:
// on a log write error, when behind the leader, or with no leader past the grace.
func (n *Node) updateHealthGate(h Health) {
	var refuse []string
	for _, reason := range h.Reasons {
		switch reason {
		case reasonLogWrite, reasonBehindLeader:
			refuse = append(refuse, reason)
		}
	}
	if h.Leader == "" {
		if n.ops.noLeaderSince.IsZero() {
			n.ops.noLeaderSince = time.Now()
		}
		if time.Since(n.ops.noLeaderSince) > healthNoLeaderGrace {
			refuse = append(refuse, reasonNoLeader)
		}
	} else {
		n.ops.noLeaderSince = time.Time{}
	}
	if len(refuse) == 0 {
		n.healthGate.Store(nil)
		return
	}
	var why []string
	for i, reason := range h.problemReasons {
		if slices.Contains(refuse, reason) {
			why = append(why, h.Problems[i])
		}
	}
	if slices.Contains(refuse, reasonNoLeader) && !slices.Contains(h.Reasons, reasonNoLeader) {
		why = append(why, "no leader known")
	}
	msg := fmt.Sprintf("node %s is unhealthy (%s): try another node", n.cfg.NodeID, strings.Join(why, "; "))
	if h.Leader != "" && h.Leader != n.cfg.NodeID {
		msg += fmt.Sprintf(" — the leader is %s", h.Leader)
		if h.LeaderAddr != "" {
			msg += " at " + h.LeaderAddr
		}
	}
	n.healthGate.Store(&healthGate{message: msg})
}

// refusal is the error an unhealthy node answers a client call with, or nil.
func (n *Node) refusal(method string) error {
	if !slices.ContainsFunc(gatedServices, func(p string) bool { return strings.HasPrefix(method, p) }) {
		return nil
	}
	if g := n.healthGate.Load(); g != nil {
		return status.Error(codes.Unavailable, g.message)
	}
	return nil
}

func (n *Node) healthGateUnary(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
	if err := n.refusal(info.FullMethod); err != nil {
		return nil, err
	}
	return handler(ctx, req)
}

func (n *Node) healthGateStream(srv any, ss grpc.ServerStream, info *grpc.StreamServerInfo, handler grpc.StreamHandler) error {
	if err := n.refusal(info.FullMethod); err != nil {
		return err
	}
	return handler(srv, ss)
}
