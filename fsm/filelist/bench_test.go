package filelist

import (
	"fmt"
	"testing"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// BenchmarkTotals sums a Milvus segment's eight file sizes (what a snapshot's first
// pin of a segment does, and the manifest's totals), against a full decoding.
//
//	go test ./fsm/filelist -run '^$' -bench . -benchmem
func BenchmarkTotals(b *testing.B) {
	var entries []Entry
	for i := range 6 {
		id := uint64(449000000000000016 + i)
		entries = append(entries, Entry{Key: fmt.Sprintf("insert_log/449/450/451/%d/%d", 100+i, id), Kind: fsmpb.FileKind_FILE_KIND_INSERT,
			FieldID: int64(100 + i), Size: 1 << 20, CRC32C: uint32(i), LogID: int64(id), Entries: 1000, TimestampFrom: 5, TimestampTo: 9, MemorySize: 3 << 20})
	}
	entries = append(entries,
		Entry{Key: "delta_log/449/450/451/449000000000000023", Kind: fsmpb.FileKind_FILE_KIND_DELTA, Size: 4096, LogID: 449000000000000023, Entries: 3},
		Entry{Key: "stats_log/449/450/451/100/449000000000000024", Kind: fsmpb.FileKind_FILE_KIND_STATS, FieldID: 100, Size: 8192, LogID: 449000000000000024})
	blob := EncodeSorted(entries)
	b.Run("totals", func(b *testing.B) {
		for b.Loop() {
			if _, _, err := Totals(blob); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("decode", func(b *testing.B) {
		for b.Loop() {
			if _, err := Decode(blob); err != nil {
				b.Fatal(err)
			}
		}
	})
}
