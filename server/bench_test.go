package server_test

import (
	"context"
	"fmt"
	"hash/crc32"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// BenchmarkCatalogWrites measures catalog writes (AllocateSegment, one Raft entry each)
// per second on a three-node cluster over loopback TCP with fsync on, from 1 and 64
// concurrent clients, through the Go client. It reports writes/s and latency
// percentiles.
func BenchmarkCatalogWrites(b *testing.B) {
	c := servertest.Start(b, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.NoSync = false // measure what a real node pays
	}})
	ctx := context.Background()
	cl, err := client.New(ctx, c.Endpoints()...)
	require.NoError(b, err)
	defer cl.Close()
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("bench"))
	require.NoError(b, err)

	for _, clients := range []int{1, 64} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			var next atomic.Int64
			lat := make([]time.Duration, b.N)
			var wg sync.WaitGroup
			b.ResetTimer()
			for w := 0; w < clients; w++ {
				wg.Add(1)
				go func() {
					defer wg.Done()
					for {
						i := next.Add(1) - 1
						if i >= int64(b.N) {
							return
						}
						start := time.Now()
						_, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("bench"))
						lat[i] = time.Since(start)
						if err != nil {
							b.Error(err)
							return
						}
					}
				}()
			}
			wg.Wait()
			b.StopTimer()
			sort.Slice(lat, func(i, j int) bool { return lat[i] < lat[j] })
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "writes/s")
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
			b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
		})
	}
}

// BenchmarkCreateSnapshot measures CreateSnapshot end to end — SnapshotBegin through
// Raft, the leader writing the manifest to the bucket, SnapshotCommit — on a three-node
// cluster for collections of 1k, 10k and 100k flushed segments × 8 files (catalog
// entries only: a snapshot reads no segment objects). Run with -benchtime=1x: building
// the 100k collection takes about a minute.
func BenchmarkCreateSnapshot(b *testing.B) {
	for _, segments := range []int{1000, 10000, 100000} {
		b.Run(fmt.Sprintf("segments=%d", segments), func(b *testing.B) {
			c := servertest.Start(b, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
				cfg.NoSync = false
			}})
			ctx := context.Background()
			cl, err := client.New(ctx, c.Endpoints()...)
			require.NoError(b, err)
			defer cl.Close()
			coll := "bench"
			_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption(coll))
			require.NoError(b, err)
			fillCollection(b, ctx, cl, coll, segments, 64)

			b.ResetTimer()
			var last *pb.Snapshot
			for i := 0; i < b.N; i++ {
				last, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption(coll, fmt.Sprintf("s%d", i)))
				require.NoError(b, err)
			}
			b.StopTimer()
			b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/snapshot")
			b.ReportMetric(float64(last.ManifestSize), "manifest-bytes")
			b.ReportMetric(float64(last.ManifestSize)/float64(last.Summary.Files), "bytes/file")
		})
	}
}

// fillCollection allocates and flushes n segments of eight Milvus-shaped files each,
// from workers concurrent clients.
func fillCollection(b *testing.B, ctx context.Context, cl *client.Client, coll string, n, workers int) {
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(n) {
				s, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption(coll))
				if err != nil {
					b.Error(err)
					return
				}
				logID := 449_000_000_000_000_000 + s.Id*16
				var files []*pb.File
				// Checksums and sizes as random as real ones (a hash of the key), so the
				// manifest compresses no better than it would for real data.
				file := func(key string, kind pb.FileKind, field int64, size uint64) *pb.File {
					sum := crc32.ChecksumIEEE([]byte(key))
					return &pb.File{Key: key, Kind: kind, FieldId: field, Size: size + uint64(sum%4096), Crc32C: sum}
				}
				for i, field := range []int64{0, 1, 100, 101, 102, 103} {
					files = append(files, file(fmt.Sprintf("%sinsert/%d/%d", s.Prefix, field, logID+uint64(i)), pb.FileKind_FILE_KIND_INSERT, field, 1<<20))
				}
				files = append(files,
					file(fmt.Sprintf("%sdelta/%d", s.Prefix, logID+7), pb.FileKind_FILE_KIND_DELTA, 0, 4096),
					file(fmt.Sprintf("%sstats/100/%d", s.Prefix, logID+8), pb.FileKind_FILE_KIND_STATS, 100, 8192))
				if _, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(s.Id).WithRowCount(10000).WithFiles(files...)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
}
