package restore

import (
	"fmt"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/manifest/repository"
)

// TestResolverAcrossPlanParts resolves every task of a repository restore planned in
// several parts (segments with no files at the parts' edges included) and checks each
// against the plan built by hand: source and target keys, size, and the pre-check's
// lookup of the source key finding the task.
func TestResolverAcrossPlanParts(t *testing.T) {
	f := fsm.New(nil)
	index := uint64(0)
	apply := func(cmd proto.Message, resp proto.Message) {
		t.Helper()
		index++
		data, err := fsm.EncodeCommand("", 1e18, cmd)
		require.NoError(t, err)
		res := f.Apply(&raft.Log{Index: index, Term: 1, Type: raft.LogCommand, Data: data}).(*fsm.ApplyResult).Result
		require.Equal(t, fsmpb.ErrorCode_ERROR_CODE_OK, res.Code, "%T: %s", cmd, res.Message)
		if resp != nil {
			require.NoError(t, proto.Unmarshal(res.Response, resp))
		}
	}
	apply(&fsmpb.ClusterIdentify{ClusterId: "here"}, nil)
	apply(&fsmpb.RepositoryRegister{Repository: &fsmpb.Repository{Name: "r", Bucket: "b", Prefix: "p", RepositoryId: "rid", WriterClusterId: "here"}}, nil)
	capture := &fsmpb.RepositorySnapshot{Id: "snap", SourceClusterId: "there", CollectionId: 7, SnapshotName: "s",
		Partitions: []*fsmpb.Partition{{Id: 1, Name: fsm.DefaultPartition}}}
	var job fsmpb.RestoreJobResponse
	apply(&fsmpb.RestoreBegin{Repository: "r", FromRepository: capture, TargetCollection: "back"}, &job)

	// Segments 100.. with 0–3 files each, in batches of 3: parts begin and end with
	// empty segments now and then.
	type want struct{ src string }
	var wants []want
	var batch []*fsmpb.SourceSegment
	first := uint64(0)
	for i := range 17 {
		id := uint64(100 + i)
		var entries []filelist.Entry
		for k := range i % 4 {
			rel := fmt.Sprintf("insert/101/%d", 1000+k)
			entries = append(entries, filelist.Entry{Key: rel, Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldID: 101, Size: uint64(10*i + k)})
			full := layout.Snapkeep.SegmentFileKey(layout.Segment{Collection: 7, Partition: 1, Segment: id}, rel)
			wants = append(wants, want{src: repository.NewKeys("p").Data("there", full)})
		}
		batch = append(batch, &fsmpb.SourceSegment{Id: id, PartitionId: 1, Files: filelist.EncodeSorted(entries)})
		if len(batch) == 3 || i == 16 {
			apply(&fsmpb.RestorePlanSegments{JobId: job.Job.Id, First: first, Segments: batch, Last: i == 16}, &job)
			first += uint64(len(batch))
			batch = nil
		}
	}
	v := f.View()
	require.Greater(t, len(v.RestorePlanParts(job.Job.Id)), 3)
	j, err := v.RestoreJob(job.Job.Id)
	require.NoError(t, err)
	require.EqualValues(t, len(wants), j.FilesTotal)
	r, err := newTaskResolver(v, layout.Root("root"), j)
	require.NoError(t, err)
	sources := newSourceIndex(r)
	for i, w := range wants {
		task, err := r.task(uint32(i))
		require.NoError(t, err)
		require.Equal(t, w.src, task.Src, "task %d", i)
		require.Contains(t, task.Dst, "root/collections/")
		got, _, ok := sources.Lookup(task.Src)
		require.True(t, ok, task.Src)
		require.Equal(t, i, got)
	}
	_, err = r.task(uint32(len(wants)))
	require.Error(t, err)
}
