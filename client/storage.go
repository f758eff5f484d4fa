package client

import (
	"context"

	"google.golang.org/grpc"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// AnalyzeStorage checks what the cluster's bucket (repository "") or a registered
// repository really does, from every node at once and across nodes: read-after-write,
// overwrite visibility, list-after-write, listing order and pagination, conditional
// creates, copy checksums, UploadPartCopy, DeleteObjects, error shapes, concurrent
// writers and per-operation latency. The analysis writes and then deletes small
// objects under .snapkeep-analyze/ (admin only). An unsafe behaviour is not an error:
// the response's Unsafe says so, each check its outcome.
func (c *Client) AnalyzeStorage(ctx context.Context, repository string) (*snapkeepv1.AnalyzeStorageResponse, error) {
	req := &snapkeepv1.AnalyzeStorageRequest{Repository: repository}
	return invoke(ctx, c, "AnalyzeStorage", routeLeader,
		func(ctx context.Context, ep *endpoint, o ...grpc.CallOption) (*snapkeepv1.AnalyzeStorageResponse, error) {
			return snapkeepv1.NewStorageClient(ep.conn).AnalyzeStorage(ctx, req, o...)
		})
}
