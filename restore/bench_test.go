package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/restore"
)

// BenchmarkExecutorVsPlainCopy compares the Executor (with verification) with
// a plain loop of parallel CopyObject calls at the same concurrency, on
// versitygw, copying 10,000 files of 16 KiB per iteration. The sub-benchmarks
// alternate (executor, plain, plain, executor, executor, plain) so that drift
// in the machine's state hits both alike. Run it with
//
//	go test ./restore -run '^$' -bench BenchmarkExecutorVsPlainCopy -benchtime 1x
//
// and compare the files/s metrics.
func BenchmarkExecutorVsPlainCopy(b *testing.B) {
	const (
		files       = 10_000
		size        = 16 << 10
		concurrency = 16
	)
	gw := versityBackend(b)
	store := newStore(b, gw.cfg)

	srcs := make([]string, files)
	crcs := make([]uint32, files)
	parallelDo(b, files, 32, func(i int) error {
		data := bytes.Repeat([]byte{byte(i), byte(i >> 8), 0x5a, 0xa5}, size/4)
		srcs[i] = fmt.Sprintf("bench/src/%02d/%05d.bin", i%100, i)
		crcs[i] = crc32c(data)
		// Uploaded without a checksum, as most writers do (versitygw then
		// keeps a CRC64NVME; the copy computes the CRC-32C it is asked for).
		_, err := store.Put(context.Background(), srcs[i], bytes.NewReader(data), size, objstore.PutOptions{})
		return err
	})

	round := 0
	tasksFor := func() []restore.Task {
		round++
		tasks := make([]restore.Task, files)
		for i := range tasks {
			tasks[i] = restore.Task{
				Index: uint32(i), Src: srcs[i], Size: size, CRC32C: crcs[i],
				Dst: fmt.Sprintf("bench/dst-%d/%02d/%05d.bin", round, i%100, i),
			}
		}
		return tasks
	}
	cleanup := func(b *testing.B, tasks []restore.Task) {
		b.Helper()
		for start := 0; start < len(tasks); start += objstore.MaxDeleteBatch {
			keys := make([]string, 0, objstore.MaxDeleteBatch)
			for _, t := range tasks[start:min(start+objstore.MaxDeleteBatch, len(tasks))] {
				keys = append(keys, t.Dst)
			}
			if _, err := store.Delete(context.Background(), keys); err != nil {
				b.Fatal(err)
			}
		}
	}

	executor := func(b *testing.B) {
		exec := &restore.Executor{Store: store, Concurrency: concurrency, Verify: true}
		for b.Loop() {
			b.StopTimer()
			tasks := tasksFor()
			b.StartTimer()
			for _, r := range exec.Run(context.Background(), tasks) {
				if r.Err != nil {
					b.Fatal(r.Err)
				}
			}
			b.StopTimer()
			cleanup(b, tasks)
			b.StartTimer()
		}
		b.ReportMetric(float64(files*b.N)/b.Elapsed().Seconds(), "files/s")
	}
	plain := func(b *testing.B) {
		for b.Loop() {
			b.StopTimer()
			tasks := tasksFor()
			b.StartTimer()
			var next atomic.Int64
			var wg sync.WaitGroup
			errs := make(chan error, concurrency)
			for range concurrency {
				wg.Go(func() {
					for {
						i := int(next.Add(1) - 1)
						if i >= len(tasks) {
							return
						}
						if _, err := store.Copy(context.Background(), tasks[i].Src, tasks[i].Dst); err != nil {
							errs <- err
							return
						}
					}
				})
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				b.Fatal(err)
			}
			b.StopTimer()
			cleanup(b, tasks)
			b.StartTimer()
		}
		b.ReportMetric(float64(files*b.N)/b.Elapsed().Seconds(), "files/s")
	}

	// A warm-up round, not reported: the first round after the upload runs
	// markedly faster than every later one, whichever side runs it.
	b.Run("0-warmup-plain", plain)
	// A B B A A B: interleaved, and balanced against drift that grows with
	// time (throughput falls a little as the gateway's directories fill).
	b.Run("1-executor", executor)
	b.Run("2-plain", plain)
	b.Run("3-plain", plain)
	b.Run("4-executor", executor)
	b.Run("5-executor", executor)
	b.Run("6-plain", plain)
}
