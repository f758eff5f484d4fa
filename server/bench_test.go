package server_test

import (
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime/pprof"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/versitygw"
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

// BenchmarkRestoreVsPlainCopy restores a 10,000-file snapshot on a three-node cluster
// whose bucket is a real versitygw, and, in the same run and the same bucket, copies
// the same 10,000 objects with a plain loop of parallel CopyObject calls at the same
// total concurrency (the two followers' executors: 2 × 16). The restore includes its
// pre-check listing, its leases through Raft and per-file verification. Reports
// files/s for both, and the process CPU per restored file (which bounds the leader's
// scheduling cost). Run with -benchtime=1x. SNAPKEEP_RESTORE_PROFILE and
// SNAPKEEP_PLAIN_PROFILE name files for CPU profiles of the first round's restore and
// plain loop (-cpuprofile cannot be combined with them); SNAPKEEP_BENCH_RESTORE_BATCH
// sets the nodes' RestoreBatch.
func BenchmarkRestoreVsPlainCopy(b *testing.B) {
	gw := versitygw.Start(b)
	ctx := context.Background()
	store, err := objstore.NewS3(ctx, gw.Config())
	require.NoError(b, err)
	defer store.Close()
	inflight := &inflightStore{Store: store}
	c := servertest.Start(b, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.Store, cfg.Storage = inflight, gw.Config()
		cfg.NoSync = os.Getenv("SNAPKEEP_BENCH_NOSYNC") != ""
		if n, err := strconv.Atoi(os.Getenv("SNAPKEEP_BENCH_RESTORE_BATCH")); err == nil {
			cfg.RestoreBatch = n
		}
	}})
	cl, err := client.New(ctx, c.Endpoints()...)
	require.NoError(b, err)
	defer cl.Close()
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("src"))
	require.NoError(b, err)
	const files, perSegment = 10000, 8
	_, err = datagen.Generate(ctx, cl, store, datagen.Options{Collection: "src", Segments: files / perSegment,
		FilesPerSegment: perSegment, FileSize: 16 << 10, Concurrency: 32})
	require.NoError(b, err)
	_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("src", "snap"))
	require.NoError(b, err)
	var srcKeys []string
	for s, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption("src")) {
		require.NoError(b, err)
		for _, f := range s.Files {
			srcKeys = append(srcKeys, f.Key)
		}
	}
	const concurrency = 2 * 16

	var restoreTotal, plainTotal, cpuTotal, plainCPUTotal time.Duration
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		// A: the restore.
		inflight.sum.Store(0)
		inflight.last.Store(0)
		if path := os.Getenv("SNAPKEEP_RESTORE_PROFILE"); path != "" && i == 0 {
			f, err := os.Create(path)
			require.NoError(b, err)
			require.NoError(b, pprof.StartCPUProfile(f))
			defer f.Close()
		}
		cpu0 := processCPU()
		start := time.Now()
		job := restoreAndWait(ctx, b, cl, fmt.Sprintf("copy%d", i))
		restoreTook := time.Since(start)
		b.Logf("in flight: avg %.1f max %d", float64(inflight.sum.Load())/float64(restoreTook.Nanoseconds()), inflight.max.Load())
		cpu := processCPU() - cpu0
		pprof.StopCPUProfile()
		b.Logf("restore: pre-check %v, copy %v, %d leases, %d attempts",
			time.Duration(job.StartedAtUnixMs-job.CreatedAtUnixMs)*time.Millisecond,
			time.Duration(job.FinishedAtUnixMs-job.StartedAtUnixMs)*time.Millisecond, job.Leases, job.Attempts)

		// B: the plain loop.
		if path := os.Getenv("SNAPKEEP_PLAIN_PROFILE"); path != "" && i == 0 {
			f, err := os.Create(path)
			require.NoError(b, err)
			require.NoError(b, pprof.StartCPUProfile(f))
			defer f.Close()
		}
		cpu0 = processCPU()
		start = time.Now()
		var next atomic.Int64
		var wg sync.WaitGroup
		for w := 0; w < concurrency; w++ {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for {
					k := next.Add(1) - 1
					if k >= int64(len(srcKeys)) {
						return
					}
					if _, err := store.Copy(ctx, srcKeys[k], fmt.Sprintf("plain%d/%s", i, srcKeys[k])); err != nil {
						b.Error(err)
						return
					}
				}
			}()
		}
		wg.Wait()
		plainTook := time.Since(start)
		plainCPU := processCPU() - cpu0
		pprof.StopCPUProfile()

		b.Logf("round %d: restore %.0f files/s, plain %.0f files/s, ratio %.2f", i,
			float64(len(srcKeys))/restoreTook.Seconds(), float64(len(srcKeys))/plainTook.Seconds(), plainTook.Seconds()/restoreTook.Seconds())
		restoreTotal += restoreTook
		plainTotal += plainTook
		cpuTotal += cpu
		plainCPUTotal += plainCPU
	}
	copied := float64(b.N * len(srcKeys))
	b.ReportMetric(copied/restoreTotal.Seconds(), "restore-files/s")
	b.ReportMetric(copied/plainTotal.Seconds(), "plain-files/s")
	b.ReportMetric(plainTotal.Seconds()/restoreTotal.Seconds(), "restore/plain")
	b.ReportMetric(float64(cpuTotal.Microseconds())/copied, "cpu-µs/file")
	b.ReportMetric(float64(plainCPUTotal.Microseconds())/copied, "plain-cpu-µs/file")
}

// processCPU is the process's user+system CPU time so far.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// instantCopyStore copies instantly: its Copy answers with the CRC-32C the source was
// uploaded with, and copies nothing. Everything else goes to the real store.
type instantCopyStore struct {
	objstore.Store
	crcs sync.Map // key → uint32
}

func (s *instantCopyStore) Put(ctx context.Context, key string, r io.Reader, size int64, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	if opts.HasCRC32C {
		s.crcs.Store(key, opts.CRC32C)
	}
	return s.Store.Put(ctx, key, r, size, opts)
}

func (s *instantCopyStore) Copy(ctx context.Context, src, dst string) (objstore.CopyInfo, error) {
	crc, ok := s.crcs.Load(src)
	if !ok {
		return objstore.CopyInfo{}, fmt.Errorf("%s: %w", src, objstore.ErrNotFound)
	}
	return objstore.CopyInfo{HasCRC32C: true, CRC32C: crc.(uint32)}, ctx.Err()
}

// BenchmarkRestoreScheduling measures what a restore costs besides its copies: a
// three-node cluster (fsync on) restores a snapshot of 20,000 files whose copies are
// instant (instantCopyStore: verified against the CRC-32C the response carries, as on
// versitygw, without a request), so the CPU per file is the scheduling's — the
// pre-check listing, leases and reports through Raft, the executors' machinery, the
// polls — for the whole process. SNAPKEEP_SCHED_PROFILE keeps a CPU profile of the
// restores, labelled by node (servertest labels every node's goroutines): the leader's
// share is go tool pprof -tags. Run with -benchtime=1x.
func BenchmarkRestoreScheduling(b *testing.B) {
	var store *instantCopyStore
	var leaderID string
	c := servertest.Start(b, 3, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		if store == nil {
			store = &instantCopyStore{Store: cfg.Store}
		}
		cfg.Store = store
		cfg.NoSync = false
		if n, err := strconv.Atoi(os.Getenv("SNAPKEEP_BENCH_RESTORE_BATCH")); err == nil {
			cfg.RestoreBatch = n
		}
	}})
	ctx := context.Background()
	cl, err := client.New(ctx, c.Endpoints()...)
	require.NoError(b, err)
	defer cl.Close()
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("src"))
	require.NoError(b, err)
	const files, perSegment = 20000, 8
	_, err = datagen.Generate(ctx, cl, store, datagen.Options{Collection: "src", Segments: files / perSegment,
		FilesPerSegment: perSegment, FileSize: 256, Concurrency: 32})
	require.NoError(b, err)
	_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("src", "snap"))
	require.NoError(b, err)
	for i, n := range c.Nodes {
		if n.IsLeader() {
			leaderID = fmt.Sprintf("n%d", i+1)
		}
	}
	path := os.Getenv("SNAPKEEP_SCHED_PROFILE")
	if path == "" {
		path = filepath.Join(b.TempDir(), "cpu.pprof")
	}
	f, err := os.Create(path)
	require.NoError(b, err)
	defer f.Close()

	var cpuTotal, took time.Duration
	var leases uint64
	b.ResetTimer()
	require.NoError(b, pprof.StartCPUProfile(f))
	for i := 0; i < b.N; i++ {
		cpu0 := processCPU()
		start := time.Now()
		leases += restoreAndWait(ctx, b, cl, fmt.Sprintf("copy%d", i)).Leases
		took += time.Since(start)
		cpuTotal += processCPU() - cpu0
	}
	pprof.StopCPUProfile()
	b.StopTimer()
	copied := float64(b.N * files)
	b.ReportMetric(copied/took.Seconds(), "files/s")
	b.ReportMetric(float64(cpuTotal.Microseconds())/copied, "cpu-µs/file")
	b.ReportMetric(float64(leases)/float64(b.N), "leases/restore")
	b.Logf("leader %s; its share: go tool pprof -tags <test binary> %s", leaderID, path)
}

// restoreAndWait restores snapshot src/snap into target and polls until the job
// completes, which it must; it returns the completed job.
func restoreAndWait(ctx context.Context, b *testing.B, cl *client.Client, target string) *pb.RestoreJob {
	resp, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("src", "snap", target))
	require.NoError(b, err)
	for {
		job, err := cl.GetRestoreState(ctx, resp.JobId)
		require.NoError(b, err)
		if job.State == pb.RestoreState_RESTORE_STATE_COMPLETED {
			return job
		}
		require.Contains(b, []pb.RestoreState{pb.RestoreState_RESTORE_STATE_PENDING, pb.RestoreState_RESTORE_STATE_COPYING}, job.State, job.Error)
		time.Sleep(50 * time.Millisecond)
	}
}
