package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"maps"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// The demo's fixed inputs: the same on every run, so every run does the same thing.
const (
	demoCollection      = "demo_docs"
	demoIndex           = "embedding_hnsw"
	demoSeed            = 42
	demoFilesPerSegment = 4
	demoFileSize        = 64 << 10
	demoRowsPerSegment  = 2048
	demoSnapshot        = "demo_nightly"
	demoRestored        = "demo_docs_restored"
	demoMilvus          = "demo_milvus"
	demoMilvusRestored  = "demo_milvus_restored"
	demoPolicy          = "demo-every-1s"
	demoPolicyTemplate  = "demo-{2006.01.02-15.04.05}"
	demoPolicyEvery     = time.Second
	// demoPolicyWait bounds each wait for the policy: its scheduled snapshots come
	// every second and the retention looks every second.
	demoPolicyWait = 30 * time.Second
)

// demoPartitions receive the generated segments, this many each.
var demoPartitions = []struct {
	name     string
	segments int
}{
	{"recent", 4},
	{"archive", 2},
}

// demoSchema stands in for a Milvus collection schema; snapkeep stores it opaquely.
const demoSchema = `{"fields":[` +
	`{"id":100,"name":"id","type":"Int64","primary_key":true},` +
	`{"id":101,"name":"embedding","type":"FloatVector","dim":768},` +
	`{"id":102,"name":"title","type":"VarChar","max_length":512},` +
	`{"id":103,"name":"body","type":"VarChar","max_length":65535}]}`

// runDemo runs the demo scenario against a cluster and its bucket, writing what it
// does to out: it creates a collection with partitions and an index definition,
// generates segments, verifies them by reading them back, snapshots the collection,
// compacts two segments into a new one, drops another, prints the resulting catalog,
// shows that the snapshot still describes (and protects) the original files, and
// restores it into a new collection whose files it checks against the originals;
// then it makes garbage the snapshot does not need and collects it; last, a policy
// snapshots the collection every second and its retention expires the oldest. It returns
// the first failure. `snapkeep dev --demo` calls it.
func runDemo(ctx context.Context, cl *client.Client, store objstore.Store, out io.Writer) error {
	d := &demo{cl: cl, store: store, out: out}
	steps := []struct {
		name string
		run  func(context.Context) error
	}{
		{"create collection " + demoCollection, d.createCollection},
		{"define index " + demoIndex, d.defineIndex},
		{"generate segments", d.generate},
		{"verify segments against the bucket", d.verify},
		{"snapshot the collection as " + demoSnapshot, d.snapshot},
		{"compact two segments into one", d.compact},
		{"drop a segment", d.drop},
		{"show the catalog", d.showCatalog},
		{"check that the snapshot still describes the original files", d.checkSnapshot},
		{"restore the snapshot into " + demoRestored, d.restore},
		{"more churn after the snapshot", d.churn},
		{"collect garbage", d.collectGarbage},
		{"a Milvus-layout collection next to it: " + demoMilvus, d.milvusLayout},
		{"a policy: " + demoCollection + " snapshotted every 1s, the retention keeps 1", d.policy},
	}
	start := time.Now()
	for _, step := range steps {
		fmt.Fprintf(out, "\n==> %s\n", step.name)
		if err := step.run(ctx); err != nil {
			return fmt.Errorf("demo step %q: %w", step.name, err)
		}
	}
	fmt.Fprintf(out, "\nDemo finished in %s.\n", time.Since(start).Round(time.Millisecond))
	return nil
}

// demo carries state from one step to the next.
type demo struct {
	cl    *client.Client
	store objstore.Store
	out   io.Writer

	generated   []uint64   // flushed by the generate step, in order
	byPartition [][]uint64 // the generated segments of each of demoPartitions
	compacted   uint64     // the compaction's output segment

	snap     *snapkeepv1.Snapshot           // the snapshot taken before compacting
	captured map[uint64]*snapkeepv1.Segment // the segments as the snapshot captured them
	garbage  []*snapkeepv1.Segment          // segments dropped after the snapshot: GC reclaims them
}

func (d *demo) createCollection(ctx context.Context) error {
	// A dev cluster may keep data between runs: start from a clean collection.
	if desc, err := d.cl.DescribeCollection(ctx, client.NewDescribeCollectionOption(demoCollection)); err == nil && !isDropped(desc.GetCollection()) {
		if _, err := d.cl.DropCollection(ctx, client.NewDropCollectionOption(demoCollection)); err != nil {
			return fmt.Errorf("drop the collection left by an earlier run: %w", err)
		}
		fmt.Fprintf(d.out, "dropped %s left by an earlier run\n", demoCollection)
	} else if err != nil && !errors.Is(err, client.ErrNotFound) {
		return err
	}
	opt := client.NewCreateCollectionOption(demoCollection).
		WithSchema([]byte(demoSchema)).
		WithDescription("documents with embeddings, written by the snapkeep demo").
		WithProperty("collection.ttl.seconds", "0").
		WithProperty("mmap.enabled", "true")
	for _, p := range demoPartitions {
		opt.WithPartitions(p.name)
	}
	coll, err := d.cl.CreateCollection(ctx, opt)
	if err != nil {
		return err
	}
	names := make([]string, 0, len(coll.GetPartitions()))
	for _, p := range coll.GetPartitions() {
		names = append(names, p.GetName())
	}
	fmt.Fprintf(d.out, "created collection %s (id %d) with partitions %q\n", coll.GetName(), coll.GetId(), names)
	return nil
}

func (d *demo) defineIndex(ctx context.Context) error {
	coll, err := d.cl.CreateIndex(ctx, client.NewCreateIndexOption(demoCollection, demoIndex, 101).
		WithParam("index_type", "HNSW").WithParam("metric_type", "COSINE").
		WithParam("M", "16").WithParam("efConstruction", "200"))
	if err != nil {
		return err
	}
	i := slices.IndexFunc(coll.GetIndexes(), func(idx *snapkeepv1.Index) bool { return idx.GetName() == demoIndex })
	if i < 0 {
		return fmt.Errorf("the collection returned by CreateIndex has no index %q", demoIndex)
	}
	idx := coll.GetIndexes()[i]
	fmt.Fprintf(d.out, "defined index %s (id %d) on field %d: %s\n", idx.GetName(), idx.GetId(), idx.GetFieldId(), keyValueList(idx.GetParams()))
	return nil
}

func (d *demo) generate(ctx context.Context) error {
	for i, p := range demoPartitions {
		res, err := datagen.Generate(ctx, d.cl, d.store, datagen.Options{
			Collection: demoCollection, Partition: p.name,
			Segments: p.segments, FilesPerSegment: demoFilesPerSegment, FileSize: demoFileSize,
			Seed: demoSeed + int64(i), RowsPerSegment: demoRowsPerSegment, Concurrency: 8,
		})
		if err != nil {
			return err
		}
		// Segments are allocated concurrently, so ids need not follow generation
		// order; sorted, the later steps pick the same segments on every fresh cluster.
		ids := slices.Sorted(slices.Values(res.SegmentIDs))
		d.generated = append(d.generated, ids...)
		d.byPartition = append(d.byPartition, ids)
		fmt.Fprintf(d.out, "partition %-8s %d segments × %d files of %s: segments %s (%s)\n",
			p.name, len(ids), demoFilesPerSegment, humanBytes(demoFileSize), idList(ids), humanBytes(uint64(res.Bytes)))
	}
	return nil
}

// verifySegments reads every file of the segments back and checks size and CRC-32C.
func (d *demo) verifySegments(ctx context.Context, ids []uint64) (files int, err error) {
	for _, id := range ids {
		seg, err := d.cl.GetSegment(ctx, client.NewGetSegmentOption(id))
		if err != nil {
			return files, err
		}
		if err := datagen.Verify(ctx, d.store, seg); err != nil {
			return files, err
		}
		files += len(seg.GetFiles())
	}
	return files, nil
}

func (d *demo) verify(ctx context.Context) error {
	files, err := d.verifySegments(ctx, d.generated)
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "read back %d files of %d segments: sizes and CRC-32C match the catalog\n", files, len(d.generated))
	return nil
}

// snapshot takes a snapshot of the collection and remembers what it should capture:
// every generated segment, as the catalog describes it now.
func (d *demo) snapshot(ctx context.Context) error {
	d.captured = make(map[uint64]*snapkeepv1.Segment)
	for _, id := range d.generated {
		seg, err := d.cl.GetSegment(ctx, client.NewGetSegmentOption(id))
		if err != nil {
			return err
		}
		d.captured[id] = seg
	}
	snap, err := d.cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption(demoCollection, demoSnapshot).
		WithDescription("taken by the demo before compacting and dropping").WithLabel("made-by", "demo"))
	if err != nil {
		return err
	}
	d.snap = snap
	sum := snap.GetSummary()
	fmt.Fprintf(d.out, "snapshot %s (id %d) is %s: %d segments, %d files, %s; manifest %s (%s)\n",
		snap.GetName(), snap.GetId(), enumName(snap.GetState()), sum.GetSegments(), sum.GetFiles(),
		humanBytes(sum.GetBytes()), snap.GetManifestKey(), humanBytes(snap.GetManifestSize()))
	return nil
}

// checkSnapshot reads the snapshot's manifest from the bucket after the compaction and
// the drop, checks that it lists exactly the files captured (keys, sizes, CRC-32C),
// and reads every one of them back.
func (d *demo) checkSnapshot(ctx context.Context) error {
	snap, err := d.cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotOption(demoCollection, demoSnapshot))
	if err != nil {
		return err
	}
	if snap.GetId() != d.snap.GetId() || snap.GetState() != snapkeepv1.SnapshotState_SNAPSHOT_STATE_COMMITTED {
		return fmt.Errorf("snapshot %s is now id %d, %s; want id %d, committed", demoSnapshot, snap.GetId(), enumName(snap.GetState()), d.snap.GetId())
	}
	info, err := d.store.Head(ctx, snap.GetManifestKey())
	if err != nil {
		return fmt.Errorf("manifest: %w", err)
	}
	ra := objstore.NewReaderAt(ctx, d.store, snap.GetManifestKey(), info.Size)
	report, err := manifest.Verify(ra, info.Size)
	if err != nil {
		return err
	}
	if report.Checksum != snap.GetManifestXxhash64() {
		return fmt.Errorf("manifest checksum %016x, but the snapshot recorded %016x", report.Checksum, snap.GetManifestXxhash64())
	}
	rd, err := manifest.Open(ra, info.Size)
	if err != nil {
		return err
	}
	seen := 0
	files := 0
	err = rd.Segments(ctx, manifest.ReadOptions{}, func(ms *manifest.Segment) error {
		want, ok := d.captured[ms.ID]
		if !ok {
			return fmt.Errorf("the manifest lists segment %d, which the snapshot did not capture", ms.ID)
		}
		seen++
		got := &snapkeepv1.Segment{Id: ms.ID, Prefix: want.GetPrefix()}
		err := filelist.ForEach(ms.Files, func(e filelist.Entry) bool {
			got.Files = append(got.Files, &snapkeepv1.File{Key: want.GetPrefix() + e.Key, Kind: snapkeepv1.FileKind(e.Kind),
				FieldId: e.FieldID, Size: e.Size, Crc32C: e.CRC32C})
			return true
		})
		if err != nil {
			return err
		}
		if !sameFiles(got.GetFiles(), want.GetFiles()) {
			return fmt.Errorf("segment %d: the manifest's files differ from the captured ones", ms.ID)
		}
		files += len(got.GetFiles())
		// The objects themselves are all still there, intact.
		return datagen.Verify(ctx, d.store, got)
	})
	if err != nil {
		return err
	}
	if seen != len(d.captured) {
		return fmt.Errorf("the manifest lists %d segments; the snapshot captured %d", seen, len(d.captured))
	}
	fmt.Fprintf(d.out, "manifest verified (%s); it lists the %d segments captured before the compaction and the drop (%s), "+
		"with the same %d files, and every one reads back with its size and CRC-32C\n",
		humanBytes(uint64(info.Size)), seen, idList(slices.Sorted(maps.Keys(d.captured))), files)
	return nil
}

// restore restores the snapshot into a new collection, waits for the job, and checks
// that the restored collection holds the captured segments — the same files, with
// their sizes and CRC-32C, read back from their new keys — under new ids.
func (d *demo) restore(ctx context.Context) error {
	// A dev cluster may keep data between runs: the restored name must be free.
	if desc, err := d.cl.DescribeCollection(ctx, client.NewDescribeCollectionOption(demoRestored)); err == nil && !isDropped(desc.GetCollection()) {
		if _, err := d.cl.DropCollection(ctx, client.NewDropCollectionOption(demoRestored)); err != nil {
			return fmt.Errorf("drop the collection left by an earlier run: %w", err)
		}
	}
	resp, err := d.cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption(demoCollection, demoSnapshot, demoRestored))
	if err != nil {
		return err
	}
	var job *snapkeepv1.RestoreJob
	for {
		if job, err = d.cl.GetRestoreState(ctx, resp.GetJobId()); err != nil {
			return err
		}
		if s := job.GetState(); s != snapkeepv1.RestoreState_RESTORE_STATE_PENDING && s != snapkeepv1.RestoreState_RESTORE_STATE_COPYING {
			break
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(50 * time.Millisecond):
		}
	}
	if job.GetState() != snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED {
		return fmt.Errorf("restore job %d ended %s: %s", job.GetId(), enumName(job.GetState()), job.GetError())
	}
	restored, err := listAllSegments(ctx, d.cl, client.NewListSegmentsOption(demoRestored))
	if err != nil {
		return err
	}
	// Match each restored segment to a captured one by its files (same relative keys,
	// sizes and checksums), and read every restored file back.
	byFiles := map[string]*snapkeepv1.Segment{}
	for _, seg := range d.captured {
		byFiles[relativeFiles(seg)] = seg
	}
	files := 0
	for _, seg := range restored {
		orig, ok := byFiles[relativeFiles(seg)]
		if !ok {
			return fmt.Errorf("restored segment %d matches no captured segment", seg.GetId())
		}
		if orig.GetId() == seg.GetId() || orig.GetRowCount() != seg.GetRowCount() {
			return fmt.Errorf("restored segment %d: want a new id and %d rows, got id %d and %d rows", seg.GetId(), orig.GetRowCount(), seg.GetId(), seg.GetRowCount())
		}
		delete(byFiles, relativeFiles(seg))
		if err := datagen.Verify(ctx, d.store, seg); err != nil {
			return err
		}
		files += len(seg.GetFiles())
	}
	if len(byFiles) != 0 {
		return fmt.Errorf("%d captured segments were not restored", len(byFiles))
	}
	fmt.Fprintf(d.out, "restore job %d completed in %s: %d files, %s into %s; its %d segments (new ids %s) hold the captured files, each read back intact\n",
		job.GetId(), (time.Duration(job.GetFinishedAtUnixMs()-job.GetStartedAtUnixMs()) * time.Millisecond).Round(time.Millisecond),
		job.GetFilesDone(), humanBytes(job.GetBytesDone()), demoRestored, len(restored), idList(segmentIDs(restored)))
	return nil
}

// milvusLayout shows a collection whose files sit at Milvus's own keys, with ids from
// a Milvus-style allocator (milliseconds << 18, as Milvus's TSO), snapshotted under a
// dated name and restored with the caller's target ids: every key is rebuilt with
// them, and the job says what became what.
func (d *demo) milvusLayout(ctx context.Context) error {
	for _, name := range []string{demoMilvus, demoMilvusRestored} {
		if desc, err := d.cl.DescribeCollection(ctx, client.NewDescribeCollectionOption(name)); err == nil && !isDropped(desc.GetCollection()) {
			if _, err := d.cl.DropCollection(ctx, client.NewDropCollectionOption(name)); err != nil {
				return fmt.Errorf("drop the collection left by an earlier run: %w", err)
			}
		}
	}
	base := uint64(time.Now().UnixMilli()) << 18
	coll, err := d.cl.CreateCollection(ctx, client.NewCreateCollectionOption(demoMilvus).WithSchema([]byte(demoSchema)).
		WithLayout(snapkeepv1.KeyLayout_KEY_LAYOUT_MILVUS).WithIDs(base+1, base+2))
	if err != nil {
		return err
	}
	res, err := datagen.Generate(ctx, d.cl, d.store, datagen.Options{Collection: demoMilvus, Segments: 3,
		FilesPerSegment: 5, FileSize: 16 << 10, Seed: demoSeed, RowsPerSegment: demoRowsPerSegment, Concurrency: 8})
	if err != nil {
		return err
	}
	first, err := d.cl.GetSegment(ctx, client.NewGetSegmentOption(slices.Min(res.SegmentIDs)))
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "collection %s (id %d, layout %s): %d segments, e.g. segment %d's files:\n",
		demoMilvus, coll.GetId(), enumName(coll.GetLayout()), len(res.SegmentIDs), first.GetId())
	for _, f := range first.GetFiles() {
		fmt.Fprintf(d.out, "  %-6s %s\n", enumName(f.GetKind()), f.GetKey())
	}
	name := "nightly-" + time.Now().UTC().Format("2006.01.02")
	if _, err := d.cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption(demoMilvus, name)); err != nil {
		return err
	}
	ids := client.TargetIDs{Collection: base + 1001, Partitions: map[uint64]uint64{base + 2: base + 1002}, Segments: map[uint64]uint64{}}
	for i, id := range slices.Sorted(slices.Values(res.SegmentIDs)) {
		ids.Segments[id] = base + 1010 + uint64(i)
	}
	resp, err := d.cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption(demoMilvus, name, demoMilvusRestored).WithTargetIDs(ids))
	if err != nil {
		return err
	}
	job, err := d.cl.WaitRestore(ctx, resp.GetJobId(), nil)
	if err != nil {
		return err
	}
	if job.GetState() != snapkeepv1.RestoreState_RESTORE_STATE_COMPLETED {
		return fmt.Errorf("restore job %d ended %s: %s", job.GetId(), enumName(job.GetState()), job.GetError())
	}
	fmt.Fprintf(d.out, "snapshot %s restored into %s (id %d) by job %d, with the caller's ids:\n", name, demoMilvusRestored, job.GetTargetCollectionId(), job.GetId())
	for _, m := range job.GetSegmentMap() {
		fmt.Fprintf(d.out, "  segment %d -> %d\n", m.GetSource(), m.GetTarget())
	}
	copied, err := d.cl.GetSegment(ctx, client.NewGetSegmentOption(ids.Segments[first.GetId()]))
	if err != nil {
		return err
	}
	if err := datagen.Verify(ctx, d.store, copied); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "segment %d's first file, copied and read back intact: %s\n", copied.GetId(), copied.GetFiles()[0].GetKey())
	return nil
}

// churn writes segments after the snapshot, compacts two of them and drops the third:
// garbage that, unlike the snapshot's compacted and dropped segments, nothing needs.
func (d *demo) churn(ctx context.Context) error {
	res, err := datagen.Generate(ctx, d.cl, d.store, datagen.Options{
		Collection: demoCollection, Partition: demoPartitions[1].name,
		Segments: 3, FilesPerSegment: demoFilesPerSegment, FileSize: demoFileSize,
		Seed: demoSeed + 100, RowsPerSegment: demoRowsPerSegment, Concurrency: 8,
	})
	if err != nil {
		return err
	}
	ids := slices.Sorted(slices.Values(res.SegmentIDs))
	fmt.Fprintf(d.out, "wrote segments %s after the snapshot\n", idList(ids))
	for _, id := range ids {
		seg, err := d.cl.GetSegment(ctx, client.NewGetSegmentOption(id))
		if err != nil {
			return err
		}
		d.garbage = append(d.garbage, seg)
	}
	if _, err := d.compactInto(ctx, ids[:2], demoPartitions[1].name); err != nil {
		return err
	}
	if _, err := d.cl.DropSegments(ctx, client.NewDropSegmentsOption(ids[2])); err != nil {
		return err
	}
	fmt.Fprintf(d.out, "segment %d is now dropped (user)\n", ids[2])
	return nil
}

// collectGarbage runs a collection with no grace period: the segments compacted and
// dropped after the snapshot go, those the snapshot captured (compacted and dropped
// too) stay, and every file the snapshot lists is still there.
func (d *demo) collectGarbage(ctx context.Context) error {
	resp, err := d.cl.GCRun(ctx, client.NewGCRunOption().WithGrace(0).WithOrphanGrace(time.Hour))
	if err != nil {
		return err
	}
	if err := printGCReport(d.out, resp.GetReport()); err != nil {
		return err
	}
	for _, seg := range d.garbage {
		for _, f := range seg.GetFiles() {
			if _, err := d.store.Head(ctx, f.GetKey()); !errors.Is(err, objstore.ErrNotFound) {
				return fmt.Errorf("segment %d's file %s should have been reclaimed (head: %v)", seg.GetId(), f.GetKey(), err)
			}
		}
	}
	files := 0
	for _, seg := range d.captured {
		if err := datagen.Verify(ctx, d.store, seg); err != nil {
			return fmt.Errorf("a file of snapshot %s is gone or damaged: %w", demoSnapshot, err)
		}
		files += len(seg.GetFiles())
	}
	fmt.Fprintf(d.out, "\nthe %d segments written after the snapshot are reclaimed; the snapshot's %d files — of segments since compacted or dropped too — all read back intact\n",
		len(d.garbage), files)
	return nil
}

// relativeFiles describes a segment's files relative to its prefix.
func relativeFiles(seg *snapkeepv1.Segment) string {
	var b strings.Builder
	for _, f := range seg.GetFiles() {
		fmt.Fprintf(&b, "%s:%d:%08x;", strings.TrimPrefix(f.GetKey(), seg.GetPrefix()), f.GetSize(), f.GetCrc32C())
	}
	return b.String()
}

func segmentIDs(segs []*snapkeepv1.Segment) []uint64 {
	ids := make([]uint64, len(segs))
	for i, s := range segs {
		ids[i] = s.GetId()
	}
	return ids
}

// sameFiles compares two file lists regardless of order.
func sameFiles(a, b []*snapkeepv1.File) bool {
	if len(a) != len(b) {
		return false
	}
	index := make(map[string]*snapkeepv1.File, len(a))
	for _, f := range a {
		index[f.GetKey()] = f
	}
	for _, f := range b {
		g, ok := index[f.GetKey()]
		if !ok || g.GetSize() != f.GetSize() || g.GetCrc32C() != f.GetCrc32C() || g.GetKind() != f.GetKind() || g.GetFieldId() != f.GetFieldId() {
			return false
		}
	}
	return true
}

// compact merges the first two segments of the first partition into a new segment.
func (d *demo) compact(ctx context.Context) error {
	if len(d.byPartition[0]) < 2 {
		return fmt.Errorf("partition %s has %d segments; the compaction needs two", demoPartitions[0].name, len(d.byPartition[0]))
	}
	out, err := d.compactInto(ctx, d.byPartition[0][:2], demoPartitions[0].name)
	if err != nil {
		return err
	}
	d.compacted = out
	return nil
}

// compactInto merges segments into a new one the way a compactor would: allocate the
// output, write its files (each insert field's binlogs concatenated, the stats logs
// likewise; delete logs are applied and vanish), then swap inputs for output in one
// CompactSegments call. It returns the output's id.
func (d *demo) compactInto(ctx context.Context, inputIDs []uint64, partition string) (uint64, error) {
	var inputs []*snapkeepv1.Segment
	var rows int64
	for _, id := range inputIDs {
		seg, err := d.cl.GetSegment(ctx, client.NewGetSegmentOption(id))
		if err != nil {
			return 0, err
		}
		inputs = append(inputs, seg)
		rows += seg.GetRowCount()
	}
	out, err := d.cl.AllocateSegment(ctx, client.NewAllocateSegmentOption(demoCollection).
		WithPartition(partition).WithLease(10*time.Minute))
	if err != nil {
		return 0, err
	}

	// Group the inputs' files by (kind, field), in input order.
	type group struct {
		kind  snapkeepv1.FileKind
		field int64
	}
	var order []group
	sources := make(map[group][]string)
	for _, seg := range inputs {
		for _, f := range seg.GetFiles() {
			g := group{f.GetKind(), f.GetFieldId()}
			if g.kind == snapkeepv1.FileKind_FILE_KIND_DELTA {
				continue
			}
			if _, seen := sources[g]; !seen {
				order = append(order, g)
			}
			sources[g] = append(sources[g], f.GetKey())
		}
	}
	var files []*snapkeepv1.File
	for i, g := range order {
		key := datagen.Key(out.GetPrefix(), datagen.FileSpec{Kind: g.kind, FieldID: g.field, LogID: int64(i + 1)})
		file, err := d.concatenate(ctx, sources[g], key)
		if err != nil {
			return 0, err
		}
		file.Kind, file.FieldId = g.kind, g.field
		files = append(files, file)
	}

	segs, err := d.cl.CompactSegments(ctx, client.NewCompactSegmentsOption(inputIDs...).WithOutput(out.GetId(), rows, files...))
	if err != nil {
		return 0, err
	}
	if _, err := d.verifySegments(ctx, []uint64{out.GetId()}); err != nil {
		return 0, fmt.Errorf("verify the compacted segment: %w", err)
	}
	fmt.Fprintf(d.out, "compacted segments %s into segment %d: %d files, %d rows (verified)\n",
		idList(inputIDs), out.GetId(), len(files), rows)
	for _, s := range segs {
		fmt.Fprintf(d.out, "  segment %d: %s, %s\n", s.GetId(), segmentState(s), lineage(s))
	}
	return out.GetId(), nil
}

// concatenate writes the objects srcs, one after the other, as a new object key.
// Demo objects are small, so they are joined in memory.
func (d *demo) concatenate(ctx context.Context, srcs []string, key string) (*snapkeepv1.File, error) {
	var buf bytes.Buffer
	for _, src := range srcs {
		body, _, err := d.store.Get(ctx, src)
		if err != nil {
			return nil, fmt.Errorf("read %q: %w", src, err)
		}
		_, err = io.Copy(&buf, body)
		body.Close()
		if err != nil {
			return nil, fmt.Errorf("read %q: %w", src, err)
		}
	}
	sum := crc32.Checksum(buf.Bytes(), crc32.MakeTable(crc32.Castagnoli))
	size := int64(buf.Len())
	if _, err := d.store.Put(ctx, key, bytes.NewReader(buf.Bytes()), size, objstore.PutOptions{CRC32C: sum, HasCRC32C: true}); err != nil {
		return nil, fmt.Errorf("write %q: %w", key, err)
	}
	return &snapkeepv1.File{Key: key, Size: uint64(size), Crc32C: sum}, nil
}

// drop drops the last segment of the second partition.
func (d *demo) drop(ctx context.Context) error {
	ids := d.byPartition[1]
	if len(ids) == 0 {
		return fmt.Errorf("partition %s has no segment to drop", demoPartitions[1].name)
	}
	victim := ids[len(ids)-1]
	segs, err := d.cl.DropSegments(ctx, client.NewDropSegmentsOption(victim))
	if err != nil {
		return err
	}
	for _, s := range segs {
		fmt.Fprintf(d.out, "segment %d (partition %s) is now %s\n", s.GetId(), demoPartitions[1].name, segmentState(s))
	}
	return nil
}

func (d *demo) showCatalog(ctx context.Context) error {
	desc, err := d.cl.DescribeCollection(ctx, client.NewDescribeCollectionOption(demoCollection))
	if err != nil {
		return err
	}
	if err := printCollection(d.out, desc.GetCollection(), desc.GetSegments()); err != nil {
		return err
	}
	segs, err := listAllSegments(ctx, d.cl, client.NewListSegmentsOption(demoCollection))
	if err != nil {
		return err
	}
	names := make(map[uint64]string)
	for _, p := range desc.GetCollection().GetPartitions() {
		names[p.GetId()] = p.GetName()
	}
	fmt.Fprintln(d.out)
	if err := printSegments(d.out, segs, names, true); err != nil {
		return err
	}
	// A quick consistency check of what the demo did, so --once fails loudly if the
	// catalog disagrees.
	var flushed, dropped []string
	for _, s := range segs {
		switch s.GetState() {
		case snapkeepv1.SegmentState_SEGMENT_STATE_FLUSHED:
			flushed = append(flushed, strconv.FormatUint(s.GetId(), 10))
		case snapkeepv1.SegmentState_SEGMENT_STATE_DROPPED:
			dropped = append(dropped, strconv.FormatUint(s.GetId(), 10))
		}
	}
	wantFlushed := len(d.generated) - 3 + 1 // two compacted away and one dropped; one new
	if len(flushed) != wantFlushed || len(dropped) != 3 || !slices.Contains(flushed, strconv.FormatUint(d.compacted, 10)) {
		return fmt.Errorf("the catalog lists flushed segments %v and dropped %v; expected %d flushed (with %d) and 3 dropped",
			flushed, dropped, wantFlushed, d.compacted)
	}
	return nil
}

// policy creates a policy that snapshots the demo collection every second and keeps the
// newest; it waits for a scheduled snapshot to commit and shows it, then for the
// retention to expire one and shows the policy's status, and disables the policy so
// the cluster goes quiet after the demo.
func (d *demo) policy(ctx context.Context) error {
	// A dev cluster may keep data between runs: start from a new policy.
	if resp, err := d.cl.DeletePolicy(ctx, demoPolicy); err != nil {
		return fmt.Errorf("delete the policy left by an earlier run: %w", err)
	} else if resp.GetExisted() {
		fmt.Fprintf(d.out, "deleted policy %s left by an earlier run\n", demoPolicy)
	}
	created, err := d.cl.CreatePolicy(ctx, client.NewPolicyOption(demoPolicy, demoPolicyTemplate).
		WithCollections(demoCollection).WithInterval(demoPolicyEvery).
		WithRetention(0, 1, 1).WithRetentionInterval(time.Second).
		WithDescription("taken by the demo's policy"))
	if err != nil {
		return err
	}
	p := created.GetPolicy()
	fmt.Fprintf(d.out, "created policy %s (id %d): %s, named %s, %s; next run %s\n",
		p.GetName(), p.GetId(), policySchedule(p), p.GetNameTemplate(), policyRetention(p), policyNextRun(p))

	snaps, err := d.waitPolicy(ctx, p.GetId(), "a scheduled snapshot committed", func(_ *snapkeepv1.Policy, snaps []*snapkeepv1.Snapshot) bool {
		return slices.ContainsFunc(snaps, func(s *snapkeepv1.Snapshot) bool {
			return s.GetState() == snapkeepv1.SnapshotState_SNAPSHOT_STATE_COMMITTED && s.GetPolicyDueUnixMs() != 0
		})
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "the leader took a scheduled snapshot (snapkeep snapshot list --label %s=%s):\n", fsm.PolicyLabel, demoPolicy)
	if err := printSnapshots(d.out, snaps); err != nil {
		return err
	}
	var first []string // the snapshots committed so far, oldest first
	for _, s := range snaps {
		if s.GetState() == snapkeepv1.SnapshotState_SNAPSHOT_STATE_COMMITTED {
			first = append(first, s.GetName())
		}
	}

	var expired *snapkeepv1.Policy
	snaps, err = d.waitPolicy(ctx, p.GetId(), "a snapshot expired by the retention", func(p *snapkeepv1.Policy, _ []*snapkeepv1.Snapshot) bool {
		expired = p
		return p.GetStatus().GetSnapshotsDeleted() >= 1
	})
	if err != nil {
		return err
	}
	fmt.Fprintf(d.out, "\nwith a second snapshot committed, the retention expired the first (snapkeep policy list):\n")
	if err := printPolicies(d.out, []*snapkeepv1.Policy{expired}); err != nil {
		return err
	}
	var kept, deleting []string
	for _, s := range snaps {
		switch s.GetState() {
		case snapkeepv1.SnapshotState_SNAPSHOT_STATE_DELETING:
			deleting = append(deleting, s.GetName())
			fmt.Fprintf(d.out, "snapshot %s is deleting: %s\n", s.GetName(), s.GetDeleteReason())
		case snapkeepv1.SnapshotState_SNAPSHOT_STATE_COMMITTED:
			kept = append(kept, s.GetName())
		}
	}
	// The retention is the only one dropping the policy's snapshots here; one whose
	// drop already finished is no longer listed.
	for _, name := range first {
		if !slices.Contains(kept, name) && !slices.Contains(deleting, name) {
			fmt.Fprintf(d.out, "snapshot %s is gone: expired by the retention and deleted\n", name)
		}
	}
	fmt.Fprintf(d.out, "it keeps %s\n", strings.Join(kept, ", "))

	if _, err := d.cl.UpdatePolicy(ctx, client.PolicyOptionFrom(expired).WithEnabled(false), expired.GetRevision()); err != nil {
		return fmt.Errorf("disable policy %s: %w", demoPolicy, err)
	}
	fmt.Fprintf(d.out, "disabled policy %s: no more snapshots (snapkeep policy describe %s)\n", demoPolicy, demoPolicy)
	return nil
}

// waitPolicy polls the policy with id and the snapshots it took of the demo
// collection until done says so, for at most demoPolicyWait; it returns those
// snapshots.
func (d *demo) waitPolicy(ctx context.Context, id uint64, what string, done func(*snapkeepv1.Policy, []*snapkeepv1.Snapshot) bool) ([]*snapkeepv1.Snapshot, error) {
	ctx, cancel := context.WithTimeout(ctx, demoPolicyWait)
	defer cancel()
	var last *snapkeepv1.Policy
	gaveUp := func(err error) error {
		st := last.GetStatus()
		return fmt.Errorf("policy %s: no %s within %s (runs %d, snapshots taken %d, failed %d, deleted %d; last failure: %s): %w",
			demoPolicy, what, demoPolicyWait, st.GetRuns(), st.GetSnapshotsTaken(), st.GetSnapshotsFailed(), st.GetSnapshotsDeleted(),
			orDash(st.GetLastFailure()), err)
	}
	for {
		p, err := d.cl.DescribePolicy(ctx, demoPolicy)
		if err != nil {
			if ctx.Err() != nil {
				return nil, gaveUp(err)
			}
			return nil, err
		}
		last = p
		// By label, and by id: an earlier run's policy of the same name labelled its
		// snapshots alike.
		var snaps []*snapkeepv1.Snapshot
		opt := client.NewListSnapshotsOption().WithCollection(demoCollection).WithLabel(fsm.PolicyLabel, demoPolicy)
		for s, err := range d.cl.ListAllSnapshots(ctx, opt) {
			if err != nil {
				if ctx.Err() != nil {
					return nil, gaveUp(err)
				}
				return nil, err
			}
			if s.GetPolicyId() == id {
				snaps = append(snaps, s)
			}
		}
		if done(p, snaps) {
			return snaps, nil
		}
		select {
		case <-ctx.Done():
			return nil, gaveUp(ctx.Err())
		case <-time.After(100 * time.Millisecond):
		}
	}
}
