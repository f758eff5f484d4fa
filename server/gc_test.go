package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"maps"
	"net"
	"slices"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// Helpers shared by the GC tests (gc_test.go, gc_model_test.go, gc_bench_test.go).

var gcCastagnoli = crc32.MakeTable(crc32.Castagnoli)

const gcRoot = "snapkeep/"

func gcClient(t testing.TB, c *servertest.Cluster) *client.Client {
	t.Helper()
	cl, err := client.New(context.Background(), c.Endpoints()...)
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	return cl
}

// gcPutBody uploads body under key with its CRC-32C and returns the file entry that
// registers it.
func gcPutBody(ctx context.Context, store objstore.Store, key string, kind pb.FileKind, field int64, body []byte) (*pb.File, error) {
	sum := crc32.Checksum(body, gcCastagnoli)
	if _, err := store.Put(ctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{CRC32C: sum, HasCRC32C: true}); err != nil {
		return nil, fmt.Errorf("put %s: %w", key, err)
	}
	return &pb.File{Key: key, Kind: kind, FieldId: field, Size: uint64(len(body)), Crc32C: sum}, nil
}

// gcPut uploads size bytes (derived from the key) under key.
func gcPut(t testing.TB, store objstore.Store, key string, kind pb.FileKind, size int) *pb.File {
	t.Helper()
	body := make([]byte, size)
	for i := range body {
		body[i] = byte(len(key)*31 + i*7 + int(key[i%len(key)]))
	}
	f, err := gcPutBody(context.Background(), store, key, kind, 101, body)
	require.NoError(t, err)
	return f
}

// gcListAll lists every object under prefix: key → size.
func gcListAll(t testing.TB, store objstore.Store, prefix string) map[string]int64 {
	t.Helper()
	out, err := gcList(context.Background(), store, prefix)
	require.NoError(t, err)
	return out
}

func gcList(ctx context.Context, store objstore.Store, prefix string) (map[string]int64, error) {
	out := map[string]int64{}
	token := ""
	for {
		page, err := store.List(ctx, prefix, token, 1000)
		if err != nil {
			return nil, err
		}
		for _, o := range page.Objects {
			out[o.Key] = o.Size
		}
		if page.NextToken == "" {
			return out, nil
		}
		token = page.NextToken
	}
}

// gcPortHold keeps a stopped node's addresses bound until it restarts. Other nodes
// keep dialing a stopped node and the clients open connections all the time; a port
// of the ephemeral range left free for a while is soon taken as some connection's
// local port, and the node then cannot restart ("address already in use").
type gcPortHold struct {
	lns []net.Listener
	wg  sync.WaitGroup
}

func gcHoldPorts(t testing.TB, addrs ...string) *gcPortHold {
	t.Helper()
	h := &gcPortHold{}
	for _, addr := range addrs {
		var ln net.Listener
		var err error
		for attempt := 0; attempt < 50; attempt++ {
			if ln, err = net.Listen("tcp", addr); err == nil {
				break
			}
			time.Sleep(20 * time.Millisecond)
		}
		require.NoError(t, err, "hold %s", addr)
		h.lns = append(h.lns, ln)
		h.wg.Add(1)
		go func() {
			defer h.wg.Done()
			for {
				conn, err := ln.Accept()
				if err != nil {
					return
				}
				conn.Close()
			}
		}()
	}
	t.Cleanup(h.release)
	return h
}

func (h *gcPortHold) release() {
	if h == nil {
		return
	}
	for _, ln := range h.lns {
		ln.Close()
	}
	h.lns = nil
	h.wg.Wait()
}

// gcRunOpt is a run with both grace periods 0: everything reclaimable goes at once.
func gcRunOpt() *client.GCRunOption {
	return client.NewGCRunOption().WithGrace(0).WithOrphanGrace(0)
}

// gcRun runs a collection, retrying while the leader changes, and checks that it
// completed without errors.
func gcRun(t testing.TB, cl *client.Client, opt *client.GCRunOption) *pb.GCRunResponse {
	t.Helper()
	var resp *pb.GCRunResponse
	var err error
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		resp, err = cl.GCRun(ctx, opt)
		cancel()
		if err == nil || !(errors.Is(err, client.ErrUnavailable) || errors.Is(err, client.ErrDeadlineExceeded) || errors.Is(err, client.ErrCanceled)) {
			break
		}
		t.Logf("GC run failed (retrying): %v", err)
		time.Sleep(100 * time.Millisecond)
	}
	require.NoError(t, err)
	require.Zero(t, resp.Report.ErrorCount, "GC run reported errors: %v", resp.Report.Errors)
	require.False(t, resp.CandidatesCut)
	return resp
}

func gcCandidateKeys(resp *pb.GCRunResponse) []string {
	keys := make([]string, 0, len(resp.Candidates))
	for _, c := range resp.Candidates {
		keys = append(keys, c.Key)
	}
	return keys
}

// gcObjectsByReason sums a report's deleted objects by reason, leaving out reasons
// without objects.
func gcObjectsByReason(rep *pb.GCReport) map[string]uint64 {
	out := map[string]uint64{}
	for _, c := range rep.Deleted {
		if c.Objects > 0 {
			out[c.Reason] += c.Objects
		}
	}
	return out
}

// gcRequireExist checks that every key exists with its size.
func gcRequireExist(t testing.TB, listing map[string]int64, want map[string]int64, what string) {
	t.Helper()
	var missing []string
	for _, k := range slices.Sorted(maps.Keys(want)) {
		if size, ok := listing[k]; !ok || size != want[k] {
			missing = append(missing, fmt.Sprintf("%s (want %d bytes, present %v with %d)", k, want[k], ok, size))
		}
	}
	require.Empty(t, missing, "%s: objects lost", what)
}

// gcFileMap maps a segment's (and its ready builds') file keys to sizes.
func gcFileMap(segs ...*pb.Segment) map[string]int64 {
	out := map[string]int64{}
	for _, s := range segs {
		for _, f := range s.Files {
			out[f.Key] = int64(f.Size)
		}
		for _, b := range s.IndexBuilds {
			if b.State == pb.IndexBuildState_INDEX_BUILD_STATE_READY {
				for _, f := range b.Files {
					out[f.Key] = int64(f.Size)
				}
			}
		}
	}
	return out
}

// gcManifestFiles reads a committed snapshot's manifest from the bucket and returns
// every file it names (segment and index build files), with sizes, as full keys.
func gcManifestFiles(ctx context.Context, store objstore.Store, snap *pb.Snapshot) (map[string]int64, map[uint64]bool, map[uint64]bool, error) {
	info, err := store.Head(ctx, snap.ManifestKey)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("manifest %s: %w", snap.ManifestKey, err)
	}
	rd, err := manifest.Open(objstore.NewReaderAt(ctx, store, snap.ManifestKey, info.Size), info.Size)
	if err != nil {
		return nil, nil, nil, err
	}
	files, segs, builds := map[string]int64{}, map[uint64]bool{}, map[uint64]bool{}
	err = rd.Segments(ctx, manifest.ReadOptions{}, func(s *manifest.Segment) error {
		segs[s.ID] = true
		for _, b := range s.IndexBuilds {
			builds[b.BuildID] = true
		}
		return rd.Files(s, func(key string, e filelist.Entry) bool {
			files[gcRoot+key] = int64(e.Size)
			return true
		})
	})
	return files, segs, builds, err
}

// gcAddBuild allocates a build of index "vec" on a flushed segment, uploads files
// under its prefix and completes it.
func gcAddBuild(t testing.TB, cl *client.Client, store objstore.Store, segID uint64, files int) *pb.IndexBuild {
	t.Helper()
	ctx := context.Background()
	resp, err := cl.AllocateIndexBuild(ctx, client.NewAllocateIndexBuildOption(segID, "vec"))
	require.NoError(t, err)
	var fs []*pb.File
	for i := 0; i < files; i++ {
		fs = append(fs, gcPut(t, store, fmt.Sprintf("%sHNSW_%d", resp.Build.Prefix, i), pb.FileKind_FILE_KIND_INDEX, 40+i))
	}
	seg, err := cl.AddIndexBuild(ctx, client.NewAddIndexBuildOption(segID, resp.Build.BuildId).WithFiles(fs...))
	require.NoError(t, err)
	for _, b := range seg.IndexBuilds {
		if b.BuildId == resp.Build.BuildId {
			return b
		}
	}
	t.Fatalf("build %d missing from segment %d", resp.Build.BuildId, segID)
	return nil
}

func gcGenerate(t testing.TB, c *servertest.Cluster, cl *client.Client, coll string, segments, files int, seed int64) []*pb.Segment {
	t.Helper()
	ctx := context.Background()
	res, err := datagen.Generate(ctx, cl, c.Bucket.Store, datagen.Options{Collection: coll, Segments: segments,
		FilesPerSegment: files, FileSize: 16, Seed: seed, Concurrency: 16, RowsPerSegment: 10})
	require.NoError(t, err)
	out := make([]*pb.Segment, 0, len(res.SegmentIDs))
	for _, id := range res.SegmentIDs {
		s, err := cl.GetSegment(ctx, client.NewGetSegmentOption(id))
		require.NoError(t, err)
		out = append(out, s)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Id < out[j].Id })
	return out
}

func gcIDs(segs []*pb.Segment) []uint64 {
	ids := make([]uint64, len(segs))
	for i, s := range segs {
		ids[i] = s.Id
	}
	return ids
}

func gcRequireSegmentGone(t testing.TB, cl *client.Client, ids ...uint64) {
	t.Helper()
	for _, id := range ids {
		_, err := cl.GetSegment(context.Background(), client.NewGetSegmentOption(id))
		require.True(t, errors.Is(err, client.ErrNotFound), "segment %d's record stayed: %v", id, err)
	}
}

// TestGCNeverDeletesAnUploadInFlight: the files of a segment being written (allocated,
// uploaded, not flushed) and of an index build being written survive collections with
// both grace periods 0 and the orphan scan — the strictest setting — before and after
// they are registered; once dropped they go, records and all.
func TestGCNeverDeletesAnUploadInFlight(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl := gcClient(t, c)
	ctx := context.Background()
	store := c.Bucket.Store
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	_, err = cl.CreateIndex(ctx, client.NewCreateIndexOption("docs", "vec", 101))
	require.NoError(t, err)

	// A segment being written: a long lease, four files uploaded, no flush.
	seg, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs").WithLease(time.Hour))
	require.NoError(t, err)
	segFiles := []*pb.File{
		gcPut(t, store, seg.Prefix+"insert/101/1", pb.FileKind_FILE_KIND_INSERT, 100),
		gcPut(t, store, seg.Prefix+"insert/102/2", pb.FileKind_FILE_KIND_INSERT, 101),
		gcPut(t, store, seg.Prefix+"delta/3", pb.FileKind_FILE_KIND_DELTA, 20),
		gcPut(t, store, seg.Prefix+"stats/100/4", pb.FileKind_FILE_KIND_STATS, 30),
	}
	// A flushed segment with an index build being written.
	host := gcGenerate(t, c, cl, "docs", 1, 2, 1)[0]
	build, err := cl.AllocateIndexBuild(ctx, client.NewAllocateIndexBuildOption(host.Id, "vec").WithLease(time.Hour))
	require.NoError(t, err)
	buildFiles := []*pb.File{
		gcPut(t, store, build.Build.Prefix+"HNSW_0", pb.FileKind_FILE_KIND_INDEX, 64),
		gcPut(t, store, build.Build.Prefix+"HNSW_1", pb.FileKind_FILE_KIND_INDEX, 65),
	}
	inFlight := gcFileMap(&pb.Segment{Files: append(slices.Clone(segFiles), buildFiles...)})
	hostFiles := gcFileMap(host)
	// Make the uploads older than any orphan grace could protect (Last-Modified has
	// one-second precision).
	time.Sleep(1100 * time.Millisecond)

	collect := func(stage string) {
		t.Helper()
		dry := gcRun(t, cl, gcRunOpt().WithDryRun())
		require.Empty(t, dry.Candidates, "%s: the dry run would delete something", stage)
		run := gcRun(t, cl, gcRunOpt())
		require.Empty(t, run.Candidates, "%s: the run deleted something", stage)
		require.Zero(t, run.Report.ObjectsDeleted, stage)
		require.True(t, run.Report.OrphanScan)
		require.GreaterOrEqual(t, run.Report.ObjectsScanned, uint64(len(inFlight)+len(hostFiles)))
		listing := gcListAll(t, store, gcRoot)
		gcRequireExist(t, listing, inFlight, stage)
		gcRequireExist(t, listing, hostFiles, stage)
	}
	collect("uploads in flight")

	_, err = cl.FlushSegment(ctx, client.NewFlushSegmentOption(seg.Id).WithRowCount(10).WithFiles(segFiles...))
	require.NoError(t, err)
	_, err = cl.AddIndexBuild(ctx, client.NewAddIndexBuildOption(host.Id, build.Build.BuildId).WithFiles(buildFiles...))
	require.NoError(t, err)
	collect("registered")

	// Dropped (the segment; the build with its index), they go.
	_, err = cl.DropSegments(ctx, client.NewDropSegmentsOption(seg.Id))
	require.NoError(t, err)
	_, err = cl.DropIndex(ctx, client.NewDropIndexOption("docs", "vec"))
	require.NoError(t, err)
	run := gcRun(t, cl, gcRunOpt())
	require.Equal(t, slices.Sorted(maps.Keys(inFlight)), gcCandidateKeys(run))
	require.EqualValues(t, len(inFlight), run.Report.ObjectsDeleted)
	listing := gcListAll(t, store, gcRoot)
	for k := range inFlight {
		require.NotContains(t, listing, k)
	}
	require.Equal(t, hostFiles, listing, "only the host segment's files remain")
	gcRequireSegmentGone(t, cl, seg.Id)
	got, err := cl.GetSegment(ctx, client.NewGetSegmentOption(host.Id))
	require.NoError(t, err)
	require.Empty(t, got.IndexBuilds, "the dropped build's record is gone")
}

// gcHalt makes the current leader's object store hang in the middle of a GC run's
// deletes, as a node dying there would: a number of delete batches go through, the
// next one deletes half of its keys, and from then on every delete on that node hangs
// until the node stops (its context ends) and then fails.
type gcHalt struct {
	mu          sync.Mutex
	node        int // the node whose deletes halt; -1: none
	fullBatches int
	calls       int
	halted      chan struct{}
	haltOnce    sync.Once
}

type gcHaltingStore struct {
	objstore.Store
	node int
	h    *gcHalt
}

func (s *gcHaltingStore) Delete(ctx context.Context, keys []string) (objstore.DeleteResult, error) {
	s.h.mu.Lock()
	if s.h.node != s.node {
		s.h.mu.Unlock()
		return s.Store.Delete(ctx, keys)
	}
	s.h.calls++
	call := s.h.calls
	s.h.mu.Unlock()
	if call <= s.h.fullBatches {
		return s.Store.Delete(ctx, keys)
	}
	if call == s.h.fullBatches+1 {
		if _, err := s.Store.Delete(ctx, keys[:len(keys)/2]); err != nil {
			return objstore.DeleteResult{}, err
		}
	}
	s.h.haltOnce.Do(func() { close(s.h.halted) })
	<-ctx.Done()
	return objstore.DeleteResult{}, ctx.Err()
}

// TestGCLeaderKilledMidRun stops the leader half-way through a collection's deletes
// (a batch gone, the next half gone, the node hanging): the next leader's periodic
// collection finishes the job — every reclaimable object and record goes — and
// nothing a live segment or a snapshot refers to is lost, before or after.
func TestGCLeaderKilledMidRun(t *testing.T) {
	h := &gcHalt{node: -1, fullBatches: 1, halted: make(chan struct{})}
	c := servertest.Start(t, 3, servertest.Options{Configure: func(i int, cfg *server.Config) {
		cfg.Store = &gcHaltingStore{Store: cfg.Store, node: i, h: h}
		cfg.GCGrace = time.Millisecond // the periodic collection reclaims at once
		cfg.GCConcurrency = 1          // batches in order: the halt comes at a known point
	}})
	cl := gcClient(t, c)
	ctx := context.Background()
	store := c.Bucket.Store
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	_, err = cl.CreateIndex(ctx, client.NewCreateIndexOption("docs", "vec", 101))
	require.NoError(t, err)

	// Live and pinned segments, captured by a snapshot; then the garbage-to-be.
	early := gcGenerate(t, c, cl, "docs", 20, 8, 1)
	live, pinned := early[:10], early[10:]
	gcAddBuild(t, cl, store, pinned[0].Id, 2)
	gcAddBuild(t, cl, store, live[0].Id, 2)
	snap, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "pin"))
	require.NoError(t, err)
	pinnedFiles, _, _, err := gcManifestFiles(ctx, store, snap)
	require.NoError(t, err)
	require.Len(t, pinnedFiles, 20*8+4)
	garbage := gcGenerate(t, c, cl, "docs", 150, 8, 2)
	garbageFiles := gcFileMap(garbage...)
	require.Len(t, garbageFiles, 1200, "two delete batches' worth")
	refreshLive := func() map[string]int64 {
		var segs []*pb.Segment
		for _, s := range live {
			got, err := cl.GetSegment(ctx, client.NewGetSegmentOption(s.Id))
			require.NoError(t, err)
			segs = append(segs, got)
		}
		return gcFileMap(segs...)
	}
	liveFiles := refreshLive()
	protected := maps.Clone(pinnedFiles)
	maps.Copy(protected, liveFiles)
	protected[snap.ManifestKey] = int64(snap.ManifestSize)

	leader := c.Leader()
	h.mu.Lock()
	h.node = leader
	h.mu.Unlock()
	_, err = cl.DropSegments(ctx, client.NewDropSegmentsOption(append(gcIDs(garbage), gcIDs(pinned)...)...))
	require.NoError(t, err)
	select {
	case <-h.halted:
	case <-time.After(30 * time.Second):
		t.Fatal("the leader's periodic collection never reached its second delete batch")
	}
	listing := gcListAll(t, store, gcRoot)
	left := 0
	for k := range garbageFiles {
		if _, ok := listing[k]; ok {
			left++
		}
	}
	t.Logf("the leader (node %d) halted with %d of %d reclaimable objects deleted", leader, len(garbageFiles)-left, len(garbageFiles))
	require.Equal(t, 100, left, "one batch of 1,000 and half of the next 200 went before the halt")
	gcRequireExist(t, listing, protected, "at the halt")

	c.Stop(leader)
	h.mu.Lock()
	h.node = -1
	h.mu.Unlock()

	// The next leader's periodic collection finishes: objects, then records.
	require.Eventually(t, func() bool {
		listing := gcListAll(t, store, gcRoot)
		for k := range garbageFiles {
			if _, ok := listing[k]; ok {
				return false
			}
		}
		for _, s := range garbage {
			if _, err := cl.GetSegment(ctx, client.NewGetSegmentOption(s.Id)); !errors.Is(err, client.ErrNotFound) {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "the next leader did not finish the collection")
	listing = gcListAll(t, store, gcRoot)
	gcRequireExist(t, listing, protected, "after the next leader's collection")
	for _, s := range pinned {
		got, err := cl.GetSegment(ctx, client.NewGetSegmentOption(s.Id))
		require.NoError(t, err, "a pinned segment's record stays")
		require.Equal(t, pb.SegmentState_SEGMENT_STATE_DROPPED, got.State)
	}
	require.Equal(t, liveFiles, refreshLive(), "live segments are untouched")

	c.Restart(leader)
	c.WaitConverged()

	// The snapshot's drop releases the pinned segments: they go too; live ones stay.
	_, err = cl.DropSnapshot(ctx, client.NewDropSnapshotOption("docs", "pin"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		listing := gcListAll(t, store, gcRoot)
		for k := range pinnedFiles {
			if _, ok := liveFiles[k]; !ok {
				if _, ok := listing[k]; ok {
					return false
				}
			}
		}
		if _, ok := listing[snap.ManifestKey]; ok {
			return false
		}
		// Records go after their objects, in the same run.
		for _, s := range pinned {
			if _, err := cl.GetSegment(ctx, client.NewGetSegmentOption(s.Id)); !errors.Is(err, client.ErrNotFound) {
				return false
			}
		}
		return true
	}, 30*time.Second, 100*time.Millisecond, "the unpinned segments were not reclaimed")
	gcRequireSegmentGone(t, cl, gcIDs(pinned)...)
	listing = gcListAll(t, store, gcRoot)
	require.Equal(t, liveFiles, listing, "exactly the live segments' files remain")
	c.WaitConverged()
}

// TestGCDryRunListsExactlyWhatTheRunDeletes builds every kind of garbage next to data
// that must stay, then runs a dry collection and a real one (both grace periods 0, the
// orphan scan on): the dry run deletes nothing, and its candidates are exactly the keys
// the real run deletes — and exactly the objects that disappear from the bucket.
// Objects outside the root are never touched.
func TestGCDryRunListsExactlyWhatTheRunDeletes(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.GCDisabled = true // only the test's runs delete (a dropped snapshot's manifest would go at once)
		cfg.RestoreBatch = 4
		cfg.RestoreLease = 10 * time.Second
		cfg.Failpoints = slowReportFailpoints(200 * time.Millisecond)
	}})
	cl := gcClient(t, c)
	ctx := context.Background()
	store := c.Bucket.Store
	docs, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	_, err = cl.CreateIndex(ctx, client.NewCreateIndexOption("docs", "vec", 101))
	require.NoError(t, err)
	get := func(id uint64) *pb.Segment {
		s, err := cl.GetSegment(ctx, client.NewGetSegmentOption(id))
		require.NoError(t, err)
		return s
	}

	// Captured by snapshot "keep": six segments, two with index builds; one of them is
	// dropped afterwards and the index too (pinned: they stay).
	kept := gcGenerate(t, c, cl, "docs", 6, 4, 1)
	gcAddBuild(t, cl, store, kept[0].Id, 2)
	gcAddBuild(t, cl, store, kept[1].Id, 1)
	keep, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "keep"))
	require.NoError(t, err)
	keepFiles, _, _, err := gcManifestFiles(ctx, store, keep)
	require.NoError(t, err)
	_, err = cl.DropSegments(ctx, client.NewDropSegmentsOption(kept[2].Id))
	require.NoError(t, err)

	// Compacted inputs and a user-dropped segment.
	later := gcGenerate(t, c, cl, "docs", 4, 3, 2)
	out, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs"))
	require.NoError(t, err)
	_, err = cl.CompactSegments(ctx, client.NewCompactSegmentsOption(later[0].Id, later[1].Id).
		WithOutput(out.Id, 20, gcPut(t, store, out.Prefix+"insert/101/1", pb.FileKind_FILE_KIND_INSERT, 50),
			gcPut(t, store, out.Prefix+"stats/100/2", pb.FileKind_FILE_KIND_STATS, 10)))
	require.NoError(t, err)
	_, err = cl.DropSegments(ctx, client.NewDropSegmentsOption(later[2].Id))
	require.NoError(t, err)

	// Index builds: one dropped with its index (later[3]), one superseded (out).
	gcAddBuild(t, cl, store, later[3].Id, 2)
	_, err = cl.DropIndex(ctx, client.NewDropIndexOption("docs", "vec"))
	require.NoError(t, err)
	_, err = cl.CreateIndex(ctx, client.NewCreateIndexOption("docs", "vec", 101))
	require.NoError(t, err)
	gcAddBuild(t, cl, store, out.Id, 2)
	gcAddBuild(t, cl, store, out.Id, 1)

	// A dropped snapshot's manifest.
	gone, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "gone"))
	require.NoError(t, err)
	_, err = cl.DropSnapshot(ctx, client.NewDropSnapshotOption("docs", "gone"))
	require.NoError(t, err)

	// An allocation and an index build whose leases expire, with their uploads.
	expired, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs").WithLease(time.Second))
	require.NoError(t, err)
	gcPut(t, store, expired.Prefix+"insert/101/1", pb.FileKind_FILE_KIND_INSERT, 33)
	gcPut(t, store, expired.Prefix+"delta/2", pb.FileKind_FILE_KIND_DELTA, 34)
	expiredBuild, err := cl.AllocateIndexBuild(ctx, client.NewAllocateIndexBuildOption(kept[4].Id, "vec").WithLease(time.Second))
	require.NoError(t, err)
	gcPut(t, store, expiredBuild.Build.Prefix+"HNSW_0", pb.FileKind_FILE_KIND_INDEX, 35)

	// An upload in flight (protected by its lease).
	writing, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs").WithLease(time.Hour))
	require.NoError(t, err)
	writingFiles := gcFileMap(&pb.Segment{Files: []*pb.File{
		gcPut(t, store, writing.Prefix+"insert/101/1", pb.FileKind_FILE_KIND_INSERT, 36),
		gcPut(t, store, writing.Prefix+"insert/101/2", pb.FileKind_FILE_KIND_INSERT, 37),
	}})

	// A cancelled restore's partial copy.
	job, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "keep", "copy"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		j, err := cl.GetRestoreState(ctx, job.JobId)
		return err == nil && j.FilesDone > 0
	}, 30*time.Second, 10*time.Millisecond)
	cancelled, err := cl.CancelRestore(ctx, client.NewCancelRestoreOption(job.JobId))
	require.NoError(t, err)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_CANCELLED, cancelled.State)
	copyPrefix := gcRoot + layout.SegmentsPrefix(cancelled.TargetCollectionId)
	// Copies in flight at the cancel land within a moment; wait until none changes.
	var copies map[string]int64
	require.Eventually(t, func() bool {
		prev := copies
		copies = gcListAll(t, store, copyPrefix)
		return prev != nil && len(copies) > 0 && maps.Equal(prev, copies)
	}, 20*time.Second, 700*time.Millisecond)

	// A dropped collection (its segments and, once they are gone, its record).
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("tmp"))
	require.NoError(t, err)
	gcGenerate(t, c, cl, "tmp", 2, 2, 3)
	_, err = cl.DropCollection(ctx, client.NewDropCollectionOption("tmp"))
	require.NoError(t, err)

	// Orphans in snapkeep's namespaces under the root; objects elsewhere under the root
	// (another system's, a Milvus layout's) and outside it, which are never orphans.
	extra := get(kept[3].Id).Prefix + "insert/101/999" // not in its live segment's file list
	orphans := map[string]int64{}
	for _, k := range []string{
		gcRoot + "collections/junk/a.bin",
		gcRoot + layout.SnapkeepSegmentPrefix(docs.Id, 999999999) + "insert/101/1",
		gcRoot + "snapshots/999999999.skm",
		extra,
		get(kept[3].Id).Prefix + "index/999999999/HNSW_0",
	} {
		orphans[k] = int64(gcPut(t, store, k, pb.FileKind_FILE_KIND_INSERT, 7).Size)
	}
	outside := map[string]int64{}
	for _, k := range []string{"outside/a", "snapkeep-other/b", "snapkeep", gcRoot + "junk/a.bin", gcRoot + "insert_log/1/2/3/100/1", gcRoot + "part_stats/1/2"} {
		outside[k] = int64(gcPut(t, store, k, pb.FileKind_FILE_KIND_INSERT, 9).Size)
	}
	require.Eventually(t, func() bool {
		a, b := get(expired.Id), get(kept[4].Id)
		return a.State == pb.SegmentState_SEGMENT_STATE_DROPPED && b.IndexBuilds[len(b.IndexBuilds)-1].State == pb.IndexBuildState_INDEX_BUILD_STATE_DROPPED
	}, 10*time.Second, 50*time.Millisecond, "the leases did not expire")

	// What must stay: the snapshot's files and manifest, live segments, the upload in
	// flight.
	protected := maps.Clone(keepFiles)
	protected[keep.ManifestKey] = int64(keep.ManifestSize)
	maps.Copy(protected, writingFiles)
	for s, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption("docs").WithStates(pb.SegmentState_SEGMENT_STATE_FLUSHED)) {
		require.NoError(t, err)
		maps.Copy(protected, gcFileMap(s))
	}
	time.Sleep(1100 * time.Millisecond) // Last-Modified has one-second precision

	before := gcListAll(t, store, "")
	gcRequireExist(t, before, protected, "before")
	dry := gcRun(t, cl, gcRunOpt().WithDryRun())
	require.True(t, dry.Report.DryRun)
	require.Equal(t, before, gcListAll(t, store, ""), "the dry run deleted nothing")
	reasons := map[string]int{}
	for _, cand := range dry.Candidates {
		reasons[cand.Reason]++
		_, isProtected := protected[cand.Key]
		require.False(t, isProtected, "the dry run would delete %s (%s, %s)", cand.Key, cand.Reason, cand.Owner)
	}
	t.Logf("dry run: %d candidates by reason %v", len(dry.Candidates), reasons)
	for _, r := range []string{"dropped segment", "compacted segment", "expired allocation", "failed or cancelled restore",
		fsm.ReasonDroppedBuild, fsm.ReasonSnapshotManifest, fsm.ReasonOrphan} {
		require.Positive(t, reasons[r], "no candidate of reason %q", r)
	}
	require.Equal(t, len(orphans), reasons[fsm.ReasonOrphan])
	require.Equal(t, len(copies), reasons["failed or cancelled restore"], "every partial copy")
	dryKeys := gcCandidateKeys(dry)
	require.True(t, slices.IsSorted(dryKeys))
	require.Contains(t, dryKeys, gone.ManifestKey)
	require.EqualValues(t, len(dryKeys), dry.Report.ObjectsDeleted, "the dry run's report counts what it would delete")

	run := gcRun(t, cl, gcRunOpt())
	require.False(t, run.Report.DryRun)
	require.Equal(t, dryKeys, gcCandidateKeys(run), "the run deleted exactly the dry run's candidates")
	require.Equal(t, gcObjectsByReason(dry.Report), gcObjectsByReason(run.Report))
	require.EqualValues(t, len(dryKeys), run.Report.ObjectsDeleted)
	after := gcListAll(t, store, "")
	var removed []string
	for k := range before {
		if _, ok := after[k]; !ok {
			removed = append(removed, k)
		}
	}
	for k := range after {
		require.Contains(t, before, k, "an object appeared during the run")
	}
	slices.Sort(removed)
	require.Equal(t, dryKeys, removed, "the objects that disappeared are exactly the candidates")
	gcRequireExist(t, after, protected, "after the run")
	gcRequireExist(t, after, outside, "outside the root")

	// And the records went with their objects.
	gcRequireSegmentGone(t, cl, later[0].Id, later[1].Id, later[2].Id, expired.Id)
	_, err = cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotByIDOption(gone.Id))
	require.True(t, errors.Is(err, client.ErrNotFound), "%v", err)
	require.Len(t, get(later[3].Id).IndexBuilds, 0)
	require.Len(t, get(out.Id).IndexBuilds, 1, "the superseded build's record is gone")
	require.Len(t, get(kept[0].Id).IndexBuilds, 1, "the pinned build's record stays")

	// Nothing is left to collect.
	again := gcRun(t, cl, gcRunOpt().WithDryRun())
	require.Empty(t, again.Candidates)
}

// TestGCRestoreTargetCannotBeDroppedMidRestore: the model test found that a running
// restore's target segments could be dropped by hand (DropSegments, or DropPartition
// on the RESTORING collection); the collector then reclaimed the copies and the
// segment's record, and the job never ended. The FSM now refuses to change a
// collection being restored; the restore completes after a GC run.
func TestGCRestoreTargetCannotBeDroppedMidRestore(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.RestoreBatch = 2
		cfg.RestoreLease = 2 * time.Second
		cfg.Failpoints = slowReportFailpoints(300 * time.Millisecond)
	}})
	cl := gcClient(t, c)
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs").WithPartitions("p1"))
	require.NoError(t, err)
	gcGenerate(t, c, cl, "docs", 4, 3, 1)
	_, err = datagen.Generate(ctx, cl, c.Bucket.Store, datagen.Options{Collection: "docs", Partition: "p1", Segments: 2, FilesPerSegment: 2, FileSize: 16})
	require.NoError(t, err)
	_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "snap"))
	require.NoError(t, err)
	job, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy"))
	require.NoError(t, err)
	require.Eventually(t, func() bool {
		j, err := cl.GetRestoreState(ctx, job.JobId)
		return err == nil && j.FilesDone > 0
	}, 30*time.Second, 10*time.Millisecond)
	var target uint64
	for s, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption("copy")) {
		require.NoError(t, err)
		target = s.Id
		break
	}
	_, err = cl.DropPartition(ctx, client.NewDropPartitionOption("copy", "p1"))
	require.True(t, errors.Is(err, client.ErrFailedPrecondition), "a partition of a collection being restored is dropped: %v", err)
	_, err = cl.DropSegments(ctx, client.NewDropSegmentsOption(target))
	require.True(t, errors.Is(err, client.ErrFailedPrecondition), "a running restore's target segment %d is dropped: %v", target, err)
	gcRun(t, cl, gcRunOpt())
	var j *pb.RestoreJob
	require.Eventually(t, func() bool {
		j, err = cl.GetRestoreState(ctx, job.JobId)
		return err == nil && j.State == pb.RestoreState_RESTORE_STATE_COMPLETED
	}, 30*time.Second, 50*time.Millisecond, "the restore did not complete")
}

// TestSyncSnapshotThroughFollower: the model test found that a synchronous
// CreateSnapshot served by a follower failed with "snapshot N was removed before it
// was committed": the follower forwarded SnapshotBegin and looked the snapshot up
// before applying that entry. A forwarded write now returns once the follower has
// applied it (read your writes).
func TestSyncSnapshotThroughFollower(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl := gcClient(t, c)
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	conn, err := grpc.NewClient(c.Nodes[c.Follower()].GRPCAddr(), grpc.WithTransportCredentials(insecure.NewCredentials()))
	require.NoError(t, err)
	defer conn.Close()
	snaps := pb.NewSnapshotsClient(conn)
	for i := 0; i < 10; i++ {
		_, err := snaps.CreateSnapshot(ctx, &pb.CreateSnapshotRequest{RequestId: fmt.Sprint("req", i), Collection: "docs", Name: fmt.Sprint("s", i)})
		require.NoError(t, err, "snapshot %d through a follower", i)
	}
}
