package scenario

import (
	"context"
	"fmt"
	"hash/crc32"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapkeep/snapkeep/bench/internal/baseline"
	"github.com/snapkeep/snapkeep/bench/internal/stats"
	"github.com/snapkeep/snapkeep/client"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// flushMilvusSegments allocates and flushes n segments in collection coll
// (partition "" for _default) through the client, from workers concurrent
// goroutines: one AllocateSegment and one FlushSegment (two Raft entries) per
// segment, each with baseline.MilvusSegment's eight files under the segment's prefix.
// It returns the segments as the baseline sees them: the same ids, partition, files.
func flushMilvusSegments(ctx context.Context, cl *client.Client, coll, partition string, n, workers int) ([]baseline.Segment, error) {
	out := make([]baseline.Segment, n)
	if err := flushSegmentsInto(ctx, cl, coll, partition, n, workers, out, nil); err != nil {
		return nil, err
	}
	return out, nil
}

// flushSegmentsInto is flushMilvusSegments keeping segment i in out[i] when out is not
// nil (a load of a million segments keeps nothing) and counting the segments flushed in
// done when it is not nil.
func flushSegmentsInto(ctx context.Context, cl *client.Client, coll, partition string, n, workers int, out []baseline.Segment, done *atomic.Int64) error {
	var next atomic.Int64
	var firstErr error
	var errOnce sync.Once
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	for range min(workers, n) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1)) - 1
				if i >= n || ctx.Err() != nil {
					return
				}
				var seg *baseline.Segment
				if out != nil {
					seg = &out[i]
				}
				if err := flushOneMilvusSegment(ctx, cl, coll, partition, seg); err != nil {
					errOnce.Do(func() { firstErr = err; cancel() })
					return
				}
				if done != nil {
					done.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	if firstErr != nil {
		return firstErr
	}
	return ctx.Err()
}

func flushOneMilvusSegment(ctx context.Context, cl *client.Client, coll, partition string, out *baseline.Segment) error {
	opt := client.NewAllocateSegmentOption(coll)
	if partition != "" {
		opt = opt.WithPartition(partition)
	}
	s, err := cl.AllocateSegment(ctx, opt)
	if err != nil {
		return fmt.Errorf("allocate a segment in %s: %w", coll, err)
	}
	seg := baseline.MilvusSegment(s.CollectionId, s.PartitionId, s.Id)
	files := make([]*pb.File, 0, len(seg.Files))
	for _, f := range seg.Files {
		files = append(files, snapkeepFile(s.Prefix, f))
	}
	if _, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(s.Id).WithRowCount(seg.Rows).WithFiles(files...)); err != nil {
		return fmt.Errorf("flush segment %d: %w", s.Id, err)
	}
	if out != nil {
		*out = seg
	}
	return nil
}

// snapkeepFile is f as snapkeep records it under a segment prefix.
func snapkeepFile(prefix string, f baseline.SegmentFile) *pb.File {
	kind := pb.FileKind_FILE_KIND_INSERT
	switch f.Kind {
	case baseline.KindDelta:
		kind = pb.FileKind_FILE_KIND_DELTA
	case baseline.KindStats:
		kind = pb.FileKind_FILE_KIND_STATS
	}
	field := f.FieldID
	if f.Kind == baseline.KindDelta {
		field = 0
	}
	return &pb.File{Key: prefix + f.SnapkeepRelKey(), Kind: kind, FieldId: field, Size: f.Size, Crc32C: f.CRC32C}
}

// closedLoop runs op from clients goroutines back to back for d and returns the
// completed operations per second and their latencies. Worker w's i-th call gets
// (w, i). The first error ends the run and is returned.
func closedLoop(ctx context.Context, clients int, d time.Duration, op func(ctx context.Context, w, i int) error) (float64, *stats.Latencies, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	deadline := time.Now().Add(d)
	lats := make([]stats.Latencies, clients)
	var wg sync.WaitGroup
	start := time.Now()
	for w := range clients {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; time.Now().Before(deadline) && ctx.Err() == nil; i++ {
				t0 := time.Now()
				if err := op(ctx, w, i); err != nil {
					cancel(err)
					return
				}
				lats[w].Add(time.Since(t0))
			}
		}()
	}
	wg.Wait()
	elapsed := time.Since(start)
	if err := context.Cause(ctx); err != nil {
		return 0, nil, err
	}
	all := &stats.Latencies{}
	for w := range lats {
		all.Merge(&lats[w])
	}
	return float64(all.Len()) / elapsed.Seconds(), all, nil
}

// milvusRecordValue is a ~300-byte value, the size of a snapshot record, for plain
// etcd puts: the key's checksum repeated so it does not compress to nothing.
func milvusRecordValue(key string) string {
	sum := crc32.ChecksumIEEE([]byte(key))
	b := make([]byte, 0, 300)
	for len(b) < 300 {
		b = fmt.Appendf(b, "%08x", sum)
		sum = sum*2654435761 + 1
	}
	return string(b[:300])
}

// clockTicks is Linux's USER_HZ, the unit of /proc/<pid>/stat's CPU times.
const clockTicks = 100

// processCPU is the CPU time (user + system) the processes have used so far.
func processCPU(pids []int) (time.Duration, error) {
	var total time.Duration
	for _, pid := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
		if err != nil {
			return 0, fmt.Errorf("cpu of pid %d: %w", pid, err)
		}
		// The command name (field 2) may hold spaces; the fields after it start at 3.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 13 {
			return 0, fmt.Errorf("cpu of pid %d: short /proc stat", pid)
		}
		for _, field := range f[11:13] { // utime, stime: fields 14 and 15
			ticks, err := strconv.ParseInt(field, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("cpu of pid %d: %w", pid, err)
			}
			total += time.Duration(ticks) * time.Second / clockTicks
		}
	}
	return total, nil
}
