package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/faults"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// restoreSource builds collection "docs" (partitions p1 and p2, an index with a built
// segment) with real objects in the cluster's bucket, and a committed snapshot "snap".
func restoreSource(t *testing.T, c *servertest.Cluster, cl *client.Client, segmentsPerPartition int) *pb.Snapshot {
	return restoreSourceIn(t, c, cl, segmentsPerPartition, pb.KeyLayout_KEY_LAYOUT_UNSPECIFIED)
}

// restoreSourceIn is restoreSource with the collection in a key layout.
func restoreSourceIn(t *testing.T, c *servertest.Cluster, cl *client.Client, segmentsPerPartition int, keyLayout pb.KeyLayout) *pb.Snapshot {
	t.Helper()
	return restoreSourceInStore(t, c.Bucket.Store, cl, segmentsPerPartition, keyLayout)
}

// restoreSourceInStore is restoreSourceIn with the cluster's bucket reached through store.
func restoreSourceInStore(t *testing.T, store objstore.Store, cl *client.Client, segmentsPerPartition int, keyLayout pb.KeyLayout) *pb.Snapshot {
	t.Helper()
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs").WithPartitions("p1", "p2").
		WithSchema([]byte(`{"fields":[101]}`)).WithProperty("ttl", "60").WithDescription("source").WithLayout(keyLayout))
	require.NoError(t, err)
	_, err = cl.CreateIndex(ctx, client.NewCreateIndexOption("docs", "vec", 101).WithParam("index_type", "HNSW"))
	require.NoError(t, err)
	var first uint64
	for i, p := range []string{"p1", "p2"} {
		res, err := datagen.Generate(ctx, cl, store, datagen.Options{Collection: "docs", Partition: p,
			Segments: segmentsPerPartition, FilesPerSegment: 4, FileSize: 4096, Seed: int64(i), RowsPerSegment: 100})
		require.NoError(t, err)
		if first == 0 {
			first = slices.Min(res.SegmentIDs)
		}
	}
	// One index build, with one real file.
	build, err := cl.AllocateIndexBuild(ctx, client.NewAllocateIndexBuildOption(first, "vec"))
	require.NoError(t, err)
	body := []byte("hnsw graph bytes")
	key := build.Build.Prefix + "HNSW_0"
	if keyLayout == pb.KeyLayout_KEY_LAYOUT_MILVUS { // index_files/<build>/<version>/<partition>/<segment>/<file>
		key = fmt.Sprintf("%s1/%d/%d/HNSW_0", build.Build.Prefix, build.Segment.PartitionId, first)
	}
	sum := crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli))
	_, err = store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{CRC32C: sum, HasCRC32C: true})
	require.NoError(t, err)
	_, err = cl.AddIndexBuild(ctx, client.NewAddIndexBuildOption(first, build.Build.BuildId).
		WithFiles(&pb.File{Key: key, Kind: pb.FileKind_FILE_KIND_INDEX, Size: uint64(len(body)), Crc32C: sum}))
	require.NoError(t, err)
	snap, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "snap").WithDescription("nightly"))
	require.NoError(t, err)
	return snap
}

// waitJob waits until a restore job ends and returns it.
func waitJob(t *testing.T, cl *client.Client, id uint64) *pb.RestoreJob {
	t.Helper()
	var job *pb.RestoreJob
	require.Eventually(t, func() bool {
		j, err := cl.GetRestoreState(context.Background(), id)
		if err != nil {
			return false
		}
		job = j
		return client.JobEnded(j.State)
	}, 60*time.Second, 50*time.Millisecond, "restore job %d did not end", id)
	return job
}

func readObject(t *testing.T, store objstore.Store, key string) []byte {
	t.Helper()
	rc, _, err := store.Get(context.Background(), key)
	require.NoError(t, err, key)
	defer rc.Close()
	b, err := io.ReadAll(rc)
	require.NoError(t, err)
	return b
}

// segmentsOf lists a collection's segments with their files.
func segmentsOf(t *testing.T, cl *client.Client, coll string) []*pb.Segment {
	t.Helper()
	var out []*pb.Segment
	for s, err := range cl.ListAllSegments(context.Background(), client.NewListSegmentsOption(coll)) {
		require.NoError(t, err)
		out = append(out, s)
	}
	return out
}

// requireSameContent checks that the restored collection holds byte-identical copies
// of the source segments (and builds) captured by the snapshot, under new ids.
func requireSameContent(t *testing.T, c *servertest.Cluster, cl *client.Client, source, target string, partitions ...string) {
	t.Helper()
	srcColl, err := cl.DescribeCollection(context.Background(), client.NewDescribeCollectionOption(source).WithStale())
	require.NoError(t, err)
	requireSameSegments(t, c, cl, srcColl.Collection, segmentsOf(t, cl, source), target, partitions...)
}

// requireSameSegments checks that collection target holds byte-identical copies of
// the flushed segments among sources (of srcColl), under new ids.
func requireSameSegments(t *testing.T, c *servertest.Cluster, cl *client.Client, srcColl *pb.Collection, sources []*pb.Segment, target string, partitions ...string) {
	t.Helper()
	requireSameSegmentsIn(t, c.Root(), c.Bucket.Store, c.Bucket.Store, cl, srcColl, sources, target, partitions...)
}

// requireSameSegmentsIn checks that collection target (of the cluster cl reaches)
// holds byte-identical copies (dst) of the flushed segments among sources (of srcColl,
// in src), under new ids; both clusters keep their keys under root.
func requireSameSegmentsIn(t *testing.T, root string, src, dst objstore.Store, cl *client.Client, srcColl *pb.Collection, sources []*pb.Segment, target string, partitions ...string) {
	t.Helper()
	srcStore, dstStore := src, dst
	bySignature := map[string]*pb.Segment{} // by partition name + rows + first key suffix
	partName := func(coll *pb.Collection, id uint64) string {
		for _, p := range coll.Partitions {
			if p.Id == id {
				return p.Name
			}
		}
		return "?"
	}
	for _, s := range sources {
		if s.State != pb.SegmentState_SEGMENT_STATE_FLUSHED {
			continue
		}
		p := partName(srcColl, s.PartitionId)
		if len(partitions) > 0 && !slices.Contains(partitions, p) {
			continue
		}
		bySignature[signature(s, p)] = s
	}
	dstColl, err := cl.DescribeCollection(context.Background(), client.NewDescribeCollectionOption(target))
	require.NoError(t, err)
	dstSegs := segmentsOf(t, cl, target)
	require.Len(t, dstSegs, len(bySignature))
	for _, d := range dstSegs {
		require.Equal(t, pb.SegmentState_SEGMENT_STATE_FLUSHED, d.State)
		s, ok := bySignature[signature(d, partName(dstColl.Collection, d.PartitionId))]
		require.True(t, ok, "restored segment %d matches no source segment", d.Id)
		require.NotEqual(t, s.Id, d.Id)
		require.Equal(t, s.RowCount, d.RowCount)
		require.Len(t, d.Files, len(s.Files))
		for i := range d.Files {
			require.Equal(t, keptForm(t, root, s, s.Files[i].Key), keptForm(t, root, d, d.Files[i].Key), "the same file under the target's ids")
			require.Equal(t, readObject(t, srcStore, s.Files[i].Key), readObject(t, dstStore, d.Files[i].Key), d.Files[i].Key)
		}
		require.Len(t, d.IndexBuilds, len(readyBuilds(s)))
		for i, b := range d.IndexBuilds {
			sb := readyBuilds(s)[i]
			require.NotEqual(t, sb.BuildId, b.BuildId, "new build ids")
			require.Equal(t, pb.IndexBuildState_INDEX_BUILD_STATE_READY, b.State)
			for k := range b.Files {
				require.Equal(t, keptForm(t, root, s, sb.Files[k].Key), keptForm(t, root, d, b.Files[k].Key))
				require.Equal(t, readObject(t, srcStore, sb.Files[k].Key), readObject(t, dstStore, b.Files[k].Key))
			}
		}
	}
}

// keptForm parses a file's full key in whichever layout it is, checks that it names
// its segment (and, where the layout puts them in keys, its collection and
// partition), and returns what a file list keeps of it.
func keptForm(t *testing.T, root string, s *pb.Segment, key string) string {
	t.Helper()
	rel, ok := strings.CutPrefix(key, root+"/")
	require.True(t, ok, "%s is outside the root", key)
	own, ok := layout.Parse(rel)
	require.True(t, ok, "%s is in no key layout", key)
	require.Equal(t, s.Id, own.Segment, key)
	if own.Collection != 0 {
		require.Equal(t, s.CollectionId, own.Collection, key)
	}
	if own.Partition != 0 {
		require.Equal(t, s.PartitionId, own.Partition, key)
	}
	return own.Rel
}

// requireDropped checks that a collection is gone from the live ones: describable, as
// DROPPED, until GC removes its record, and not listed.
func requireDropped(t *testing.T, cl *client.Client, name string) {
	t.Helper()
	d, err := cl.DescribeCollection(context.Background(), client.NewDescribeCollectionOption(name))
	require.NoError(t, err)
	require.Equal(t, pb.CollectionState_COLLECTION_STATE_DROPPED, d.Collection.State)
	colls, err := cl.ListCollections(context.Background(), client.NewListCollectionsOption())
	require.NoError(t, err)
	for _, c := range colls {
		require.NotEqual(t, name, c.Name, "a dropped collection is not listed")
	}
}

func readyBuilds(s *pb.Segment) []*pb.IndexBuild {
	var out []*pb.IndexBuild
	for _, b := range s.IndexBuilds {
		if b.State == pb.IndexBuildState_INDEX_BUILD_STATE_READY {
			out = append(out, b)
		}
	}
	return out
}

// signature identifies a segment's content across the copy: partition and file
// checksums.
func signature(s *pb.Segment, partition string) string {
	var b strings.Builder
	b.WriteString(partition)
	for _, f := range s.Files {
		fmt.Fprintf(&b, "/%x", f.Crc32C)
	}
	return b.String()
}

func TestRestoreCopiesEverything(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl := newClient(t, c)
	ctx := context.Background()
	snap := restoreSource(t, c, cl, 3)
	require.Equal(t, "nightly", snap.Description)
	require.Equal(t, "source", snap.CollectionDescription, "captured with the snapshot")

	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy"))
	require.NoError(t, err)
	require.NotZero(t, resp.JobId)
	coll, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption("copy"))
	require.NoError(t, err)
	require.NotEqual(t, resp.JobId, coll.Collection.Id, "the job id is not the collection id")

	job := waitJob(t, cl, resp.JobId)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	require.EqualValues(t, 6*4+1, job.FilesTotal)
	require.Equal(t, job.FilesTotal, job.FilesDone)
	require.EqualValues(t, 100, job.ProgressPercent)

	restored, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption("copy"))
	require.NoError(t, err)
	source, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption("docs"))
	require.NoError(t, err)
	require.Equal(t, pb.CollectionState_COLLECTION_STATE_ACTIVE, restored.Collection.State)
	require.Equal(t, source.Collection.Schema, restored.Collection.Schema)
	require.Equal(t, source.Collection.Properties, restored.Collection.Properties)
	require.Equal(t, "source", restored.Collection.Description, "the collection's description, not the snapshot's")
	require.Equal(t, []string{"_default", "p1", "p2"}, names(restored.Collection.Partitions))
	require.Equal(t, "vec", restored.Collection.Indexes[0].Name)
	require.NotEqual(t, source.Collection.Indexes[0].Id, restored.Collection.Indexes[0].Id)
	requireSameContent(t, c, cl, "docs", "copy")

	// A partition subset.
	resp, err = cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "only_p2").WithPartitions("p2"))
	require.NoError(t, err)
	job = waitJob(t, cl, resp.JobId)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	restored, err = cl.DescribeCollection(ctx, client.NewDescribeCollectionOption("only_p2"))
	require.NoError(t, err)
	require.Equal(t, []string{"_default", "p2"}, names(restored.Collection.Partitions))
	requireSameContent(t, c, cl, "docs", "only_p2", "p2")
}

func names(ps []*pb.Partition) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Name)
	}
	return out
}

// slowReports holds every executor a while before it reports a batch, so a test can
// act in the middle of a restore.
func slowReports(delay time.Duration) servertest.Options {
	return servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.RestoreBatch = 4
		cfg.RestoreLease = 10 * time.Second
		cfg.Failpoints = slowReportFailpoints(delay)
	}}
}

// slowReportFailpoints delay every executor's report by delay.
func slowReportFailpoints(delay time.Duration) *server.Failpoints {
	return &server.Failpoints{BeforeRestoreReport: func(ctx context.Context, _, _ uint64) error {
		select {
		case <-time.After(delay):
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}}
}

// countingStore counts copies per destination key.
type countingStore struct {
	objstore.Store
	mu     sync.Mutex
	copies map[string]int
}

func (s *countingStore) Copy(ctx context.Context, src, dst string) (objstore.CopyInfo, error) {
	s.mu.Lock()
	s.copies[dst]++
	s.mu.Unlock()
	return s.Store.Copy(ctx, src, dst)
}

func (s *countingStore) counts() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := map[string]int{}
	for k, v := range s.copies {
		out[k] = v
	}
	return out
}

func TestRestoreSurvivesLeaderLoss(t *testing.T) {
	var counter *countingStore
	opts := slowReports(150 * time.Millisecond)
	configure := opts.Configure
	opts.Configure = func(i int, cfg *server.Config) {
		configure(i, cfg)
		if counter == nil {
			counter = &countingStore{Store: cfg.Store, copies: map[string]int{}}
		}
		cfg.Store = counter
	}
	c := servertest.Start(t, 3, opts)
	cl := newClient(t, c)
	ctx := context.Background()
	restoreSource(t, c, cl, 10)
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy"))
	require.NoError(t, err)

	var doneAtKill uint64
	require.Eventually(t, func() bool {
		j, err := cl.GetRestoreState(ctx, resp.JobId)
		if err == nil && j.FilesDone > 0 && j.FilesDone < j.FilesTotal/2 {
			doneAtKill = j.FilesDone
			return true
		}
		return false
	}, 30*time.Second, 10*time.Millisecond)
	copiedBefore := counter.counts()
	c.Stop(c.Leader())

	job := waitJob(t, cl, resp.JobId)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	requireSameContent(t, c, cl, "docs", "copy")
	// No file done before the leader's loss was copied again: a second copy can only
	// be of a task in flight then (its report lost with the leader).
	again := 0
	for key, n := range counter.counts() {
		if n > 1 {
			again++
			require.Equal(t, 1, copiedBefore[key], "%s copied %d times", key, n)
		}
	}
	require.LessOrEqual(t, again, len(copiedBefore)-int(doneAtKill), "only tasks in flight at the loss are copied twice")
	t.Logf("%d files, %d done when the leader stopped, %d copied twice", job.FilesTotal, doneAtKill, again)
}

func TestRestoreSurvivesExecutorLoss(t *testing.T) {
	opts := slowReports(200 * time.Millisecond)
	configure := opts.Configure
	opts.Configure = func(i int, cfg *server.Config) {
		configure(i, cfg)
		cfg.RestoreLease = 2 * time.Second // a stopped executor's tasks come back soon
	}
	c := servertest.Start(t, 3, opts)
	cl := newClient(t, c)
	ctx := context.Background()
	restoreSource(t, c, cl, 8)
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		j, err := cl.GetRestoreState(ctx, resp.JobId)
		return err == nil && j.FilesDone > 0
	}, 30*time.Second, 10*time.Millisecond)
	c.Stop(c.Follower()) // an executor goes, with its leases

	job := waitJob(t, cl, resp.JobId)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	requireSameContent(t, c, cl, "docs", "copy")
}

func TestRestoreWithTransientFailures(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.Store = faults.Wrap(cfg.Store, faults.Options{Seed: 1, TransientRate: 0.2})
		cfg.RestoreBatch = 8
	}})
	cl := newClient(t, c)
	ctx := context.Background()
	restoreSource(t, c, cl, 4)
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy"))
	require.NoError(t, err)
	job := waitJob(t, cl, resp.JobId)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	require.Greater(t, job.Attempts, job.FilesTotal, "some copies were retried")
	requireSameContent(t, c, cl, "docs", "copy")
}

// A source deleted behind snapkeep's back fails the restore, naming the key, and the
// target is dropped. A verified restore lists no sources — the copy of the missing one
// fails, naming it; an unverified one lists them while the first copies run, and the
// listing finds it missing (or a copy of it fails first).
func TestRestoreOfAMissingSourceFails(t *testing.T) {
	for _, verify := range []bool{true, false} {
		t.Run(fmt.Sprintf("verify=%v", verify), func(t *testing.T) {
			lists := &listRecorder{}
			c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
				cfg.Store = lists.wrap(cfg.Store)
			}})
			cl := newClient(t, c)
			ctx := context.Background()
			restoreSource(t, c, cl, 2)
			victim := segmentsOf(t, cl, "docs")[1].Files[2].Key
			res, err := c.Bucket.Store.Delete(ctx, []string{victim}) // behind snapkeep's back
			require.NoError(t, err)
			require.Empty(t, res.Failed)

			opt := client.NewRestoreSnapshotOption("docs", "snap", "copy")
			if !verify {
				opt = opt.WithoutVerify()
			}
			lists.reset()
			resp, err := cl.RestoreSnapshot(ctx, opt)
			require.NoError(t, err)
			job := waitJob(t, cl, resp.JobId)
			require.Equal(t, pb.RestoreState_RESTORE_STATE_FAILED, job.State)
			copyFailed := `copying ` + regexp.QuoteMeta(victim) + ` failed`
			if verify {
				require.Regexp(t, copyFailed, job.Error)
				require.Empty(t, lists.covering(victim), "a verified restore lists no sources")
			} else {
				require.Regexp(t, `1 of 17 source objects are missing and 0 have the wrong size; the copies made meanwhile are left to the garbage collector|`+copyFailed, job.Error)
				require.NotEmpty(t, lists.covering(victim), "an unverified restore lists its sources")
			}
			require.Equal(t, []string{victim}, job.FailingKeys)
			requireDropped(t, cl, "copy")
		})
	}
}

// listRecorder records the prefixes listed through the stores it wraps.
type listRecorder struct {
	mu       sync.Mutex
	prefixes []string
}

func (r *listRecorder) wrap(s objstore.Store) objstore.Store { return &recordingLister{Store: s, r: r} }

func (r *listRecorder) reset() {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.prefixes = nil
}

// covering is every prefix listed since the last reset that lists the files of key's
// collection and would have seen key: a prefix of key longer than its root's
// collections directory (key is <root>/collections/<id>/segments/<id>/<kind>/<field>/<log>).
func (r *listRecorder) covering(key string) []string {
	collections := key
	for range 6 {
		collections = path.Dir(collections)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, p := range r.prefixes {
		if strings.HasPrefix(key, p) && len(p) > len(collections) {
			out = append(out, p)
		}
	}
	return out
}

type recordingLister struct {
	objstore.Store
	r *listRecorder
}

func (s *recordingLister) List(ctx context.Context, prefix, token string, maxKeys int) (objstore.ListPage, error) {
	s.r.mu.Lock()
	s.r.prefixes = append(s.r.prefixes, prefix)
	s.r.mu.Unlock()
	return s.Store.List(ctx, prefix, token, maxKeys)
}

func TestRestoreOfACorruptSourceFails(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl := newClient(t, c)
	ctx := context.Background()
	restoreSource(t, c, cl, 2)
	victim := segmentsOf(t, cl, "docs")[0].Files[1]
	// Same size, other bytes: only the checksum can tell.
	body := bytes.Repeat([]byte{'x'}, int(victim.Size))
	_, err := c.Bucket.Store.Put(ctx, victim.Key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{})
	require.NoError(t, err)

	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy"))
	require.NoError(t, err)
	job := waitJob(t, cl, resp.JobId)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_FAILED, job.State)
	require.Contains(t, job.Error, victim.Key)
	require.Contains(t, job.FailingKeys, victim.Key)
	requireDropped(t, cl, "copy")
}

func TestRestoreCancelAndSnapshotDrop(t *testing.T) {
	c := servertest.Start(t, 3, slowReports(300*time.Millisecond))
	cl := newClient(t, c)
	ctx := context.Background()
	restoreSource(t, c, cl, 5)
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy"))
	require.NoError(t, err)

	// The snapshot cannot be dropped while the job reads it.
	_, err = cl.DropSnapshot(ctx, client.NewDropSnapshotOption("docs", "snap"))
	require.True(t, errors.Is(err, client.ErrFailedPrecondition), "%v", err)
	require.Contains(t, err.Error(), fmt.Sprintf("is being restored by job %d", resp.JobId))

	require.Eventually(t, func() bool {
		j, err := cl.GetRestoreState(ctx, resp.JobId)
		return err == nil && j.FilesDone > 0
	}, 30*time.Second, 10*time.Millisecond)
	job, err := cl.CancelRestore(ctx, client.NewCancelRestoreOption(resp.JobId).WithReason("wrong snapshot"))
	require.NoError(t, err)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_CANCELLED, job.State)
	require.Equal(t, "wrong snapshot", job.Error)
	requireDropped(t, cl, "copy")
	_, err = cl.CancelRestore(ctx, client.NewCancelRestoreOption(resp.JobId))
	require.True(t, errors.Is(err, client.ErrFailedPrecondition), "%v", err)
	require.Contains(t, err.Error(), "is already cancelled")

	_, err = cl.DropSnapshot(ctx, client.NewDropSnapshotOption("docs", "snap"))
	require.NoError(t, err, "the snapshot is free once the job ended")
}

func TestRestoreBadInput(t *testing.T) {
	held := make(chan struct{})
	c := servertest.Start(t, 1, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.Failpoints = &server.Failpoints{BeforeManifestWrite: func(ctx context.Context, id uint64) error {
			select {
			case <-held: // snapshots stay pending until the test lets go
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}}
	}})
	cl := newClient(t, c)
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs").WithPartitions("p1"))
	require.NoError(t, err)
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("taken"))
	require.NoError(t, err)
	_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "pending").WithAsync())
	require.NoError(t, err)

	cases := []struct {
		name string
		want error
		msg  string
		call func() error
	}{
		{"unknown snapshot", client.ErrNotFound, `snapshot "nope" not found on collection "docs"`, func() error {
			_, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "nope", "x"))
			return err
		}},
		{"snapshot not committed", client.ErrFailedPrecondition, `snapshot "pending" of collection "docs" is pending; only a committed snapshot can be restored`, func() error {
			_, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "pending", "x"))
			return err
		}},
		{"bad target name", client.ErrInvalidArgument, "target collection name", func() error {
			_, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "pending", "a b"))
			return err
		}},
		{"unknown job", client.ErrNotFound, "restore job 424242 not found", func() error {
			_, err := cl.GetRestoreState(ctx, 424242)
			return err
		}},
		{"cancel an unknown job", client.ErrNotFound, "restore job 424242 not found", func() error {
			_, err := cl.CancelRestore(ctx, client.NewCancelRestoreOption(424242))
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.True(t, errors.Is(err, tc.want), "want %v, got %v", tc.want, err)
			require.Contains(t, err.Error(), tc.msg)
		})
	}

	close(held)
	_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "ready"))
	require.NoError(t, err)
	_, err = cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "ready", "taken"))
	require.True(t, errors.Is(err, client.ErrAlreadyExists), "%v", err)
	require.Contains(t, err.Error(), `collection "taken" already exists in database "default"`)
	_, err = cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "ready", "x").WithPartitions("zz"))
	require.True(t, errors.Is(err, client.ErrNotFound), "%v", err)
	require.Contains(t, err.Error(), `partition "zz" is not in snapshot "ready"`)

	// An empty snapshot restores at once; cancelling the finished job is refused.
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "ready", "x"))
	require.NoError(t, err)
	again, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "ready", "x"))
	if err == nil {
		require.True(t, again.Existing)
		require.Equal(t, resp.JobId, again.JobId)
	} else {
		require.True(t, errors.Is(err, client.ErrAlreadyExists), "%v", err) // it finished already
	}
	job := waitJob(t, cl, resp.JobId)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State)
	_, err = cl.CancelRestore(ctx, client.NewCancelRestoreOption(resp.JobId))
	require.True(t, errors.Is(err, client.ErrFailedPrecondition), "%v", err)
	require.Contains(t, err.Error(), fmt.Sprintf("restore job %d is already completed", resp.JobId))
}

// A job says per file what verified its copy, and --verify=readback reads every copy
// back (the embedded server keeps no checksums, so checksum mode reads back too; a
// server with checksums is in restore's tests).
func TestRestoreCountsWhatVerifiedEachFile(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl := newClient(t, c)
	ctx := context.Background()
	restoreSource(t, c, cl, 2)
	for _, tc := range []struct {
		target string
		opt    func(*client.RestoreSnapshotOption) *client.RestoreSnapshotOption
		check  func(t *testing.T, j *pb.RestoreJob)
	}{
		{"read_back", (*client.RestoreSnapshotOption).WithReadBack, func(t *testing.T, j *pb.RestoreJob) {
			require.True(t, j.ReadBack)
			require.Equal(t, j.FilesTotal, j.VerifiedByReadBack)
		}},
		{"unverified", (*client.RestoreSnapshotOption).WithoutVerify, func(t *testing.T, j *pb.RestoreJob) {
			require.Equal(t, j.FilesTotal, j.NotVerified)
		}},
		{"default", func(o *client.RestoreSnapshotOption) *client.RestoreSnapshotOption { return o }, func(t *testing.T, j *pb.RestoreJob) {
			require.False(t, j.ReadBack)
			require.Zero(t, j.NotVerified)
			require.Equal(t, j.FilesTotal, j.VerifiedByCopyResponse+j.VerifiedByHead+j.VerifiedByReadBack)
		}},
	} {
		resp, err := cl.RestoreSnapshot(ctx, tc.opt(client.NewRestoreSnapshotOption("docs", "snap", tc.target)))
		require.NoError(t, err)
		job := waitJob(t, cl, resp.JobId)
		require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
		tc.check(t, job)
	}
	_, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "bad").WithoutVerify().WithReadBack())
	require.ErrorIs(t, err, client.ErrInvalidArgument)
}

// heldLists is a store whose listings wait while hold is set (or until their context
// ends): a leader's source check then cannot finish.
type heldLists struct {
	objstore.Store
	hold    *atomic.Bool
	waiting *atomic.Int32
}

func (s heldLists) List(ctx context.Context, prefix, token string, maxKeys int) (objstore.ListPage, error) {
	if s.hold.Load() {
		s.waiting.Add(1)
		defer s.waiting.Add(-1)
		for s.hold.Load() {
			select {
			case <-ctx.Done():
				return objstore.ListPage{}, ctx.Err()
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	return s.Store.List(ctx, prefix, token, maxKeys)
}

// An unverified restore copies while the leader lists its sources, and completes only
// once they are checked: with the listing held, every file is copied and the job stays
// COPYING; a new leader checks them again after a failover, and the job completes. (A
// verified restore lists nothing: TestRestoreOfAMissingSourceFails.)
func TestRestoreCompletesOnlyOnceItsSourcesAreChecked(t *testing.T) {
	var hold atomic.Bool
	var waiting atomic.Int32
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.Store = heldLists{Store: cfg.Store, hold: &hold, waiting: &waiting}
	}})
	cl := newClient(t, c)
	ctx := context.Background()
	restoreSource(t, c, cl, 2)

	hold.Store(true)
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy").WithoutVerify())
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		j, err := cl.GetRestoreState(ctx, resp.JobId)
		return err == nil && j.FilesTotal > 0 && j.FilesDone == j.FilesTotal
	}, 30*time.Second, 10*time.Millisecond, "every file is copied while the sources are listed")
	require.Positive(t, waiting.Load(), "the leader's listing waits")
	time.Sleep(200 * time.Millisecond)
	j, err := cl.GetRestoreState(ctx, resp.JobId)
	require.NoError(t, err)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COPYING, j.State, "not complete before its sources are checked")

	c.Stop(c.Leader())
	hold.Store(false)
	job := waitJob(t, cl, resp.JobId)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	requireSameContent(t, c, cl, "docs", "copy")
}
