package cluster_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/internal/harness"
	"github.com/snapkeep/snapkeep/jepsen/cluster"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// TestExportSurvivesLeaderAndExecutorKill exports a 5,000-file snapshot from three
// `snapkeep server` processes to a repository (another bucket of the same versitygw,
// so copies are server-side and counted at the S3 proxy) while the leader is kill -9'd
// at 20 % and a follower — an executor — at 60 %, each restarted 3 s later. The export
// must complete, every file must be in the repository (verify --deep clean), and no
// file may be copied more than twice.
func TestExportSurvivesLeaderAndExecutorKill(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: builds the binary and runs three server processes and versitygw (make test runs it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	bin, err := harness.BuildSnapkeep(ctx, harness.BuildOptions{})
	require.NoError(t, err)
	c, err := cluster.Start(ctx, cluster.Options{Dir: t.TempDir(), Binary: bin, ExtraArgs: []string{"--restore-lease", "5m", "--log-level", "info"}})
	require.NoError(t, err)
	t.Cleanup(c.Close)
	cl, err := c.Client(ctx)
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })

	repoCfg := c.GW.Config()
	repoCfg.Bucket = "backups"
	repoStore, err := objstore.NewS3(ctx, repoCfg)
	require.NoError(t, err)
	t.Cleanup(func() { repoStore.Close() })
	require.NoError(t, repoStore.CreateBucket(ctx))

	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	gen, err := datagen.Generate(ctx, cl, c.Store, datagen.Options{Collection: "docs", Segments: 50, FilesPerSegment: 100,
		FileSize: 64, Concurrency: 32, Seed: 3})
	require.NoError(t, err)
	require.Equal(t, 5000, gen.Files)
	_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "snap"))
	require.NoError(t, err)
	reg, err := cl.RegisterRepository(ctx, client.NewRegisterRepositoryOption("backup", "backups").
		WithEndpoint(c.S3.Endpoint()).WithPathStyle().WithPrefix("dr"))
	require.NoError(t, err)
	require.True(t, reg.Repository.CopyToRepository, "one server holds both buckets: server-side copies")

	c.S3.ResetCopyCounts()
	resp, err := cl.ExportSnapshot(ctx, client.NewExportSnapshotOption("docs", "snap", "backup"))
	require.NoError(t, err)
	kill := func(victim string) {
		t.Logf("kill -9 %s", victim)
		require.NoError(t, c.Kill(victim))
		time.Sleep(3 * time.Second)
		require.NoError(t, c.Restart(victim))
	}
	leaderKilled, followerKilled := false, false
	var first string
	var job *pb.RestoreJob
	for {
		j, err := cl.GetRestoreState(ctx, resp.JobId)
		if err == nil {
			job = j
			if client.JobEnded(j.State) {
				break
			}
			switch {
			case !leaderKilled && j.FilesDone*5 >= j.FilesTotal && j.State == pb.RestoreState_RESTORE_STATE_COPYING:
				leader, err := c.Leader(ctx)
				require.NoError(t, err)
				kill(leader)
				first, leaderKilled = leader, true
			case leaderKilled && !followerKilled && j.FilesDone*5 >= j.FilesTotal*3:
				leader, err := c.Leader(ctx)
				require.NoError(t, err)
				// A follower that has copied all along: neither the leader nor the node
				// killed first.
				var victim string
				for _, id := range c.IDs() {
					if id != leader && id != first {
						victim = id
						break
					}
				}
				require.NotEmpty(t, victim)
				kill(victim)
				followerKilled = true
			}
		}
		require.NoError(t, ctx.Err(), "the export did not finish")
		time.Sleep(50 * time.Millisecond)
	}
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	require.True(t, leaderKilled && followerKilled, "both kills happened before the export ended")

	copies := 0
	twice := 0
	for path, n := range c.S3.CopyCounts() {
		if !strings.Contains(path, "/backups/dr/data/") {
			continue
		}
		copies++
		require.LessOrEqual(t, n, 2, "%s copied %d times", path, n)
		if n == 2 {
			twice++
		}
	}
	require.Equal(t, 5000, copies, "every file copied")
	t.Logf("export with the leader and an executor killed: %d files, %d copied twice", copies, twice)

	list, err := cl.ListRepositorySnapshots(ctx, client.NewListRepositorySnapshotsOption("backup"))
	require.NoError(t, err)
	require.Len(t, list.Snapshots, 1)
	require.EqualValues(t, 5000, list.Snapshots[0].Files)
	verify, err := cl.VerifyRepository(ctx, "backup", true, "")
	require.NoError(t, err)
	require.True(t, verify.Ok, "%v", verify.Problems)
	require.EqualValues(t, 5000, verify.Objects)
}
