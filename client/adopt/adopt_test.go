package adopt_test

import (
	"context"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/adopt"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// TestAdoptMilvusLayout adopts a generated Milvus layout of 500 segments in three
// partitions: the dry run's plan is exactly what the real run registers (every
// segment with its id and partition, every file with its key and size), nothing is
// copied or rewritten, and the adopted collection snapshots and restores.
func TestAdoptMilvusLayout(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	ctx := context.Background()
	cl, err := client.New(ctx, c.Endpoints()...)
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	store := c.Bucket.Store
	const coll = 449_000_000_000_000_001
	parts := []uint64{449_000_000_000_000_002, 449_000_000_000_000_003, 449_000_000_000_000_004}
	written, err := datagen.WriteMilvusLayout(ctx, store, datagen.MilvusLayoutOptions{Root: c.Root(), CollectionID: coll,
		PartitionIDs: parts, Segments: 500, FilesPerSegment: 5, FileSize: 64, FirstSegmentID: 449_000_000_000_001_000,
		FirstLogID: 449_000_000_000_100_000, Seed: 3})
	require.NoError(t, err)
	require.Len(t, written, 2500)
	// Objects the adoption must leave alone: another collection's, Milvus's other
	// directories, and a stray key under the collection's prefix.
	for _, k := range []string{"insert_log/7/8/9/100/1", "part_stats/449000000000000001/1", "insert_log/449000000000000001/junk"} {
		_, err := store.Put(ctx, c.Root()+"/"+k, strings.NewReader("x"), 1, objstore.PutOptions{})
		require.NoError(t, err)
	}
	before := listAll(t, store, "")

	opts := adopt.Options{Name: "orders", CollectionID: coll, Root: c.Root(), PartitionNames: map[uint64]string{parts[2]: "archive"}}
	dry, err := adopt.Scan(ctx, store, opts)
	require.NoError(t, err)
	require.Len(t, dry.Segments, 500)
	require.Equal(t, 2500, dry.Files)
	require.Equal(t, []string{"_default", "p449000000000000003", "archive"}, []string{dry.Partitions[0].Name, dry.Partitions[1].Name, dry.Partitions[2].Name})
	require.Len(t, dry.Skipped, 1)
	require.Contains(t, dry.Skipped[0], "insert_log/449000000000000001/junk")
	_, err = cl.DescribeCollection(ctx, client.NewDescribeCollectionOption("orders"))
	require.ErrorIs(t, err, client.ErrNotFound, "a dry run registers nothing")

	plan, err := adopt.Scan(ctx, store, opts)
	require.NoError(t, err)
	require.Equal(t, dry, plan, "the dry run plans exactly what the run registers")
	// An adoption interrupted after its first batch (the process killed): running it
	// again resumes, registering only what is missing.
	first := *plan
	first.Segments = plan.Segments[:200]
	part, err := adopt.Apply(ctx, cl, &first, opts)
	require.NoError(t, err)
	require.Equal(t, 200, part.Segments)
	res, err := adopt.Apply(ctx, cl, plan, opts)
	require.NoError(t, err)
	require.Equal(t, 200, res.Resumed)
	require.Equal(t, 300, res.Segments)
	require.Equal(t, 1500, res.Files)
	require.EqualValues(t, coll, res.Collection.Id)
	require.Equal(t, pb.KeyLayout_KEY_LAYOUT_MILVUS, res.Collection.Layout)

	// The catalog holds exactly the plan: ids, partitions, keys and sizes.
	want := map[uint64]*pb.RegisteredSegment{}
	for _, s := range plan.Segments {
		want[s.SegmentId] = s
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
		}
	}
	require.Equal(t, 500, n)
	require.Equal(t, before, listAll(t, store, ""), "nothing was copied, rewritten or deleted")

	// Adopted data snapshots and restores like any other (CRC-32C from the listing,
	// or read back where the listing had none).
	_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("orders", "adopted-2026.12.03"))
	require.NoError(t, err)
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("orders", "adopted-2026.12.03", "orders_copy"))
	require.NoError(t, err)
	job, err := cl.WaitRestore(ctx, resp.JobId, nil)
	require.NoError(t, err)
	require.Equal(t, pb.RestoreState_RESTORE_STATE_COMPLETED, job.State, job.Error)
	require.EqualValues(t, 2500, job.FilesDone)

	// Adopting again registers nothing; into a collection of other origin is refused.
	again, err := adopt.Apply(ctx, cl, plan, opts)
	require.NoError(t, err)
	require.Equal(t, 500, again.Resumed)
	require.Zero(t, again.Segments)
	_, err = adopt.Apply(ctx, cl, plan, adopt.Options{Name: "orders_copy", CollectionID: coll, Root: c.Root()})
	require.ErrorIs(t, err, client.ErrAlreadyExists)
	require.ErrorContains(t, err, "not an earlier adoption")
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
