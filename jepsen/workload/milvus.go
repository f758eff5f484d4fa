package workload

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"time"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/jepsen/history"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// The milvus workload plays a Milvus data coordinator on collection MilvusCollection
// (the Milvus key layout, Milvus's ids): it allocates segments with its own ids,
// uploads their binlogs under Milvus's keys and flushes them, adds index builds with
// its own build ids under index_files/, drops segments, leaves stray objects behind (a
// write whose segment never got registered) — and runs Milvus's garbage collector as
// an external collector: it asks ReleaseForDeletion about segments, builds and keys
// and deletes exactly what it is answered deletable. The snapshot, restore and export
// workloads work on the collection too. The external-collector checker and the
// bucket audit hold the answers to account: nothing deleted may be needed at the end.

// MilvusCollection is the milvus workload's collection.
const MilvusCollection = "m0"

// The milvus workload's ids, Milvus-sized (18 digits). The collection's are above
// every id the workload chooses, so snapkeep's own allocator (which moves past the
// largest id a caller chose) hands out ids above them all and never meets one.
const (
	milvusCollectionID = 449_000_000_000_000_001
	milvusIndexID      = 449_000_000_000_000_010
	milvusIndexName    = "vec_hnsw"
	milvusVectorField  = 101
	// Per client c, ids base + c·10⁷ + n.
	milvusSegmentBase = 440_000_000_000_000_000
	milvusBuildBase   = 441_000_000_000_000_000
	milvusStrayBase   = 442_000_000_000_000_000 // segment ids never registered
	milvusLogBase     = 443_000_000_000_000_000
)

// milvusPartitions are the collection's partitions and their ids.
var milvusPartitions = []struct {
	name string
	id   uint64
}{{"_default", 449_000_000_000_000_002}, {"p1", 449_000_000_000_000_003}}

// SetupMilvus creates the milvus workload's collection with the Milvus layout, its
// ids and a vector index (an existing collection is fine).
func SetupMilvus(ctx context.Context, cl *client.Client) error {
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	opt := client.NewCreateCollectionOption(MilvusCollection).WithLayout(snapkeepv1.KeyLayout_KEY_LAYOUT_MILVUS).
		WithPartitions(milvusPartitions[1].name).WithIDs(milvusCollectionID, milvusPartitions[0].id, milvusPartitions[1].id)
	if _, err := cl.CreateCollection(cctx, opt); err != nil && !errors.Is(err, client.ErrAlreadyExists) {
		return fmt.Errorf("create collection %s: %w", MilvusCollection, err)
	}
	_, err := cl.CreateIndex(cctx, client.NewCreateIndexOption(MilvusCollection, milvusIndexName, milvusVectorField).
		WithID(milvusIndexID).WithParam("index_type", "HNSW"))
	if err != nil && !errors.Is(err, client.ErrAlreadyExists) {
		return fmt.Errorf("create index on %s: %w", MilvusCollection, err)
	}
	return nil
}

// milvusSegment is a Milvus segment as the workload knows it: the files it uploaded
// for it and its builds'.
type milvusSegment struct {
	id, partition uint64
	partName      string
	files         []history.File
	builds        []milvusBuild
}

type milvusBuild struct {
	id    uint64
	files []history.File
}

// milvusShared is what the milvus clients know together.
type milvusShared struct {
	allocated []*milvusSegment
	flushed   []*milvusSegment // flushed (or maybe): the collector may release them
	dropped   []*milvusSegment // dropped on request (or maybe): Milvus's GC releases them
	stray     []string         // objects no segment record lists
}

func (w *worker) milvusID(base uint64) uint64 {
	w.milvusIDs++
	return base + uint64(w.id)*10_000_000 + uint64(w.milvusIDs)
}

// takeMilvus removes a random segment from list.
func (w *worker) takeMilvus(list *[]*milvusSegment) *milvusSegment {
	if len(*list) == 0 {
		return nil
	}
	i := w.rng.IntN(len(*list))
	s := (*list)[i]
	*list = append((*list)[:i], (*list)[i+1:]...)
	return s
}

func (w *worker) milvusAllocate(ctx context.Context) bool {
	p := milvusPartitions[w.rng.IntN(len(milvusPartitions))]
	seg := &milvusSegment{id: w.milvusID(milvusSegmentBase), partition: p.id, partName: p.name}
	in := history.Input{Collection: MilvusCollection, SegmentID: seg.id}
	_, res := w.call(ctx, history.SegmentAllocate, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		s, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption(MilvusCollection).WithPartition(p.name).WithID(seg.id))
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{SegmentID: s.GetId(), State: state(s.GetState())}, nil
	})
	if res == history.OK {
		w.sh.mu.Lock()
		w.sh.milvus.allocated = append(w.sh.milvus.allocated, seg)
		w.sh.seen = append(w.sh.seen, seg.id)
		w.sh.mu.Unlock()
	}
	return true
}

// put uploads one small object with random bytes.
func (w *worker) put(ctx context.Context, key string) (history.File, error) {
	body := make([]byte, 64+w.rng.IntN(448))
	for j := range body {
		body[j] = byte(w.rng.Uint32())
	}
	sum := crc32.Checksum(body, crc32.MakeTable(crc32.Castagnoli))
	uctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	_, err := w.cfg.Store.Put(uctx, key, bytes.NewReader(body), int64(len(body)), objstore.PutOptions{CRC32C: sum, HasCRC32C: true})
	return history.File{Key: key, Size: int64(len(body)), CRC32C: sum}, err
}

// milvusFile is one of a segment's binlogs: directory, kind, field (-1: none).
type milvusFile struct {
	dir   string
	kind  snapkeepv1.FileKind
	field int64
}

var milvusSegmentFiles = []milvusFile{
	{"insert_log", snapkeepv1.FileKind_FILE_KIND_INSERT, 0},
	{"insert_log", snapkeepv1.FileKind_FILE_KIND_INSERT, 1},
	{"insert_log", snapkeepv1.FileKind_FILE_KIND_INSERT, milvusVectorField},
	{"stats_log", snapkeepv1.FileKind_FILE_KIND_STATS, milvusVectorField},
	{"delta_log", snapkeepv1.FileKind_FILE_KIND_DELTA, -1},
}

func (w *worker) milvusFlush(ctx context.Context) bool {
	w.sh.mu.Lock()
	seg := w.takeMilvus(&w.sh.milvus.allocated)
	w.sh.mu.Unlock()
	if seg == nil {
		return false
	}
	root := w.cfg.Root
	var hf []history.File
	var pf []*snapkeepv1.File
	n := len(milvusSegmentFiles) - 1 + w.rng.IntN(2) // a delta log half the time
	for _, f := range milvusSegmentFiles[:n] {
		logID := w.milvusID(milvusLogBase)
		key := fmt.Sprintf("%s%s/%d/%d/%d/%d/%d", root, f.dir, milvusCollectionID, seg.partition, seg.id, f.field, logID)
		if f.field < 0 {
			key = fmt.Sprintf("%s%s/%d/%d/%d/%d", root, f.dir, milvusCollectionID, seg.partition, seg.id, logID)
		}
		file, err := w.put(ctx, key)
		if err != nil {
			return false
		}
		hf = append(hf, file)
		pf = append(pf, &snapkeepv1.File{Key: key, Kind: f.kind, FieldId: max(f.field, 0), Size: uint64(file.Size), Crc32C: file.CRC32C,
			LogId: int64(logID), Entries: 1000})
	}
	seg.files = hf
	if w.rng.IntN(4) == 0 {
		// a write whose segment Milvus never registered (it crashed before the flush):
		// only its garbage collector will ever delete it
		key := fmt.Sprintf("%sinsert_log/%d/%d/%d/%d/%d", root, milvusCollectionID, seg.partition, w.milvusID(milvusStrayBase),
			milvusVectorField, w.milvusID(milvusLogBase))
		if _, err := w.put(ctx, key); err == nil {
			w.sh.mu.Lock()
			w.sh.milvus.stray = append(w.sh.milvus.stray, key)
			w.sh.mu.Unlock()
		}
	}
	in := history.Input{SegmentID: seg.id, Files: hf}
	_, res := w.call(ctx, history.SegmentFlush, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		s, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(seg.id).WithRowCount(1000).WithFiles(pf...))
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{State: state(s.GetState())}, nil
	})
	if res != history.Fail {
		w.sh.mu.Lock()
		w.sh.milvus.flushed = append(w.sh.milvus.flushed, seg)
		w.sh.mu.Unlock()
	}
	return true
}

// milvusIndex builds an index on a flushed segment: allocate the build (the caller's
// id), upload its files under index_files/, add it.
func (w *worker) milvusIndex(ctx context.Context) bool {
	w.sh.mu.Lock()
	seg := w.takeMilvus(&w.sh.milvus.flushed)
	w.sh.mu.Unlock()
	if seg == nil {
		return false
	}
	defer func() {
		w.sh.mu.Lock()
		w.sh.milvus.flushed = append(w.sh.milvus.flushed, seg)
		w.sh.mu.Unlock()
	}()
	b := milvusBuild{id: w.milvusID(milvusBuildBase)}
	in := history.Input{SegmentID: seg.id, BuildID: b.id}
	_, res := w.call(ctx, history.BuildAllocate, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		_, err := cl.AllocateIndexBuild(ctx, client.NewAllocateIndexBuildOption(seg.id, milvusIndexName).WithID(b.id))
		return history.Output{}, err
	})
	if res != history.OK {
		return true
	}
	var pf []*snapkeepv1.File
	for _, name := range []string{"HNSW_0", "HNSW_1"}[:1+w.rng.IntN(2)] {
		key := fmt.Sprintf("%sindex_files/%d/1/%d/%d/%s", w.cfg.Root, b.id, seg.partition, seg.id, name)
		file, err := w.put(ctx, key)
		if err != nil {
			return true
		}
		b.files = append(b.files, file)
		pf = append(pf, &snapkeepv1.File{Key: key, Kind: snapkeepv1.FileKind_FILE_KIND_INDEX, FieldId: milvusVectorField,
			Size: uint64(file.Size), Crc32C: file.CRC32C})
	}
	in.Files = b.files
	_, res = w.call(ctx, history.BuildAdd, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		_, err := cl.AddIndexBuild(ctx, client.NewAddIndexBuildOption(seg.id, b.id).WithFiles(pf...))
		return history.Output{}, err
	})
	if res != history.Fail {
		w.sh.mu.Lock() // the collector reads the builds of segments in the lists
		seg.builds = append(seg.builds, b)
		w.sh.mu.Unlock()
	}
	return true
}

// milvusDrop drops a flushed segment, as Milvus does after a compaction; its files stay
// until the collector is told it may delete them.
func (w *worker) milvusDrop(ctx context.Context) bool {
	w.sh.mu.Lock()
	seg := w.takeMilvus(&w.sh.milvus.flushed)
	w.sh.mu.Unlock()
	if seg == nil {
		return false
	}
	in := history.Input{SegmentIDs: []uint64{seg.id}}
	_, res := w.call(ctx, history.SegmentDrop, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		_, err := cl.DropSegments(ctx, client.NewDropSegmentsOption(seg.id))
		return history.Output{}, err
	})
	w.sh.mu.Lock()
	if res == history.Fail {
		w.sh.milvus.flushed = append(w.sh.milvus.flushed, seg)
	} else {
		w.sh.milvus.dropped = append(w.sh.milvus.dropped, seg)
	}
	w.sh.mu.Unlock()
	return true
}

// milvusCollect is Milvus's garbage collector: it asks about a few segments (flushed
// or dropped), maybe a build, a stray object and a live segment's file, and deletes
// exactly what is answered deletable.
func (w *worker) milvusCollect(ctx context.Context) bool {
	w.sh.mu.Lock()
	var segs []*milvusSegment
	var from []*[]*milvusSegment
	for range 1 + w.rng.IntN(2) {
		list := &w.sh.milvus.flushed
		if w.rng.IntN(2) == 0 {
			list = &w.sh.milvus.dropped
		}
		if s := w.takeMilvus(list); s != nil {
			segs, from = append(segs, s), append(from, list)
		}
	}
	// a build of a segment that stays flushed, a file of one
	var buildOf, keyOf *milvusSegment
	if n := len(w.sh.milvus.flushed); n > 0 && w.rng.IntN(2) == 0 {
		if s := w.sh.milvus.flushed[w.rng.IntN(n)]; len(s.builds) > 0 {
			buildOf = s
		}
	}
	if n := len(w.sh.milvus.flushed); n > 0 && w.rng.IntN(3) == 0 {
		if s := w.sh.milvus.flushed[w.rng.IntN(n)]; len(s.files) > 0 {
			keyOf = s
		}
	}
	var stray string
	if n := len(w.sh.milvus.stray); n > 0 && w.rng.IntN(2) == 0 {
		i := w.rng.IntN(n)
		stray = w.sh.milvus.stray[i]
		w.sh.milvus.stray = append(w.sh.milvus.stray[:i], w.sh.milvus.stray[i+1:]...)
	}
	var build milvusBuild
	if buildOf != nil {
		build = buildOf.builds[w.rng.IntN(len(buildOf.builds))]
	}
	var liveKey history.File
	if keyOf != nil {
		liveKey = keyOf.files[w.rng.IntN(len(keyOf.files))]
	}
	w.sh.mu.Unlock()

	in := history.Input{}
	opt := client.NewReleaseForDeletionOption()
	// what each verdict would let the collector delete, in the request's order
	var objects [][]history.File
	for _, s := range segs {
		in.SegmentIDs = append(in.SegmentIDs, s.id)
		opt = opt.WithSegments(s.id)
		fs := append([]history.File(nil), s.files...)
		for _, b := range s.builds {
			fs = append(fs, b.files...)
		}
		objects = append(objects, fs)
	}
	if buildOf != nil {
		in.Builds = append(in.Builds, history.BuildRef{SegmentID: buildOf.id, BuildID: build.id})
		opt = opt.WithBuild(buildOf.id, build.id)
		objects = append(objects, build.files)
	}
	for _, k := range []history.File{{Key: stray}, liveKey} {
		if k.Key != "" {
			in.Keys = append(in.Keys, k.Key)
			opt = opt.WithKeys(k.Key)
			objects = append(objects, []history.File{k})
		}
	}
	if len(objects) == 0 {
		return false
	}
	out, res := w.call(ctx, history.Release, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		vs, err := cl.ReleaseForDeletion(ctx, opt)
		if err != nil {
			return history.Output{}, err
		}
		if len(vs) != len(objects) {
			return history.Output{}, fmt.Errorf("%d verdicts for %d items", len(vs), len(objects))
		}
		o := history.Output{}
		for i, v := range vs {
			o.Verdicts = append(o.Verdicts, v.GetDeletable())
			if v.GetDeletable() {
				o.Files = append(o.Files, objects[i]...)
			}
		}
		return o, nil
	})
	// Delete what was answered deletable (its own deadline: the run may be ending).
	dctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	var keys []string
	for _, f := range out.Files {
		keys = append(keys, f.Key)
	}
	if len(keys) > 0 {
		_, _ = w.cfg.Store.Delete(dctx, keys) // one left behind is garbage, never harm
	}
	w.sh.mu.Lock()
	defer w.sh.mu.Unlock()
	for i, s := range segs {
		if res == history.OK && out.Verdicts[i] {
			continue // released: gone for good
		}
		*from[i] = append(*from[i], s)
	}
	if buildOf != nil && res == history.OK && out.Verdicts[len(segs)] {
		buildOf.builds = removeBuild(buildOf.builds, build.id)
	}
	if stray != "" && (res != history.OK || !out.Verdicts[len(segs)+len(in.Builds)]) {
		w.sh.milvus.stray = append(w.sh.milvus.stray, stray)
	}
	return true
}

func removeBuild(bs []milvusBuild, id uint64) []milvusBuild {
	out := bs[:0:0]
	for _, b := range bs {
		if b.id != id {
			out = append(out, b)
		}
	}
	return out
}
