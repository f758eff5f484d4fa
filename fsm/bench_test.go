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

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

var (
	benchSegments = flag.Int("fsm.bench-segments", 1_000_000, "segments in BenchmarkCatalogMemory")
	benchMeta     = flag.Bool("fsm.bench-milvus-meta", false, "BenchmarkCatalogMemory: a Milvus-layout collection with every segment's and file's Milvus metadata")
)

// milvusFiles is realisticFiles in the Milvus layout, with Milvus's per-binlog
// metadata (log id, entries, timestamps, memory size).
func milvusFiles(cid, pid, sid uint64) []*fsmpb.File {
	logID := 449_000_000_000_000_000 + sid*16
	ts := 449_000_000_000_000_000 + sid<<18
	out := make([]*fsmpb.File, 0, 8)
	add := func(key string, kind fsmpb.FileKind, field int64, size uint64, id uint64) {
		out = append(out, &fsmpb.File{Key: key, Kind: kind, FieldId: field, Size: size, Crc32C: uint32(sid) * 2654435761,
			LogId: int64(id), Entries: 1000, TimestampFrom: ts, TimestampTo: ts + 1<<18 - 1, MemorySize: int64(size) * 3})
	}
	ids := fmt.Sprintf("%d/%d/%d", cid, pid, sid)
	for i, field := range []int64{0, 1, 100, 101, 102, 103} {
		id := logID + uint64(i)
		add(fmt.Sprintf("insert_log/%s/%d/%d", ids, field, id), fsmpb.FileKind_FILE_KIND_INSERT, field, 1<<20, id)
	}
	add(fmt.Sprintf("delta_log/%s/%d", ids, logID+7), fsmpb.FileKind_FILE_KIND_DELTA, 0, 4096, logID+7)
	add(fmt.Sprintf("stats_log/%s/100/%d", ids, logID+8), fsmpb.FileKind_FILE_KIND_STATS, 100, 8192, logID+8)
	return out
}

// milvusSegmentMeta is a segment's Milvus metadata of realistic size.
func milvusSegmentMeta(sid uint64) *fsmpb.SegmentMeta {
	pos := func(ts uint64) []byte {
		return []byte(fmt.Sprintf("by-dev-rootcoord-dml_3_449000000000000000v0|%016x|%d", ts, ts))
	}
	return &fsmpb.SegmentMeta{Level: fsmpb.SegmentLevel_SEGMENT_LEVEL_L1, Channel: "by-dev-rootcoord-dml_3_449000000000000000v0",
		StartPosition: pos(sid << 18), DmlPosition: pos(sid<<18 + 999), StorageVersion: 2, IsSorted: true}
}

// realisticFiles returns eight files in Milvus's shape: insert binlogs of several
// fields with 18-digit log ids, a delta log and a stats log.
func realisticFiles(cid, sid uint64) []*fsmpb.File {
	prefix := SegmentPrefix(cid, sid)
	logID := 449_000_000_000_000_000 + sid*16
	out := make([]*fsmpb.File, 0, 8)
	for i, field := range []int64{0, 1, 100, 101, 102, 103} {
		out = append(out, &fsmpb.File{Key: fmt.Sprintf("%sinsert/%d/%d", prefix, field, logID+uint64(i)), Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldId: field, Size: 1 << 20, Crc32C: uint32(sid) * 2654435761})
	}
	out = append(out,
		&fsmpb.File{Key: fmt.Sprintf("%sdelta/%d", prefix, logID+7), Kind: fsmpb.FileKind_FILE_KIND_DELTA, Size: 4096, Crc32C: uint32(sid)},
		&fsmpb.File{Key: fmt.Sprintf("%sstats/100/%d", prefix, logID+8), Kind: fsmpb.FileKind_FILE_KIND_STATS, FieldId: 100, Size: 8192, Crc32C: uint32(sid) + 1})
	return out
}

// BenchmarkApply measures FSM apply throughput for the commonest write: flushing a
// segment of eight files (allocation entries are applied outside the timer).
func BenchmarkApply(b *testing.B) {
	h := newHarness(b)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	cid := h.collection("docs").Id
	entries := make([][]byte, b.N)
	for i := range entries {
		s := h.allocate("docs")
		data, err := EncodeCommand(fmt.Sprintf("req-%d", i), h.now, &fsmpb.FlushSegment{SegmentId: s.Id, RowCount: 1000, Files: realisticFiles(cid, s.Id)})
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
			flush := &fsmpb.FlushSegment{SegmentId: sid, RowCount: 1000, Files: realisticFiles(cid, sid)}
			if *benchMeta {
				flush.Files, flush.Meta = milvusFiles(cid, pid, sid), milvusSegmentMeta(sid)
			}
			data, _ = EncodeCommand(fmt.Sprintf("r%d", n), 2, flush)
			res = put(data)
			require.NoError(b, res.Err())
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
