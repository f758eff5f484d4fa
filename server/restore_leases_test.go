package server_test

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// slowCopyStore makes every copy take delay; a copy whose context ends first does not
// land. It records when each copy landed.
type slowCopyStore struct {
	objstore.Store
	delay time.Duration

	mu     sync.Mutex
	landed map[string]time.Time
}

func (s *slowCopyStore) Copy(ctx context.Context, src, dst string) (objstore.CopyInfo, error) {
	select {
	case <-time.After(s.delay):
	case <-ctx.Done():
		return objstore.CopyInfo{}, ctx.Err()
	}
	info, err := s.Store.Copy(ctx, src, dst)
	if err == nil {
		s.mu.Lock()
		s.landed[dst] = time.Now()
		s.mu.Unlock()
	}
	return info, err
}

func (s *slowCopyStore) landings() map[string]time.Time {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]time.Time, len(s.landed))
	for k, v := range s.landed {
		out[k] = v
	}
	return out
}

// Issue 13 item 3: after a cancel the executors stop copying at once (in-flight copies
// aborted, queued ones skipped) instead of finishing their leased batches, and the
// target stays protected from GC until the job's leases are reported, so a collection
// run right after the cancel cannot leave copies landing later behind as orphans: the
// target is collected whole.
func TestRestoreCancelStopsCopiesAndTargetIsCollectedWhole(t *testing.T) {
	var slow *slowCopyStore
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		if slow == nil {
			slow = &slowCopyStore{Store: cfg.Store, delay: 300 * time.Millisecond, landed: map[string]time.Time{}}
		}
		cfg.Store = slow
		cfg.RestoreBatch = 32
		cfg.RestoreLease = time.Minute // the lease's end is not what stops the copies
		cfg.GCGrace = time.Millisecond
	}})
	cl := newClient(t, c)
	ctx := context.Background()
	restoreSource(t, c, cl, 40) // 321 files: several seconds of copying
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		j, err := cl.GetRestoreState(ctx, resp.JobId)
		return err == nil && j.FilesDone > 0
	}, 30*time.Second, 10*time.Millisecond)

	job, err := cl.CancelRestore(ctx, client.NewCancelRestoreOption(resp.JobId))
	require.NoError(t, err)
	cancelled := time.Now()
	require.Equal(t, pb.RestoreState_RESTORE_STATE_CANCELLED, job.State)
	require.Less(t, job.FilesDone, job.FilesTotal)
	// GC runs at once, while copies may still be in flight.
	_, err = cl.GCRun(ctx, client.NewGCRunOption().WithoutOrphanScan())
	require.NoError(t, err)

	// Every lease of the job is reported (the executors stopped) ...
	require.Eventually(t, func() bool {
		j, err := cl.GetRestoreState(ctx, resp.JobId)
		return err == nil && j.LeasesOutstanding == 0
	}, 30*time.Second, 20*time.Millisecond)
	time.Sleep(time.Second) // a copy that was still going would land now
	// ... and no copy landed later than a second after the cancel.
	landed := slow.landings()
	late := 0
	for _, at := range landed {
		if at.After(cancelled.Add(time.Second)) {
			late++
		}
	}
	require.Zero(t, late, "%d of %d copies landed more than a second after the cancel", late, len(landed))

	// The target is collected whole: no copy is left behind.
	require.Eventually(t, func() bool {
		if _, err := cl.GCRun(ctx, client.NewGCRunOption().WithoutOrphanScan()); err != nil {
			return false
		}
		for key := range landed {
			if _, err := c.Bucket.Store.Head(ctx, key); !errors.Is(err, objstore.ErrNotFound) {
				return false
			}
		}
		return true
	}, 30*time.Second, 200*time.Millisecond, "copies of the cancelled restore are left in the bucket")
	t.Logf("%d copies landed before the cancel took effect", len(landed))
}

// Issue 13 item 2: a node that restarts mid-restore gets its earlier process's leases
// returned at its first lease request (its new incarnation differs), instead of the job
// waiting for them to expire: here the lease is two minutes and the job must finish
// long before.
func TestRestoreRestartedNodeLeasesReturnAtOnce(t *testing.T) {
	opts := slowReports(100 * time.Millisecond)
	configure := opts.Configure
	opts.Configure = func(i int, cfg *server.Config) {
		configure(i, cfg)
		cfg.RestoreLease = 2 * time.Minute
	}
	c := servertest.Start(t, 3, opts)
	cl := newClient(t, c)
	ctx := context.Background()
	restoreSource(t, c, cl, 10)
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy"))
	require.NoError(t, err)
	victim := c.Follower()
	victimID := c.Nodes[victim].ID()
	require.Eventually(t, func() bool {
		for _, l := range c.Nodes[c.Leader()].FSM().View().RestoreLeases() {
			if l.Node == victimID && len(l.Tasks) > 0 {
				return true
			}
		}
		return false
	}, 30*time.Second, 5*time.Millisecond, "the follower holds a lease")
	c.Stop(victim) // its leases stay behind
	c.Restart(victim)
	restarted := time.Now()

	job := waitJob(t, cl, resp.JobId)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	require.Less(t, time.Since(restarted), time.Minute, "the job waited for the restarted node's leases to expire")
	requireSameContent(t, c, cl, "docs", "copy")
}
