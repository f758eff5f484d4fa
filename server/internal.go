package server

import (
	"context"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/rpc/internalv1"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/api"
)

// The Internal service: what nodes ask of each other. Every method that must run on the
// leader refuses elsewhere with FailedPrecondition "not leader", which the caller takes
// as "find the leader again and retry".

// internalService implements the node-to-node API.
type internalService struct {
	internalv1.UnimplementedInternalServer
	n *Node
}

// Propose applies an envelope a follower forwarded.
func (s *internalService) Propose(ctx context.Context, req *internalv1.ProposeRequest) (*internalv1.ProposeResponse, error) {
	if s.n.raft.State() != raft.Leader {
		return nil, status.Error(codes.FailedPrecondition, "not leader")
	}
	res, index, err := s.n.applyLocal(ctx, req.Envelope)
	if err != nil {
		return nil, err
	}
	data, err := proto.Marshal(res)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "encode result: %v", err)
	}
	return &internalv1.ProposeResponse{Result: data, Index: index}, nil
}

// ReadIndex is the leader's confirmed read index, for a follower's linearizable read.
func (s *internalService) ReadIndex(ctx context.Context, _ *internalv1.ReadIndexRequest) (*internalv1.ReadIndexResponse, error) {
	if s.n.raft.State() != raft.Leader {
		return nil, status.Error(codes.FailedPrecondition, "not leader")
	}
	index, err := s.n.leaderReadIndex(ctx)
	if err != nil {
		return nil, err
	}
	return &internalv1.ReadIndexResponse{Index: index}, nil
}

// NodeStatus is this node's own status, for ClusterStatus on another node.
func (s *internalService) NodeStatus(_ context.Context, req *internalv1.NodeStatusRequest) (*internalv1.NodeStatusResponse, error) {
	return s.n.localStatus(req.GetFsmHash()), nil
}

// RunGC runs a collection on the leader for another node's GCRun.
func (s *internalService) RunGC(ctx context.Context, req *pb.GCRunRequest) (*pb.GCRunResponse, error) {
	if s.n.raft.State() != raft.Leader {
		return nil, status.Error(codes.FailedPrecondition, "not leader")
	}
	return s.n.api.RunHere(ctx, req)
}

// GCSchedule says when this node, if leader, collects next.
func (s *internalService) GCSchedule(context.Context, *internalv1.GCScheduleRequest) (*internalv1.GCScheduleResponse, error) {
	return s.n.api.GCSchedule(), nil
}

// LeaseRestoreTasks grants an executor a batch of restore tasks (restore.Coordinator).
func (s *internalService) LeaseRestoreTasks(ctx context.Context, req *internalv1.LeaseRestoreTasksRequest) (*internalv1.LeaseRestoreTasksResponse, error) {
	if s.n.raft.State() != raft.Leader {
		return nil, status.Error(codes.FailedPrecondition, "not leader")
	}
	return s.n.coord.Lease(ctx, req)
}

// ReportRestoreTasks records a batch's outcomes in one entry (restore.Coordinator).
func (s *internalService) ReportRestoreTasks(ctx context.Context, req *internalv1.ReportRestoreTasksRequest) (*internalv1.ReportRestoreTasksResponse, error) {
	if s.n.raft.State() != raft.Leader {
		return nil, status.Error(codes.FailedPrecondition, "not leader")
	}
	if err := s.n.coord.Report(ctx, req); err != nil {
		return nil, err
	}
	return &internalv1.ReportRestoreTasksResponse{}, nil
}

// ProbeRepository checks a repository from this node, with this node's credentials.
func (s *internalService) ProbeRepository(ctx context.Context, req *internalv1.ProbeRepositoryRequest) (*pb.RepositoryProbe, error) {
	if req.GetSpec() == nil || req.Probe == "" {
		return nil, status.Error(codes.InvalidArgument, "a probe names the repository's settings and a probe id")
	}
	out := s.n.repos.Probe(ctx, api.RepositoryRecord(req.Spec), req.Probe)
	out.Node = s.n.cfg.NodeID
	return out, nil
}

// AnalyzeStorage runs one phase of a storage analysis on this node (server/storage.go).
func (s *internalService) AnalyzeStorage(ctx context.Context, req *internalv1.AnalyzeStorageNodeRequest) (*internalv1.AnalyzeStorageNodeResponse, error) {
	return s.n.analyzeHere(ctx, req)
}
