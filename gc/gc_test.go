package gc_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/gc"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/faults"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const root = "root"

// oneNode is a gc.Cluster of one FSM applied to directly, with the real clock as the
// leader's: the collector's unit tests need no Raft.
type oneNode struct {
	mu    sync.Mutex
	f     *fsm.FSM
	index uint64
}

func (n *oneNode) View() *fsm.View { return n.f.View() }

func (n *oneNode) Propose(_ context.Context, cmd, resp proto.Message) error {
	data, err := fsm.EncodeCommand("", time.Now().UnixNano(), cmd)
	if err != nil {
		return err
	}
	n.mu.Lock()
	n.index++
	res := n.f.Apply(&raft.Log{Index: n.index, Type: raft.LogCommand, Data: data}).(*fsm.ApplyResult)
	n.mu.Unlock()
	if err := res.Err(); err != nil {
		return err
	}
	if resp != nil {
		return proto.Unmarshal(res.Result.Response, resp)
	}
	return nil
}

type env struct {
	t      *testing.T
	node   *oneNode
	store  *faults.Store
	coll   uint64
	config gc.Config
}

func newEnv(t *testing.T) *env {
	ctx := context.Background()
	srv, err := objstore.StartEmbedded(ctx, objstore.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, srv.Close()) })
	s3, err := objstore.NewS3(ctx, srv.Config())
	require.NoError(t, err)
	t.Cleanup(func() { s3.Close() })
	e := &env{t: t, node: &oneNode{f: fsm.New(nil)}, store: faults.Wrap(s3, faults.Options{Seed: 1, MaxConsecutive: 2}),
		config: gc.Config{Root: root, Grace: time.Hour, OrphanGrace: 24 * time.Hour, Node: "n1"}}
	var resp fsmpb.CollectionResponse
	e.propose(&fsmpb.CreateCollection{Name: "docs"}, &resp)
	e.coll = resp.Collection.Id
	return e
}

func (e *env) propose(cmd, resp proto.Message) {
	e.t.Helper()
	require.NoError(e.t, e.node.Propose(context.Background(), cmd, resp))
}

func (e *env) put(key string, body string) {
	e.t.Helper()
	_, err := e.store.Put(context.Background(), key, bytes.NewReader([]byte(body)), int64(len(body)), objstore.PutOptions{})
	require.NoError(e.t, err)
}

// segment allocates and flushes a segment of n files; upload says whether the files
// are put in the store. It returns the segment and the files' full keys.
func (e *env) segment(n int, upload bool) (*fsmpb.Segment, []string) {
	e.t.Helper()
	var resp fsmpb.SegmentResponse
	e.propose(&fsmpb.AllocateSegment{Collection: "docs", Lease: int64(time.Hour)}, &resp)
	seg := resp.Segment
	var files []*fsmpb.File
	var keys []string
	for i := 0; i < n; i++ {
		rel := fmt.Sprintf("%sinsert/101/%d", layout.SnapkeepSegmentPrefix(seg.CollectionId, seg.Id), i)
		files = append(files, &fsmpb.File{Key: rel, Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldId: 101, Size: 4})
		keys = append(keys, root+"/"+rel)
		if upload {
			e.put(root+"/"+rel, "data")
		}
	}
	e.propose(&fsmpb.FlushSegment{SegmentId: seg.Id, RowCount: 1, Files: files}, &resp)
	return resp.Segment, keys
}

func (e *env) drop(ids ...uint64) {
	e.t.Helper()
	e.propose(&fsmpb.DropSegments{SegmentIds: ids}, nil)
}

func (e *env) run(opts gc.Options) *gc.Result {
	e.t.Helper()
	res, err := gc.Run(context.Background(), e.node, e.store, e.config, opts)
	require.NoError(e.t, err)
	return res
}

func (e *env) exists(key string) bool {
	e.t.Helper()
	_, err := e.store.Inner().Head(context.Background(), key)
	if errors.Is(err, objstore.ErrNotFound) {
		return false
	}
	require.NoError(e.t, err)
	return true
}

func (e *env) hasSegment(id uint64) bool {
	_, err := e.node.View().Segment(id)
	return err == nil
}

func dur(d time.Duration) *time.Duration { return &d }

func TestDroppedSegmentWaitsForTheGrace(t *testing.T) {
	e := newEnv(t)
	seg, keys := e.segment(3, true)
	e.drop(seg.Id)

	res := e.run(gc.Options{})
	require.Zero(t, res.Report.ObjectsDeleted)
	require.True(t, e.hasSegment(seg.Id))
	for _, k := range keys {
		require.True(t, e.exists(k), k)
	}
	var kept uint64
	for _, c := range res.Report.Kept {
		kept += c.Objects
	}
	require.EqualValues(t, 3, kept, "the files within the grace are counted as kept: %v", res.Report.Kept)

	res = e.run(gc.Options{Grace: dur(0)})
	require.EqualValues(t, 3, res.Report.ObjectsDeleted)
	require.EqualValues(t, 12, res.Report.BytesFreed)
	require.EqualValues(t, 1, res.Report.RecordsRemoved)
	require.False(t, e.hasSegment(seg.Id))
	for _, k := range keys {
		require.False(t, e.exists(k), k)
	}
}

// A failed delete leaves the record in place (its files are not all gone); the next
// run deletes what is left and only then removes the record.
func TestFailedDeleteKeepsTheRecordForTheNextRun(t *testing.T) {
	e := newEnv(t)
	seg, keys := e.segment(3, true)
	other, otherKeys := e.segment(2, true)
	e.drop(seg.Id, other.Id)
	e.store.FailKeys(faults.OpDelete, keys[1])

	res := e.run(gc.Options{Grace: dur(0)})
	require.EqualValues(t, 1, res.Report.ErrorCount, res.Report.Errors)
	require.Contains(t, res.Report.Errors[0], keys[1])
	require.EqualValues(t, 4, res.Report.ObjectsDeleted, "the other objects go")
	require.True(t, e.hasSegment(seg.Id), "a segment with a file left keeps its record")
	require.True(t, e.exists(keys[1]))
	require.False(t, e.hasSegment(other.Id))
	for _, k := range otherKeys {
		require.False(t, e.exists(k))
	}

	e.store.FailKeysWith(faults.OpDelete, nil, keys[1])
	res = e.run(gc.Options{Grace: dur(0)})
	require.Zero(t, res.Report.ErrorCount, res.Report.Errors)
	require.False(t, e.exists(keys[1]))
	require.False(t, e.hasSegment(seg.Id))
	// The run deleted the three files again: a missing object counts as deleted.
	require.EqualValues(t, 3, res.Report.ObjectsDeleted)
}

func TestTransientDeleteErrorsAreRetried(t *testing.T) {
	e := newEnv(t)
	var ids []uint64
	var all []string
	for i := 0; i < 5; i++ {
		seg, keys := e.segment(4, true)
		ids = append(ids, seg.Id)
		all = append(all, keys...)
	}
	e.drop(ids...)
	e.store.SetTransientRate(1) // every call fails twice (MaxConsecutive), then goes through
	res := e.run(gc.Options{Grace: dur(0)})
	e.store.SetTransientRate(0)
	require.Zero(t, res.Report.ErrorCount, res.Report.Errors)
	for _, k := range all {
		require.False(t, e.exists(k), k)
	}
	for _, id := range ids {
		require.False(t, e.hasSegment(id))
	}
	require.Positive(t, e.store.Injected(faults.OpDelete), "faults were injected")
}

// The orphan scan lists only snapkeep's own namespaces under the root, deletes only
// what no record owns and is past its grace, and never touches keys elsewhere — other
// objects under the root (another system's, a Milvus layout's) or outside it, even
// ones sharing its first characters.
func TestOrphanScanStaysInsideItsNamespaces(t *testing.T) {
	e := newEnv(t)
	seg, keys := e.segment(2, true)
	unlisted := root + "/" + layout.SnapkeepSegmentPrefix(seg.CollectionId, seg.Id) + "insert/101/unlisted"
	e.put(unlisted, "x")
	stray := root + "/snapshots/stray.txt"
	e.put(stray, "x")
	kept := []string{root + "/junk/a", root + "/insert_log/1/2/3/100/4", root + "/part_stats/1/2", root + "/collectionsx/1"}
	outside := []string{"rootx/collections/1/segments/1/insert/1/1", "other/junk", "root"}
	for _, k := range append(kept, outside...) {
		e.put(k, "x")
	}

	// Within the orphan grace: counted, kept.
	res := e.run(gc.Options{OrphanScan: true})
	require.Zero(t, res.Report.ObjectsDeleted)
	require.EqualValues(t, 4, res.Report.ObjectsScanned, "the segment's two files, the unlisted one, the stray manifest")

	res = e.run(gc.Options{OrphanScan: true, OrphanGrace: dur(0)})
	require.EqualValues(t, 2, res.Report.ObjectsDeleted)
	var got []string
	for _, c := range res.Candidates {
		got = append(got, c.Key)
	}
	require.ElementsMatch(t, []string{unlisted, stray}, got)
	for _, k := range append(append(keys, kept...), outside...) {
		require.True(t, e.exists(k), k)
	}
}

// An upload in flight — an allocated segment's objects, not yet in any file list — is
// owned by the allocation however old: the orphan scan leaves it, and once the
// allocation is dropped the segment's reclaim lists its prefix and takes it.
func TestUploadInFlightIsOwnedByItsAllocation(t *testing.T) {
	e := newEnv(t)
	var resp fsmpb.SegmentResponse
	e.propose(&fsmpb.AllocateSegment{Collection: "docs", Lease: int64(time.Hour)}, &resp)
	key := root + "/" + layout.SnapkeepSegmentPrefix(e.coll, resp.Segment.Id) + "insert/101/1"
	e.put(key, "data")

	res := e.run(gc.Options{OrphanScan: true, OrphanGrace: dur(0), Grace: dur(0)})
	require.Zero(t, res.Report.ObjectsDeleted)
	require.True(t, e.exists(key))

	e.drop(resp.Segment.Id)
	res = e.run(gc.Options{OrphanScan: true, OrphanGrace: dur(0), Grace: dur(0)})
	require.EqualValues(t, 1, res.Report.ObjectsDeleted)
	require.False(t, e.exists(key))
	require.False(t, e.hasSegment(resp.Segment.Id))
}

func TestDryRunDeletesNothingAndMatchesTheRun(t *testing.T) {
	e := newEnv(t)
	seg, _ := e.segment(3, true)
	e.drop(seg.Id)
	e.put(root+"/collections/junk/a", "x")
	opts := gc.Options{OrphanScan: true, OrphanGrace: dur(0), Grace: dur(0)}

	dry := e.run(gc.Options{DryRun: true, OrphanScan: opts.OrphanScan, OrphanGrace: opts.OrphanGrace, Grace: opts.Grace})
	require.EqualValues(t, 4, dry.Report.ObjectsDeleted, "what the run would delete")
	require.True(t, e.hasSegment(seg.Id))
	for _, c := range dry.Candidates {
		require.True(t, e.exists(c.Key), c.Key)
		require.NotEmpty(t, c.Reason)
		require.NotEmpty(t, c.Owner)
	}
	real := e.run(opts)
	require.Equal(t, keysOf(dry.Candidates), keysOf(real.Candidates))
	require.Equal(t, dry.Report.ObjectsDeleted, real.Report.ObjectsDeleted)
	require.Equal(t, dry.Report.RecordsRemoved, real.Report.RecordsRemoved)
}

func keysOf(cs []gc.Candidate) []string {
	out := make([]string, len(cs))
	for i, c := range cs {
		out[i] = c.Key
	}
	return out
}

// A segment pinned by a snapshot stays after it is dropped; when the snapshot goes,
// its manifest goes first, then the segment.
func TestSnapshotPinsKeepDroppedSegments(t *testing.T) {
	e := newEnv(t)
	seg, keys := e.segment(2, true)
	var sr fsmpb.SnapshotResponse
	e.propose(&fsmpb.SnapshotBegin{Collection: "docs", Name: "s", MaxPerCollection: 10, PendingTimeout: int64(time.Hour)}, &sr)
	manifest := sr.Snapshot.ManifestKey
	require.NotEmpty(t, manifest)
	e.put(root+"/"+manifest, "manifest")
	e.propose(&fsmpb.SnapshotCommit{SnapshotId: sr.Snapshot.Id, ManifestSize: 8, ManifestChecksum: 1,
		Summary: &fsmpb.SnapshotSummary{Segments: 1, Rows: 1, Files: 2, Bytes: 8}}, nil)
	e.drop(seg.Id)

	res := e.run(gc.Options{Grace: dur(0), OrphanScan: true, OrphanGrace: dur(0)})
	require.Zero(t, res.Report.ObjectsDeleted)
	for _, k := range append(keys, root+"/"+manifest) {
		require.True(t, e.exists(k), k)
	}

	e.propose(&fsmpb.SnapshotMarkDeleting{SnapshotId: sr.Snapshot.Id, Reason: "test"}, nil)
	res = e.run(gc.Options{Grace: dur(0)})
	require.Zero(t, res.Report.ErrorCount, res.Report.Errors)
	require.False(t, e.exists(root+"/"+manifest))
	for _, k := range keys {
		require.False(t, e.exists(k), k)
	}
	_, err := e.node.View().Snapshot(sr.Snapshot.Id)
	require.Error(t, err, "the snapshot's record is removed")
	require.False(t, e.hasSegment(seg.Id))
}

// A run whose context is cancelled before it deletes anything removes no record.
func TestCancelledRunRemovesNoRecord(t *testing.T) {
	e := newEnv(t)
	seg, keys := e.segment(3, true)
	e.drop(seg.Id)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	res, err := gc.Run(ctx, e.node, e.store, e.config, gc.Options{Grace: dur(0)})
	if err == nil {
		require.Zero(t, res.Report.ObjectsDeleted)
		require.Positive(t, res.Report.ErrorCount)
	}
	require.True(t, e.hasSegment(seg.Id), "nothing deleted, the record stays")
	for _, k := range keys {
		require.True(t, e.exists(k))
	}
	// A later run finishes the work.
	res = e.run(gc.Options{Grace: dur(0)})
	require.EqualValues(t, 3, res.Report.ObjectsDeleted)
	require.False(t, e.hasSegment(seg.Id))
}

// The orphan scan leaves keys under Config.SkipPrefixes alone, however old, and
// still deletes true orphans beside them.
func TestOrphanScanSkipsSkipPrefixes(t *testing.T) {
	e := newEnv(t)
	e.config.SkipPrefixes = []string{"snapshots/held/"}
	heldKey := root + "/snapshots/held/42.skm"
	e.put(heldKey, "held")
	e.put(root+"/snapshots/heldx/stray", "x") // a sibling, not under the prefix
	res := e.run(gc.Options{OrphanScan: true, OrphanGrace: dur(0)})
	require.Equal(t, []string{root + "/snapshots/heldx/stray"}, keysOf(res.Candidates))
	require.True(t, e.exists(heldKey))
	require.False(t, e.exists(root+"/snapshots/heldx/stray"))
}
