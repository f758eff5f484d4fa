package fsm

import (
	"bytes"
	"fmt"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// walkStats computes Stats the slow way, by walking every table.
func walkStats(t *testing.T, v *View) Stats {
	t.Helper()
	tb := v.r.t
	s := Stats{AppliedIndex: tb.meta.AppliedIndex, Databases: tb.databases.len(), Nodes: tb.nodes.len(),
		Requests: tb.requests.len(), GCReports: tb.gcReports.len()}
	tb.collections.each(func(c *fsmpb.Collection) bool {
		s.Collections[c.State]++
		return true
	})
	tb.segments.each(func(seg *fsmpb.Segment) bool {
		s.Segments[seg.State]++
		files, err := filelist.Decode(seg.Files)
		require.NoError(t, err)
		s.SegmentFiles[seg.State] += int64(len(files))
		for _, b := range seg.IndexBuilds {
			files, err := filelist.Decode(b.Files)
			require.NoError(t, err)
			s.SegmentFiles[seg.State] += int64(len(files))
		}
		return true
	})
	tb.snapshots.each(func(sn *fsmpb.Snapshot) bool {
		s.Snapshots[sn.State]++
		if sn.State == fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED && sn.Verification != nil && VerifyBroken(sn.Verification.Outcome) {
			s.SnapshotsBroken++
		}
		return true
	})
	tb.restoreJobs.each(func(j *fsmpb.RestoreJob) bool {
		s.RestoreJobs[j.State]++
		return true
	})
	return s
}

// The running totals equal a walk of the tables after a random log (rejected commands
// included), at every step of it, and after a raft snapshot restore.
func TestStatsMatchAWalkOfTheState(t *testing.T) {
	// The logs must reach the states counted (in at least one of the seeds: which
	// states a random log ends in depends on the seed).
	var reached Stats
	for seed := uint64(11); seed < 14; seed++ {
		t.Run(fmt.Sprint("seed", seed), func(t *testing.T) {
			final := testStatsMatchAWalk(t, seed)
			reached.Segments[fsmpb.SegmentState_SEGMENT_STATE_FLUSHED] += final.Segments[fsmpb.SegmentState_SEGMENT_STATE_FLUSHED]
			reached.SegmentFiles[fsmpb.SegmentState_SEGMENT_STATE_FLUSHED] += final.SegmentFiles[fsmpb.SegmentState_SEGMENT_STATE_FLUSHED]
			reached.Collections[fsmpb.CollectionState_COLLECTION_STATE_ACTIVE] += final.Collections[fsmpb.CollectionState_COLLECTION_STATE_ACTIVE]
			reached.Snapshots[fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED] += final.Snapshots[fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED]
			reached.RestoreJobs[fsmpb.RestoreState_RESTORE_STATE_CANCELLED] += final.RestoreJobs[fsmpb.RestoreState_RESTORE_STATE_CANCELLED]
			reached.SnapshotsBroken += final.SnapshotsBroken
		})
	}
	require.Positive(t, reached.Segments[fsmpb.SegmentState_SEGMENT_STATE_FLUSHED])
	require.Positive(t, reached.SegmentFiles[fsmpb.SegmentState_SEGMENT_STATE_FLUSHED])
	require.Positive(t, reached.Collections[fsmpb.CollectionState_COLLECTION_STATE_ACTIVE])
	require.Positive(t, reached.Snapshots[fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED])
	require.Positive(t, reached.RestoreJobs[fsmpb.RestoreState_RESTORE_STATE_CANCELLED])
	require.Positive(t, reached.SnapshotsBroken)
}

func testStatsMatchAWalk(t *testing.T, seed uint64) Stats {
	entries, ref := randomLog(t, seed, 3000)
	final := ref.f.View().Stats()
	require.Equal(t, walkStats(t, ref.f.View()), final)

	f := New(nil)
	for i, data := range entries {
		applyAll(f, [][]byte{data}, uint64(i)+1)
		if i%50 == 0 || i == len(entries)-1 {
			v := f.View()
			require.Equal(t, walkStats(t, v), v.Stats(), "after entry %d", i+1)
		}
	}
	require.Equal(t, final, f.View().Stats())

	var buf bytes.Buffer
	snap, err := f.Snapshot()
	require.NoError(t, err)
	require.NoError(t, snap.Persist(&memorySink{Buffer: &buf}))
	restored := New(nil)
	require.NoError(t, restored.Restore(nopCloser{bytes.NewReader(buf.Bytes())}))
	require.Equal(t, final, restored.View().Stats())
	return final
}
