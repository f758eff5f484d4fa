package server

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/hashicorp/memberlist"
	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/membership"
)

// configChangeTimeout bounds a membership change's wait for Raft.
const configChangeTimeout = 10 * time.Second

// ClusterMembers lists the gossip members as this node sees them, with their place in
// the Raft configuration; servers in the configuration gossip does not know are
// listed as UNKNOWN. Without gossip, the configuration alone.
func (s *clusterService) ClusterMembers(_ context.Context, _ *pb.ClusterMembersRequest) (*pb.ClusterMembersResponse, error) {
	n := s.n
	future := n.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return nil, raftError(err)
	}
	_, leaderID := n.raft.LeaderWithID()
	out := &pb.ClusterMembersResponse{NodeId: n.cfg.NodeID, GossipEnabled: n.members != nil, ConfigurationIndex: future.Index()}
	byID := map[string]*pb.Member{}
	if n.members != nil {
		for id, mem := range n.members.Members() {
			m := &pb.Member{Id: id, GossipAddr: mem.Addr, RaftAddr: mem.RaftAddr, GrpcAddr: mem.GRPCAddr,
				Status: membership.Status(mem.State), Version: mem.Version}
			byID[id] = m
			out.Members = append(out.Members, m)
		}
	}
	for _, srv := range future.Configuration().Servers {
		id := string(srv.ID)
		m, ok := byID[id]
		if !ok {
			m = &pb.Member{Id: id, RaftAddr: string(srv.Address), GrpcAddr: n.nodeGRPCAddr(id), Status: pb.MemberStatus_MEMBER_STATUS_UNKNOWN}
			if n.members == nil {
				m.Status = pb.MemberStatus_MEMBER_STATUS_UNSPECIFIED
			}
			out.Members = append(out.Members, m)
		}
		m.InRaftConfiguration = true
		m.Voter = srv.Suffrage == raft.Voter
		m.Leader = id == string(leaderID)
	}
	sort.Slice(out.Members, func(i, j int) bool { return out.Members[i].Id < out.Members[j].Id })
	return out, nil
}

// notLeader is the answer of a follower to a call only the leader serves: UNAVAILABLE,
// so the client retries on the leader the response metadata names.
func (n *Node) notLeader(what string) error {
	_, id := n.leaderGRPCAddr()
	if id == "" {
		return status.Errorf(codes.Unavailable, "%s: no leader elected right now; retry shortly", what)
	}
	return status.Errorf(codes.Unavailable, "%s is done by the leader %s, not this node (%s); retry there", what, id, n.cfg.NodeID)
}

// RemoveNode removes a server from the Raft configuration, compare-and-set on the
// configuration index.
func (s *clusterService) RemoveNode(_ context.Context, req *pb.RemoveNodeRequest) (*pb.RemoveNodeResponse, error) {
	n := s.n
	if req.Id == "" {
		return nil, status.Error(codes.InvalidArgument, "name the node to remove")
	}
	if n.raft.State() != raft.Leader {
		return nil, n.notLeader("removing a node")
	}
	future := n.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return nil, raftError(err)
	}
	index := future.Index()
	servers := future.Configuration().Servers
	var target *raft.Server
	voters, healthyVoters := 0, 0
	var ids []string
	for i, srv := range servers {
		ids = append(ids, string(srv.ID))
		if string(srv.ID) == req.Id {
			target = &servers[i]
		}
		if srv.Suffrage == raft.Voter {
			voters++
			if n.members.Healthy(string(srv.ID)) {
				healthyVoters++
			}
		}
	}
	if target == nil {
		return nil, status.Errorf(codes.NotFound, "node %q is not in the Raft configuration (servers: %s)", req.Id, strings.Join(ids, ", "))
	}
	if req.Id == n.cfg.NodeID {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is the leader: transfer leadership first (snapkeep cluster transfer-leader), then remove it", req.Id)
	}
	if target.Suffrage == raft.Voter && voters <= 1 {
		return nil, status.Errorf(codes.FailedPrecondition, "node %s is the last voter", req.Id)
	}
	if n.members != nil {
		if mem, ok := n.members.Members()[req.Id]; ok && mem.State == memberlist.StateAlive {
			return nil, status.Errorf(codes.FailedPrecondition, "node %s is alive in gossip and the leader would add it back: stop it first, then remove it", req.Id)
		}
		if target.Suffrage == raft.Voter {
			if n.members.Healthy(req.Id) {
				healthyVoters--
			}
			if reason := membership.RemovalUnsafe(voters, healthyVoters); reason != "" {
				return nil, status.Errorf(codes.FailedPrecondition, "removing node %s is unsafe: %s", req.Id, reason)
			}
		}
	}
	f := n.raft.RemoveServer(target.ID, index, configChangeTimeout)
	if err := f.Error(); err != nil {
		return nil, configChangeError(err)
	}
	n.logger.Warn("removed node from the Raft configuration", "member", req.Id, "configuration_index", f.Index())
	return &pb.RemoveNodeResponse{ConfigurationIndex: f.Index()}, nil
}

// configChangeError maps a failed membership change: a configuration that changed
// since it was read is ABORTED (retry reads it again).
func configChangeError(err error) error {
	if strings.Contains(err.Error(), "configuration changed since") {
		return status.Errorf(codes.Aborted, "the Raft configuration changed meanwhile; retry: %v", err)
	}
	return raftError(err)
}

// TransferLeadership hands leadership to the named voter (or the most up to date one)
// and waits until a leader is known again.
func (s *clusterService) TransferLeadership(ctx context.Context, req *pb.TransferLeadershipRequest) (*pb.TransferLeadershipResponse, error) {
	n := s.n
	if req.Id != "" {
		if _, leaderID := n.raft.LeaderWithID(); string(leaderID) == req.Id {
			return &pb.TransferLeadershipResponse{LeaderId: req.Id}, nil // done already (a retry)
		}
	}
	if n.raft.State() != raft.Leader {
		return nil, n.notLeader("leadership transfer")
	}
	var f raft.Future
	if req.Id == "" {
		f = n.raft.LeadershipTransfer()
	} else {
		future := n.raft.GetConfiguration()
		if err := future.Error(); err != nil {
			return nil, raftError(err)
		}
		var target *raft.Server
		for _, srv := range future.Configuration().Servers {
			if string(srv.ID) == req.Id {
				target = &srv
			}
		}
		if target == nil {
			return nil, status.Errorf(codes.NotFound, "node %q is not in the Raft configuration", req.Id)
		}
		if target.Suffrage != raft.Voter {
			return nil, status.Errorf(codes.FailedPrecondition, "node %s is not a voter and cannot lead", req.Id)
		}
		if st := n.members.StatusOf(req.Id); st == pb.MemberStatus_MEMBER_STATUS_DEAD || st == pb.MemberStatus_MEMBER_STATUS_LEFT {
			return nil, status.Errorf(codes.FailedPrecondition, "node %s is %s in gossip and cannot lead", req.Id, strings.ToLower(strings.TrimPrefix(st.String(), "MEMBER_STATUS_")))
		}
		f = n.raft.LeadershipTransferToServer(target.ID, target.Address)
	}
	if err := f.Error(); err != nil {
		if errors.Is(err, raft.ErrLeadershipTransferInProgress) {
			return nil, status.Error(codes.Aborted, "a leadership transfer is already in progress; retry")
		}
		return nil, status.Errorf(codes.Unavailable, "leadership transfer failed: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if _, id := n.raft.LeaderWithID(); id != "" && string(id) != n.cfg.NodeID {
			if req.Id != "" && string(id) != req.Id {
				return nil, status.Errorf(codes.Aborted, "leadership went to %s instead of %s; retry", id, req.Id)
			}
			n.logger.Info("leadership transferred", "to", id)
			return &pb.TransferLeadershipResponse{LeaderId: string(id)}, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return nil, status.Error(codes.Unavailable, "leadership was handed over but no new leader is known yet; check cluster status")
		}
		time.Sleep(20 * time.Millisecond)
	}
}
