package baseline

import (
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/klauspost/compress/zstd"
)

func TestAvroRoundTrip(t *testing.T) {
	e := EntryOf(MilvusSegment(7, 8, 449_000_000_123), "files")
	e.IndexFiles = []IndexFileInfo{{FieldID: 101, IndexID: 5, BuildID: 6, IndexName: "vec", IndexParams: []KeyValuePair{{"index_type", "HNSW"}},
		IndexFilePaths: []string{"files/index_files/6/1/8/9/HNSW_1"}, SerializedSize: 1 << 30, CurrentIndexVersion: 5, NumRows: 10, MemSize: 11}}
	e.TextIndexFiles = []TextIndexFile{{FieldID: 102, Version: 1, BuildID: 9, Files: []string{"a", "b"}, LogSize: 3, MemorySize: 4}}
	e.JSONKeyIndexFiles = []TextIndexFile{{FieldID: 104, Files: []string{"j"}}}
	data, err := EncodeEntry(e)
	if err != nil {
		t.Fatal(err)
	}
	got, err := DecodeEntry(data)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(e, got); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	if n := got.FileCount(); n != 8+1+2+1 {
		t.Fatalf("FileCount = %d, want 12", n)
	}
	// A raw record, not an object container file ("Obj\x01" magic).
	if string(data[:3]) == "Obj" {
		t.Fatal("encoded as a container file")
	}
}

func TestEntryOfGroupsByField(t *testing.T) {
	e := EntryOf(MilvusSegment(1, 2, 3), "files")
	if len(e.BinlogFiles) != 6 || len(e.DeltalogFiles) != 1 || len(e.StatslogFiles) != 1 {
		t.Fatalf("groups: %d insert, %d delta, %d stats", len(e.BinlogFiles), len(e.DeltalogFiles), len(e.StatslogFiles))
	}
	if p := e.BinlogFiles[2].Binlogs[0].LogPath; p != "files/insert_log/1/2/3/100/449000000000000050" {
		t.Fatalf("log path %q", p)
	}
	if e.FileCount() != 8 {
		t.Fatalf("FileCount %d", e.FileCount())
	}
}

func TestSnapshotInfoRoundTripAndSize(t *testing.T) {
	s := TestSnapshotInfo(449_000_000_000_000_123, 449_000_000_000_000_001, "nightly-000123", []int64{449_000_000_000_000_002, 449_000_000_000_000_003})
	s.State = StateCommitted
	s.PendingStartTime = 1_764_000_000_000
	s.S3Location = (&Baseline{Root: "files"}).MetadataKey(s.CollectionID, s.ID)
	b := s.Marshal()
	// SEED-FACTS: "About 300 bytes".
	if len(b) < 250 || len(b) > 350 {
		t.Fatalf("record is %d bytes, want about 300", len(b))
	}
	got, err := UnmarshalSnapshotInfo(b)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(&s, got); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
	if _, err := UnmarshalSnapshotInfo(b[:len(b)-3]); err == nil {
		t.Fatal("truncated record decoded")
	}
}

func TestProtoZstdRoundTrip(t *testing.T) {
	var entries []*ManifestEntry
	for i := range 50 {
		entries = append(entries, EntryOf(MilvusSegment(1, 2, uint64(100+i)), "files"))
	}
	entries[3].IndexFiles = []IndexFileInfo{{FieldID: 101, IndexID: 5, BuildID: 6, IndexName: "vec", IndexParams: []KeyValuePair{{"k", "v"}}, IndexFilePaths: []string{"x"}, CurrentIndexVersion: 2}}
	entries[4].TextIndexFiles = []TextIndexFile{{FieldID: 1, Files: []string{"t"}}}
	enc, err := zstd.NewWriter(nil, zstd.WithEncoderLevel(zstd.SpeedFastest))
	if err != nil {
		t.Fatal(err)
	}
	dec, err := zstd.NewReader(nil)
	if err != nil {
		t.Fatal(err)
	}
	defer dec.Close()
	data := EncodeProtoZstd(enc, entries)
	got, err := DecodeProtoZstd(dec, data)
	if err != nil {
		t.Fatal(err)
	}
	// Empty and nil slices are the same on the wire.
	if diff := cmp.Diff(entries, got, cmpEmptyIsNil); diff != "" {
		t.Fatalf("round trip (-want +got):\n%s", diff)
	}
}

var cmpEmptyIsNil = cmp.FilterValues(func(a, b any) bool {
	return isEmptySlice(a) && isEmptySlice(b)
}, cmp.Comparer(func(a, b any) bool { return true }))

func isEmptySlice(v any) bool {
	switch s := v.(type) {
	case []FieldBinlog:
		return len(s) == 0
	case []IndexFileInfo:
		return len(s) == 0
	case []TextIndexFile:
		return len(s) == 0
	}
	return false
}

func TestMilvusSegmentIsDeterministic(t *testing.T) {
	a, b := MilvusSegment(1, 2, 3), MilvusSegment(1, 2, 3)
	if diff := cmp.Diff(a, b); diff != "" {
		t.Fatal(diff)
	}
	if len(a.Files) != 8 {
		t.Fatalf("%d files", len(a.Files))
	}
	if k := a.Files[6].SnapkeepRelKey(); k != "delta/449000000000000055" {
		t.Fatalf("delta key %q", k)
	}
}
