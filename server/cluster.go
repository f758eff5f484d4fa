package server

import (
	"context"
	"sort"
	"sync"
	"time"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/rpc/internalv1"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// clusterService implements the public Cluster API.
type clusterService struct {
	pb.UnimplementedClusterServer
	n *Node
}

// nodeStatusTimeout bounds how long ClusterStatus waits for each node.
const nodeStatusTimeout = 2 * time.Second

func (s *clusterService) ClusterStatus(ctx context.Context, req *pb.ClusterStatusRequest) (*pb.ClusterStatusResponse, error) {
	n := s.n
	future := n.raft.GetConfiguration()
	if err := future.Error(); err != nil {
		return nil, raftError(err)
	}
	_, leaderID := n.raft.LeaderWithID()
	// Prefer a linearizable view of the registered addresses, but answer from the local
	// state when there is no quorum: status matters most when things are broken.
	vctx, cancel := context.WithTimeout(ctx, nodeStatusTimeout)
	view, err := n.readView(vctx, pb.ReadConsistency_READ_CONSISTENCY_UNSPECIFIED)
	cancel()
	if err != nil {
		view = n.fsm.View()
	}
	registered := map[string]string{}
	for _, node := range view.Nodes() {
		registered[node.Id] = node.GrpcAddr
	}
	servers := future.Configuration().Servers
	out := &pb.ClusterStatusResponse{
		LeaderId: string(leaderID),
		Nodes:    make([]*pb.NodeStatus, len(servers)),
		Storage: &pb.StorageInfo{
			Endpoint:  n.cfg.Storage.Endpoint,
			Region:    n.cfg.Storage.Region,
			Bucket:    n.cfg.Storage.Bucket,
			Root:      n.cfg.Root,
			PathStyle: n.cfg.Storage.PathStyle,
		},
	}
	var wg sync.WaitGroup
	for i, srv := range servers {
		st := &pb.NodeStatus{Id: string(srv.ID), RaftAddr: string(srv.Address), Voter: srv.Suffrage == raft.Voter, GrpcAddr: registered[string(srv.ID)]}
		out.Nodes[i] = st
		st.GossipStatus = n.members.StatusOf(st.Id)
		if string(srv.ID) == n.cfg.NodeID {
			fillStatus(st, n.localStatus(req.GetFsmHash()))
			continue
		}
		if st.GrpcAddr == "" {
			st.Role = pb.NodeRole_NODE_ROLE_UNREACHABLE
			st.Error = "the node has not registered its gRPC address"
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			cctx, cancel := context.WithTimeout(ctx, nodeStatusTimeout)
			defer cancel()
			conn, err := n.peers.get(st.GrpcAddr)
			var remote *internalv1.NodeStatusResponse
			if err == nil {
				remote, err = internalv1.NewInternalClient(conn).NodeStatus(cctx, &internalv1.NodeStatusRequest{FsmHash: req.GetFsmHash()})
			}
			if err != nil {
				st.Role = pb.NodeRole_NODE_ROLE_UNREACHABLE
				st.Error = status.Convert(err).Message()
				return
			}
			fillStatus(st, remote)
		}()
	}
	wg.Wait()
	sort.Slice(out.Nodes, func(i, j int) bool { return out.Nodes[i].Id < out.Nodes[j].Id })
	return out, nil
}

func fillStatus(st *pb.NodeStatus, r *internalv1.NodeStatusResponse) {
	st.Role = roleOf(r.State)
	st.Term = r.Term
	st.CommitIndex = r.CommitIndex
	st.AppliedIndex = r.AppliedIndex
	st.LastLogIndex = r.LastLogIndex
	st.LastContactMs = r.LastContactMs
	st.Version = r.Version
	st.FsmHash = r.FsmHash
	st.FsmHashIndex = r.FsmHashIndex
	if r.GrpcAddr != "" {
		st.GrpcAddr = r.GrpcAddr
	}
}

func roleOf(state string) pb.NodeRole {
	switch state {
	case raft.Leader.String():
		return pb.NodeRole_NODE_ROLE_LEADER
	case raft.Follower.String():
		return pb.NodeRole_NODE_ROLE_FOLLOWER
	case raft.Candidate.String():
		return pb.NodeRole_NODE_ROLE_CANDIDATE
	case raft.Shutdown.String():
		return pb.NodeRole_NODE_ROLE_SHUTDOWN
	}
	return pb.NodeRole_NODE_ROLE_UNSPECIFIED
}

// localStatus is this node's own Raft state, with the FSM hash when withHash.
func (n *Node) localStatus(withHash bool) *internalv1.NodeStatusResponse {
	state := n.raft.State()
	var lastContact int64
	if state != raft.Leader {
		if t := n.raft.LastContact(); !t.IsZero() {
			lastContact = time.Since(t).Milliseconds()
		} else {
			lastContact = -1
		}
	}
	_, leaderID := n.raft.LeaderWithID()
	var hashIndex uint64
	var hash string
	if withHash {
		hashIndex, hash = n.fsm.HashAt()
	}
	return &internalv1.NodeStatusResponse{
		FsmHash:       hash,
		FsmHashIndex:  hashIndex,
		Id:            n.cfg.NodeID,
		RaftAddr:      n.RaftAddr(),
		GrpcAddr:      n.grpcAddr,
		State:         state.String(),
		Term:          n.raft.CurrentTerm(),
		CommitIndex:   n.raft.CommitIndex(),
		AppliedIndex:  n.fsm.AppliedIndex(),
		LastLogIndex:  n.raft.LastIndex(),
		LastContactMs: lastContact,
		Version:       n.cfg.Version,
		LeaderId:      string(leaderID),
	}
}
