package server_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/fsm"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// One object at <root>/collections/C/segments/S/index/B (no trailing slash), B a READY
// build of flushed segment S, made the orphan scan panic on every leader in turn. It is
// an orphan: reported by a dry run, deleted by a run, and every node keeps serving.
func TestStrayKeyUnderAReadyBuildIsAnOrphanNotACrash(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) { cfg.GCDisabled = true }})
	cl := gcClient(t, c)
	ctx := context.Background()
	store := c.Bucket.Store
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	_, err = cl.CreateIndex(ctx, client.NewCreateIndexOption("docs", "vec", 101))
	require.NoError(t, err)
	seg := gcGenerate(t, c, cl, "docs", 1, 2, 1)[0]
	build := gcAddBuild(t, cl, store, seg.Id, 1)
	require.Equal(t, pb.IndexBuildState_INDEX_BUILD_STATE_READY, build.State)
	stray := strings.TrimSuffix(build.Prefix, "/")
	gcPut(t, store, stray, pb.FileKind_FILE_KIND_INDEX, 7)

	dry := gcRun(t, cl, gcRunOpt().WithDryRun())
	var found *pb.GCCandidate
	for _, cand := range dry.Candidates {
		if cand.Key == stray {
			found = cand
		}
	}
	require.NotNil(t, found, "the stray object is an orphan candidate: %v", gcCandidateKeys(dry))
	require.Equal(t, fsm.ReasonOrphan, found.Reason)
	require.Len(t, dry.Candidates, 1, "nothing else is a candidate: %v", gcCandidateKeys(dry))

	gcRun(t, cl, gcRunOpt())
	listing := gcListAll(t, store, "")
	require.NotContains(t, listing, stray)
	for _, f := range append(append([]*pb.File{}, seg.Files...), build.Files...) {
		require.Contains(t, listing, f.Key, "owned files stay")
	}
	for i, n := range c.Nodes {
		require.NotNil(t, n, "node %d", i)
	}
	c.WaitConverged()
}
