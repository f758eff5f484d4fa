package api

import (
	"fmt"
	"strconv"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// relativeKey strips the storage root from an API key; keys outside it are refused.
func relativeKey(root layout.Root, key string) (string, error) {
	rel, ok := root.Relative(key)
	if !ok {
		return "", status.Errorf(codes.InvalidArgument, "key %q is outside the storage root %q", key, string(root)+"/")
	}
	return rel, nil
}

// fromFiles converts API files to FSM files with root-relative keys.
func fromFiles(root layout.Root, in []*pb.File) ([]*fsmpb.File, error) {
	out := make([]*fsmpb.File, len(in))
	for i, f := range in {
		if f == nil {
			return nil, status.Error(codes.InvalidArgument, "empty file entry")
		}
		rel, err := relativeKey(root, f.Key)
		if err != nil {
			return nil, err
		}
		out[i] = &fsmpb.File{Key: rel, Kind: fsmpb.FileKind(f.Kind), FieldId: f.FieldId, Size: f.Size, Crc32C: f.Crc32C,
			LogId: f.LogId, Entries: f.Entries, TimestampFrom: f.TimestampFrom, TimestampTo: f.TimestampTo, MemorySize: f.MemorySize}
	}
	return out, nil
}

// fromSegmentMeta and toSegmentMeta convert a segment's metadata (nil stays nil).
func fromSegmentMeta(m *pb.SegmentMeta) *fsmpb.SegmentMeta {
	if m == nil {
		return nil
	}
	return &fsmpb.SegmentMeta{Level: fsmpb.SegmentLevel(m.Level), Channel: m.Channel, StartPosition: m.StartPosition,
		DmlPosition: m.DmlPosition, StorageVersion: m.StorageVersion, IsSorted: m.IsSorted}
}

func toSegmentMeta(m *fsmpb.SegmentMeta) *pb.SegmentMeta {
	if m == nil {
		return nil
	}
	return &pb.SegmentMeta{Level: pb.SegmentLevel(m.Level), Channel: m.Channel, StartPosition: m.StartPosition,
		DmlPosition: m.DmlPosition, StorageVersion: m.StorageVersion, IsSorted: m.IsSorted}
}

func unixMS(ns int64) int64 {
	if ns == 0 {
		return 0
	}
	return ns / 1e6
}

func toDatabase(d *fsmpb.Database) *pb.Database {
	return &pb.Database{Id: d.Id, Name: d.Name, Properties: d.Properties, CreatedAtUnixMs: unixMS(d.CreatedAt)}
}

// toKeyLayout is a key layout in the API's numbering (which has UNSPECIFIED first).
func toKeyLayout(l fsmpb.KeyLayout) pb.KeyLayout { return pb.KeyLayout(l + 1) }

// fromKeyLayout is an API key layout in the catalog's numbering; UNSPECIFIED is
// snapkeep's.
func fromKeyLayout(l pb.KeyLayout) (fsmpb.KeyLayout, error) {
	switch l {
	case pb.KeyLayout_KEY_LAYOUT_UNSPECIFIED, pb.KeyLayout_KEY_LAYOUT_SNAPKEEP:
		return fsmpb.KeyLayout_KEY_LAYOUT_SNAPKEEP, nil
	case pb.KeyLayout_KEY_LAYOUT_MILVUS:
		return fsmpb.KeyLayout_KEY_LAYOUT_MILVUS, nil
	}
	return 0, status.Errorf(codes.InvalidArgument, "unknown key layout %d: use KEY_LAYOUT_SNAPKEEP or KEY_LAYOUT_MILVUS", l)
}

func toCollection(c *fsmpb.Collection, database string) *pb.Collection {
	out := &pb.Collection{
		Id:              c.Id,
		Database:        database,
		Layout:          toKeyLayout(c.Layout),
		VerifyOnFlush:   c.VerifyOnFlush,
		Name:            c.Name,
		State:           pb.CollectionState(c.State),
		Schema:          c.Schema,
		Properties:      c.Properties,
		Description:     c.Description,
		CreatedAtUnixMs: unixMS(c.CreatedAt),
		DroppedAtUnixMs: unixMS(c.DroppedAt),
	}
	for _, p := range c.Partitions {
		out.Partitions = append(out.Partitions, &pb.Partition{Id: p.Id, Name: p.Name, CreatedAtUnixMs: unixMS(p.CreatedAt)})
	}
	for _, ix := range c.Indexes {
		out.Indexes = append(out.Indexes, &pb.Index{Id: ix.Id, Name: ix.Name, FieldId: ix.FieldId, Params: ix.Params, CreatedAtUnixMs: unixMS(ix.CreatedAt)})
	}
	return out
}

// segment converts a segment, its keys built by its collection's layout; withFiles
// false leaves out files and builds.
func toSegment(root layout.Root, keys fsm.FileKeys, s *fsmpb.Segment, withFiles bool) (*pb.Segment, error) {
	prefix := keys.SegmentPrefix(s)
	out := &pb.Segment{
		Id:                  s.Id,
		CollectionId:        s.CollectionId,
		PartitionId:         s.PartitionId,
		State:               pb.SegmentState(s.State),
		RowCount:            s.RowCount,
		Prefix:              root.FullPrefix(prefix),
		CompactedFrom:       s.CompactedFrom,
		CompactedTo:         s.CompactedTo,
		LeaseDeadlineUnixMs: unixMS(s.LeaseDeadline),
		AllocatedAtUnixMs:   unixMS(s.AllocatedAt),
		FlushedAtUnixMs:     unixMS(s.FlushedAt),
		DroppedAtUnixMs:     unixMS(s.DroppedAt),
		DropReason:          pb.DropReason(s.DropReason),
		RestoredFrom:        s.RestoredFrom,
	}
	meta, err := fsm.SegmentMetaOf(s)
	if err != nil {
		return nil, status.Errorf(codes.Internal, "segment %d: %v", s.Id, err)
	}
	out.Meta = toSegmentMeta(meta)
	if !withFiles {
		return out, nil
	}
	if out.Files, err = toFiles(root, s.Files, func(rel string) string { return keys.Segment(s, rel) }); err != nil {
		return nil, status.Errorf(codes.Internal, "segment %d: %v", s.Id, err)
	}
	for _, b := range s.IndexBuilds {
		bp := keys.BuildPrefix(s, b.BuildId)
		files, err := toFiles(root, b.Files, func(rel string) string { return keys.Build(s, b.BuildId, rel) })
		if err != nil {
			return nil, status.Errorf(codes.Internal, "segment %d build %d: %v", s.Id, b.BuildId, err)
		}
		out.IndexBuilds = append(out.IndexBuilds, &pb.IndexBuild{
			BuildId:             b.BuildId,
			IndexId:             b.IndexId,
			State:               pb.IndexBuildState(b.State),
			Prefix:              root.Full(bp),
			Files:               files,
			LeaseDeadlineUnixMs: unixMS(b.LeaseDeadline),
			CreatedAtUnixMs:     unixMS(b.CreatedAt),
			ReadyAtUnixMs:       unixMS(b.ReadyAt),
			DroppedAtUnixMs:     unixMS(b.DroppedAt),
			DropReason:          pb.DropReason(b.DropReason),
		})
	}
	return out, nil
}

// toFiles converts a file list to API files with full keys (key builds a file's
// root-relative key from its key in the list).
func toFiles(root layout.Root, blob []byte, key func(rel string) string) ([]*pb.File, error) {
	n, err := filelist.Count(blob)
	if err != nil {
		return nil, err
	}
	out := make([]*pb.File, 0, n)
	err = filelist.ForEach(blob, func(e filelist.Entry) bool {
		out = append(out, &pb.File{Key: root.Full(key(e.Key)), Kind: pb.FileKind(e.Kind), FieldId: e.FieldID, Size: e.Size, Crc32C: e.CRC32C,
			LogId: e.LogID, Entries: e.Entries, TimestampFrom: e.TimestampFrom, TimestampTo: e.TimestampTo, MemorySize: e.MemorySize})
		return true
	})
	if err != nil {
		return nil, fmt.Errorf("file list: %w", err)
	}
	return out, nil
}

func formatID(id uint64) string { return strconv.FormatUint(id, 10) }
