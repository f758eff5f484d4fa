// Package fsmtest generates realistic segment contents for tests and benchmarks of
// the catalog: the eight files of a Milvus segment (six insert binlogs with 18-digit
// log ids, a delta log and a stats log) in either key layout, and Milvus's metadata of
// a segment and its binlogs. The fsm benchmarks and the bench tool's scale scenario
// use the same contents, so their figures compare.
package fsmtest

import (
	"fmt"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
)

// insertFields are the fields with an insert binlog: Milvus's row id (0) and
// timestamp (1) fields and four user fields.
var insertFields = []int64{0, 1, 100, 101, 102, 103}

// firstLogID is where the log ids start: Milvus's allocator hands out 18-digit ids.
const firstLogID = 449_000_000_000_000_000

// SnapkeepFiles returns a segment's eight files in the snapkeep layout, with sizes
// and CRC-32C but without Milvus's per-binlog metadata.
func SnapkeepFiles(collectionID, segmentID uint64) []*fsmpb.File {
	prefix := layout.SnapkeepSegmentPrefix(collectionID, segmentID)
	logID := firstLogID + segmentID*16
	out := make([]*fsmpb.File, 0, 8)
	for i, field := range insertFields {
		out = append(out, &fsmpb.File{Key: fmt.Sprintf("%sinsert/%d/%d", prefix, field, logID+uint64(i)),
			Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldId: field, Size: 1 << 20, Crc32C: uint32(segmentID) * 2654435761})
	}
	return append(out,
		&fsmpb.File{Key: fmt.Sprintf("%sdelta/%d", prefix, logID+7), Kind: fsmpb.FileKind_FILE_KIND_DELTA, Size: 4096, Crc32C: uint32(segmentID)},
		&fsmpb.File{Key: fmt.Sprintf("%sstats/100/%d", prefix, logID+8), Kind: fsmpb.FileKind_FILE_KIND_STATS, FieldId: 100, Size: 8192, Crc32C: uint32(segmentID) + 1})
}

// MilvusFiles returns a segment's eight files in the Milvus layout with Milvus's
// per-binlog metadata: log id, entries (the segment's rows), timestamps and memory
// size.
func MilvusFiles(collectionID, partitionID, segmentID uint64) []*fsmpb.File {
	logID := firstLogID + segmentID*16
	ts := firstLogID + segmentID<<18
	out := make([]*fsmpb.File, 0, 8)
	add := func(key string, kind fsmpb.FileKind, field int64, size uint64, id uint64) {
		out = append(out, &fsmpb.File{Key: key, Kind: kind, FieldId: field, Size: size, Crc32C: uint32(segmentID) * 2654435761,
			LogId: int64(id), Entries: 1000, TimestampFrom: ts, TimestampTo: ts + 1<<18 - 1, MemorySize: int64(size) * 3})
	}
	ids := fmt.Sprintf("%d/%d/%d", collectionID, partitionID, segmentID)
	for i, field := range insertFields {
		id := logID + uint64(i)
		add(fmt.Sprintf("insert_log/%s/%d/%d", ids, field, id), fsmpb.FileKind_FILE_KIND_INSERT, field, 1<<20, id)
	}
	add(fmt.Sprintf("delta_log/%s/%d", ids, logID+7), fsmpb.FileKind_FILE_KIND_DELTA, 0, 4096, logID+7)
	add(fmt.Sprintf("stats_log/%s/100/%d", ids, logID+8), fsmpb.FileKind_FILE_KIND_STATS, 100, 8192, logID+8)
	return out
}

// MilvusChannel is the DML channel of MilvusSegmentMeta's segments.
const MilvusChannel = "by-dev-rootcoord-dml_3_449000000000000000v0"

// MilvusSegmentMeta returns a segment's Milvus metadata of realistic size: level L1,
// the channel, start and DML positions encoded as Milvus marshals a msgpb.MsgPosition
// (channel name, an 8-byte message id, the timestamp), storage version 2, sorted.
func MilvusSegmentMeta(segmentID uint64) *fsmpb.SegmentMeta {
	ts := firstLogID + segmentID<<18
	return &fsmpb.SegmentMeta{Level: fsmpb.SegmentLevel_SEGMENT_LEVEL_L1, Channel: MilvusChannel,
		StartPosition: MsgPosition(MilvusChannel, segmentID*2, ts), DmlPosition: MsgPosition(MilvusChannel, segmentID*2+1, ts+1<<18-1),
		StorageVersion: 2, IsSorted: true}
}

// MilvusMsgGroup is the consumer group named in MilvusSegmentMeta's positions.
const MilvusMsgGroup = "by-dev-dataNode-5"

// MsgPosition encodes a position as Milvus's msgpb.MsgPosition marshals: channel name
// (field 1), message id (field 2, 8 bytes little-endian, as a Pulsar or Kafka id
// serializes), message group (field 3, MilvusMsgGroup), timestamp (field 4): about
// 85 bytes with MilvusChannel.
func MsgPosition(channel string, msgID, ts uint64) []byte {
	b := make([]byte, 0, len(channel)+len(MilvusMsgGroup)+24)
	b = append(b, 1<<3|2, byte(len(channel)))
	b = append(b, channel...)
	b = append(b, 2<<3|2, 8)
	for i := range 8 {
		b = append(b, byte(msgID>>(8*i)))
	}
	b = append(b, 3<<3|2, byte(len(MilvusMsgGroup)))
	b = append(b, MilvusMsgGroup...)
	b = append(b, 4<<3|0)
	for ts >= 0x80 {
		b = append(b, byte(ts)|0x80)
		ts >>= 7
	}
	return append(b, byte(ts))
}
