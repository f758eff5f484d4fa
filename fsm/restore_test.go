package fsm

import (
	"bytes"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// restoreFixture: collection docs with partitions p1, p2, an index, three flushed
// segments (p1: 2 with 3 files, one of them with a 1-file index build; p2: 1 with 2
// files) and a committed snapshot "s" of it.
func restoreFixture(t *testing.T) (*harness, *fsmpb.Snapshot) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs", Partitions: []string{"p1", "p2"}, Schema: []byte("schema"), Properties: map[string]string{"k": "v"}}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "docs", Name: "vec", FieldId: 101, Params: map[string]string{"type": "HNSW"}}, nil)
	flush := func(partition string, n int) *fsmpb.Segment {
		var resp fsmpb.SegmentResponse
		h.ok(&fsmpb.AllocateSegment{Collection: "docs", Partition: partition, Lease: 60 * second}, &resp)
		h.ok(&fsmpb.FlushSegment{SegmentId: resp.Segment.Id, RowCount: 10, Files: files(resp.Segment, n)}, &resp)
		return resp.Segment
	}
	a := flush("p1", 3)
	flush("p1", 3)
	flush("p2", 2)
	var br fsmpb.IndexBuildResponse
	h.ok(&fsmpb.AllocateIndexBuild{SegmentId: a.Id, Index: "vec", Lease: 60 * second}, &br)
	h.ok(&fsmpb.AddIndexBuild{SegmentId: a.Id, BuildId: br.BuildId, Files: []*fsmpb.File{{Key: BuildPrefix(a.CollectionId, a.Id, br.BuildId) + "HNSW", Kind: fsmpb.FileKind_FILE_KIND_INDEX, Size: 7}}}, nil)
	snap := h.snapshot("s")
	h.ok(commitFor(snap), nil)
	return h, snap
}

func restoreCmd(target string, partitions ...string) *fsmpb.RestoreBegin {
	return &fsmpb.RestoreBegin{Collection: "docs", Snapshot: "s", TargetCollection: target, Partitions: partitions, Verify: true, MaxAttempts: 3}
}

func (h *harness) restoreJob(id uint64) *fsmpb.RestoreJob {
	h.t.Helper()
	j, err := h.f.View().RestoreJob(id)
	require.NoError(h.t, err)
	return j
}

func (h *harness) grant(job uint64, n uint32) *fsmpb.RestoreLease {
	h.t.Helper()
	var resp fsmpb.RestoreGrantResponse
	h.ok(&fsmpb.RestoreGrant{JobId: job, Node: "n1", MaxTasks: n, Lease: 30 * second}, &resp)
	return resp.Lease
}

func doneAll(l *fsmpb.RestoreLease) *fsmpb.RestoreReport {
	r := &fsmpb.RestoreReport{JobId: l.JobId, LeaseId: l.Id, Attempts: uint64(len(l.Tasks))}
	for _, t := range l.Tasks {
		r.Done = append(r.Done, &fsmpb.TaskDone{Task: t, Bytes: 100})
	}
	return r
}

func TestRestoreCompletes(t *testing.T) {
	h, snap := restoreFixture(t)
	var resp fsmpb.RestoreJobResponse
	h.ok(restoreCmd("copy"), &resp)
	job := resp.Job
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_PENDING, job.State)
	require.EqualValues(t, 3+3+2+1, job.FilesTotal)
	target := h.collection("copy")
	require.Equal(t, fsmpb.CollectionState_COLLECTION_STATE_RESTORING, target.State)
	require.Equal(t, []byte("schema"), target.Schema)
	require.Equal(t, map[string]string{"k": "v"}, target.Properties)
	require.Equal(t, []string{"_default", "p1", "p2"}, partitionNames(target))
	require.Len(t, target.Indexes, 1)
	require.NotEqual(t, snap.Indexes[0].Id, target.Indexes[0].Id, "new index ids")

	// The snapshot cannot be dropped while the job reads it.
	msg := h.fails(codePrecondition, &fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id})
	require.Contains(t, msg, "is being restored by job")
	// Nor can the target be dropped as a collection, nor its name taken.
	h.fails(codePrecondition, &fsmpb.DropCollection{Name: "copy"})
	// Nor changed underneath the job in any other way.
	plan, err := h.f.View().RestorePlan(job.Id)
	require.NoError(t, err)
	targetSeg := plan.Segments[0].TargetId
	for _, cmd := range []proto.Message{
		&fsmpb.AlterCollection{Name: "copy", SetProperties: map[string]string{"k": "w"}},
		&fsmpb.CreatePartition{Collection: "copy", Name: "p3"},
		&fsmpb.DropPartition{Collection: "copy", Name: "p1"},
		&fsmpb.CreateIndex{Collection: "copy", Name: "vec2", FieldId: 102},
		&fsmpb.DropIndex{Collection: "copy", Name: "vec"},
		&fsmpb.DropSegments{SegmentIds: []uint64{targetSeg}},
		&fsmpb.FlushSegment{SegmentId: targetSeg, RowCount: 1},
		&fsmpb.AllocateIndexBuild{SegmentId: targetSeg, Index: "vec", Lease: 60 * second},
	} {
		require.Contains(t, h.fails(codePrecondition, cmd), "is being restored", "%T", cmd)
	}

	// The same request returns the same job; a different one for the name is refused.
	var again fsmpb.RestoreJobResponse
	h.ok(restoreCmd("copy"), &again)
	require.True(t, again.Existing)
	require.Equal(t, job.Id, again.Job.Id)
	require.Contains(t, h.fails(codeExists, restoreCmd("copy", "p1")), "is being restored by job")

	h.fails(codePrecondition, &fsmpb.RestoreGrant{JobId: job.Id, Node: "n1", MaxTasks: 5, Lease: 30 * second})
	h.ok(&fsmpb.RestoreStart{JobId: job.Id}, nil)
	l1 := h.grant(job.Id, 5)
	l2 := h.grant(job.Id, 5)
	require.Len(t, l1.Tasks, 5)
	require.Len(t, l2.Tasks, 4)
	require.Nil(t, h.grant(job.Id, 5), "the pool is empty")
	h.ok(doneAll(l1), nil)
	require.EqualValues(t, 5, h.restoreJob(job.Id).FilesDone)
	h.ok(doneAll(l2), nil)

	done := h.restoreJob(job.Id)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_COMPLETED, done.State)
	require.EqualValues(t, 9, done.FilesDone)
	target = h.collection("copy")
	require.Equal(t, fsmpb.CollectionState_COLLECTION_STATE_ACTIVE, target.State)
	plan, err = h.f.View().RestorePlan(job.Id)
	require.NoError(t, err)
	builds := 0
	for _, ps := range plan.Segments {
		src, dst := h.segment(ps.SourceId), h.segment(ps.TargetId)
		require.Equal(t, fsmpb.SegmentState_SEGMENT_STATE_FLUSHED, dst.State)
		require.Equal(t, src.Files, dst.Files, "the same relative keys under the new prefix")
		require.Zero(t, dst.RestoreJobId)
		require.NotEqual(t, src.Id, dst.Id)
		for _, b := range dst.IndexBuilds {
			builds++
			require.Equal(t, fsmpb.BuildState_BUILD_STATE_READY, b.State)
			require.NotEqual(t, snap.BuildIds[0], b.BuildId, "new build ids")
			require.Equal(t, target.Indexes[0].Id, b.IndexId)
		}
	}
	require.Equal(t, 1, builds)
	// Finished: the snapshot is free again, and the job can be removed.
	h.ok(&fsmpb.RestoreRemove{JobId: job.Id}, nil)
	h.ok(&fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id}, nil)
}

// A restore opened while its sources are still listed copies as usual but completes
// only when the listing found them all; a failed listing fails it like any failure.
func TestRestoreOpenedBeforeItsSourcesAreChecked(t *testing.T) {
	h, _ := restoreFixture(t)
	var resp fsmpb.RestoreJobResponse
	h.ok(restoreCmd("copy"), &resp)
	job := resp.Job.Id
	h.fails(codePrecondition, &fsmpb.RestoreSourcesChecked{JobId: job})
	h.ok(&fsmpb.RestoreStart{JobId: job, SourcesUnchecked: true}, nil)
	require.True(t, h.restoreJob(job).SourcesUnchecked)
	h.ok(doneAll(h.grant(job, 100)), nil)
	j := h.restoreJob(job)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_COPYING, j.State, "every file copied, the sources not yet checked")
	require.Equal(t, j.FilesTotal, j.FilesDone)
	require.Equal(t, fsmpb.CollectionState_COLLECTION_STATE_RESTORING, h.collection("copy").State)

	var checked fsmpb.RestoreJobResponse
	h.ok(&fsmpb.RestoreSourcesChecked{JobId: job}, &checked)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_COMPLETED, checked.Job.State)
	require.False(t, checked.Job.SourcesUnchecked)
	require.Equal(t, fsmpb.CollectionState_COLLECTION_STATE_ACTIVE, h.collection("copy").State)
	h.fails(codePrecondition, &fsmpb.RestoreSourcesChecked{JobId: job})

	// Checked first, copied after: it completes with its last report.
	h.ok(restoreCmd("copy2"), &resp)
	job = resp.Job.Id
	h.ok(&fsmpb.RestoreStart{JobId: job, SourcesUnchecked: true}, nil)
	h.ok(&fsmpb.RestoreSourcesChecked{JobId: job}, nil)
	h.ok(doneAll(h.grant(job, 100)), nil)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_COMPLETED, h.restoreJob(job).State)

	// The listing finds a source missing while copies run: the job fails, its target goes.
	h.ok(restoreCmd("copy3"), &resp)
	job = resp.Job.Id
	h.ok(&fsmpb.RestoreStart{JobId: job, SourcesUnchecked: true}, nil)
	h.ok(doneAll(h.grant(job, 3)), nil)
	h.ok(&fsmpb.RestoreFail{JobId: job, Error: "1 of 9 source objects are missing", FailingKeys: []string{"k"}}, nil)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_FAILED, h.restoreJob(job).State)
	_, _, err := h.f.View().Collection("default", "copy3")
	require.ErrorIs(t, err, ErrNotFound, "the target is dropped")
	h.fails(codePrecondition, &fsmpb.RestoreSourcesChecked{JobId: job})
}

func TestRestorePartitionSubset(t *testing.T) {
	h, _ := restoreFixture(t)
	var resp fsmpb.RestoreJobResponse
	h.ok(restoreCmd("only2", "p2"), &resp)
	require.EqualValues(t, 2, resp.Job.FilesTotal)
	require.Equal(t, []string{"_default", "p2"}, partitionNames(h.collection("only2")))
	require.Contains(t, h.fails(codeNotFound, restoreCmd("x", "nope")), `partition "nope" is not in snapshot "s"`)
}

func TestRestoreFailuresAndRetries(t *testing.T) {
	h, _ := restoreFixture(t)
	var resp fsmpb.RestoreJobResponse
	h.ok(restoreCmd("copy"), &resp)
	job := resp.Job.Id
	h.ok(&fsmpb.RestoreStart{JobId: job}, nil)

	// A transient failure puts the task back with one attempt.
	l := h.grant(job, 1)
	h.ok(&fsmpb.RestoreReport{JobId: job, LeaseId: l.Id, Failed: []*fsmpb.TaskFailed{{Task: l.Tasks[0], Key: "k0", Error: "503 SlowDown"}}}, nil)
	l = h.grant(job, 1)
	require.Equal(t, []byte{1}, l.Attempts)

	// The lease lapses: the task returns with its attempts, and a late report of
	// another copy of it still counts once.
	h.now += 60 * second
	var exp fsmpb.ExpireRestoreLeasesResponse
	h.ok(&fsmpb.ExpireRestoreLeases{}, &exp)
	require.Equal(t, []uint64{l.Id}, exp.LeaseIds)
	l2 := h.grant(job, 1)
	require.Equal(t, l.Tasks, l2.Tasks)
	require.Equal(t, []byte{1}, l2.Attempts)
	h.ok(doneAll(l), nil) // the late report
	h.ok(doneAll(l2), nil)
	require.EqualValues(t, 1, h.restoreJob(job).FilesDone)

	// Out of attempts: the job fails, the target is dropped, the key named.
	for i := 0; i < 3; i++ {
		l = h.grant(job, 1)
		h.ok(&fsmpb.RestoreReport{JobId: job, LeaseId: l.Id, Failed: []*fsmpb.TaskFailed{{Task: l.Tasks[0], Key: "k1", Error: "timeout"}}}, nil)
	}
	failed := h.restoreJob(job)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_FAILED, failed.State)
	require.Contains(t, failed.Error, "out of attempts (3): timeout")
	require.Equal(t, []string{"k1"}, failed.FailingKeys)
	v := h.f.View()
	coll, err := v.CollectionByID(failed.TargetCollectionId)
	require.NoError(t, err)
	require.Equal(t, fsmpb.CollectionState_COLLECTION_STATE_DROPPED, coll.State)
	v.EachSegment(coll.Id, 0, func(s *fsmpb.Segment) bool {
		require.Equal(t, fsmpb.DropReason_DROP_REASON_RESTORE_ABORTED, s.DropReason)
		return true
	})
	h.fails(codePrecondition, &fsmpb.RestoreCancel{JobId: job})
	// The name is free again.
	h.ok(restoreCmd("copy"), nil)
}

func TestRestorePermanentFailureAndCancel(t *testing.T) {
	h, _ := restoreFixture(t)
	var resp fsmpb.RestoreJobResponse
	h.ok(restoreCmd("a"), &resp)
	h.ok(&fsmpb.RestoreStart{JobId: resp.Job.Id}, nil)
	l := h.grant(resp.Job.Id, 3)
	h.ok(&fsmpb.RestoreReport{JobId: resp.Job.Id, LeaseId: l.Id, Failed: []*fsmpb.TaskFailed{{Task: l.Tasks[1], Key: "src/missing", Error: "source object is missing", Permanent: true}}}, nil)
	j := h.restoreJob(resp.Job.Id)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_FAILED, j.State)
	require.Contains(t, j.Error, "copying src/missing failed: source object is missing")

	h.ok(restoreCmd("b"), &resp)
	h.ok(&fsmpb.RestoreCancel{JobId: resp.Job.Id, Reason: "changed my mind"}, nil)
	j = h.restoreJob(resp.Job.Id)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_CANCELLED, j.State)
	require.Equal(t, "changed my mind", j.Error)
	_, _, err := h.f.View().Collection("", "b")
	require.ErrorIs(t, err, ErrNotFound)
}

func TestRestoreStateSurvivesRaftSnapshot(t *testing.T) {
	h, _ := restoreFixture(t)
	var resp fsmpb.RestoreJobResponse
	h.ok(restoreCmd("copy"), &resp)
	job := resp.Job.Id
	h.ok(&fsmpb.RestoreStart{JobId: job}, nil)
	l := h.grant(job, 2)
	h.ok(&fsmpb.RestoreReport{JobId: job, LeaseId: l.Id, Failed: []*fsmpb.TaskFailed{{Task: l.Tasks[0], Error: "x"}}}, nil)
	held := h.grant(job, 3)
	require.Equal(t, l.Tasks[0], held.Tasks[0], "the failed task is back in the pool first")
	require.Equal(t, byte(1), held.Attempts[0], "with its attempt")

	var buf bytes.Buffer
	snap, err := h.f.Snapshot()
	require.NoError(t, err)
	require.NoError(t, snap.Persist(&memorySink{Buffer: &buf}))
	g := New(nil)
	require.NoError(t, g.Restore(nopCloser{bytes.NewReader(buf.Bytes())}))
	require.Equal(t, h.f.Hash(), g.Hash())

	// The restored FSM goes on exactly like the original.
	h2 := &harness{t: t, f: g, index: h.index, now: h.now}
	for _, x := range []*harness{h, h2} {
		x.ok(doneAll(held), nil)
		x.ok(&fsmpb.RestoreReport{JobId: job, LeaseId: l.Id, Done: []*fsmpb.TaskDone{{Task: l.Tasks[1], Bytes: 1}}}, nil)
		l := x.grant(job, 10)
		require.False(t, slices.Contains(l.Tasks, held.Tasks[0]))
		x.ok(doneAll(l), nil)
		require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_COMPLETED, x.restoreJob(job).State)
	}
	require.Equal(t, h.f.Hash(), g.Hash())
}
