package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/objstore/analyze"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// TestAnalyzeStorageFromEveryNode analyzes the cluster's bucket (the embedded server)
// from a follower: every node's checks, the cross-node checks read on every node, the
// feature map, and nothing left behind; then a repository in another bucket of the
// same server, and an unknown repository.
func TestAnalyzeStorageFromEveryNode(t *testing.T) {
	t.Parallel()
	c := servertest.Start(t, 3, servertest.Options{})
	ctx := context.Background()
	cl, err := client.New(ctx, c.Nodes[c.Follower()].GRPCAddr())
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })

	start := time.Now()
	resp, err := cl.AnalyzeStorage(ctx, "")
	t.Logf("analysis took %v", time.Since(start))
	require.NoError(t, err)
	require.Len(t, resp.Nodes, 3)
	for i, n := range resp.Nodes {
		require.Equal(t, fmt.Sprintf("n%d", i+1), n.Node)
		require.Empty(t, n.Error)
		require.Empty(t, n.CleanupError)
		require.Equal(t, "snapkeep/.snapkeep-analyze/"+resp.RunId+"/nodes/"+n.Node+"/", n.Prefix)
		require.Len(t, n.Checks, len(analyze.Checks()))
		require.NotEmpty(t, n.Ops)
		for _, ch := range n.Checks {
			want := pb.StorageCheckOutcome_STORAGE_CHECK_OUTCOME_OK
			switch ch.Name {
			case "copy-checksum", "upload-part-copy", "access-denied-403":
				want = pb.StorageCheckOutcome_STORAGE_CHECK_OUTCOME_UNSUPPORTED
			}
			require.Equal(t, want, ch.Outcome, "%s on %s: %s", ch.Name, n.Node, ch.Detail)
		}
	}
	// Three checks read on each of three nodes, and their agreement on the shared key.
	require.Len(t, resp.CrossNode, 10)
	for _, ch := range resp.CrossNode {
		require.Equal(t, pb.StorageCheckOutcome_STORAGE_CHECK_OUTCOME_OK, ch.Outcome, "%s: %s", ch.Name, ch.Detail)
	}
	require.False(t, resp.Unsafe)
	require.False(t, resp.Errors)
	features := map[string]*pb.StorageFeature{}
	for _, f := range resp.Features {
		features[f.Behaviour] = f
	}
	require.Len(t, features, len(analyze.Checks())+4)
	require.Equal(t, pb.StorageCheckOutcome_STORAGE_CHECK_OUTCOME_OK, features["conditional-put"].Outcome)
	require.Equal(t, pb.StorageCheckOutcome_STORAGE_CHECK_OUTCOME_UNSUPPORTED, features["upload-part-copy"].Outcome)
	require.Contains(t, features["upload-part-copy"].Uses, "fallback: streamed copy")
	require.Contains(t, features["cross-node-read-after-write"].Feature, "another")

	page, err := c.Bucket.Store.List(ctx, "snapkeep/.snapkeep-analyze/", "", 0)
	require.NoError(t, err)
	require.Empty(t, page.Objects, "the analysis deletes everything it wrote")

	_, err = cl.AnalyzeStorage(ctx, "nosuch")
	require.Equal(t, codes.NotFound, status.Code(err), "%v", err)
}
