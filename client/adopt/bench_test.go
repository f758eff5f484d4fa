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

// BenchmarkAdopt adopts a Milvus layout of 2,500 segments, each with 8 log files, one
// text index file and one index build of 2 files (27,500 files: 22,500 segment files,
// 5,000 index files in 2,500 builds), from the listing into a fresh in-process
// three-node cluster (embedded S3, Raft logs not synced: the figure is the adoption
// path's, not the disk's) and reports files registered per second (segment and build
// files), listing included. text_log/ and index_files/ are listed whole, so each
// iteration also lists the earlier iterations' collections' files there. Target: at
// least 20,000 files/s.
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
			FirstSegmentID: coll + 100, FirstLogID: int64(coll) + 100_000, Seed: 1,
			IndexBuilds: 1, IndexFilesPerBuild: 2, TextIndexFiles: 1, FirstBuildID: coll + 500_000})
		require.NoError(b, err)
		opts := adopt.Options{Name: fmt.Sprintf("adopted%d", i), CollectionID: coll, Root: c.Root(),
			Indexes: []adopt.Index{{ID: coll + 50, Name: "vec", FieldID: 101}}}
		start := time.Now()
		plan, err := adopt.Scan(ctx, c.Bucket.Store, opts)
		require.NoError(b, err)
		scanned := time.Since(start)
		res, err := adopt.Apply(ctx, cl, plan, opts)
		require.NoError(b, err)
		took := time.Since(start)
		require.Equal(b, segments*(files+1), res.Files)
		require.Equal(b, segments, res.Builds)
		require.Equal(b, segments*2, res.BuildFiles)
		all := float64(res.Files + res.BuildFiles)
		b.ReportMetric(all/took.Seconds(), "files/s")
		b.ReportMetric(all/scanned.Seconds(), "listed-files/s")
	}
}
