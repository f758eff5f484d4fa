package adopt_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"golang.org/x/sync/errgroup"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/adopt"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// TestAdoptMilvusLayout adopts a generated Milvus layout of 500 segments in three
// partitions, with two index builds per segment (two indexes), text and JSON key index
// files: the dry run's plan is exactly what the real run registers (every segment
// with its id, partition and files, text and JSON key index files included; every
// build with its id, its index and its files), builds the mapping does not place are
// reported and left out, nothing is copied or rewritten, an interrupted adoption
// resumes, and the adopted collection snapshots and restores with its builds and text
// files, byte for byte.
func TestAdoptMilvusLayout(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	ctx := context.Background()
	cl, err := client.New(ctx, c.Endpoints()...)
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	store := c.Bucket.Store
	root := c.Root()
	const coll = 449_000_000_000_000_001
	parts := []uint64{449_000_000_000_000_002, 449_000_000_000_000_003, 449_000_000_000_000_004}
	const firstSeg, firstBuild = 449_000_000_000_001_000, 449_000_000_000_200_000
	written, err := datagen.WriteMilvusLayout(ctx, store, datagen.MilvusLayoutOptions{Root: root, CollectionID: coll,
		PartitionIDs: parts, Segments: 500, FilesPerSegment: 5, FileSize: 64, FirstSegmentID: firstSeg,
		FirstLogID: 449_000_000_000_100_000, Seed: 3, IndexBuilds: 2, IndexFilesPerBuild: 2,
		TextIndexFiles: 1, JSONKeyIndexFiles: 1, JSONStatsFiles: 2, FirstBuildID: firstBuild})
	require.NoError(t, err)
	require.Len(t, written, 500*(5+4+1+1+2))
	indexes := []adopt.Index{
		{ID: 449_000_000_000_000_010, Name: "vec", FieldID: 101, Params: map[string]string{"index_type": "HNSW"}},
		{ID: 449_000_000_000_000_011, Name: "title_idx", FieldID: 102},
	}
	// The build map, as Milvus's segment-index records would give it, except for the
	// second builds of the first three segments (left unmapped).
	buildIndex := map[uint64]uint64{}
	builds := map[uint64]uint64{} // build → segment
	for _, w := range written {
		if w.Kind == fsmpb.FileKind_FILE_KIND_INDEX {
			builds[w.Build] = w.Segment
			if !(w.Index == 1 && w.Segment < firstSeg+3) {
				buildIndex[w.Build] = indexes[w.Index].ID
			}
		}
	}
	require.Len(t, builds, 1000)

	// Objects the adoption must leave alone or report: another collection's files and
	// build, Milvus's other directories, a stray key under the collection's prefix, an
	// index_files key of no shape, a text index file of a segment without logs, and a
	// third build of segment 10 mapped to "vec" as well (two builds of one index:
	// ambiguous). And a second text index build of segment 20 (adopted, with a
	// warning).
	seg10, seg20 := uint64(firstSeg+10), uint64(firstSeg+20)
	part10, part20 := parts[10%3], parts[20%3]
	const extraBuild, otherBuild = 449_000_000_000_300_000, 449_000_000_000_300_001
	planted := []string{
		"insert_log/7/8/9/100/1",
		"text_log/5/1/7/8/9/102/index.tar",
		fmt.Sprintf("index_files/%d/1/8/9/HNSW_0", otherBuild),
		"part_stats/449000000000000001/1",
		"insert_log/449000000000000001/junk",
		"index_files/junk",
		fmt.Sprintf("text_log/6/1/%d/%d/%d/102/index.tar", coll, parts[0], firstSeg+999),
		fmt.Sprintf("text_log/7/1/%d/%d/%d/102", coll, parts[0], firstSeg),
		fmt.Sprintf("index_files/%d/1/%d/%d/HNSW_0", extraBuild, part10, seg10),
		fmt.Sprintf("text_log/%d/1/%d/%d/%d/102/index.tar", extraBuild+1, coll, part20, seg20),
	}
	for _, k := range planted {
		_, err := store.Put(ctx, root+"/"+k, strings.NewReader("x"), 1, objstore.PutOptions{})
		require.NoError(t, err)
	}
	buildIndex[extraBuild] = indexes[0].ID
	before := listAll(t, store, "")

	opts := adopt.Options{Name: "orders", CollectionID: coll, Root: root, PartitionNames: map[uint64]string{parts[2]: "archive"},
		Indexes: indexes, BuildIndex: buildIndex, BuildBatch: 250}
	dry, err := adopt.Scan(ctx, store, opts)
	require.NoError(t, err)
	require.Len(t, dry.Segments, 500)
	require.Equal(t, 500*(5+1+1+2)+1, dry.Files, "logs, text and JSON key index files, and segment 20's second text build")
	require.Equal(t, []string{"_default", "p449000000000000003", "archive"}, []string{dry.Partitions[0].Name, dry.Partitions[1].Name, dry.Partitions[2].Name})
	require.Len(t, dry.Skipped, 4, "%q", dry.Skipped)
	require.Contains(t, dry.Skipped[0], "insert_log/449000000000000001/junk")
	require.Contains(t, dry.Skipped[1], fmt.Sprintf("%d/102: a text_log key ends in <field>/<file>", firstSeg))
	require.Contains(t, dry.Skipped[2], fmt.Sprintf("segment %d has no insert, delta, stats or BM25 log", firstSeg+999))
	require.Contains(t, dry.Skipped[3], "index_files/junk: not a Milvus index file key")
	require.Len(t, dry.Warnings, 1)
	require.Contains(t, dry.Warnings[0], fmt.Sprintf("segment %d has text_log field 102 files of 2 builds", seg20))

	// Unmapped: the three builds the map leaves out (two indexes given), and both
	// of segment 10's builds of "vec".
	var unmapped []uint64
	for _, u := range dry.Unmapped {
		unmapped = append(unmapped, u.BuildID)
		if u.SegmentID == seg10 {
			require.Contains(t, u.Reason, `all map to index "vec"`)
		} else {
			require.Contains(t, u.Reason, "the build map does not name it and 2 indexes are given")
		}
		require.Equal(t, builds[u.BuildID] == 0, u.BuildID == extraBuild)
	}
	// datagen numbers 5 builds per segment: 2 index builds, then text, JSON key and
	// JSON stats.
	require.Equal(t, []uint64{firstBuild + 1, firstBuild + 5 + 1, firstBuild + 10 + 1, firstBuild + 10*5, extraBuild}, unmapped)
	require.Len(t, dry.Builds, 1000-4)
	require.Equal(t, (1000-4)*2, dry.BuildFiles)
	// Each build registered with the index its files were written for.
	indexOf := map[uint64]uint64{}
	for _, w := range written {
		if w.Kind == fsmpb.FileKind_FILE_KIND_INDEX {
			indexOf[w.Build] = indexes[w.Index].ID
		}
	}
	for _, b := range dry.Builds {
		require.Equal(t, indexOf[b.BuildId], b.IndexId, "build %d", b.BuildId)
		require.Equal(t, builds[b.BuildId], b.SegmentId)
		require.Len(t, b.Files, 2)
	}
	_, err = cl.DescribeCollection(ctx, client.NewDescribeCollectionOption("orders"))
	require.ErrorIs(t, err, client.ErrNotFound, "a dry run registers nothing")

	plan, err := adopt.Scan(ctx, store, opts)
	require.NoError(t, err)
	require.Equal(t, dry, plan, "the dry run plans exactly what the run registers")

	// An adoption interrupted after its first batch (the process killed), which had
	// only the "vec" index: running it again resumes, registering only what is
	// missing — the other segments with their builds, the second index, and its
	// builds on the segments registered before.
	first := *plan
	first.Segments = plan.Segments[:200]
	first.Indexes = indexes[:1]
	first.Builds = nil
	for _, b := range plan.Builds {
		if b.SegmentId < plan.Segments[200].SegmentId && b.IndexId == indexes[0].ID {
			first.Builds = append(first.Builds, b)
		}
	}
	part, err := adopt.Apply(ctx, cl, &first, opts)
	require.NoError(t, err)
	require.Equal(t, 200, part.Segments)
	require.Equal(t, len(first.Builds), part.Builds)
	require.Equal(t, 1, part.IndexesCreated)
	res, err := adopt.Apply(ctx, cl, plan, opts)
	require.NoError(t, err)
	require.Equal(t, 200, res.Resumed)
	require.Equal(t, 300, res.Segments)
	require.Equal(t, 300*9, res.Files, "segment 20, with its extra text file, was among the first 200")
	require.Equal(t, len(first.Builds), res.ResumedBuilds)
	require.Equal(t, len(plan.Builds)-len(first.Builds), res.Builds)
	require.Equal(t, 1, res.IndexesCreated)
	require.EqualValues(t, coll, res.Collection.Id)
	require.Equal(t, pb.KeyLayout_KEY_LAYOUT_MILVUS, res.Collection.Layout)
	require.Len(t, res.Collection.Indexes, 2)
	require.Equal(t, map[string]string{"index_type": "HNSW"}, res.Collection.Indexes[0].Params)

	// The catalog holds exactly the plan: ids, partitions, keys, sizes, builds.
	want := map[uint64]*pb.RegisteredSegment{}
	for _, s := range plan.Segments {
		want[s.SegmentId] = s
	}
	wantBuilds := map[uint64][]*pb.RegisteredBuild{}
	for _, b := range plan.Builds {
		wantBuilds[b.SegmentId] = append(wantBuilds[b.SegmentId], b)
	}
	n := 0
	for seg, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption("orders")) {
		require.NoError(t, err)
		n++
		w := want[seg.Id]
		require.NotNil(t, w, "segment %d was not planned", seg.Id)
		require.Equal(t, pb.SegmentState_SEGMENT_STATE_FLUSHED, seg.State)
		require.Equal(t, w.PartitionId, seg.PartitionId)
		require.Len(t, seg.Files, len(w.Files))
		for i, f := range seg.Files {
			require.Equal(t, w.Files[i].Key, f.Key)
			require.Equal(t, w.Files[i].Size, f.Size)
			require.Equal(t, w.Files[i].LogId, f.LogId)
			require.Equal(t, w.Files[i].Kind, f.Kind)
			require.Equal(t, w.Files[i].FieldId, f.FieldId)
		}
		wb := wantBuilds[seg.Id]
		require.Len(t, seg.IndexBuilds, len(wb), "segment %d", seg.Id)
		slices.SortFunc(seg.IndexBuilds, func(a, b *pb.IndexBuild) int { return int(a.BuildId - b.BuildId) })
		for i, b := range seg.IndexBuilds {
			require.Equal(t, wb[i].BuildId, b.BuildId)
			require.Equal(t, wb[i].IndexId, b.IndexId)
			require.Equal(t, pb.IndexBuildState_INDEX_BUILD_STATE_READY, b.State)
			require.Len(t, b.Files, len(wb[i].Files))
			for j, f := range b.Files {
				require.Equal(t, wb[i].Files[j].Key, f.Key)
				require.Equal(t, wb[i].Files[j].Size, f.Size)
			}
		}
	}
	require.Equal(t, 500, n)
	require.Equal(t, before, listAll(t, store, ""), "nothing was copied, rewritten or deleted")

	// Adopted data snapshots and restores like any other, builds and text files
	// included (CRC-32C from the listing, or read back where the listing had none).
	_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("orders", "adopted-2026.12.03"))
	require.NoError(t, err)
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("orders", "adopted-2026.12.03", "orders_copy"))
	require.NoError(t, err)
	job, err := cl.WaitRestore(ctx, resp.JobId, nil)
	require.NoError(t, err)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	require.EqualValues(t, plan.Files+plan.BuildFiles, job.FilesDone)
	checkRestoredCopy(t, cl, store, "orders", "orders_copy", len(plan.Builds))

	// Adopting again registers nothing; into a collection of other origin is refused;
	// a build mapped otherwise than registered is refused before anything changes.
	again, err := adopt.Apply(ctx, cl, plan, opts)
	require.NoError(t, err)
	require.Equal(t, 500, again.Resumed)
	require.Equal(t, len(plan.Builds), again.ResumedBuilds)
	require.Zero(t, again.Segments)
	require.Zero(t, again.Builds)
	_, err = adopt.Apply(ctx, cl, plan, adopt.Options{Name: "orders_copy", CollectionID: coll, Root: root})
	require.ErrorIs(t, err, client.ErrAlreadyExists)
	require.ErrorContains(t, err, "not an earlier adoption")
	other := *plan
	other.Builds = slices.Clone(plan.Builds)
	moved := proto.CloneOf(other.Builds[0])
	moved.IndexId = indexes[1].ID
	other.Builds[0] = moved
	_, err = adopt.Apply(ctx, cl, &other, opts)
	require.ErrorContains(t, err, fmt.Sprintf("index build %d of segment %d is registered with index %d", moved.BuildId, moved.SegmentId, indexes[0].ID))
}

// checkRestoredCopy compares a restored collection with its source: the same
// segments (by restored_from), every file and build file byte for byte at its key in
// the Milvus shape with the target's ids, and the builds under the same indexes (by
// name).
func checkRestoredCopy(t *testing.T, cl *client.Client, store objstore.Store, source, target string, builds int) {
	t.Helper()
	ctx := context.Background()
	src := map[uint64]*pb.Segment{}
	for seg, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption(source)) {
		require.NoError(t, err)
		src[seg.Id] = seg
	}
	indexName := func(coll string) map[uint64]string {
		d, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption(coll))
		require.NoError(t, err)
		out := map[uint64]string{}
		for _, ix := range d.Collection.Indexes {
			out[ix.Id] = ix.Name
		}
		return out
	}
	srcIndex, dstIndex := indexName(source), indexName(target)
	desc, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption(target))
	require.NoError(t, err)
	targetID := desc.Collection.Id
	var pairs [][2]string
	n, nb := 0, 0
	for seg, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption(target)) {
		require.NoError(t, err)
		from := src[seg.RestoredFrom]
		require.NotNil(t, from, "segment %d restored from %d", seg.Id, seg.RestoredFrom)
		require.NotEqual(t, from.Id, seg.Id)
		require.Len(t, seg.Files, len(from.Files))
		for i, f := range seg.Files {
			require.Contains(t, f.Key, fmt.Sprintf("/%d/%d/%d/", targetID, seg.PartitionId, seg.Id), "a key in Milvus's shape with the target's ids")
			require.Equal(t, from.Files[i].Kind, f.Kind)
			pairs = append(pairs, [2]string{from.Files[i].Key, f.Key})
		}
		require.Len(t, seg.IndexBuilds, len(from.IndexBuilds))
		slices.SortFunc(seg.IndexBuilds, func(a, b *pb.IndexBuild) int { return strings.Compare(dstIndex[a.IndexId], dstIndex[b.IndexId]) })
		slices.SortFunc(from.IndexBuilds, func(a, b *pb.IndexBuild) int { return strings.Compare(srcIndex[a.IndexId], srcIndex[b.IndexId]) })
		for i, b := range seg.IndexBuilds {
			fb := from.IndexBuilds[i]
			require.Equal(t, srcIndex[fb.IndexId], dstIndex[b.IndexId])
			require.NotEqual(t, fb.BuildId, b.BuildId, "a restored build gets a new id")
			require.Equal(t, pb.IndexBuildState_INDEX_BUILD_STATE_READY, b.State)
			require.Len(t, b.Files, len(fb.Files))
			for j, f := range b.Files {
				require.Contains(t, f.Key, fmt.Sprintf("index_files/%d/", b.BuildId))
				pairs = append(pairs, [2]string{fb.Files[j].Key, f.Key})
			}
			nb++
		}
		n++
	}
	require.Equal(t, len(src), n)
	require.Equal(t, builds, nb)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(16)
	for _, p := range pairs {
		g.Go(func() error {
			a, b := readAll(gctx, store, p[0]), readAll(gctx, store, p[1])
			if a == nil || !bytes.Equal(a, b) {
				return fmt.Errorf("%s and its copy %s differ", p[0], p[1])
			}
			return nil
		})
	}
	require.NoError(t, g.Wait())
}

func readAll(ctx context.Context, store objstore.Store, key string) []byte {
	body, _, err := store.Get(ctx, key)
	if err != nil {
		return nil
	}
	defer body.Close()
	b, err := io.ReadAll(body)
	if err != nil {
		return nil
	}
	return b
}

// TestAdoptBuildMapping: with one index and no map, a segment's only build is that
// index's; a segment with two builds has both reported; with no index every build is
// reported; a map naming an index not given is refused.
func TestAdoptBuildMapping(t *testing.T) {
	c := servertest.Start(t, 1, servertest.Options{})
	ctx := context.Background()
	store := c.Bucket.Store
	const coll = 5001
	written, err := datagen.WriteMilvusLayout(ctx, store, datagen.MilvusLayoutOptions{Root: c.Root(), CollectionID: coll,
		PartitionIDs: []uint64{5002}, Segments: 4, FilesPerSegment: 2, FileSize: 10, FirstSegmentID: 5010, FirstLogID: 6000,
		IndexBuilds: 1, IndexFilesPerBuild: 1, FirstBuildID: 7000})
	require.NoError(t, err)
	require.Len(t, written, 4*3)
	// A second build for segment 5011.
	_, err = store.Put(ctx, c.Root()+"/index_files/7100/1/5002/5011/HNSW_0", strings.NewReader("x"), 1, objstore.PutOptions{})
	require.NoError(t, err)
	vec := adopt.Index{ID: 5100, Name: "vec", FieldID: 101}
	opts := adopt.Options{Name: "m", CollectionID: coll, Root: c.Root(), Indexes: []adopt.Index{vec}}

	plan, err := adopt.Scan(ctx, store, opts)
	require.NoError(t, err)
	var mapped []uint64
	for _, b := range plan.Builds {
		require.EqualValues(t, vec.ID, b.IndexId)
		mapped = append(mapped, b.BuildId)
	}
	require.Equal(t, []uint64{7000, 7002, 7003}, mapped)
	require.Len(t, plan.Unmapped, 2)
	for _, u := range plan.Unmapped {
		require.EqualValues(t, 5011, u.SegmentID)
		require.Contains(t, u.Reason, `segment 5011 has 2 index builds (7001, 7100) and the build map does not name this one: which is index "vec"'s cannot be told`)
	}

	// The map settles it.
	opts.BuildIndex = map[uint64]uint64{7100: vec.ID}
	plan, err = adopt.Scan(ctx, store, opts)
	require.NoError(t, err)
	require.Len(t, plan.Builds, 4)
	require.Len(t, plan.Unmapped, 1)
	require.EqualValues(t, 7001, plan.Unmapped[0].BuildID)

	opts.Indexes, opts.BuildIndex = nil, nil
	plan, err = adopt.Scan(ctx, store, opts)
	require.NoError(t, err)
	require.Empty(t, plan.Builds)
	require.Len(t, plan.Unmapped, 5)
	require.Contains(t, plan.Unmapped[0].Reason, "no index is given")

	opts.Indexes, opts.BuildIndex = []adopt.Index{vec}, map[uint64]uint64{7000: 9}
	_, err = adopt.Scan(ctx, store, opts)
	require.ErrorContains(t, err, "build 7000 is mapped to index 9, which is not one of the indexes given")
	opts.Indexes, opts.BuildIndex = []adopt.Index{vec, {ID: 5100, Name: "other"}}, nil
	_, err = adopt.Scan(ctx, store, opts)
	require.ErrorContains(t, err, "index id 5100 is given twice")
}

// Registering builds with bad input through the API: a clear status, nothing changed.
func TestRegisterBuildsRefusals(t *testing.T) {
	c := servertest.Start(t, 1, servertest.Options{})
	ctx := context.Background()
	cl, err := client.New(ctx, c.Endpoints()...)
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("m").WithLayout(pb.KeyLayout_KEY_LAYOUT_MILVUS).WithIDs(900, 901))
	require.NoError(t, err)
	_, err = cl.CreateIndex(ctx, client.NewCreateIndexOption("m", "vec", 101).WithID(950))
	require.NoError(t, err)
	root := c.Root()
	seg := &pb.RegisteredSegment{SegmentId: 910, PartitionId: 901, Files: []*pb.File{
		{Key: root + "/insert_log/900/901/910/101/1", Kind: pb.FileKind_FILE_KIND_INSERT, FieldId: 101, Size: 1}}}
	build := func(index uint64, key string) []*pb.RegisteredBuild {
		return []*pb.RegisteredBuild{{SegmentId: 910, BuildId: 920, IndexId: index, Files: []*pb.File{{Key: key, Kind: pb.FileKind_FILE_KIND_INDEX, Size: 1}}}}
	}
	good := root + "/index_files/920/1/901/910/HNSW_0"

	_, err = cl.RegisterSegmentsWithBuilds(ctx, "", "m", []*pb.RegisteredSegment{seg}, build(951, good))
	require.ErrorIs(t, err, client.ErrNotFound)
	require.ErrorContains(t, err, "index id 951 is not an index of collection \"m\"")
	_, err = cl.RegisterSegmentsWithBuilds(ctx, "", "m", []*pb.RegisteredSegment{seg}, build(950, "elsewhere/index_files/920/1/901/910/HNSW_0"))
	require.Error(t, err)
	require.ErrorContains(t, err, "elsewhere")
	_, err = cl.RegisterSegmentsWithBuilds(ctx, "", "m", []*pb.RegisteredSegment{seg}, build(950, root+"/index_files/920/1/901/911/HNSW_0"))
	require.Error(t, err)
	require.ErrorContains(t, err, "an index file of build 920")
	_, err = cl.GetSegment(ctx, client.NewGetSegmentOption(910))
	require.ErrorIs(t, err, client.ErrNotFound, "the refused calls registered nothing, the segment neither")

	got, err := cl.RegisterSegmentsWithBuilds(ctx, "", "m", []*pb.RegisteredSegment{seg}, build(950, good))
	require.NoError(t, err)
	require.Len(t, got, 1)
	s, err := cl.GetSegment(ctx, client.NewGetSegmentOption(910))
	require.NoError(t, err)
	require.Len(t, s.IndexBuilds, 1)
	require.Equal(t, good, s.IndexBuilds[0].Files[0].Key)
	require.Equal(t, root+"/index_files/920/", s.IndexBuilds[0].Prefix)
}

func listAll(t *testing.T, store objstore.Store, prefix string) map[string]int64 {
	t.Helper()
	out := map[string]int64{}
	token := ""
	for {
		page, err := store.List(context.Background(), prefix, token, 1000)
		require.NoError(t, err)
		for _, o := range page.Objects {
			if !strings.Contains(o.Key, "/snapshots/") && !strings.Contains(o.Key, "orders_copy") {
				out[o.Key] = o.Size
			}
		}
		if page.NextToken == "" {
			return out
		}
		token = page.NextToken
	}
}

// failingList fails every listing under a prefix containing dir.
type failingList struct {
	objstore.Store
	dir string
}

func (s failingList) List(ctx context.Context, prefix, token string, maxKeys int) (objstore.ListPage, error) {
	if strings.Contains(prefix, s.dir) {
		return objstore.ListPage{}, fmt.Errorf("injected: cannot list %s", prefix)
	}
	return s.Store.List(ctx, prefix, token, maxKeys)
}

// A failed listing, of the segments' prefixes or of index_files/ (listed meanwhile),
// fails the scan with the prefix named; nothing hangs.
func TestAdoptScanListingErrors(t *testing.T) {
	c := servertest.Start(t, 1, servertest.Options{})
	ctx := context.Background()
	_, err := datagen.WriteMilvusLayout(ctx, c.Bucket.Store, datagen.MilvusLayoutOptions{Root: c.Root(), CollectionID: 6001,
		PartitionIDs: []uint64{6002}, Segments: 3, FilesPerSegment: 2, FileSize: 10, FirstSegmentID: 6010, FirstLogID: 7000,
		IndexBuilds: 1, IndexFilesPerBuild: 1, FirstBuildID: 8000})
	require.NoError(t, err)
	for _, dir := range []string{"insert_log/", "text_log/", "index_files/"} {
		_, err := adopt.Scan(ctx, failingList{Store: c.Bucket.Store, dir: dir}, adopt.Options{CollectionID: 6001, Root: c.Root()})
		require.ErrorContains(t, err, "injected: cannot list "+c.Root()+"/"+dir, dir)
	}
}
