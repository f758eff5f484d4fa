package baseline

import (
	"errors"
	"fmt"

	"github.com/klauspost/compress/zstd"
	"google.golang.org/protobuf/encoding/protowire"
)

// The third format of scenario 3: every segment's manifest entry in one protobuf
// message (repeated field 1 of ManifestEntry messages, field numbers in the Avro
// schema's order), compressed with zstd as one frame. Hand-encoded with protowire:
// the bytes protoc-generated code would produce for such a .proto.

var errBadProto = errors.New("bad protobuf")

// pbw appends protobuf fields to b. Sub-messages are written into scratch buffers
// reused per nesting depth and then copied into their parent with their length, so
// an entry costs no allocation once the buffers have grown.
type pbw struct {
	b       []byte
	scratch *[][]byte
	depth   int
}

func (w *pbw) varint(num protowire.Number, v uint64) {
	if v != 0 {
		w.b = protowire.AppendTag(w.b, num, protowire.VarintType)
		w.b = protowire.AppendVarint(w.b, v)
	}
}

func (w *pbw) bytes(num protowire.Number, v []byte) {
	if len(v) != 0 {
		w.b = protowire.AppendTag(w.b, num, protowire.BytesType)
		w.b = protowire.AppendBytes(w.b, v)
	}
}

// msg appends a length-delimited sub-message written by fn (always, even when empty:
// a repeated entry must be present).
func (w *pbw) msg(num protowire.Number, fn func(w *pbw)) {
	if w.scratch == nil {
		w.scratch = new([][]byte)
	}
	for len(*w.scratch) <= w.depth {
		*w.scratch = append(*w.scratch, nil)
	}
	sub := pbw{b: (*w.scratch)[w.depth][:0], scratch: w.scratch, depth: w.depth + 1}
	fn(&sub)
	(*w.scratch)[w.depth] = sub.b
	w.b = protowire.AppendTag(w.b, num, protowire.BytesType)
	w.b = protowire.AppendBytes(w.b, sub.b)
}

func (w *pbw) position(num protowire.Number, p *MsgPosition) {
	w.msg(num, func(w *pbw) {
		w.bytes(1, []byte(p.ChannelName))
		w.bytes(2, p.MsgID)
		w.bytes(3, []byte(p.MsgGroup))
		w.varint(4, uint64(p.Timestamp))
	})
}

func (w *pbw) fieldBinlogs(num protowire.Number, groups []FieldBinlog) {
	for i := range groups {
		g := &groups[i]
		w.msg(num, func(w *pbw) {
			w.varint(1, uint64(g.FieldID))
			for j := range g.Binlogs {
				b := &g.Binlogs[j]
				w.msg(2, func(w *pbw) {
					w.varint(1, uint64(b.EntriesNum))
					w.varint(2, uint64(b.TimestampFrom))
					w.varint(3, uint64(b.TimestampTo))
					w.bytes(4, []byte(b.LogPath))
					w.varint(5, uint64(b.LogSize))
					w.varint(6, uint64(b.LogID))
					w.varint(7, uint64(b.MemorySize))
				})
			}
		})
	}
}

func (w *pbw) textIndexes(num protowire.Number, ts []TextIndexFile) {
	for i := range ts {
		t := &ts[i]
		w.msg(num, func(w *pbw) {
			w.varint(1, uint64(t.FieldID))
			w.varint(2, uint64(t.Version))
			w.varint(3, uint64(t.BuildID))
			for _, f := range t.Files {
				w.bytes(4, []byte(f))
			}
			w.varint(5, uint64(t.LogSize))
			w.varint(6, uint64(t.MemorySize))
		})
	}
}

func (w *pbw) entry(e *ManifestEntry) {
	w.varint(1, uint64(e.SegmentID))
	w.varint(2, uint64(e.PartitionID))
	w.varint(3, uint64(e.SegmentLevel))
	w.bytes(4, []byte(e.ChannelName))
	w.varint(5, uint64(e.NumOfRows))
	w.position(6, &e.StartPosition)
	w.position(7, &e.DmlPosition)
	w.varint(8, uint64(e.StorageVersion))
	if e.IsSorted {
		w.varint(9, 1)
	}
	w.fieldBinlogs(10, e.BinlogFiles)
	w.fieldBinlogs(11, e.DeltalogFiles)
	w.fieldBinlogs(12, e.StatslogFiles)
	w.fieldBinlogs(13, e.Bm25StatslogFiles)
	for i := range e.IndexFiles {
		ix := &e.IndexFiles[i]
		w.msg(14, func(w *pbw) {
			w.varint(1, uint64(ix.FieldID))
			w.varint(2, uint64(ix.IndexID))
			w.varint(3, uint64(ix.BuildID))
			w.bytes(4, []byte(ix.IndexName))
			for _, kv := range ix.IndexParams {
				w.msg(5, func(w *pbw) { w.bytes(1, []byte(kv.Key)); w.bytes(2, []byte(kv.Value)) })
			}
			for _, p := range ix.IndexFilePaths {
				w.bytes(6, []byte(p))
			}
			w.varint(7, uint64(ix.SerializedSize))
			w.varint(8, uint64(ix.CurrentIndexVersion))
			w.varint(9, uint64(ix.NumRows))
			w.varint(10, uint64(ix.MemSize))
		})
	}
	w.textIndexes(15, e.TextIndexFiles)
	w.textIndexes(16, e.JSONKeyIndexFiles)
}

// MarshalEntriesProto is the protobuf message holding every entry, uncompressed.
func MarshalEntriesProto(entries []*ManifestEntry) []byte {
	w := pbw{}
	for _, e := range entries {
		w.msg(1, func(w *pbw) { w.entry(e) })
	}
	return w.b
}

// EncodeProtoZstd is MarshalEntriesProto compressed with enc (one zstd frame).
func EncodeProtoZstd(enc *zstd.Encoder, entries []*ManifestEntry) []byte {
	return enc.EncodeAll(MarshalEntriesProto(entries), nil)
}

// DecodeProtoZstd decompresses and decodes what EncodeProtoZstd wrote.
func DecodeProtoZstd(dec *zstd.Decoder, data []byte) ([]*ManifestEntry, error) {
	raw, err := dec.DecodeAll(data, nil)
	if err != nil {
		return nil, fmt.Errorf("zstd: %w", err)
	}
	return UnmarshalEntriesProto(raw)
}

// fields walks a message's fields, calling fn with each field's number and its
// varint value or bytes.
func fields(b []byte, fn func(num protowire.Number, v uint64, data []byte) error) error {
	for len(b) > 0 {
		num, typ, n := protowire.ConsumeTag(b)
		if n < 0 {
			return errBadProto
		}
		b = b[n:]
		switch typ {
		case protowire.VarintType:
			v, n := protowire.ConsumeVarint(b)
			if n < 0 {
				return errBadProto
			}
			b = b[n:]
			if err := fn(num, v, nil); err != nil {
				return err
			}
		case protowire.BytesType:
			v, n := protowire.ConsumeBytes(b)
			if n < 0 {
				return errBadProto
			}
			b = b[n:]
			if err := fn(num, 0, v); err != nil {
				return err
			}
		default:
			n := protowire.ConsumeFieldValue(num, typ, b)
			if n < 0 {
				return errBadProto
			}
			b = b[n:]
		}
	}
	return nil
}

func decodePosition(b []byte) (MsgPosition, error) {
	var p MsgPosition
	err := fields(b, func(num protowire.Number, v uint64, data []byte) error {
		switch num {
		case 1:
			p.ChannelName = string(data)
		case 2:
			p.MsgID = append([]byte(nil), data...)
		case 3:
			p.MsgGroup = string(data)
		case 4:
			p.Timestamp = int64(v)
		}
		return nil
	})
	return p, err
}

func decodeFieldBinlog(b []byte) (FieldBinlog, error) {
	var g FieldBinlog
	err := fields(b, func(num protowire.Number, v uint64, data []byte) error {
		switch num {
		case 1:
			g.FieldID = int64(v)
		case 2:
			var bl Binlog
			err := fields(data, func(num protowire.Number, v uint64, data []byte) error {
				switch num {
				case 1:
					bl.EntriesNum = int64(v)
				case 2:
					bl.TimestampFrom = int64(v)
				case 3:
					bl.TimestampTo = int64(v)
				case 4:
					bl.LogPath = string(data)
				case 5:
					bl.LogSize = int64(v)
				case 6:
					bl.LogID = int64(v)
				case 7:
					bl.MemorySize = int64(v)
				}
				return nil
			})
			g.Binlogs = append(g.Binlogs, bl)
			return err
		}
		return nil
	})
	return g, err
}

func decodeTextIndex(b []byte) (TextIndexFile, error) {
	var t TextIndexFile
	err := fields(b, func(num protowire.Number, v uint64, data []byte) error {
		switch num {
		case 1:
			t.FieldID = int64(v)
		case 2:
			t.Version = int64(v)
		case 3:
			t.BuildID = int64(v)
		case 4:
			t.Files = append(t.Files, string(data))
		case 5:
			t.LogSize = int64(v)
		case 6:
			t.MemorySize = int64(v)
		}
		return nil
	})
	return t, err
}

func decodeIndexFile(b []byte) (IndexFileInfo, error) {
	var ix IndexFileInfo
	err := fields(b, func(num protowire.Number, v uint64, data []byte) error {
		switch num {
		case 1:
			ix.FieldID = int64(v)
		case 2:
			ix.IndexID = int64(v)
		case 3:
			ix.BuildID = int64(v)
		case 4:
			ix.IndexName = string(data)
		case 5:
			var kv KeyValuePair
			err := fields(data, func(num protowire.Number, _ uint64, data []byte) error {
				if num == 1 {
					kv.Key = string(data)
				} else if num == 2 {
					kv.Value = string(data)
				}
				return nil
			})
			ix.IndexParams = append(ix.IndexParams, kv)
			return err
		case 6:
			ix.IndexFilePaths = append(ix.IndexFilePaths, string(data))
		case 7:
			ix.SerializedSize = int64(v)
		case 8:
			ix.CurrentIndexVersion = int32(v)
		case 9:
			ix.NumRows = int64(v)
		case 10:
			ix.MemSize = int64(v)
		}
		return nil
	})
	return ix, err
}

func decodeEntry(b []byte) (*ManifestEntry, error) {
	e := &ManifestEntry{}
	err := fields(b, func(num protowire.Number, v uint64, data []byte) error {
		var err error
		switch num {
		case 1:
			e.SegmentID = int64(v)
		case 2:
			e.PartitionID = int64(v)
		case 3:
			e.SegmentLevel = int64(v)
		case 4:
			e.ChannelName = string(data)
		case 5:
			e.NumOfRows = int64(v)
		case 6:
			e.StartPosition, err = decodePosition(data)
		case 7:
			e.DmlPosition, err = decodePosition(data)
		case 8:
			e.StorageVersion = int64(v)
		case 9:
			e.IsSorted = v != 0
		case 10, 11, 12, 13:
			var g FieldBinlog
			g, err = decodeFieldBinlog(data)
			switch num {
			case 10:
				e.BinlogFiles = append(e.BinlogFiles, g)
			case 11:
				e.DeltalogFiles = append(e.DeltalogFiles, g)
			case 12:
				e.StatslogFiles = append(e.StatslogFiles, g)
			default:
				e.Bm25StatslogFiles = append(e.Bm25StatslogFiles, g)
			}
		case 14:
			var ix IndexFileInfo
			ix, err = decodeIndexFile(data)
			e.IndexFiles = append(e.IndexFiles, ix)
		case 15, 16:
			var t TextIndexFile
			t, err = decodeTextIndex(data)
			if num == 15 {
				e.TextIndexFiles = append(e.TextIndexFiles, t)
			} else {
				e.JSONKeyIndexFiles = append(e.JSONKeyIndexFiles, t)
			}
		}
		return err
	})
	return e, err
}

// UnmarshalEntriesProto decodes what MarshalEntriesProto wrote.
func UnmarshalEntriesProto(b []byte) ([]*ManifestEntry, error) {
	var out []*ManifestEntry
	err := fields(b, func(num protowire.Number, _ uint64, data []byte) error {
		if num != 1 {
			return nil
		}
		e, err := decodeEntry(data)
		if err != nil {
			return err
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("manifest entries: %w", err)
	}
	return out, nil
}
