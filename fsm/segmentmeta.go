package fsm

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"

	"google.golang.org/protobuf/encoding/protowire"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/internal/varint"
)

// A segment's vector-database metadata is kept packed, one blob per segment, not as a
// message: a message plus its channel string and two position slices are four
// allocations and about 340 bytes per segment, and the catalog must hold millions.
//
// Layout (version 1):
//
//	version byte (1) | level uvarint | storage version zigzag varint | flags byte
//	(bit 0: sorted) | channel: length uvarint, bytes | start position | DML position
//	position: shared uvarint | [offset uvarint] | rest length uvarint | rest bytes
//
// A position is opaque, but Milvus's (an encoded msgpb.MsgPosition) names the
// segment's channel, or a leading part of it: shared is the length of the longest
// leading part of the channel found in the position (0: none of at least
// minSharedChannel bytes; then no offset follows), offset is where its first
// occurrence starts, and rest is the position without it. Packing is a pure function
// of the metadata, so equal metadata packs to equal bytes.

const packedMetaVersion = 1

// minSharedChannel is the shortest part of the channel worth taking out of a position.
const minSharedChannel = 8

var errBadPackedMeta = errors.New("corrupt packed segment metadata")

// packSegmentMeta packs m; metadata with nothing set packs to nil.
func packSegmentMeta(m *fsmpb.SegmentMeta) []byte {
	if m == nil || proto.Size(m) == 0 {
		return nil
	}
	size := 4 + 3*binary.MaxVarintLen64 + len(m.Channel) + len(m.StartPosition) + len(m.DmlPosition) + 4*binary.MaxVarintLen64
	buf := make([]byte, 0, size)
	buf = append(buf, packedMetaVersion)
	buf = binary.AppendUvarint(buf, uint64(m.Level))
	buf = binary.AppendVarint(buf, m.StorageVersion)
	var flags byte
	if m.IsSorted {
		flags |= 1
	}
	buf = append(buf, flags)
	buf = binary.AppendUvarint(buf, uint64(len(m.Channel)))
	buf = append(buf, m.Channel...)
	buf = appendPosition(buf, m.StartPosition, m.Channel)
	buf = appendPosition(buf, m.DmlPosition, m.Channel)
	// One exact-size allocation is what the table keeps.
	return bytes.Clone(buf)
}

// appendPosition appends pos with the longest leading part of channel it holds
// taken out.
func appendPosition(buf, pos []byte, channel string) []byte {
	shared, at := sharedChannel(pos, channel)
	buf = binary.AppendUvarint(buf, uint64(shared))
	if shared == 0 {
		buf = binary.AppendUvarint(buf, uint64(len(pos)))
		return append(buf, pos...)
	}
	buf = binary.AppendUvarint(buf, uint64(at))
	buf = binary.AppendUvarint(buf, uint64(len(pos)-shared))
	buf = append(buf, pos[:at]...)
	return append(buf, pos[at+shared:]...)
}

// sharedChannel finds the longest leading part of channel (at least
// minSharedChannel bytes) that pos holds, and where it first occurs.
func sharedChannel(pos []byte, channel string) (shared, at int) {
	if len(channel) < minSharedChannel {
		return 0, 0
	}
	head := channel[:minSharedChannel]
	for from := 0; from+minSharedChannel <= len(pos); {
		i := bytes.Index(pos[from:], []byte(head))
		if i < 0 {
			break
		}
		i += from
		n := minSharedChannel
		for n < len(channel) && i+n < len(pos) && pos[i+n] == channel[n] {
			n++
		}
		if n > shared {
			shared, at = n, i
		}
		from = i + 1
	}
	return shared, at
}

// unpackSegmentMeta is packSegmentMeta's inverse: nil for an empty blob.
func unpackSegmentMeta(p []byte) (*fsmpb.SegmentMeta, error) {
	if len(p) == 0 {
		return nil, nil
	}
	if p[0] != packedMetaVersion {
		return nil, errBadPackedMeta
	}
	p = p[1:]
	m := &fsmpb.SegmentMeta{}
	level, p, ok := varint.Uvarint(p)
	if !ok || level > 1<<31-1 {
		return nil, errBadPackedMeta
	}
	m.Level = fsmpb.SegmentLevel(level)
	if m.StorageVersion, p, ok = varint.Varint(p); !ok || len(p) == 0 {
		return nil, errBadPackedMeta
	}
	m.IsSorted = p[0]&1 != 0
	p = p[1:]
	n, p, ok := varint.Uvarint(p)
	if !ok || n > uint64(len(p)) {
		return nil, errBadPackedMeta
	}
	m.Channel, p = string(p[:n]), p[n:]
	if m.StartPosition, p, ok = readPosition(p, m.Channel); !ok {
		return nil, errBadPackedMeta
	}
	if m.DmlPosition, p, ok = readPosition(p, m.Channel); !ok || len(p) != 0 {
		return nil, errBadPackedMeta
	}
	return m, nil
}

func readPosition(p []byte, channel string) ([]byte, []byte, bool) {
	shared, p, ok := varint.Uvarint(p)
	if !ok || shared > uint64(len(channel)) || (shared != 0 && shared < minSharedChannel) {
		return nil, nil, false
	}
	var at uint64
	if shared != 0 {
		if at, p, ok = varint.Uvarint(p); !ok {
			return nil, nil, false
		}
	}
	n, p, ok := varint.Uvarint(p)
	if !ok || n > uint64(len(p)) || at > n {
		return nil, nil, false
	}
	rest := p[:n]
	if shared == 0 {
		if n == 0 {
			return nil, p[n:], true
		}
		return bytes.Clone(rest), p[n:], true
	}
	pos := make([]byte, 0, n+shared)
	pos = append(pos, rest[:at]...)
	pos = append(pos, channel[:shared]...)
	pos = append(pos, rest[at:]...)
	return pos, p[n:], true
}

// SegmentMetaOf returns the vector database's metadata of a segment of the tables
// (nil when none was given). An error means the stored blob is corrupt.
func SegmentMetaOf(s *fsmpb.Segment) (*fsmpb.SegmentMeta, error) {
	return unpackSegmentMeta(s.PackedMeta)
}

// upgradeSegment brings a segment record read from an older raft snapshot to the
// forms the tables keep now: packed metadata, version 3 file lists.
func upgradeSegment(s *fsmpb.Segment) error {
	if err := packLegacyMeta(s); err != nil {
		return err
	}
	var err error
	if s.Files, err = filelist.Upgrade(s.Files); err != nil {
		return fmt.Errorf("segment %d: %w", s.Id, err)
	}
	for _, b := range s.IndexBuilds {
		if b.Files, err = filelist.Upgrade(b.Files); err != nil {
			return fmt.Errorf("segment %d, build %d: %w", s.Id, b.BuildId, err)
		}
	}
	return nil
}

// legacyMetaField is the Segment field that held the metadata as a SegmentMeta
// message before it was packed (now reserved).
const legacyMetaField = 17

// packLegacyMeta packs the metadata a segment record read from an older raft snapshot
// holds in legacyMetaField (kept by the decoder as an unknown field).
func packLegacyMeta(s *fsmpb.Segment) error {
	raw := s.ProtoReflect().GetUnknown()
	if len(raw) == 0 {
		return nil
	}
	var keep []byte
	var meta *fsmpb.SegmentMeta
	for len(raw) > 0 {
		num, typ, n := protowire.ConsumeTag(raw)
		if n < 0 {
			return protowire.ParseError(n)
		}
		m := protowire.ConsumeFieldValue(num, typ, raw[n:])
		if m < 0 {
			return protowire.ParseError(m)
		}
		if num == legacyMetaField && typ == protowire.BytesType {
			v, _ := protowire.ConsumeBytes(raw[n:])
			if meta == nil {
				meta = &fsmpb.SegmentMeta{}
			}
			// A message field seen twice is merged, as the decoder would.
			if err := (proto.UnmarshalOptions{Merge: true}).Unmarshal(v, meta); err != nil {
				return fmt.Errorf("segment %d: metadata: %w", s.Id, err)
			}
		} else {
			keep = append(keep, raw[:n+m]...)
		}
		raw = raw[n+m:]
	}
	if meta != nil {
		if err := validateSegmentMeta(s.Id, meta); err != nil {
			return err
		}
		s.PackedMeta = packSegmentMeta(meta)
	}
	s.ProtoReflect().SetUnknown(keep)
	return nil
}
