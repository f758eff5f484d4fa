package server_test

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// TestExternalCollectorModel interleaves an external collector that uses only
// ReleaseForDeletion (and deletes exactly what it is answered deletable, as Milvus's GC
// would) with writes, compactions, drops, snapshots, snapshot drops and restores of a
// Milvus-layout collection, at random. It asks about dropped and live segments alike
// and about any key it lists. Invariants, checked after every step: every file of
// every live snapshot is in the bucket with its size; every restore of a committed
// snapshot completes and its files read back intact.
func TestExternalCollectorModel(t *testing.T) {
	seed := uint64(time.Now().UnixNano())
	t.Logf("seed %d", seed)
	rng := rand.New(rand.NewPCG(seed, 7))
	c := servertest.Start(t, 3, servertest.Options{})
	cl := newClient(t, c)
	ctx := context.Background()
	store := c.Bucket.Store
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("mv").WithLayout(pb.KeyLayout_KEY_LAYOUT_MILVUS))
	require.NoError(t, err)

	live := func() []*pb.Segment {
		var out []*pb.Segment
		for _, s := range segmentsOf(t, cl, "mv") {
			if s.State == pb.SegmentState_SEGMENT_STATE_FLUSHED {
				out = append(out, s)
			}
		}
		return out
	}
	snapshots := func() []*pb.Snapshot {
		var out []*pb.Snapshot
		for s, err := range cl.ListAllSnapshots(ctx, client.NewListSnapshotsOption().WithCollection("mv").
			WithStates(pb.SnapshotState_SNAPSHOT_STATE_COMMITTED)) {
			require.NoError(t, err)
			out = append(out, s)
		}
		return out
	}
	var counts struct{ writes, compactions, drops, snaps, snapDrops, restores, asked, deleted, refused int }
	seq := 0
	for step := range 50 {
		seq++
		segs := live()
		switch op := rng.IntN(8); {
		case op <= 1 || len(segs) < 2:
			_, err := datagen.Generate(ctx, cl, store, datagen.Options{Collection: "mv", Segments: 1 + rng.IntN(2),
				FilesPerSegment: 3, FileSize: 100, Seed: int64(seq)})
			require.NoError(t, err)
			counts.writes++
		case op == 2:
			in := []uint64{segs[0].Id, segs[1].Id}
			out, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("mv"))
			require.NoError(t, err)
			spec := datagen.FileSpec{Kind: pb.FileKind_FILE_KIND_INSERT, FieldID: 100, LogID: 1}
			key, err := datagen.MilvusKey(c.Root(), out, spec)
			require.NoError(t, err)
			content := datagen.NewContent(int64(seq), 0, 0, 200)
			_, err = store.Put(ctx, key, content, 200, objstore.PutOptions{CRC32C: content.CRC32C(), HasCRC32C: true})
			require.NoError(t, err)
			_, err = cl.CompactSegments(ctx, client.NewCompactSegmentsOption(in...).WithOutput(out.Id, 10,
				&pb.File{Key: key, Kind: spec.Kind, FieldId: 100, Size: 200, Crc32C: content.CRC32C()}))
			require.NoError(t, err)
			counts.compactions++
		case op == 3:
			_, err := cl.DropSegments(ctx, client.NewDropSegmentsOption(segs[rng.IntN(len(segs))].Id))
			require.NoError(t, err)
			counts.drops++
		case op == 4:
			_, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("mv", fmt.Sprintf("s-%d.%d", step, seq)))
			require.NoError(t, err)
			counts.snaps++
		case op == 5:
			if snaps := snapshots(); len(snaps) > 0 {
				_, err := cl.DropSnapshot(ctx, client.NewDropSnapshotOption("mv", snaps[rng.IntN(len(snaps))].Name))
				require.NoError(t, err)
				counts.snapDrops++
			}
		default:
			if snaps := snapshots(); len(snaps) > 0 {
				snap := snaps[rng.IntN(len(snaps))]
				target := fmt.Sprintf("r%d", seq)
				resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("mv", snap.Name, target))
				require.NoError(t, err)
				job, err := cl.WaitRestore(ctx, resp.JobId, nil)
				require.NoError(t, err)
				require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, "restore of %s: %s", snap.Name, job.Error)
				for _, s := range segmentsOf(t, cl, target) {
					require.NoError(t, datagen.Verify(ctx, store, s))
				}
				_, err = cl.DropCollection(ctx, client.NewDropCollectionOption(target))
				require.NoError(t, err)
				counts.restores++
			}
		}

		// The external collector: every dropped segment, a live one now and then, and a
		// sample of the keys in the bucket.
		opt := client.NewReleaseForDeletionOption()
		for _, s := range segmentsOf(t, cl, "mv") {
			if s.State == pb.SegmentState_SEGMENT_STATE_DROPPED || rng.IntN(6) == 0 {
				opt.WithSegments(s.Id)
			}
		}
		listed := gcListAll(t, store, c.Root()+"/")
		var keys []string
		for k := range listed {
			if rng.IntN(4) == 0 {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		opt.WithKeys(keys...)
		if len(keys) == 0 {
			opt.WithSegments(1 << 62) // never empty: an unknown segment, answered deletable
		}
		verdicts, err := cl.ReleaseForDeletion(ctx, opt)
		require.NoError(t, err)
		for _, v := range verdicts {
			counts.asked++
			if !v.Deletable {
				counts.refused++
				continue
			}
			var gone []string
			if v.Key != "" {
				gone = []string{v.Key}
			} else {
				seg, err := cl.GetSegment(ctx, client.NewGetSegmentOption(v.SegmentId))
				if errors.Is(err, client.ErrNotFound) {
					continue // not registered (or its record already collected): nothing to name
				}
				require.NoError(t, err)
				for _, f := range allFilesAnyState(seg) {
					gone = append(gone, f.Key)
				}
			}
			res, err := store.Delete(ctx, gone)
			require.NoError(t, err)
			require.Empty(t, res.Failed)
			counts.deleted += len(gone)
		}

		// Every live snapshot's files are all there.
		for _, snap := range snapshots() {
			files, _, _, err := gcManifestFiles(ctx, store, snap)
			require.NoError(t, err)
			now := gcListAll(t, store, c.Root()+"/")
			for k, size := range files {
				got, ok := now[k]
				require.True(t, ok, "step %d: %s of snapshot %s was deleted (seed %d)", step, k, snap.Name, seed)
				require.Equal(t, size, got, k)
			}
		}
	}
	t.Logf("%+v", counts)
	require.Positive(t, counts.deleted, "the collector deleted something")
	require.Positive(t, counts.refused, "the collector was refused something")
	require.True(t, strings.HasPrefix(c.Root(), "snapkeep"))
}

// allFilesAnyState are a segment's files and every build's, whatever their state.
func allFilesAnyState(s *pb.Segment) []*pb.File {
	out := append([]*pb.File{}, s.Files...)
	for _, b := range s.IndexBuilds {
		out = append(out, b.Files...)
	}
	return out
}
