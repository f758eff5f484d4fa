package client

import (
	"context"

	"google.golang.org/grpc"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// ClusterStatus asks every node of the Raft configuration for its state, through the
// preferred endpoint. The response also says where the cluster stores its objects
// (Storage), never with credentials.
func (c *Client) ClusterStatus(ctx context.Context, opts ...StatusOption) (*snapkeepv1.ClusterStatusResponse, error) {
	req := &snapkeepv1.ClusterStatusRequest{}
	for _, o := range opts {
		o(req)
	}
	return invoke(ctx, c, "ClusterStatus", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ClusterStatusResponse, error) {
			return ep.cluster.ClusterStatus(ctx, req, o...)
		})
}

// StatusOption modifies a ClusterStatus call.
type StatusOption func(*snapkeepv1.ClusterStatusRequest)

// WithFSMHash also asks every node for the SHA-256 of its state machine and the applied
// index it covers (NodeStatus.FsmHash, FsmHashIndex): costly on a large catalog.
func WithFSMHash() StatusOption {
	return func(r *snapkeepv1.ClusterStatusRequest) { r.FsmHash = true }
}

// ClusterMembers lists the gossip members as the answering node sees them: id,
// addresses, health (alive, suspect, dead, left), version, and whether each is a voter
// in the Raft configuration.
func (c *Client) ClusterMembers(ctx context.Context) (*snapkeepv1.ClusterMembersResponse, error) {
	req := &snapkeepv1.ClusterMembersRequest{}
	return invoke(ctx, c, "ClusterMembers", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ClusterMembersResponse, error) {
			return ep.cluster.ClusterMembers(ctx, req, o...)
		})
}

// RemoveNodeOption builds a RemoveNode call.
type RemoveNodeOption struct {
	req *snapkeepv1.RemoveNodeRequest
}

// NewRemoveNodeOption removes the node with this id from the Raft configuration.
func NewRemoveNodeOption(id string) *RemoveNodeOption {
	return &RemoveNodeOption{req: &snapkeepv1.RemoveNodeRequest{Id: id}}
}

// RemoveNode removes a server from the Raft configuration. The leader refuses to remove
// itself (transfer leadership first), the last voter, a node gossip reports alive (stop
// it first) and a removal that would leave the healthy voters short of a quorum.
func (c *Client) RemoveNode(ctx context.Context, opt *RemoveNodeOption) (*snapkeepv1.RemoveNodeResponse, error) {
	if opt == nil {
		return nil, nilOption("RemoveNode")
	}
	req := clone(opt.req)
	return invoke(ctx, c, "RemoveNode", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.RemoveNodeResponse, error) {
			return ep.cluster.RemoveNode(ctx, req, o...)
		})
}

// TransferLeadershipOption builds a TransferLeadership call.
type TransferLeadershipOption struct {
	req *snapkeepv1.TransferLeadershipRequest
}

// NewTransferLeadershipOption hands leadership to the most up to date follower.
func NewTransferLeadershipOption() *TransferLeadershipOption {
	return &TransferLeadershipOption{req: &snapkeepv1.TransferLeadershipRequest{}}
}

// WithTarget names the voter that should lead.
func (o *TransferLeadershipOption) WithTarget(id string) *TransferLeadershipOption {
	o.req.Id = id
	return o
}

// TransferLeadership hands leadership over and returns the new leader's id.
func (c *Client) TransferLeadership(ctx context.Context, opt *TransferLeadershipOption) (*snapkeepv1.TransferLeadershipResponse, error) {
	if opt == nil {
		return nil, nilOption("TransferLeadership")
	}
	req := clone(opt.req)
	return invoke(ctx, c, "TransferLeadership", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.TransferLeadershipResponse, error) {
			return ep.cluster.TransferLeadership(ctx, req, o...)
		})
}

// LookupRequestsOption builds a LookupRequests call.
type LookupRequestsOption struct {
	req *snapkeepv1.LookupRequestsRequest
}

// NewLookupRequestsOption asks about these request ids (at most 1,000; see
// WithRequestID for giving a write a known id).
func NewLookupRequestsOption(ids ...string) *LookupRequestsOption {
	return &LookupRequestsOption{req: &snapkeepv1.LookupRequestsRequest{RequestIds: ids}}
}

// LookupRequests says what became of writes by their request ids: applied, with their
// result, or not held by the cluster's deduplication window. The leader commits its
// whole log first, so an id not found was not applied and never will be — provided the
// window still holds a request applied after the write could have been (it keeps the
// last 20,000): compare a request known to be later with OldestSeq.
func (c *Client) LookupRequests(ctx context.Context, opt *LookupRequestsOption) (*snapkeepv1.LookupRequestsResponse, error) {
	if opt == nil {
		return nil, nilOption("LookupRequests")
	}
	req := clone(opt.req)
	return invoke(ctx, c, "LookupRequests", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.LookupRequestsResponse, error) {
			return ep.cluster.LookupRequests(ctx, req, o...)
		})
}
