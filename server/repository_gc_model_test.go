package server_test

import (
	"context"
	"flag"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

var (
	repoGCSteps = flag.Int("repogc.steps", 40, "steps of TestRepositoryGCModel")
	repoGCSeed  = flag.Uint64("repogc.seed", 1, "seed of TestRepositoryGCModel")
)

// TestRepositoryGCModel walks a cluster and a repository at random: segments written
// and dropped, snapshots exported (some left running), repository snapshots deleted,
// and repository garbage collections with no grace — some while exports copy. After
// every collection every snapshot of the repository's index must verify (its manifest
// and every data object there with its size), and every export must complete. At the
// end, every repository snapshot deleted and collected, only the format marker and the
// index generations may remain.
func TestRepositoryGCModel(t *testing.T) {
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(*repoGCSeed, 16))
	repoServer, err := objstore.StartEmbedded(ctx, objstore.EmbeddedOptions{Bucket: "backups"})
	require.NoError(t, err)
	t.Cleanup(func() { repoServer.Close() })
	repoStore, err := objstore.NewS3(ctx, repoServer.Config())
	require.NoError(t, err)
	t.Cleanup(func() { repoStore.Close() })

	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.RestoreLease = 20 * time.Second
	}})
	cl := newClient(t, c)
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs").WithPartitions("p1"))
	require.NoError(t, err)
	repoCfg := repoServer.Config()
	_, err = cl.RegisterRepository(ctx, client.NewRegisterRepositoryOption("backup", repoCfg.Bucket).
		WithEndpoint(repoCfg.Endpoint).WithPathStyle().WithPrefix("model"))
	require.NoError(t, err)

	var live []uint64            // live segments
	running := map[uint64]bool{} // export jobs not yet waited for
	snapshots := 0
	write := func() {
		res, err := datagen.Generate(ctx, cl, c.Bucket.Store, datagen.Options{Collection: "docs", Partition: []string{"_default", "p1"}[rng.IntN(2)],
			Segments: 1 + rng.IntN(2), FilesPerSegment: 1 + rng.IntN(4), FileSize: 256, Seed: rng.Int64()})
		require.NoError(t, err)
		live = append(live, res.SegmentIDs...)
	}
	export := func(wait bool) {
		snapshots++
		name := fmt.Sprintf("s%d", snapshots)
		_, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", name))
		require.NoError(t, err)
		resp, err := cl.ExportSnapshot(ctx, client.NewExportSnapshotOption("docs", name, "backup").WithMaxConcurrency(1+rng.IntN(2)))
		require.NoError(t, err)
		running[resp.JobId] = true
		if wait {
			waitExports(t, cl, running)
		}
	}
	check := func(what string) {
		t.Helper()
		v, err := cl.VerifyRepository(ctx, "backup", false, "")
		require.NoError(t, err)
		require.True(t, v.Ok, "%s: %v", what, v.Problems)
	}
	collect := func() {
		report, err := cl.CollectRepository(ctx, "backup", false, -1)
		require.NoError(t, err)
		require.Empty(t, report.Errors)
		check("after a collection")
	}
	for step := 0; step < *repoGCSteps; step++ {
		switch x := rng.IntN(10); {
		case x < 3 || len(live) == 0:
			write()
		case x < 4:
			i := rng.IntN(len(live))
			_, err := cl.DropSegments(ctx, client.NewDropSegmentsOption(live[i]))
			require.NoError(t, err)
			live = append(live[:i], live[i+1:]...)
		case x < 6:
			export(rng.IntN(2) == 0)
		case x < 7:
			list, err := cl.ListRepositorySnapshots(ctx, client.NewListRepositorySnapshotsOption("backup"))
			require.NoError(t, err)
			if len(list.Snapshots) > 0 {
				_, err := cl.DeleteRepositorySnapshot(ctx, "backup", list.Snapshots[rng.IntN(len(list.Snapshots))].Id)
				require.NoError(t, err)
			}
		default:
			collect() // possibly while exports run
		}
	}
	waitExports(t, cl, running)
	check("every export done")

	list, err := cl.ListRepositorySnapshots(ctx, client.NewListRepositorySnapshotsOption("backup"))
	require.NoError(t, err)
	for _, s := range list.Snapshots {
		_, err := cl.DeleteRepositorySnapshot(ctx, "backup", s.Id)
		require.NoError(t, err)
	}
	collect()
	page, err := repoStore.List(ctx, "model/", "", 1000)
	require.NoError(t, err)
	for _, o := range page.Objects {
		require.True(t, o.Key == "model/snapkeep-repository" || strings.HasPrefix(o.Key, "model/index/"), "left behind: %s", o.Key)
	}
}

// waitExports waits for the jobs and requires each to complete.
func waitExports(t *testing.T, cl *client.Client, jobs map[uint64]bool) {
	t.Helper()
	for id := range jobs {
		job := waitJob(t, cl, id)
		require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, "export %d: %s", id, job.Error)
		delete(jobs, id)
	}
}
