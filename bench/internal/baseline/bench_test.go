package baseline

import (
	"testing"

	"github.com/klauspost/compress/zstd"
)

func benchEntries(n int) []*ManifestEntry {
	out := make([]*ManifestEntry, n)
	for i := range out {
		out[i] = EntryOf(MilvusSegment(449_000_000_000_000_001, 449_000_000_000_000_002, uint64(449_000_000_000_100_000+i)), "files")
	}
	return out
}

func BenchmarkEntryOf(b *testing.B) {
	for b.Loop() {
		benchEntries(10_000)
	}
}

func BenchmarkMarshalEntriesProto(b *testing.B) {
	es := benchEntries(10_000)
	for b.Loop() {
		MarshalEntriesProto(es)
	}
}

func BenchmarkZstdDefault(b *testing.B) {
	raw := MarshalEntriesProto(benchEntries(10_000))
	enc, _ := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedDefault), zstd.WithEncoderConcurrency(1))
	b.SetBytes(int64(len(raw)))
	for b.Loop() {
		enc.EncodeAll(raw, nil)
	}
}

func BenchmarkAvroEncode(b *testing.B) {
	es := benchEntries(10_000)
	for b.Loop() {
		for _, e := range es {
			if _, err := EncodeEntry(e); err != nil {
				b.Fatal(err)
			}
		}
	}
}
