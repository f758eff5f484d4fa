package fsm

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"

	"github.com/hashicorp/raft"
	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/fsmtest"
)

var (
	benchSegments  = flag.Int("fsm.bench-segments", 1_000_000, "segments in BenchmarkCatalogMemory")
	benchMeta      = flag.Bool("fsm.bench-milvus-meta", false, "BenchmarkCatalogMemory: a Milvus-layout collection with every segment's and file's Milvus metadata")
	benchKeepEvery = flag.Int("fsm.bench-keep-every", 0, "BenchmarkCatalogMemory: then drop and reclaim every segment but each Nth (0: none), the survivors spread over the whole catalog")
)

// BenchmarkApply measures FSM apply throughput for the commonest write: flushing a
// segment of eight files (allocation entries are applied outside the timer).
func BenchmarkApply(b *testing.B) {
	h := newHarness(b)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	cid := h.collection("docs").Id
	entries := make([][]byte, b.N)
	for i := range entries {
		s := h.allocate("docs")
		data, err := EncodeCommand(fmt.Sprintf("req-%d", i), h.now, &fsmpb.FlushSegment{SegmentId: s.Id, RowCount: 1000, Files: fsmtest.SnapkeepFiles(cid, s.Id)})
		require.NoError(b, err)
		entries[i] = data
	}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		h.applyRaw(entries[i])
	}
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
}

// BenchmarkApplyBatch measures the commonest plain catalog write, AllocateSegment
// with a request id, applied one entry at a time (Apply) and in batches (ApplyBatch,
// as raft hands a leader's commits to the FSM under concurrent clients).
func BenchmarkApplyBatch(b *testing.B) {
	for _, batch := range []int{1, 8, 32} {
		b.Run(fmt.Sprintf("batch=%d", batch), func(b *testing.B) {
			h := newHarness(b)
			h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
			logs := make([]*raft.Log, b.N)
			for i := range logs {
				data, err := EncodeCommand(fmt.Sprintf("req-%d", i), h.now, &fsmpb.AllocateSegment{Collection: "docs", Lease: 60 * second})
				require.NoError(b, err)
				logs[i] = &raft.Log{Index: h.index + uint64(i) + 1, Term: 1, Type: raft.LogCommand, Data: data}
			}
			b.ReportAllocs()
			b.ResetTimer()
			for i := 0; i < b.N; i += batch {
				if batch == 1 {
					h.f.Apply(logs[i])
					continue
				}
				h.f.ApplyBatch(logs[i:min(b.N, i+batch)])
			}
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "applies/s")
		})
	}
}

// BenchmarkCatalogMemory builds a catalog of -fsm.bench-segments flushed segments × 8
// files through Apply and reports the live heap and the process RSS. Target: 1M
// segments in under 1.5 GiB RSS. Run with -benchtime=1x.
func BenchmarkCatalogMemory(b *testing.B) {
	for i := 0; i < b.N; i++ {
		f := New(nil)
		index := uint64(0)
		put := func(data []byte) *ApplyResult {
			index++
			return f.Apply(&raft.Log{Index: index, Type: raft.LogCommand, Data: data}).(*ApplyResult)
		}
		create := &fsmpb.CreateCollection{Name: "docs"}
		if *benchMeta {
			create.Layout = fsmpb.KeyLayout_KEY_LAYOUT_MILVUS
		}
		data, _ := EncodeCommand("", 1, create)
		put(data)
		cid := f.View().r.meta().LastId - 1
		pid := f.View().r.meta().LastId
		for n := 0; n < *benchSegments; n++ {
			data, _ := EncodeCommand("", 1, &fsmpb.AllocateSegment{Collection: "docs", Lease: 3600 * second})
			res := put(data)
			require.NoError(b, res.Err())
			sid := f.View().r.meta().LastId
			flush := &fsmpb.FlushSegment{SegmentId: sid, RowCount: 1000, Files: fsmtest.SnapkeepFiles(cid, sid)}
			if *benchMeta {
				flush.Files, flush.Meta = fsmtest.MilvusFiles(cid, pid, sid), fsmtest.MilvusSegmentMeta(sid)
			}
			data, _ = EncodeCommand(fmt.Sprintf("r%d", n), 2, flush)
			res = put(data)
			require.NoError(b, res.Err())
		}
		if *benchKeepEvery > 0 {
			dropAllButEvery(b, put, uint64(pid+1), *benchSegments, *benchKeepEvery)
		}
		runtime.GC()
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		b.ReportMetric(float64(ms.HeapInuse)/float64(1<<20), "heap-MiB")
		b.ReportMetric(float64(ms.HeapInuse)/float64(*benchSegments), "heap-bytes/segment")
		b.ReportMetric(float64(rssBytes())/float64(1<<20), "rss-MiB")
		if path := os.Getenv("SNAPKEEP_HEAP_PROFILE"); path != "" {
			out, err := os.Create(path)
			require.NoError(b, err)
			require.NoError(b, pprof.WriteHeapProfile(out))
			require.NoError(b, out.Close())
		}
		runtime.KeepAlive(f)
	}
}

// dropAllButEvery drops the n segments of ids first, first+1, … but each keep-th, and
// removes their records as GC would: what long churn leaves, the survivors spread
// thinly over the heap.
func dropAllButEvery(b *testing.B, put func([]byte) *ApplyResult, first uint64, n, keep int) {
	const batch = 5000
	var ids []uint64
	flush := func() {
		if len(ids) == 0 {
			return
		}
		data, _ := EncodeCommand("", 3, &fsmpb.DropSegments{SegmentIds: ids})
		require.NoError(b, put(data).Err())
		data, _ = EncodeCommand("", 4, &fsmpb.GCRemove{Segments: ids})
		var removed fsmpb.GCRemoveResponse
		res := put(data)
		require.NoError(b, res.Err())
		require.NoError(b, proto.Unmarshal(res.Result.Response, &removed))
		require.EqualValues(b, len(ids), removed.Segments)
		ids = ids[:0]
	}
	for i := range n {
		if i%keep != 0 {
			ids = append(ids, first+uint64(i))
		}
		if len(ids) == batch {
			flush()
		}
	}
	flush()
}

// rssBytes reads the process's resident set size (Linux).
func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, line := range strings.Split(string(data), "\n") {
		if rest, ok := strings.CutPrefix(line, "VmRSS:"); ok {
			kb, _ := strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(rest), "kB")), 10, 64)
			return kb << 10
		}
	}
	return 0
}
