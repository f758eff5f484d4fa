package server

import (
	"context"

	"github.com/hashicorp/raft"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/api"
)

// MaxLookupRequests is the most request ids one LookupRequests call takes.
const MaxLookupRequests = 1000

// LookupRequests answers what became of writes by their request ids, from the
// deduplication window. The leader commits every entry of its log first (a barrier
// in its term): an entry not committed by then was never in this leader's log, and no
// later leader can commit it either, so an id the window does not hold afterwards was
// not applied and never will be — unless the window has forgotten it, which the
// caller judges by the seqs it returns.
func (s *clusterService) LookupRequests(ctx context.Context, req *pb.LookupRequestsRequest) (*pb.LookupRequestsResponse, error) {
	n := s.n
	switch {
	case len(req.GetRequestIds()) == 0:
		return nil, status.Error(codes.InvalidArgument, "name at least one request id")
	case len(req.GetRequestIds()) > MaxLookupRequests:
		return nil, status.Errorf(codes.InvalidArgument, "at most %d request ids per call, not %d; split the list", MaxLookupRequests, len(req.GetRequestIds()))
	}
	for i, id := range req.GetRequestIds() {
		if id == "" {
			return nil, status.Errorf(codes.InvalidArgument, "request id %d of the list is empty", i+1)
		}
		if err := fsm.ValidateRequestID(id); err != nil {
			return nil, api.Status(err, n.root)
		}
	}
	if n.raft.State() != raft.Leader {
		return nil, n.notLeader("looking requests up")
	}
	if err := awaitFuture(ctx, n.raft.Barrier(applyTimeout)); err != nil {
		return nil, err
	}
	v := n.fsm.View()
	out := &pb.LookupRequestsResponse{Outcomes: make([]*pb.RequestOutcome, len(req.GetRequestIds()))}
	out.OldestSeq, out.LastSeq = v.RequestWindow()
	for i, id := range req.GetRequestIds() {
		o := &pb.RequestOutcome{RequestId: id}
		if rec := v.Request(id); rec != nil {
			o.Found, o.Seq, o.Command = true, rec.Seq, fsm.CommandName(rec.Type)
			if err := fsm.ResultError(rec.Result); err != nil {
				st := status.Convert(api.Status(err, n.root))
				o.Code, o.Message = int32(st.Code()), st.Message()
			}
		}
		out.Outcomes[i] = o
	}
	return out, nil
}
