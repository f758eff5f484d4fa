package baseline

import (
	"fmt"
	"sync"

	"github.com/hamba/avro/v2"
)

// ManifestSchema is the Avro schema of one segment's manifest object, field for field
// the segment description Milvus writes (SEED-FACTS.md, Milvus's snapshot design):
// ids, level, channel, rows, start and DML positions, storage version, sortedness;
// binlog, deltalog, statslog and BM25 statslog files grouped by field, each binlog
// with entries, timestamp range, path, sizes and log id; index files; text and
// JSON-key index files. Each object is a single raw-binary record: no container, no
// embedded schema.
const ManifestSchema = `{
  "type": "record", "name": "ManifestEntry", "namespace": "milvus.snapshot",
  "fields": [
    {"name": "segment_id", "type": "long"},
    {"name": "partition_id", "type": "long"},
    {"name": "segment_level", "type": "long"},
    {"name": "channel_name", "type": "string"},
    {"name": "num_of_rows", "type": "long"},
    {"name": "start_position", "type": {"type": "record", "name": "MsgPosition", "fields": [
      {"name": "channel_name", "type": "string"},
      {"name": "msg_id", "type": "bytes"},
      {"name": "msg_group", "type": "string"},
      {"name": "timestamp", "type": "long"}]}},
    {"name": "dml_position", "type": "MsgPosition"},
    {"name": "storage_version", "type": "long"},
    {"name": "is_sorted", "type": "boolean"},
    {"name": "binlog_files", "type": {"type": "array", "items": {"type": "record", "name": "FieldBinlog", "fields": [
      {"name": "field_id", "type": "long"},
      {"name": "binlogs", "type": {"type": "array", "items": {"type": "record", "name": "Binlog", "fields": [
        {"name": "entries_num", "type": "long"},
        {"name": "timestamp_from", "type": "long"},
        {"name": "timestamp_to", "type": "long"},
        {"name": "log_path", "type": "string"},
        {"name": "log_size", "type": "long"},
        {"name": "log_id", "type": "long"},
        {"name": "memory_size", "type": "long"}]}}}]}}},
    {"name": "deltalog_files", "type": {"type": "array", "items": "FieldBinlog"}},
    {"name": "statslog_files", "type": {"type": "array", "items": "FieldBinlog"}},
    {"name": "bm25_statslog_files", "type": {"type": "array", "items": "FieldBinlog"}},
    {"name": "index_files", "type": {"type": "array", "items": {"type": "record", "name": "IndexFileInfo", "fields": [
      {"name": "field_id", "type": "long"},
      {"name": "index_id", "type": "long"},
      {"name": "build_id", "type": "long"},
      {"name": "index_name", "type": "string"},
      {"name": "index_params", "type": {"type": "array", "items": {"type": "record", "name": "KeyValuePair", "fields": [
        {"name": "key", "type": "string"}, {"name": "value", "type": "string"}]}}},
      {"name": "index_file_paths", "type": {"type": "array", "items": "string"}},
      {"name": "serialized_size", "type": "long"},
      {"name": "current_index_version", "type": "int"},
      {"name": "num_rows", "type": "long"},
      {"name": "mem_size", "type": "long"}]}}},
    {"name": "text_index_files", "type": {"type": "array", "items": {"type": "record", "name": "TextIndexFile", "fields": [
      {"name": "field_id", "type": "long"},
      {"name": "version", "type": "long"},
      {"name": "build_id", "type": "long"},
      {"name": "files", "type": {"type": "array", "items": "string"}},
      {"name": "log_size", "type": "long"},
      {"name": "memory_size", "type": "long"}]}}},
    {"name": "json_key_index_files", "type": {"type": "array", "items": "TextIndexFile"}}
  ]
}`

// MsgPosition is a position in a DML channel.
type MsgPosition struct {
	ChannelName string `avro:"channel_name"`
	MsgID       []byte `avro:"msg_id"`
	MsgGroup    string `avro:"msg_group"`
	Timestamp   int64  `avro:"timestamp"`
}

// Binlog is one log file.
type Binlog struct {
	EntriesNum    int64  `avro:"entries_num"`
	TimestampFrom int64  `avro:"timestamp_from"`
	TimestampTo   int64  `avro:"timestamp_to"`
	LogPath       string `avro:"log_path"`
	LogSize       int64  `avro:"log_size"`
	LogID         int64  `avro:"log_id"`
	MemorySize    int64  `avro:"memory_size"`
}

// FieldBinlog groups one field's logs.
type FieldBinlog struct {
	FieldID int64    `avro:"field_id"`
	Binlogs []Binlog `avro:"binlogs"`
}

// KeyValuePair is an index parameter.
type KeyValuePair struct {
	Key   string `avro:"key"`
	Value string `avro:"value"`
}

// IndexFileInfo is one index build's files.
type IndexFileInfo struct {
	FieldID             int64          `avro:"field_id"`
	IndexID             int64          `avro:"index_id"`
	BuildID             int64          `avro:"build_id"`
	IndexName           string         `avro:"index_name"`
	IndexParams         []KeyValuePair `avro:"index_params"`
	IndexFilePaths      []string       `avro:"index_file_paths"`
	SerializedSize      int64          `avro:"serialized_size"`
	CurrentIndexVersion int32          `avro:"current_index_version"`
	NumRows             int64          `avro:"num_rows"`
	MemSize             int64          `avro:"mem_size"`
}

// TextIndexFile is a text or JSON-key index's files.
type TextIndexFile struct {
	FieldID    int64    `avro:"field_id"`
	Version    int64    `avro:"version"`
	BuildID    int64    `avro:"build_id"`
	Files      []string `avro:"files"`
	LogSize    int64    `avro:"log_size"`
	MemorySize int64    `avro:"memory_size"`
}

// ManifestEntry is one segment's manifest: the record of one .avro object.
type ManifestEntry struct {
	SegmentID         int64           `avro:"segment_id"`
	PartitionID       int64           `avro:"partition_id"`
	SegmentLevel      int64           `avro:"segment_level"`
	ChannelName       string          `avro:"channel_name"`
	NumOfRows         int64           `avro:"num_of_rows"`
	StartPosition     MsgPosition     `avro:"start_position"`
	DmlPosition       MsgPosition     `avro:"dml_position"`
	StorageVersion    int64           `avro:"storage_version"`
	IsSorted          bool            `avro:"is_sorted"`
	BinlogFiles       []FieldBinlog   `avro:"binlog_files"`
	DeltalogFiles     []FieldBinlog   `avro:"deltalog_files"`
	StatslogFiles     []FieldBinlog   `avro:"statslog_files"`
	Bm25StatslogFiles []FieldBinlog   `avro:"bm25_statslog_files"`
	IndexFiles        []IndexFileInfo `avro:"index_files"`
	TextIndexFiles    []TextIndexFile `avro:"text_index_files"`
	JSONKeyIndexFiles []TextIndexFile `avro:"json_key_index_files"`
}

// FileCount is the number of files the entry lists (binlogs of every kind, index
// files, text and JSON-key index files).
func (e *ManifestEntry) FileCount() int {
	n := 0
	for _, groups := range [][]FieldBinlog{e.BinlogFiles, e.DeltalogFiles, e.StatslogFiles, e.Bm25StatslogFiles} {
		for _, g := range groups {
			n += len(g.Binlogs)
		}
	}
	for _, ix := range e.IndexFiles {
		n += len(ix.IndexFilePaths)
	}
	for _, t := range e.TextIndexFiles {
		n += len(t.Files)
	}
	for _, t := range e.JSONKeyIndexFiles {
		n += len(t.Files)
	}
	return n
}

var (
	schemaOnce sync.Once
	schema     avro.Schema
	schemaErr  error
)

func manifestSchema() (avro.Schema, error) {
	schemaOnce.Do(func() { schema, schemaErr = avro.Parse(ManifestSchema) })
	return schema, schemaErr
}

// EncodeEntry is the raw binary Avro encoding of e (no container, no schema).
func EncodeEntry(e *ManifestEntry) ([]byte, error) {
	s, err := manifestSchema()
	if err != nil {
		return nil, fmt.Errorf("avro schema: %w", err)
	}
	b, err := avro.Marshal(s, e)
	if err != nil {
		return nil, fmt.Errorf("avro encode segment %d: %w", e.SegmentID, err)
	}
	return b, nil
}

// DecodeEntry decodes a raw binary Avro record.
func DecodeEntry(data []byte) (*ManifestEntry, error) {
	s, err := manifestSchema()
	if err != nil {
		return nil, fmt.Errorf("avro schema: %w", err)
	}
	var e ManifestEntry
	if err := avro.Unmarshal(s, data, &e); err != nil {
		return nil, fmt.Errorf("avro decode: %w", err)
	}
	return &e, nil
}

// channelName is the DML channel of a collection's first shard, as Milvus names it.
func channelName(collectionID uint64) string {
	return fmt.Sprintf("by-dev-rootcoord-dml_0_%dv0", collectionID)
}

// EntryOf is the manifest entry Milvus would write for s, its file paths in Milvus's
// layout under dataRoot.
func EntryOf(s Segment, dataRoot string) *ManifestEntry {
	ch := channelName(s.CollectionID)
	ts := int64(449_000_000_000_000_000) + int64(s.ID)<<4 // a hybrid timestamp
	pos := func(t int64) MsgPosition {
		return MsgPosition{ChannelName: ch, MsgID: []byte{8, byte(s.ID), byte(s.ID >> 8), byte(s.ID >> 16), 16, 0, 24, 0}, MsgGroup: "datanode-1", Timestamp: t}
	}
	e := &ManifestEntry{
		SegmentID: int64(s.ID), PartitionID: int64(s.PartitionID), SegmentLevel: 2, ChannelName: ch,
		NumOfRows: s.Rows, StartPosition: pos(ts), DmlPosition: pos(ts + 1000), StorageVersion: 2, IsSorted: true,
		BinlogFiles: []FieldBinlog{}, DeltalogFiles: []FieldBinlog{}, StatslogFiles: []FieldBinlog{}, Bm25StatslogFiles: []FieldBinlog{},
		IndexFiles: []IndexFileInfo{}, TextIndexFiles: []TextIndexFile{}, JSONKeyIndexFiles: []TextIndexFile{},
	}
	add := func(groups *[]FieldBinlog, field int64, b Binlog) {
		for i := range *groups {
			if (*groups)[i].FieldID == field {
				(*groups)[i].Binlogs = append((*groups)[i].Binlogs, b)
				return
			}
		}
		*groups = append(*groups, FieldBinlog{FieldID: field, Binlogs: []Binlog{b}})
	}
	for _, f := range s.Files {
		b := Binlog{EntriesNum: f.Entries, TimestampFrom: ts, TimestampTo: ts + 1000, LogPath: s.MilvusPath(dataRoot, f),
			LogSize: int64(f.Size), LogID: int64(f.LogID), MemorySize: int64(f.Size) * 2}
		switch f.Kind {
		case KindDelta:
			add(&e.DeltalogFiles, f.FieldID, b)
		case KindStats:
			add(&e.StatslogFiles, f.FieldID, b)
		default:
			add(&e.BinlogFiles, f.FieldID, b)
		}
	}
	return e
}
