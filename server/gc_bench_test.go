package server_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/versitygw"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// gcBenchEnv reads an integer knob of the GC benchmarks from the environment.
func gcBenchEnv(name string, def int) int {
	if v, err := strconv.Atoi(os.Getenv(name)); err == nil && v > 0 {
		return v
	}
	return def
}

// gcBenchCluster starts versitygw and a three-node cluster storing in it, with
// periodic collections off (each benchmark runs its own). Raft fsyncs as in
// production unless SNAPKEEP_BENCH_NOSYNC is set.
func gcBenchCluster(b *testing.B, configure func(cfg *server.Config)) (*servertest.Cluster, *client.Client, objstore.Store) {
	gw := versitygw.Start(b)
	ctx := context.Background()
	store, err := objstore.NewS3(ctx, gw.Config())
	require.NoError(b, err)
	b.Cleanup(func() { store.Close() })
	c := servertest.Start(b, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.Store, cfg.Storage = store, gw.Config()
		cfg.NoSync = os.Getenv("SNAPKEEP_BENCH_NOSYNC") != ""
		cfg.GCDisabled = true
		if configure != nil {
			configure(cfg)
		}
	}})
	cl, err := client.New(ctx, c.Endpoints()...)
	require.NoError(b, err)
	b.Cleanup(func() { cl.Close() })
	return c, cl, store
}

// gcBenchSegments allocates n segments of collection coll, puts files(i) tiny objects
// under each (and, for every orphanEvery-th segment, one more that its file list
// leaves out: an orphan), flushes them, all from workers goroutines, and returns the
// ids. It logs its progress.
func gcBenchSegments(b *testing.B, cl *client.Client, store objstore.Store, coll string, n, workers int, files func(i int) int, orphanEvery int) ([]uint64, int) {
	ctx := context.Background()
	ids := make([]uint64, n)
	var next, objects atomic.Int64
	var wg sync.WaitGroup
	body := []byte("0123456789abcdef")
	start := time.Now()
	for w := 0; w < workers; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n {
					return
				}
				s, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption(coll))
				if err != nil {
					b.Error(err)
					return
				}
				var fs []*pb.File
				for k := 0; k < files(i); k++ {
					f, err := gcPutBody(ctx, store, fmt.Sprintf("%sinsert/101/%d", s.Prefix, 449_000_000_000_000_000+k), pb.FileKind_FILE_KIND_INSERT, 101, body)
					if err != nil {
						b.Error(err)
						return
					}
					fs = append(fs, f)
				}
				objects.Add(int64(len(fs)))
				if orphanEvery > 0 && i%orphanEvery == 0 {
					if _, err := gcPutBody(ctx, store, s.Prefix+"insert/101/unlisted", pb.FileKind_FILE_KIND_INSERT, 101, body); err != nil {
						b.Error(err)
						return
					}
					objects.Add(1)
				}
				if _, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(s.Id).WithRowCount(1).WithFiles(fs...)); err != nil {
					b.Error(err)
					return
				}
				ids[i] = s.Id
				if done := i + 1; done%20000 == 0 {
					b.Logf("set-up: %d segments, %d objects in %v", done, objects.Load(), time.Since(start).Round(time.Second))
				}
			}
		}()
	}
	wg.Wait()
	if b.Failed() {
		b.FailNow()
	}
	b.Logf("set-up: %d segments, %d objects in %v", n, objects.Load(), time.Since(start).Round(time.Second))
	return ids, int(objects.Load())
}

// BenchmarkOrphanScanVsListWalk compares the orphan scan — a collection that lists the
// whole root and looks every key's owner up, with nothing to delete — against a plain
// ListObjectsV2 walk of the same prefix, on versitygw. The root holds
// SNAPKEEP_GC_BENCH_OBJECTS objects (default 200,000): 95% the files of flushed
// segments (8 each), the rest orphans (unlisted files under segment prefixes and keys
// no segment owns; the orphan grace of 24 h only counts them). The two alternate,
// A B A B, SNAPKEEP_GC_BENCH_ROUNDS times (default 2). Reports keys/s for both and
// their ratio. Run with -benchtime=1x.
func BenchmarkOrphanScanVsListWalk(b *testing.B) {
	total := gcBenchEnv("SNAPKEEP_GC_BENCH_OBJECTS", 200000)
	rounds := gcBenchEnv("SNAPKEEP_GC_BENCH_ROUNDS", 2)
	_, cl, store := gcBenchCluster(b, nil)
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("bench"))
	require.NoError(b, err)
	const perSegment = 8
	segments := total * 95 / 100 / perSegment
	// Every 16th segment also gets an unlisted upload (an orphan).
	_, objects := gcBenchSegments(b, cl, store, "bench", segments, 64, func(int) int { return perSegment }, 16)
	// Keys no segment owns, up to the total.
	var wg sync.WaitGroup
	var next atomic.Int64
	junk := total - objects
	for w := 0; w < 64; w++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := next.Add(1) - 1; i < int64(junk); i = next.Add(1) - 1 {
				if _, err := gcPutBody(ctx, store, fmt.Sprintf("%sjunk/%08d", gcRoot, i), pb.FileKind_FILE_KIND_INSERT, 0, []byte("x")); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	require.False(b, b.Failed())
	orphans := junk + (segments+15)/16
	b.Logf("root: %d objects, %d of them orphans", total, orphans)

	var scanTook, walkTook time.Duration
	var scanned, walked int
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		for r := 0; r < rounds; r++ {
			// A: the orphan scan.
			start := time.Now()
			resp, err := cl.GCRun(ctx, client.NewGCRunOption().WithOrphanGrace(24*time.Hour))
			took := time.Since(start)
			require.NoError(b, err)
			require.Zero(b, resp.Report.ObjectsDeleted)
			require.Zero(b, resp.Report.ErrorCount, resp.Report.Errors)
			require.EqualValues(b, total, resp.Report.ObjectsScanned)
			kept := uint64(0)
			for _, k := range resp.Report.Kept {
				kept += k.Objects
			}
			require.EqualValues(b, orphans, kept, "every orphan is counted, within the grace")
			scanTook += took
			scanned += int(resp.Report.ObjectsScanned)
			scanRate := float64(resp.Report.ObjectsScanned) / took.Seconds()

			// B: the plain walk.
			start = time.Now()
			n, token := 0, ""
			for {
				page, err := store.List(ctx, gcRoot, token, 1000)
				require.NoError(b, err)
				n += len(page.Objects)
				if page.NextToken == "" {
					break
				}
				token = page.NextToken
			}
			took = time.Since(start)
			require.Equal(b, total, n)
			walkTook += took
			walked += n
			walkRate := float64(n) / took.Seconds()
			b.Logf("round %d: orphan scan %.0f keys/s, list walk %.0f keys/s, ratio %.2f", r, scanRate, walkRate, scanRate/walkRate)
		}
	}
	b.StopTimer()
	scanRate, walkRate := float64(scanned)/scanTook.Seconds(), float64(walked)/walkTook.Seconds()
	b.ReportMetric(scanRate, "scan-keys/s")
	b.ReportMetric(walkRate, "walk-keys/s")
	b.ReportMetric(scanRate/walkRate, "scan/walk")
}

// BenchmarkReclaim100kSegments drops SNAPKEEP_GC_BENCH_SEGMENTS (default 100,000)
// flushed segments of 1–8 small objects each on versitygw (DropSegments in batches of
// 10,000) and measures one collection with grace 0, without the orphan scan. The
// delete rate limit is lifted (SNAPKEEP_GC_BENCH_RATE objects/s sets one); deletes run
// GCConcurrency (4, SNAPKEEP_GC_BENCH_CONCURRENCY) batches of 1,000 at a time. Reports
// objects deleted/s, records removed/s and the run's duration. Run with -benchtime=1x.
func BenchmarkReclaim100kSegments(b *testing.B) {
	b.StopTimer() // only the collections count
	n := gcBenchEnv("SNAPKEEP_GC_BENCH_SEGMENTS", 100000)
	rate := float64(gcBenchEnv("SNAPKEEP_GC_BENCH_RATE", 1e9))
	concurrency := gcBenchEnv("SNAPKEEP_GC_BENCH_CONCURRENCY", 4)
	c, cl, store := gcBenchCluster(b, func(cfg *server.Config) {
		cfg.GCDeleteRate = rate
		cfg.GCConcurrency = concurrency
	})
	ctx := context.Background()
	var took time.Duration
	var deleted, removed uint64
	for i := 0; i < b.N; i++ {
		coll := fmt.Sprintf("bench%d", i)
		_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(coll))
		require.NoError(b, err)
		ids, objects := gcBenchSegments(b, cl, store, coll, n, 64, func(i int) int { return 1 + i%8 }, 0)
		start := time.Now()
		for k := 0; k < len(ids); k += 10000 {
			_, err := cl.DropSegments(ctx, client.NewDropSegmentsOption(ids[k:min(k+10000, len(ids))]...))
			require.NoError(b, err)
		}
		b.Logf("dropped %d segments in %v", len(ids), time.Since(start).Round(time.Millisecond))
		c.WaitConverged()

		b.StartTimer()
		start = time.Now()
		runCtx, cancel := context.WithTimeout(ctx, time.Hour)
		resp, err := cl.GCRun(runCtx, client.NewGCRunOption().WithGrace(0).WithoutOrphanScan())
		cancel()
		runTook := time.Since(start)
		b.StopTimer()
		require.NoError(b, err)
		require.Zero(b, resp.Report.ErrorCount, resp.Report.Errors)
		require.EqualValues(b, objects, resp.Report.ObjectsDeleted)
		require.EqualValues(b, n, resp.Report.RecordsRemoved)
		page, err := store.List(ctx, gcRoot, "", 10)
		require.NoError(b, err)
		require.Empty(b, page.Objects, "objects left under the root")
		b.Logf("run %d: %d objects and %d records in %v (report: %v): %.0f objects/s, %.0f records/s", i,
			resp.Report.ObjectsDeleted, resp.Report.RecordsRemoved, runTook.Round(time.Millisecond),
			time.Duration(resp.Report.FinishedAtUnixMs-resp.Report.StartedAtUnixMs)*time.Millisecond,
			float64(resp.Report.ObjectsDeleted)/runTook.Seconds(), float64(resp.Report.RecordsRemoved)/runTook.Seconds())
		took += runTook
		deleted += resp.Report.ObjectsDeleted
		removed += resp.Report.RecordsRemoved
	}
	b.ReportMetric(float64(deleted)/took.Seconds(), "objects/s")
	b.ReportMetric(float64(removed)/took.Seconds(), "records/s")
	b.ReportMetric(took.Seconds()/float64(b.N), "s/run")
}
