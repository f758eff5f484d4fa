package adopt_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/adopt"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// BenchmarkAdopt adopts a Milvus layout of 2,500 segments × 8 files (20,000 files)
// from the listing into a fresh in-process three-node cluster (embedded S3, Raft logs
// not synced: the figure is the adoption path's, not the disk's) and reports files
// registered per second, listing included. Target: at least 20,000 files/s.
func BenchmarkAdopt(b *testing.B) {
	c := servertest.Start(b, 3, servertest.Options{})
	ctx := context.Background()
	cl, err := client.New(ctx, c.Endpoints()...)
	require.NoError(b, err)
	b.Cleanup(func() { cl.Close() })
	const segments, files = 2500, 8
	for i := range b.N {
		coll := uint64(449_000_000_000_000_000 + i*1_000_000)
		_, err := datagen.WriteMilvusLayout(ctx, c.Bucket.Store, datagen.MilvusLayoutOptions{Root: c.Root(), CollectionID: coll,
			PartitionIDs: []uint64{coll + 1, coll + 2}, Segments: segments, FilesPerSegment: files, FileSize: 16,
			FirstSegmentID: coll + 100, FirstLogID: int64(coll) + 100_000, Seed: 1})
		require.NoError(b, err)
		opts := adopt.Options{Name: fmt.Sprintf("adopted%d", i), CollectionID: coll, Root: c.Root()}
		start := time.Now()
		plan, err := adopt.Scan(ctx, c.Bucket.Store, opts)
		require.NoError(b, err)
		scanned := time.Since(start)
		res, err := adopt.Apply(ctx, cl, plan, opts)
		require.NoError(b, err)
		took := time.Since(start)
		require.Equal(b, segments*files, res.Files)
		b.ReportMetric(float64(res.Files)/took.Seconds(), "files/s")
		b.ReportMetric(float64(res.Files)/scanned.Seconds(), "listed-files/s")
	}
}
