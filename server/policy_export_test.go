package server_test

import (
	"context"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/versitygw"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// A policy exporting to a repository: every snapshot it takes is exported once, the
// exported copies beyond its export retention leave the repository's index and their
// objects are collected, and what stays verifies (the GC deleted nothing a retained
// copy needs). Locally, its retention keeps a snapshot until its export has started.
func TestPolicyExportsAndExpiresInRepository(t *testing.T) {
	ctx := context.Background()
	gw := versitygw.Start(t)
	clusterCfg := gw.Config()
	clusterStore, err := objstore.NewS3(ctx, clusterCfg)
	require.NoError(t, err)
	defer clusterStore.Close()
	repoCfg, _ := bucketOn(t, clusterCfg, "backups")
	c := repoCluster(t, clusterCfg, nil)
	cl := newClient(t, c)
	restoreSourceInStore(t, clusterStore, cl, 2, pb.KeyLayout_KEY_LAYOUT_SNAPKEEP)
	_, err = cl.RegisterRepository(ctx, client.NewRegisterRepositoryOption("backup", repoCfg.Bucket).
		WithEndpoint(repoCfg.Endpoint).WithPathStyle().WithCredentials("offsite"))
	require.NoError(t, err)

	opt := client.NewPolicyOption("offsite", "p-{20060102-150405}").WithCollections("docs").WithInterval(time.Second).
		WithRetention(0, 1, 2).WithRetentionInterval(time.Second).
		WithExport("backup").WithExportRetention(0, 1, 2, time.Second)
	_, err = cl.CreatePolicy(ctx, opt)
	require.NoError(t, err)
	var p *pb.Policy
	require.Eventually(t, func() bool {
		p, err = cl.DescribePolicy(ctx, "offsite")
		return err == nil && p.Status.ExportsStarted >= 4 && p.Status.ExportsExpired >= 1
	}, 90*time.Second, 200*time.Millisecond, "exports started and expired")
	_, err = cl.UpdatePolicy(ctx, client.PolicyOptionFrom(p).WithEnabled(false), 0)
	require.NoError(t, err)

	// Once every export has ended and the export retention ran again: exactly the
	// newest two copies of the policy, and every one verifies.
	require.Eventually(t, func() bool {
		jobs, err := cl.ListRestoreJobs(ctx, client.NewListRestoreJobsOption().WithKinds(pb.JobKind_JOB_KIND_EXPORT))
		if err != nil {
			return false
		}
		for _, j := range jobs.Jobs {
			if j.State != pb.RestoreState_RESTORE_STATE_COMPLETED {
				if j.State == pb.RestoreState_RESTORE_STATE_FAILED || j.State == pb.RestoreState_RESTORE_STATE_CANCELLED {
					t.Fatalf("export job %d %s: %s", j.Id, j.State, j.Error)
				}
				return false
			}
		}
		list, err := cl.ListRepositorySnapshots(ctx, client.NewListRepositorySnapshotsOption("backup"))
		if err != nil {
			return false
		}
		ours := 0
		for _, s := range list.Snapshots {
			if s.Labels[fsm.PolicyLabel] == "offsite" {
				ours++
			}
		}
		return ours == 2
	}, 60*time.Second, 250*time.Millisecond, "the export retention keeps the newest two copies")
	verify, err := cl.VerifyRepository(ctx, "backup", true, "")
	require.NoError(t, err)
	require.True(t, verify.Ok, "%v", verify.Problems)
	require.EqualValues(t, 2, verify.Snapshots)

	// Every snapshot the policy took and committed was exported by it, once.
	snaps, err := cl.ListSnapshots(ctx, client.NewListSnapshotsOption().WithCollection("docs").WithLabel(fsm.PolicyLabel, "offsite"))
	require.NoError(t, err)
	for _, s := range snaps.Snapshots {
		if s.State == pb.SnapshotState_SNAPSHOT_STATE_COMMITTED {
			require.NotZero(t, s.PolicyExportJobId, "snapshot %s kept by the retention until exported", s.Name)
		}
	}
}
