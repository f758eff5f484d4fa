package fsm

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

func (h *harness) startedRestore(target string) uint64 {
	h.t.Helper()
	var resp fsmpb.RestoreJobResponse
	h.ok(restoreCmd(target), &resp)
	h.ok(&fsmpb.RestoreStart{JobId: resp.Job.Id}, nil)
	return resp.Job.Id
}

func (h *harness) grantTo(job uint64, node, incarnation string, n uint32) *fsmpb.RestoreLease {
	h.t.Helper()
	var resp fsmpb.RestoreGrantResponse
	h.ok(&fsmpb.RestoreGrant{JobId: job, Node: node, Incarnation: incarnation, MaxTasks: n, Lease: 300 * second}, &resp)
	return resp.Lease
}

// Issue 13 item 2: a restarted node's earlier leases return to the pool as soon as its
// new incarnation asks, not when the (5-minute) lease ends; a node gossip has seen gone
// loses its leases too; the other nodes' leases are untouched.
func TestRestoreLeasesOfRestartedOrGoneNodeReturnEarly(t *testing.T) {
	h, _ := restoreFixture(t)
	job := h.startedRestore("copy")
	old := h.grantTo(job, "n1", "inc-1", 3)
	require.Equal(t, "inc-1", old.Incarnation)
	other := h.grantTo(job, "n2", "inc-9", 3)
	require.Equal(t, 3, h.f.View().PooledTasks(job))

	h.now += 5 * second // restarted 5 s later, long before the lease's deadline
	var exp fsmpb.ExpireRestoreLeasesResponse
	h.ok(&fsmpb.ExpireRestoreLeases{Node: "n1", Incarnation: "inc-2"}, &exp)
	require.Equal(t, []uint64{old.Id}, exp.LeaseIds)
	require.Equal(t, 6, h.f.View().PooledTasks(job))
	again := h.grantTo(job, "n1", "inc-2", 3)
	require.Equal(t, old.Tasks, again.Tasks, "the restarted node's tasks are granted again at once")

	// The current incarnation's lease stays.
	h.ok(&fsmpb.ExpireRestoreLeases{Node: "n1", Incarnation: "inc-2"}, &exp)
	require.Empty(t, exp.LeaseIds)

	// Gone by gossip: every lease of the node returns.
	h.ok(&fsmpb.ExpireRestoreLeases{GoneNodes: []string{"n2"}}, &exp)
	require.Equal(t, []uint64{other.Id}, exp.LeaseIds)
	require.Len(t, h.f.View().RestoreLeases(), 1)

	for _, bad := range []*fsmpb.ExpireRestoreLeases{
		{Node: "n1"},
		{GoneNodes: []string{""}},
	} {
		h.fails(codeInvalid, bad)
	}
}

// Issue 13 item 3: after a cancel, the target's dropped segments are not reclaimed
// while a lease of the job is outstanding (an executor may still land a copy); a
// report ends the lease and GC may then take the target whole.
func TestRestoreCancelProtectsTargetUntilLeasesEnd(t *testing.T) {
	for _, end := range []string{"report", "expiry"} {
		t.Run(end, func(t *testing.T) {
			h, _ := restoreFixture(t)
			job := h.startedRestore("copy")
			l := h.grantTo(job, "n1", "inc-1", 4)
			h.ok(&fsmpb.RestoreCancel{JobId: job}, nil)
			j := h.restoreJob(job)
			require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_CANCELLED, j.State)

			const grace = 10 * second
			h.now += 60 * second // past the segments' grace
			var targets []*fsmpb.Segment
			h.f.View().EachSegment(j.TargetCollectionId, 0, func(s *fsmpb.Segment) bool {
				targets = append(targets, s)
				return true
			})
			require.NotEmpty(t, targets)
			for _, s := range targets {
				ok, why := h.f.View().SegmentReclaim(s, h.now, grace)
				require.False(t, ok)
				require.Equal(t, ReasonRestoreWriting, why)
			}
			require.Empty(t, h.f.View().PooledTasks(job))

			if end == "report" {
				// The executor stopped: its report (nothing copied) ends the lease.
				h.ok(&fsmpb.RestoreReport{JobId: job, LeaseId: l.Id}, nil)
			} else {
				h.now += 300 * second
				var exp fsmpb.ExpireRestoreLeasesResponse
				h.ok(&fsmpb.ExpireRestoreLeases{}, &exp)
				require.Equal(t, []uint64{l.Id}, exp.LeaseIds)
				require.Zero(t, h.f.View().PooledTasks(job), "a finished job's tasks do not come back")
			}
			require.Empty(t, h.f.View().RestoreLeases())
			for _, s := range targets {
				ok, why := h.f.View().SegmentReclaim(s, h.now, grace)
				require.True(t, ok, why)
			}
		})
	}
}

// A report is the whole outcome of its lease: the tasks it leaves out (not copied
// before the lease ended or the job stopped) return to the pool at once.
func TestRestoreReportReturnsUnreportedTasks(t *testing.T) {
	h, _ := restoreFixture(t)
	job := h.startedRestore("copy")
	l := h.grantTo(job, "n1", "inc-1", 4)
	h.ok(&fsmpb.RestoreReport{JobId: job, LeaseId: l.Id, Done: []*fsmpb.TaskDone{{Task: l.Tasks[0], Bytes: 1}}}, nil)
	require.Empty(t, h.f.View().RestoreLeases())
	require.Equal(t, 9-1, h.f.View().PooledTasks(job))
	require.EqualValues(t, 1, h.restoreJob(job).FilesDone)
}
