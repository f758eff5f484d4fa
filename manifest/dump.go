package manifest

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"google.golang.org/protobuf/encoding/protojson"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
)

// Dump writes the whole manifest as one JSON document, for people and scripts
// (`snapkeep manifest inspect`):
//
//	{
//	  "format_version": 1 or 2,
//	  "size": <bytes>,
//	  "header": <the Header as protojson, proto field names>,
//	  "summary": {"segments", "rows", "index_builds", "files", "bytes", "by_kind": [{"kind", "files", "bytes"}]},
//	  "blocks": [{"offset", "compressed_size", "uncompressed_size", "partition_id", "segments", ...}],
//	  "segments": [
//	    {"id", "partition_id", "row_count", "prefix", "files": [{"key", "path", "kind", "field_id", "size", "crc32c"}],
//	     "index_builds": [{"build_id", "index_id", "prefix", "files": [...]}]},
//	    ...
//	  ]
//	}
//
// "key" is what the file list keeps, "path" the object's key relative to the storage
// root, built by the header's key layout; "prefix" is the owner's prefix ("" for a
// segment of the Milvus layout, whose files sit under one prefix per kind). Kinds are
// "insert", "delta", "stats", "bm25", "index", "text", "json_key" (or "kind_<n>" for
// a kind this code does not know). Segments are streamed one per line, so memory stays bounded. Dump
// reads every block, like Segments, and decodes every file list: a corrupt one is an
// error wrapping ErrCorrupt (the output is then cut short).
func Dump(w io.Writer, rd *Reader) error {
	bw := bufio.NewWriterSize(w, 64<<10)
	hdr, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(rd.header)
	if err != nil {
		return fmt.Errorf("manifest: header to JSON: %w", err)
	}
	var compact bytes.Buffer // protojson varies its spacing on purpose; settle it
	if err := json.Compact(&compact, hdr); err != nil {
		return fmt.Errorf("manifest: header to JSON: %w", err)
	}
	sum, err := json.Marshal(summaryJSON(rd.summary))
	if err != nil {
		return err
	}
	blocks, err := json.Marshal(blocksJSON(rd.blocks))
	if err != nil {
		return err
	}
	fmt.Fprintf(bw, "{\n  \"format_version\": %d,\n  \"size\": %d,\n  \"header\": %s,\n  \"summary\": %s,\n  \"blocks\": %s,\n  \"segments\": [",
		rd.version, rd.size, compact.Bytes(), sum, blocks)
	keys := layout.MustFor(fsmpb.KeyLayout(rd.header.GetKeyLayout()))
	collID := rd.header.GetCollectionId()
	first := true
	err = rd.Segments(context.Background(), ReadOptions{}, func(s *Segment) error {
		ref := layout.Segment{Collection: collID, Partition: s.PartitionID, Segment: s.ID}
		js := jsonSegment{ID: s.ID, PartitionID: s.PartitionID, RowCount: s.RowCount, Prefix: keys.SegmentPrefix(ref)}
		var err error
		if js.Files, err = filesJSON(s.Files, func(rel string) string { return keys.SegmentFileKey(ref, rel) }); err != nil {
			return corruptf("segment %d: file list: %v", s.ID, err)
		}
		for _, b := range s.IndexBuilds {
			bref := layout.Build{Segment: ref, Build: b.BuildID}
			jb := jsonBuild{BuildID: b.BuildID, IndexID: b.IndexID, Prefix: keys.BuildPrefix(bref)}
			if jb.Files, err = filesJSON(b.Files, func(rel string) string { return keys.BuildFileKey(bref, rel) }); err != nil {
				return corruptf("segment %d, index build %d: file list: %v", s.ID, b.BuildID, err)
			}
			js.IndexBuilds = append(js.IndexBuilds, jb)
		}
		line, err := json.Marshal(js)
		if err != nil {
			return err
		}
		if !first {
			bw.WriteByte(',')
		}
		first = false
		bw.WriteString("\n    ")
		_, err = bw.Write(line)
		return err
	})
	if err != nil {
		return err
	}
	if !first {
		bw.WriteString("\n  ")
	}
	bw.WriteString("]\n}\n")
	return bw.Flush()
}

type jsonSummary struct {
	Segments    uint64     `json:"segments"`
	Rows        int64      `json:"rows"`
	IndexBuilds uint64     `json:"index_builds"`
	Files       uint64     `json:"files"`
	Bytes       uint64     `json:"bytes"`
	ByKind      []jsonKind `json:"by_kind"`
}

type jsonKind struct {
	Kind  string `json:"kind"`
	Files uint64 `json:"files"`
	Bytes uint64 `json:"bytes"`
}

type jsonBlock struct {
	Offset           int64  `json:"offset"`
	CompressedSize   int64  `json:"compressed_size"`
	UncompressedSize int64  `json:"uncompressed_size"`
	PartitionID      uint64 `json:"partition_id"`
	Segments         uint64 `json:"segments"`
	FirstSegmentID   uint64 `json:"first_segment_id"`
	LastSegmentID    uint64 `json:"last_segment_id"`
	Rows             int64  `json:"rows"`
	Files            uint64 `json:"files"`
	Bytes            uint64 `json:"bytes"`
	IndexBuilds      uint64 `json:"index_builds"`
	Checksum         string `json:"xxhash64"`
}

type jsonSegment struct {
	ID          uint64      `json:"id"`
	PartitionID uint64      `json:"partition_id"`
	RowCount    int64       `json:"row_count"`
	Prefix      string      `json:"prefix"`
	Files       []jsonFile  `json:"files"`
	IndexBuilds []jsonBuild `json:"index_builds,omitempty"`
}

type jsonBuild struct {
	BuildID uint64     `json:"build_id"`
	IndexID uint64     `json:"index_id"`
	Prefix  string     `json:"prefix"`
	Files   []jsonFile `json:"files"`
}

type jsonFile struct {
	Key     string `json:"key"`
	Path    string `json:"path"`
	Kind    string `json:"kind"`
	FieldID int64  `json:"field_id"`
	Size    uint64 `json:"size"`
	CRC32C  uint32 `json:"crc32c"`
}

func kindName(k fsmpb.FileKind) string {
	if d := layout.KindDir(k); d != "" {
		return d
	}
	return fmt.Sprintf("kind_%d", int32(k))
}

func summaryJSON(s Summary) jsonSummary {
	out := jsonSummary{Segments: s.Segments, Rows: s.Rows, IndexBuilds: s.IndexBuilds, Files: s.Files, Bytes: s.Bytes, ByKind: []jsonKind{}}
	for _, k := range s.ByKind {
		out.ByKind = append(out.ByKind, jsonKind{Kind: kindName(k.Kind), Files: k.Files, Bytes: k.Bytes})
	}
	return out
}

func blocksJSON(blocks []BlockInfo) []jsonBlock {
	out := make([]jsonBlock, 0, len(blocks))
	for _, b := range blocks {
		out = append(out, jsonBlock{
			Offset: b.Offset, CompressedSize: b.CompressedSize, UncompressedSize: b.UncompressedSize, PartitionID: b.PartitionID,
			Segments: b.Segments, FirstSegmentID: b.FirstSegmentID, LastSegmentID: b.LastSegmentID, Rows: b.Rows,
			Files: b.Files, Bytes: b.Bytes, IndexBuilds: b.IndexBuilds, Checksum: fmt.Sprintf("%016x", b.Checksum),
		})
	}
	return out
}

func filesJSON(blob []byte, path func(rel string) string) ([]jsonFile, error) {
	out := []jsonFile{}
	err := filelist.ForEach(blob, func(e filelist.Entry) bool {
		out = append(out, jsonFile{Key: e.Key, Path: path(e.Key), Kind: kindName(e.Kind), FieldID: e.FieldID, Size: e.Size, CRC32C: e.CRC32C})
		return true
	})
	return out, err
}
