package restore

import (
	"context"
	"fmt"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/internal/duty"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
)

// instantStore copies instantly, answering with the CRC-32C the task expects, from a
// call stack as deep as the AWS SDK's (its middleware stack needs a goroutine stack of
// tens of KiB): what is left of a copy's CPU is the runner's own machinery.
type instantStore struct {
	objstore.Store
	crc uint32
}

func (s instantStore) Copy(ctx context.Context, src, dst string) (objstore.CopyInfo, error) {
	deepStack(24)
	return objstore.CopyInfo{HasCRC32C: true, CRC32C: s.crc}, ctx.Err()
}

//go:noinline
func deepStack(n int) byte {
	var frame [1 << 10]byte
	frame[n] = byte(n)
	if n == 0 {
		return frame[0]
	}
	return deepStack(n-1) + frame[n]
}

// BenchmarkRunnerPerTask measures the runner's CPU and allocations per task on a node:
// Concurrency workers take leased tasks from the queue, copy each (instantly) with
// verification, count it and add its outcome to the lease's report. Run with
//
//	go test ./restore -run '^$' -bench BenchmarkRunnerPerTask -benchmem
func BenchmarkRunnerPerTask(b *testing.B) {
	const concurrency, batch = 16, 256
	guard := &duty.Guard{}
	r := NewRunner(nil, RunnerConfig{Node: "n1", Batch: batch, Concurrency: concurrency, Guard: guard,
		Copied: func(fsmpb.JobKind, Result) {}})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	queue := make(chan queuedTask, batch)
	reports := make(chan *internalv1.ReportRestoreTasksRequest, 16)
	var workers sync.WaitGroup
	for range concurrency {
		workers.Go(func() { r.work(ctx, queue, reports) })
	}
	var reported sync.WaitGroup
	reported.Go(func() {
		for range reports {
		}
	})
	lease := &internalv1.LeaseRestoreTasksResponse{JobId: 1, Verify: true, DeadlineUnixMs: time.Now().Add(time.Hour).UnixMilli()}
	for i := range batch {
		lease.Tasks = append(lease.Tasks, &internalv1.RestoreTask{Index: uint32(i), Src: fmt.Sprintf("src/%05d", i), Dst: fmt.Sprintf("dst/%05d", i), Size: 16 << 10, Crc32C: 0x1234})
	}
	stores := JobStores{Source: instantStore{crc: 0x1234}, Dest: instantStore{crc: 0x1234}}
	b.ReportAllocs()
	b.ResetTimer()
	cpu0 := processCPU()
	for done := 0; done < b.N; {
		n := min(batch, b.N-done)
		lease.Tasks = lease.Tasks[:n]
		lease.LeaseId++
		bt := r.newBatch(ctx, lease, leaseDeadline(lease, time.Now()), stores, nil)
		for _, t := range bt.tasks {
			queue <- queuedTask{batch: bt, task: t}
		}
		done += n
		lease.Tasks = lease.Tasks[:batch]
	}
	close(queue)
	workers.Wait()
	close(reports)
	reported.Wait()
	b.ReportMetric(float64(processCPU()-cpu0)/float64(b.N), "cpu-ns/op")
}

// processCPU is the process's user and system CPU time so far: on a shared machine,
// CPU per task is what a benchmark can measure, not its wall-clock time.
func processCPU() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
