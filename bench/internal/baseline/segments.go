// Package baseline is "the Milvus way" of keeping collection snapshots, written from
// /work/shared/SEED-FACTS.md and Milvus's snapshot design: a SnapshotInfo record
// (~300 bytes of protobuf) in etcd under snapshot/<collection>/<id>, put PENDING and
// then COMMITTED; one raw-binary Avro object per segment holding that segment's file
// lists; and one JSON metadata object per snapshot listing them. The benchmark
// scenarios run it side by side with snapkeep on the same S3 server.
package baseline

import (
	"fmt"
	"hash/crc32"
)

// FileKind is what a segment file holds.
type FileKind int

const (
	KindInsert FileKind = iota // an insert binlog of one field
	KindDelta                  // a delta (delete) log
	KindStats                  // a stats log (primary-key statistics)
)

// SegmentFile is one file of a segment, independent of where it is kept: both sides
// of the benchmark derive their keys from it.
type SegmentFile struct {
	Kind    FileKind
	FieldID int64
	LogID   uint64
	Size    uint64
	CRC32C  uint32
	Entries int64 // rows (insert), deletes (delta) or 1 (stats)
}

// Segment is a flushed segment and its files.
type Segment struct {
	ID, PartitionID, CollectionID uint64
	Rows                          int64
	Files                         []SegmentFile
}

// InsertFields are the fields whose insert binlogs every segment has: Milvus's row id
// (0) and timestamp (1) system fields and four user fields.
var InsertFields = []int64{0, 1, 100, 101, 102, 103}

// RowsPerSegment is every generated segment's row count.
const RowsPerSegment = 10_000

// MilvusSegment returns segment id's eight Milvus-shaped files — six insert binlogs
// (fields 0, 1, 100–103, ~1 MiB each), a delta log and a stats log — with 18-digit
// log ids derived from the segment id and sizes and checksums as random as real ones
// (a hash of the file's identity, so the same segment id always gives the same files
// and a manifest compresses no better than it would for real data). It is the layout
// server/bench_test.go's fillCollection flushes.
func MilvusSegment(collectionID, partitionID, id uint64) Segment {
	logID := 449_000_000_000_000_000 + id*16
	s := Segment{ID: id, PartitionID: partitionID, CollectionID: collectionID, Rows: RowsPerSegment}
	file := func(kind FileKind, field int64, log uint64, size uint64, entries int64) SegmentFile {
		sum := crc32.ChecksumIEEE(fmt.Appendf(nil, "%d/%d/%d/%d", id, kind, field, log))
		return SegmentFile{Kind: kind, FieldID: field, LogID: log, Size: size + uint64(sum%4096), CRC32C: sum, Entries: entries}
	}
	for i, field := range InsertFields {
		s.Files = append(s.Files, file(KindInsert, field, logID+uint64(i), 1<<20, RowsPerSegment))
	}
	s.Files = append(s.Files,
		file(KindDelta, 0, logID+7, 4096, 100),
		file(KindStats, 100, logID+8, 8192, 1))
	return s
}

// SnapkeepRelKey is the file's key relative to its snapkeep segment prefix
// (<kind>/<field>/<log id>; a delta log has no field directory), the layout
// fillCollection uses.
func (f SegmentFile) SnapkeepRelKey() string {
	switch f.Kind {
	case KindDelta:
		return fmt.Sprintf("delta/%d", f.LogID)
	case KindStats:
		return fmt.Sprintf("stats/%d/%d", f.FieldID, f.LogID)
	}
	return fmt.Sprintf("insert/%d/%d", f.FieldID, f.LogID)
}

// MilvusPath is the file's key in Milvus's layout under root:
// <root>/insert_log/<collection>/<partition>/<segment>/<field>/<log id>, and
// delta_log, stats_log likewise.
func (s Segment) MilvusPath(root string, f SegmentFile) string {
	dir := "insert_log"
	switch f.Kind {
	case KindDelta:
		dir = "delta_log"
	case KindStats:
		dir = "stats_log"
	}
	return fmt.Sprintf("%s/%s/%d/%d/%d/%d/%d", root, dir, s.CollectionID, s.PartitionID, s.ID, f.FieldID, f.LogID)
}
