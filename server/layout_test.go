package server_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// TestKeyLayoutsLifecycle takes a collection of each key layout through create →
// flush → snapshot → compact → drop → GC → restore → byte compare → drop → GC: the
// files sit at their layout's keys, the snapshot's survive the compaction and the drop,
// the restored ones sit at the layout's keys with the target's new ids, and once
// nothing needs the source any more GC deletes exactly its files.
func TestKeyLayoutsLifecycle(t *testing.T) {
	for _, tc := range []struct {
		name string
		api  pb.KeyLayout
		fsm  fsmpb.KeyLayout
		top  []string // the first path components the collection's keys may have
	}{
		{"snapkeep", pb.KeyLayout_KEY_LAYOUT_SNAPKEEP, fsmpb.KeyLayout_KEY_LAYOUT_SNAPKEEP, []string{"collections"}},
		{"milvus", pb.KeyLayout_KEY_LAYOUT_MILVUS, fsmpb.KeyLayout_KEY_LAYOUT_MILVUS,
			[]string{"insert_log", "delta_log", "stats_log", "bm25_stats", "index_files"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := servertest.Start(t, 3, servertest.Options{})
			cl := newClient(t, c)
			ctx := context.Background()
			store := c.Bucket.Store
			snap := restoreSourceIn(t, c, cl, 2, tc.api)
			require.Equal(t, tc.api, snap.Layout)
			desc, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption("docs"))
			require.NoError(t, err)
			require.Equal(t, tc.api, desc.Collection.Layout)

			// Every file sits at a key of the collection's layout, naming its owner.
			captured := segmentsOf(t, cl, "docs")
			var capturedKeys []string
			for _, s := range captured {
				for _, f := range allFiles(s) {
					keptForm(t, c.Root(), s, f.Key)
					rel := strings.TrimPrefix(f.Key, c.Root()+"/")
					own, _ := layout.Parse(rel)
					require.Equal(t, tc.fsm, own.Layout, f.Key)
					top, _, _ := strings.Cut(rel, "/")
					require.Contains(t, tc.top, top, f.Key)
					capturedKeys = append(capturedKeys, f.Key)
				}
			}
			require.Len(t, capturedKeys, 4*4+1)

			// Compact p1's two segments into one, drop a p2 segment.
			var p1, p2 []uint64
			for _, s := range captured {
				if s.PartitionId == desc.Collection.Partitions[1].Id {
					p1 = append(p1, s.Id)
				} else {
					p2 = append(p2, s.Id)
				}
			}
			require.Len(t, p1, 2)
			out, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs").WithPartition("p1"))
			require.NoError(t, err)
			spec := datagen.FileSpec{Kind: pb.FileKind_FILE_KIND_INSERT, FieldID: 101, LogID: 1}
			key := datagen.Key(out.Prefix, spec)
			if tc.api == pb.KeyLayout_KEY_LAYOUT_MILVUS {
				key, err = datagen.MilvusKey(c.Root(), out, spec)
				require.NoError(t, err)
			}
			content := datagen.NewContent(99, 0, 0, 1000)
			_, err = store.Put(ctx, key, content, content.Size(), objstore.PutOptions{CRC32C: content.CRC32C(), HasCRC32C: true})
			require.NoError(t, err)
			_, err = cl.CompactSegments(ctx, client.NewCompactSegmentsOption(p1...).WithOutput(out.Id, 200,
				&pb.File{Key: key, Kind: spec.Kind, FieldId: spec.FieldID, Size: 1000, Crc32C: content.CRC32C()}))
			require.NoError(t, err)
			_, err = cl.DropSegments(ctx, client.NewDropSegmentsOption(p2[0]))
			require.NoError(t, err)

			// GC keeps every file the snapshot captured.
			gcRun(t, cl, gcRunOpt())
			for _, k := range capturedKeys {
				requireExists(t, store, k, true)
			}

			// The restore copies the snapshot's segments, at the layout's keys with the
			// target's ids, byte for byte.
			resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("docs", "snap", "copy"))
			require.NoError(t, err)
			job := waitJob(t, cl, resp.JobId)
			require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
			copyDesc, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption("copy"))
			require.NoError(t, err)
			require.Equal(t, tc.api, copyDesc.Collection.Layout, "a restore keeps the snapshot's layout")
			requireSameSegments(t, c, cl, desc.Collection, captured, "copy")
			var copied []string
			for _, s := range segmentsOf(t, cl, "copy") {
				require.Equal(t, copyDesc.Collection.Id, s.CollectionId)
				for _, f := range allFiles(s) {
					keptForm(t, c.Root(), s, f.Key) // checks the new ids in the key
					copied = append(copied, f.Key)
				}
			}
			require.Len(t, copied, len(capturedKeys))

			// Once the snapshot and the source are gone, GC deletes the source's files
			// (the compaction output's too) and nothing of the copy's.
			_, err = cl.DropSnapshot(ctx, client.NewDropSnapshotOption("docs", "snap"))
			require.NoError(t, err)
			_, err = cl.DropCollection(ctx, client.NewDropCollectionOption("docs"))
			require.NoError(t, err)
			for range 3 { // manifest first, then the segments, then the collection record
				gcRun(t, cl, gcRunOpt())
			}
			for _, k := range append(capturedKeys, key) {
				requireExists(t, store, k, false)
			}
			for _, k := range copied {
				requireExists(t, store, k, true)
			}
		})
	}
}

// allFiles are a segment's files and its ready builds'.
func allFiles(s *pb.Segment) []*pb.File {
	out := append([]*pb.File{}, s.Files...)
	for _, b := range readyBuilds(s) {
		out = append(out, b.Files...)
	}
	return out
}

func requireExists(t *testing.T, store objstore.Store, key string, want bool) {
	t.Helper()
	_, err := store.Head(context.Background(), key)
	if want {
		require.NoError(t, err, "%s should exist", key)
		return
	}
	require.ErrorIs(t, err, objstore.ErrNotFound, "%s should be gone", key)
}

// TestRestoreWithCallerIDs: a Milvus-layout collection created with the caller's ids,
// restored with the caller's target ids: every restored object has the id asked for,
// every key is rebuilt with them, the job and the segments say what became what, and
// ids already in use or naming nothing the restore copies are refused.
func TestRestoreWithCallerIDs(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl := newClient(t, c)
	ctx := context.Background()
	const base = 449_000_000_000_000_000
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("mv").WithLayout(pb.KeyLayout_KEY_LAYOUT_MILVUS).
		WithPartitions("p1").WithIDs(base+1, base+2, base+3))
	require.NoError(t, err)
	_, err = cl.CreateIndex(ctx, client.NewCreateIndexOption("mv", "vec", 101).WithID(base+4))
	require.NoError(t, err)
	seg, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("mv").WithPartition("p1").WithID(base+10))
	require.NoError(t, err)
	require.EqualValues(t, base+10, seg.Id)
	spec := datagen.FileSpec{Kind: pb.FileKind_FILE_KIND_INSERT, FieldID: 101, LogID: base + 20}
	key, err := datagen.MilvusKey(c.Root(), seg, spec)
	require.NoError(t, err)
	require.Equal(t, c.Root()+"/insert_log/449000000000000001/449000000000000003/449000000000000010/101/449000000000000020", key)
	content := datagen.NewContent(1, 0, 0, 64)
	_, err = c.Bucket.Store.Put(ctx, key, content, content.Size(), objstore.PutOptions{CRC32C: content.CRC32C(), HasCRC32C: true})
	require.NoError(t, err)
	_, err = cl.FlushSegment(ctx, client.NewFlushSegmentOption(seg.Id).WithRowCount(5).
		WithFiles(&pb.File{Key: key, Kind: spec.Kind, FieldId: 101, Size: 64, Crc32C: content.CRC32C()}))
	require.NoError(t, err)
	build, err := cl.AllocateIndexBuild(ctx, client.NewAllocateIndexBuildOption(seg.Id, "vec").WithID(base+11))
	require.NoError(t, err)
	require.EqualValues(t, base+11, build.Build.BuildId)
	buildKey := fmt.Sprintf("%s7/%d/%d/HNSW_0", build.Build.Prefix, uint64(base+3), seg.Id)
	_, err = c.Bucket.Store.Put(ctx, buildKey, datagen.NewContent(1, 0, 0, 64), 64, objstore.PutOptions{})
	require.NoError(t, err)
	_, err = cl.AddIndexBuild(ctx, client.NewAddIndexBuildOption(seg.Id, base+11).
		WithFiles(&pb.File{Key: buildKey, Kind: pb.FileKind_FILE_KIND_INDEX, Size: 64, Crc32C: content.CRC32C()}))
	require.NoError(t, err)
	_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("mv", "nightly-2026.12.02"))
	require.NoError(t, err)

	// Refused: a target id in use; a mapping for a source the snapshot lacks.
	_, err = cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("mv", "nightly-2026.12.02", "bad").
		WithTargetIDs(client.TargetIDs{Segments: map[uint64]uint64{base + 10: base + 10}}))
	require.ErrorIs(t, err, client.ErrAlreadyExists)
	require.ErrorContains(t, err, "segment id 449000000000000010 is already in use")
	_, err = cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("mv", "nightly-2026.12.02", "bad").
		WithTargetIDs(client.TargetIDs{Segments: map[uint64]uint64{77: base + 99}}))
	require.ErrorIs(t, err, client.ErrInvalidArgument)
	require.ErrorContains(t, err, "source segment 77")

	ids := client.TargetIDs{Collection: base + 101,
		Partitions: map[uint64]uint64{base + 2: base + 102, base + 3: base + 103},
		Indexes:    map[uint64]uint64{base + 4: base + 104},
		Segments:   map[uint64]uint64{base + 10: base + 110},
		Builds:     map[uint64]uint64{base + 11: base + 111}}
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("mv", "nightly-2026.12.02", "mv_copy").WithTargetIDs(ids))
	require.NoError(t, err)
	var seen []pb.RestoreState
	job, err := cl.WaitRestore(ctx, resp.JobId, func(j *pb.RestoreJob) { seen = append(seen, j.State) })
	require.NoError(t, err)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	require.NotEmpty(t, seen)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, seen[len(seen)-1])
	require.EqualValues(t, base+101, job.TargetCollectionId)
	mapOf := func(ms []*pb.IdMapping) map[uint64]uint64 {
		out := map[uint64]uint64{}
		for _, m := range ms {
			out[m.Source] = m.Target
		}
		return out
	}
	require.Equal(t, ids.Partitions, mapOf(job.PartitionMap))
	require.Equal(t, ids.Indexes, mapOf(job.IndexMap))
	require.Equal(t, ids.Segments, mapOf(job.SegmentMap))
	require.Equal(t, ids.Builds, mapOf(job.BuildMap))

	got, err := cl.GetSegment(ctx, client.NewGetSegmentOption(base+110))
	require.NoError(t, err)
	require.EqualValues(t, base+10, got.RestoredFrom)
	require.EqualValues(t, base+103, got.PartitionId)
	require.Equal(t, c.Root()+"/insert_log/449000000000000101/449000000000000103/449000000000000110/101/449000000000000020", got.Files[0].Key)
	require.Equal(t, c.Root()+"/index_files/449000000000000111/7/449000000000000103/449000000000000110/HNSW_0", got.IndexBuilds[0].Files[0].Key)
	for _, k := range []string{got.Files[0].Key, got.IndexBuilds[0].Files[0].Key} {
		require.Equal(t, readObject(t, c.Bucket.Store, key), readObject(t, c.Bucket.Store, k))
	}
}

// TestVerifyOnFlush: asked per request or set on the collection, a flush lists the
// segment's prefixes first and is refused, naming the keys, while a file is missing or
// of another size; uploaded, the same flush goes through. Files without a CRC-32C
// (0) are accepted, and a restore verifies them by reading source and copy.
func TestVerifyOnFlush(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl := newClient(t, c)
	ctx := context.Background()
	store := c.Bucket.Store
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("mv").WithLayout(pb.KeyLayout_KEY_LAYOUT_MILVUS).WithVerifyOnFlush())
	require.NoError(t, err)
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("plain"))
	require.NoError(t, err)

	for _, tc := range []struct {
		coll   string
		verify bool // ask on the request
	}{{"mv", false}, {"plain", true}} {
		seg, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption(tc.coll))
		require.NoError(t, err)
		var files []*pb.File
		for i := range int64(3) {
			spec := datagen.FileSpec{Kind: pb.FileKind_FILE_KIND_INSERT, FieldID: 100, LogID: i + 1}
			key := datagen.Key(seg.Prefix, spec)
			if tc.coll == "mv" {
				key, err = datagen.MilvusKey(c.Root(), seg, spec)
				require.NoError(t, err)
			}
			files = append(files, &pb.File{Key: key, Kind: spec.Kind, FieldId: 100, Size: 10})
		}
		if tc.coll == "mv" { // a text index file, under its build's prefix
			files = append(files, &pb.File{Key: fmt.Sprintf("%s/text_log/77/1/%d/%d/%d/101/index.tar", c.Root(), seg.CollectionId, seg.PartitionId, seg.Id),
				Kind: pb.FileKind_FILE_KIND_TEXT_INDEX, FieldId: 101, Size: 10})
		}
		put := func(f *pb.File, size int) {
			_, err := store.Put(ctx, f.Key, strings.NewReader(strings.Repeat("x", size)), int64(size), objstore.PutOptions{})
			require.NoError(t, err)
		}
		put(files[0], 10)
		put(files[1], 9) // the wrong size
		flush := func() error {
			opt := client.NewFlushSegmentOption(seg.Id).WithRowCount(3).WithFiles(files...)
			if tc.verify {
				opt.WithVerify()
			}
			_, err := cl.FlushSegment(ctx, opt)
			return err
		}
		err = flush()
		require.ErrorIs(t, err, client.ErrFailedPrecondition, tc.coll)
		require.ErrorContains(t, err, files[2].Key)
		require.ErrorContains(t, err, files[1].Key+": want 10, got 9")
		got, err := cl.GetSegment(ctx, client.NewGetSegmentOption(seg.Id))
		require.NoError(t, err)
		require.Equal(t, pb.SegmentState_SEGMENT_STATE_ALLOCATED, got.State, "nothing was proposed")

		for _, f := range files[1:] {
			put(f, 10)
		}
		require.NoError(t, flush(), tc.coll)
	}

	// The files had no CRC-32C: a restore verifies each by reading source and copy.
	_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("mv", "s"))
	require.NoError(t, err)
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("mv", "s", "mv_copy"))
	require.NoError(t, err)
	job, err := cl.WaitRestore(ctx, resp.JobId, nil)
	require.NoError(t, err)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	require.EqualValues(t, 4, job.VerifiedByReadBack)
}

// TestMilvusMetadataPreserved: a segment's Milvus metadata (level, channel, positions,
// storage version, sorted flag) and each file's (log id, entries, timestamps, memory
// size) are kept exactly through flush, an idempotent retry, the snapshot's manifest
// and a restore; a retry with other metadata is refused.
func TestMilvusMetadataPreserved(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl := newClient(t, c)
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("mv").WithLayout(pb.KeyLayout_KEY_LAYOUT_MILVUS))
	require.NoError(t, err)
	seg, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("mv"))
	require.NoError(t, err)
	meta := &pb.SegmentMeta{Level: pb.SegmentLevel_SEGMENT_LEVEL_L1, Channel: "by-dev-rootcoord-dml_0_449v0",
		StartPosition: []byte{1, 2, 3, 0, 255}, DmlPosition: []byte("checkpoint"), StorageVersion: 2, IsSorted: true}
	var files []*pb.File
	for i := range int64(3) {
		spec := datagen.FileSpec{Kind: pb.FileKind_FILE_KIND_INSERT, FieldID: 100 + i, LogID: 449_000_000_000_000_100 + i}
		key, err := datagen.MilvusKey(c.Root(), seg, spec)
		require.NoError(t, err)
		content := datagen.NewContent(5, 0, int(i), 50)
		_, err = c.Bucket.Store.Put(ctx, key, content, 50, objstore.PutOptions{})
		require.NoError(t, err)
		files = append(files, &pb.File{Key: key, Kind: spec.Kind, FieldId: spec.FieldID, Size: 50, Crc32C: content.CRC32C(),
			LogId: spec.LogID, Entries: 1000 + i, TimestampFrom: 449_000_000_000_000_000 + uint64(i), TimestampTo: 449_000_000_000_900_000, MemorySize: 4096 * (i + 1)})
	}
	flush := func(m *pb.SegmentMeta, fs []*pb.File) (*pb.Segment, error) {
		return cl.FlushSegment(ctx, client.NewFlushSegmentOption(seg.Id).WithRowCount(3000).WithMeta(m).WithFiles(fs...))
	}
	got, err := flush(meta, files)
	require.NoError(t, err)
	requireSameMeta := func(s *pb.Segment) {
		t.Helper()
		require.True(t, proto.Equal(meta, s.Meta), "segment meta %v", s.Meta)
		require.Len(t, s.Files, len(files))
		for i, f := range s.Files {
			w := files[i]
			require.Equal(t, []any{w.LogId, w.Entries, w.TimestampFrom, w.TimestampTo, w.MemorySize},
				[]any{f.LogId, f.Entries, f.TimestampFrom, f.TimestampTo, f.MemorySize}, f.Key)
		}
	}
	requireSameMeta(got)
	again, err := flush(meta, files)
	require.NoError(t, err, "an identical retry")
	requireSameMeta(again)
	other := proto.CloneOf(meta)
	other.IsSorted = false
	_, err = flush(other, files)
	require.ErrorIs(t, err, client.ErrFailedPrecondition)
	require.ErrorContains(t, err, "metadata")

	snap, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("mv", "nightly-2026.12.03"))
	require.NoError(t, err)
	info, err := c.Bucket.Store.Head(ctx, snap.ManifestKey)
	require.NoError(t, err)
	rd, err := manifest.Open(objstore.NewReaderAt(ctx, c.Bucket.Store, snap.ManifestKey, info.Size), info.Size)
	require.NoError(t, err)
	require.Equal(t, 2, rd.Version())
	require.NoError(t, rd.Segments(ctx, manifest.ReadOptions{}, func(s *manifest.Segment) error {
		require.Equal(t, meta.Channel, s.Meta.GetChannel())
		require.Equal(t, meta.StartPosition, s.Meta.GetStartPosition())
		return rd.Files(s, func(key string, e filelist.Entry) bool {
			require.NotZero(t, e.LogID, key)
			require.NotZero(t, e.TimestampTo, key)
			return true
		})
	}))

	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("mv", "nightly-2026.12.03", "mv_copy"))
	require.NoError(t, err)
	job, err := cl.WaitRestore(ctx, resp.JobId, nil)
	require.NoError(t, err)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	restored := segmentsOf(t, cl, "mv_copy")
	require.Len(t, restored, 1)
	requireSameMeta(restored[0])
	require.EqualValues(t, seg.Id, restored[0].RestoredFrom)
}
