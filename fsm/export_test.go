package fsm

import (
	"bytes"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

const testCluster = "cluster-a"

func testRepository(name string) *fsmpb.Repository {
	return &fsmpb.Repository{Name: name, Endpoint: "http://127.0.0.1:9000", Bucket: "backups", Prefix: "snapkeep/" + name,
		PathStyle: true, RepositoryId: "repo-" + name, WriterClusterId: testCluster}
}

// repoFixture is restoreFixture with the cluster identified and repository "r"
// registered.
func repoFixture(t *testing.T) (*harness, *fsmpb.Snapshot) {
	h, snap := restoreFixture(t)
	var id fsmpb.ClusterIdentifyResponse
	h.ok(&fsmpb.ClusterIdentify{ClusterId: testCluster}, &id)
	require.Equal(t, testCluster, id.ClusterId)
	h.ok(&fsmpb.RepositoryRegister{Repository: testRepository("r")}, nil)
	return h, snap
}

func TestClusterIdentifyOnce(t *testing.T) {
	h := newHarness(t)
	var resp fsmpb.ClusterIdentifyResponse
	h.ok(&fsmpb.ClusterIdentify{ClusterId: "first"}, &resp)
	require.Equal(t, "first", resp.ClusterId)
	h.ok(&fsmpb.ClusterIdentify{ClusterId: "second"}, &resp)
	require.Equal(t, "first", resp.ClusterId, "an id is given once")
	require.Equal(t, "first", h.f.View().ClusterID())
	h.fails(codeInvalid, &fsmpb.ClusterIdentify{ClusterId: "has space"})
}

func TestRepositoryRegister(t *testing.T) {
	h := newHarness(t)
	h.fails(codePrecondition, &fsmpb.RepositoryRegister{Repository: testRepository("r")}) // no cluster id yet
	h.ok(&fsmpb.ClusterIdentify{ClusterId: testCluster}, nil)

	var resp fsmpb.RepositoryResponse
	h.ok(&fsmpb.RepositoryRegister{Repository: testRepository("r")}, &resp)
	require.False(t, resp.Existed)
	require.Equal(t, h.now, resp.Repository.RegisteredAt)
	h.ok(&fsmpb.RepositoryRegister{Repository: testRepository("r")}, &resp)
	require.True(t, resp.Existed, "the same registration again is a no-op")

	other := testRepository("r")
	other.Bucket = "elsewhere"
	require.Contains(t, h.fails(codeExists, &fsmpb.RepositoryRegister{Repository: other}), "other settings")
	clash := testRepository("s")
	clash.Prefix = "snapkeep/r/"
	require.Contains(t, h.fails(codeExists, &fsmpb.RepositoryRegister{Repository: clash}), `as repository "r"`)

	foreign := testRepository("f")
	foreign.WriterClusterId = "cluster-b"
	require.Contains(t, h.fails(codePrecondition, &fsmpb.RepositoryRegister{Repository: foreign}), "register it read-only")
	foreign.ReadOnly = true
	h.ok(&fsmpb.RepositoryRegister{Repository: foreign}, nil)

	for name, bad := range map[string]func(*fsmpb.Repository){
		"no bucket":         func(r *fsmpb.Repository) { r.Bucket = "" },
		"endpoint":          func(r *fsmpb.Repository) { r.Endpoint = "ftp://x" },
		"prefix dots":       func(r *fsmpb.Repository) { r.Prefix = "a/../b" },
		"secret in creds":   func(r *fsmpb.Repository) { r.Credentials = "AKIA/secret+key" },
		"no repository id":  func(r *fsmpb.Repository) { r.RepositoryId = "" },
		"name":              func(r *fsmpb.Repository) { r.Name = "1bad" },
		"control in region": func(r *fsmpb.Repository) { r.Region = "us\n" },
	} {
		r := testRepository("x")
		r.Bucket = "other-" + name[:2]
		bad(r)
		h.fails(codeInvalid, &fsmpb.RepositoryRegister{Repository: r})
	}
	require.Len(t, h.f.View().Repositories(), 2)
}

func TestExportLifecycle(t *testing.T) {
	h, snap := repoFixture(t)
	var resp fsmpb.RestoreJobResponse
	begin := &fsmpb.ExportBegin{Collection: "docs", Snapshot: "s", Repository: "r", RepositorySnapshot: "rs-1"}
	h.ok(begin, &resp)
	job := resp.Job
	require.Equal(t, fsmpb.JobKind_JOB_KIND_EXPORT, job.Kind)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_PENDING, job.State)
	require.EqualValues(t, 3+3+2+1, job.FilesTotal)
	require.Equal(t, testCluster, job.SourceClusterId)
	require.Zero(t, job.TargetCollectionId)

	again := proto.CloneOf(begin)
	again.RepositorySnapshot = "rs-2"
	h.ok(again, &resp)
	require.True(t, resp.Existing, "one export of a snapshot to a repository at a time")
	require.Equal(t, job.Id, resp.Job.Id)

	// The export pins its snapshot and its repository.
	require.Contains(t, h.fails(codePrecondition, &fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id}), "restore")
	require.Contains(t, h.fails(codePrecondition, &fsmpb.RepositoryUnregister{Name: "r"}), "export job")

	// A GC run of the repository begun after the listing refuses the skips.
	h.ok(&fsmpb.RepositoryGCBegin{Name: "r", Run: 7, Lease: 60 * second}, nil)
	require.Contains(t, h.fails(codePrecondition, &fsmpb.RestoreStart{JobId: job.Id, RepositoryGcEpoch: 0}), "garbage collection")
	h.ok(&fsmpb.RepositoryGCEnd{Name: "r", Run: 7}, nil)
	require.Contains(t, h.fails(codePrecondition, &fsmpb.RestoreStart{JobId: job.Id, RepositoryGcEpoch: 0}), "list it again")
	h.fails(codeInvalid, &fsmpb.RestoreStart{JobId: job.Id, RepositoryGcEpoch: 1, Skip: []*fsmpb.TaskSpan{{Start: 3, End: 2}}})
	h.fails(codeInvalid, &fsmpb.RestoreStart{JobId: job.Id, RepositoryGcEpoch: 1, Skip: []*fsmpb.TaskSpan{{Start: 0, End: 99}}})

	// The repository holds tasks 0–2 and 5: the rest are copied.
	h.ok(&fsmpb.RestoreStart{JobId: job.Id, RepositoryGcEpoch: 1, SkippedBytes: 400,
		Skip: []*fsmpb.TaskSpan{{Start: 0, End: 3}, {Start: 5, End: 6}}}, &resp)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_COPYING, resp.Job.State)
	require.EqualValues(t, 4, resp.Job.FilesSkipped)
	require.EqualValues(t, 4, resp.Job.FilesDone)
	require.EqualValues(t, 400, resp.Job.BytesSkipped)
	require.Equal(t, 5, h.f.View().PooledTasks(job.Id))

	lease := h.grant(job.Id, 100)
	require.Equal(t, []uint32{3, 4, 6, 7, 8}, lease.Tasks)
	report := doneAll(lease)
	report.Done[0].Verified = fsmpb.CopyVerification_COPY_VERIFICATION_STREAM
	h.ok(report, &resp)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_FINALIZING, resp.Job.State, "every file is in the repository: the leader records it")
	require.EqualValues(t, 1, resp.Job.VerifiedByStream)
	require.Contains(t, h.fails(codePrecondition, &fsmpb.RestoreCancel{JobId: job.Id}), "can no longer be cancelled")
	require.Contains(t, h.fails(codePrecondition, &fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id}), "restore", "still pinned while finalizing")

	h.fails(codeInvalid, &fsmpb.ExportComplete{JobId: job.Id})
	h.ok(&fsmpb.ExportComplete{JobId: job.Id, Generation: 3}, &resp)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_COMPLETED, resp.Job.State)
	require.EqualValues(t, 3, resp.Job.RepositoryGeneration)
	h.ok(&fsmpb.ExportComplete{JobId: job.Id, Generation: 3}, &resp)
	require.True(t, resp.Existing, "a new leader completing it again is answered")
	h.ok(&fsmpb.SnapshotMarkDeleting{SnapshotId: snap.Id}, nil)
	h.ok(&fsmpb.RepositoryUnregister{Name: "r"}, nil)
	require.NoError(t, h.f.View().CheckDerived())
}

func TestExportRefusals(t *testing.T) {
	h, _ := repoFixture(t)
	ro := testRepository("ro")
	ro.ReadOnly, ro.Bucket = true, "other"
	h.ok(&fsmpb.RepositoryRegister{Repository: ro}, nil)
	require.Contains(t, h.fails(codePrecondition, &fsmpb.ExportBegin{Collection: "docs", Snapshot: "s", Repository: "ro", RepositorySnapshot: "x"}), "read-only")
	h.fails(codeNotFound, &fsmpb.ExportBegin{Collection: "docs", Snapshot: "s", Repository: "nope", RepositorySnapshot: "x"})
	h.fails(codeNotFound, &fsmpb.ExportBegin{Collection: "docs", Snapshot: "nope", Repository: "r", RepositorySnapshot: "x"})
	h.fails(codeInvalid, &fsmpb.ExportBegin{Collection: "docs", Snapshot: "s", Repository: "r", RepositorySnapshot: "a/b"})

	// Cancelling an export leaves no trace in the catalog but the job.
	var resp fsmpb.RestoreJobResponse
	h.ok(&fsmpb.ExportBegin{Collection: "docs", Snapshot: "s", Repository: "r", RepositorySnapshot: "x"}, &resp)
	before := h.f.CatalogHash()
	h.ok(&fsmpb.RestoreCancel{JobId: resp.Job.Id}, &resp)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_CANCELLED, resp.Job.State)
	require.Equal(t, before, h.f.CatalogHash())
}

// repositoryCapture is what the API would read of docs's snapshot from a repository.
func repositoryCapture(snap *fsmpb.Snapshot, segments uint64) *fsmpb.RepositorySnapshot {
	return &fsmpb.RepositorySnapshot{Id: "rs-1", SourceClusterId: "cluster-b", SourceSnapshotId: snap.Id, SnapshotName: snap.Name,
		Database: "default", Collection: "docs", CollectionId: snap.CollectionId, Schema: snap.Schema, Properties: snap.Properties,
		Partitions: snap.Partitions, Indexes: snap.Indexes, Layout: snap.Layout, Segments: segments}
}

// sourceSegments are the snapshot's segments as a manifest carries them.
func (h *harness) sourceSegments(snap *fsmpb.Snapshot) []*fsmpb.SourceSegment {
	var out []*fsmpb.SourceSegment
	for _, id := range snap.SegmentIds {
		s := h.segment(id)
		src := &fsmpb.SourceSegment{Id: s.Id, PartitionId: s.PartitionId, RowCount: s.RowCount, Files: s.Files}
		for _, b := range s.IndexBuilds {
			src.Builds = append(src.Builds, &fsmpb.SourceBuild{BuildId: b.BuildId, IndexId: b.IndexId, Files: b.Files})
		}
		out = append(out, src)
	}
	// Manifest order: (partition, id).
	for i := 1; i < len(out); i++ {
		for j := i; j > 0 && (out[j].PartitionId < out[j-1].PartitionId || out[j].PartitionId == out[j-1].PartitionId && out[j].Id < out[j-1].Id); j-- {
			out[j], out[j-1] = out[j-1], out[j]
		}
	}
	return out
}

func TestRepositoryRestoreLifecycle(t *testing.T) {
	h, snap := repoFixture(t)
	segs := h.sourceSegments(snap)
	var resp fsmpb.RestoreJobResponse
	begin := &fsmpb.RestoreBegin{Repository: "r", FromRepository: repositoryCapture(snap, uint64(len(segs))), TargetCollection: "back", Verify: true}
	h.ok(begin, &resp)
	job := resp.Job
	require.Equal(t, fsmpb.JobKind_JOB_KIND_REPOSITORY_RESTORE, job.Kind)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_PLANNING, job.State)
	target := h.collection("back")
	require.Equal(t, fsmpb.CollectionState_COLLECTION_STATE_RESTORING, target.State)
	require.Equal(t, []string{"_default", "p1", "p2"}, partitionNames(target))
	h.ok(begin, &resp)
	require.True(t, resp.Existing)

	// Batches in order; a batch sent twice is answered, a gap refused.
	h.ok(&fsmpb.RestorePlanSegments{JobId: job.Id, First: 0, Segments: segs[:2]}, &resp)
	require.EqualValues(t, 2, resp.Job.SegmentsPlanned)
	h.ok(&fsmpb.RestorePlanSegments{JobId: job.Id, First: 0, Segments: segs[:2]}, &resp)
	require.True(t, resp.Existing)
	h.fails(codePrecondition, &fsmpb.RestorePlanSegments{JobId: job.Id, First: 3, Segments: segs[2:]})
	h.fails(codeInvalid, &fsmpb.RestorePlanSegments{JobId: job.Id, First: 2, Segments: segs[:1]}) // out of manifest order
	bad := proto.CloneOf(segs[2])
	bad.Files = []byte{0xff, 1, 2}
	h.fails(codeInvalid, &fsmpb.RestorePlanSegments{JobId: job.Id, First: 2, Segments: []*fsmpb.SourceSegment{bad}})
	h.ok(&fsmpb.RestorePlanSegments{JobId: job.Id, First: 2, Segments: segs[2:], Last: true}, &resp)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_PENDING, resp.Job.State)
	require.EqualValues(t, 3+3+2+1, resp.Job.FilesTotal)
	require.NoError(t, h.f.View().CheckDerived())

	// A raft snapshot mid-job restores to the same state.
	snapshot, err := h.f.Snapshot()
	require.NoError(t, err)
	var buf bytes.Buffer
	require.NoError(t, snapshot.Persist(&memorySink{Buffer: &buf}))
	g := New(nil)
	require.NoError(t, g.Restore(nopCloser{bytes.NewReader(buf.Bytes())}))
	require.Equal(t, h.f.Hash(), g.Hash())
	require.NoError(t, g.View().CheckDerived())

	h.ok(&fsmpb.RestoreStart{JobId: job.Id}, nil)
	h.ok(doneAll(h.grant(job.Id, 100)), &resp)
	require.Equal(t, fsmpb.RestoreState_RESTORE_STATE_COMPLETED, resp.Job.State)
	target = h.collection("back")
	require.Equal(t, fsmpb.CollectionState_COLLECTION_STATE_ACTIVE, target.State)
	plan, err := h.f.View().RestorePlan(job.Id)
	require.NoError(t, err)
	require.Len(t, plan.Segments, 3)
	for _, ps := range plan.Segments {
		dst, src := h.segment(ps.TargetId), h.segment(ps.SourceId)
		require.Equal(t, fsmpb.SegmentState_SEGMENT_STATE_FLUSHED, dst.State)
		require.Equal(t, target.Id, dst.CollectionId)
		require.Equal(t, src.Files, dst.Files, "the file list as the manifest had it")
		n, _, err := filelist.Totals(dst.Files)
		require.NoError(t, err)
		require.EqualValues(t, ps.Files, n)
		for _, b := range dst.IndexBuilds {
			require.Equal(t, fsmpb.BuildState_BUILD_STATE_READY, b.State)
		}
	}
	require.NoError(t, h.f.View().CheckDerived())
}

func TestRepositoryRestoreRefusals(t *testing.T) {
	h, snap := repoFixture(t)
	capture := repositoryCapture(snap, 3)
	h.fails(codeNotFound, &fsmpb.RestoreBegin{Repository: "nope", FromRepository: capture, TargetCollection: "x"})
	for name, bad := range map[string]func(*fsmpb.RestoreBegin){
		"no capture":       func(c *fsmpb.RestoreBegin) { c.FromRepository = nil },
		"caller segments":  func(c *fsmpb.RestoreBegin) { c.TargetSegments = []*fsmpb.IdMapping{{Source: 1, Target: 2}} },
		"local snapshot":   func(c *fsmpb.RestoreBegin) { c.Snapshot = "s" },
		"no default":       func(c *fsmpb.RestoreBegin) { c.FromRepository.Partitions = c.FromRepository.Partitions[1:] },
		"duplicate id":     func(c *fsmpb.RestoreBegin) { c.FromRepository.Partitions[1].Id = c.FromRepository.Partitions[0].Id },
		"bad cluster id":   func(c *fsmpb.RestoreBegin) { c.FromRepository.SourceClusterId = "a b" },
		"huge schema":      func(c *fsmpb.RestoreBegin) { c.FromRepository.Schema = make([]byte, MaxSchemaBytes+1) },
		"unknown layout":   func(c *fsmpb.RestoreBegin) { c.FromRepository.Layout = 9 },
		"zero collection":  func(c *fsmpb.RestoreBegin) { c.FromRepository.CollectionId = 0 },
		"bad snapshot id":  func(c *fsmpb.RestoreBegin) { c.FromRepository.Id = "" },
		"bad index params": func(c *fsmpb.RestoreBegin) { c.FromRepository.Indexes[0].Params = map[string]string{"": "x"} },
	} {
		cmd := &fsmpb.RestoreBegin{Repository: "r", FromRepository: proto.CloneOf(capture), TargetCollection: "x"}
		bad(cmd)
		require.NotEmpty(t, h.fails(codeInvalid, cmd), name)
	}
	// A partition subset: segments of other partitions are refused in the plan.
	var resp fsmpb.RestoreJobResponse
	h.ok(&fsmpb.RestoreBegin{Repository: "r", FromRepository: capture, TargetCollection: "sub", Partitions: []string{"p2"}}, &resp)
	segs := h.sourceSegments(snap)
	require.Contains(t, h.fails(codeInvalid, &fsmpb.RestorePlanSegments{JobId: resp.Job.Id, Segments: segs[:1]}), "does not copy")
	// Cancel while planning drops the target and its planned segments.
	h.ok(&fsmpb.RestorePlanSegments{JobId: resp.Job.Id, Segments: segs[2:]}, nil)
	h.ok(&fsmpb.RestoreCancel{JobId: resp.Job.Id}, &resp)
	coll, err := h.f.View().CollectionByID(resp.Job.TargetCollectionId)
	require.NoError(t, err)
	require.Equal(t, fsmpb.CollectionState_COLLECTION_STATE_DROPPED, coll.State)
	require.NoError(t, h.f.View().CheckDerived())
}
