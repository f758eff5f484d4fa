package client

import (
	"context"

	"google.golang.org/grpc"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// ClusterStatus asks every node of the Raft configuration for its state, through the
// preferred endpoint. The response also says where the cluster stores its objects
// (Storage), never with credentials.
func (c *Client) ClusterStatus(ctx context.Context) (*snapkeepv1.ClusterStatusResponse, error) {
	req := &snapkeepv1.ClusterStatusRequest{}
	return invoke(ctx, c, "ClusterStatus", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.ClusterStatusResponse, error) {
			return ep.cluster.ClusterStatus(ctx, req, o...)
		})
}
