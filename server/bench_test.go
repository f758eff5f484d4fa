package server_test

import (
	"context"
	"fmt"
	"sort"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
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
