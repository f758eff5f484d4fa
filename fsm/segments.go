package fsm

import (
	"bytes"
	"cmp"
	"fmt"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
)

// Segments: allocate → flush → drop, index builds, compaction, lease expiry.

func applyAllocateSegment(c *applyCtx, cmd *fsmpb.AllocateSegment) (proto.Message, error) {
	if err := ValidateLease(cmd.Lease); err != nil {
		return nil, err
	}
	coll, _, err := c.collection(cmd.Database, cmd.Collection)
	if err != nil {
		return nil, err
	}
	if coll.State != fsmpb.CollectionState_COLLECTION_STATE_ACTIVE {
		return nil, preconditionf("collection %q is %s; segments can only be allocated in an active collection", coll.Name, stateName(coll.State))
	}
	partName := cmd.Partition
	if partName == "" {
		partName = DefaultPartition
	}
	p := partitionByName(coll, partName)
	if p == nil {
		return nil, notFoundf("partition %q not found in collection %q", partName, coll.Name)
	}
	id, err := c.takeID(idSegment, cmd.SegmentId)
	if err != nil {
		return nil, err
	}
	seg := &fsmpb.Segment{
		Id:            id,
		CollectionId:  coll.Id,
		PartitionId:   p.Id,
		State:         fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED,
		LeaseDeadline: c.now + cmd.Lease/bugAllocationLeaseDivisor,
		AllocatedAt:   c.now,
	}
	c.t.segments.put(seg)
	return &fsmpb.SegmentResponse{Segment: seg}, nil
}

// liveSegment returns a segment that is not dropped, in a collection that is not
// dropped and not being restored.
func (c *applyCtx) liveSegment(id uint64) (*fsmpb.Segment, *fsmpb.Collection, error) {
	seg, err := c.segment(id)
	if err != nil {
		return nil, nil, err
	}
	if seg.State == fsmpb.SegmentState_SEGMENT_STATE_DROPPED {
		return nil, nil, preconditionf("segment %d is dropped (%s)", id, dropReasonText(seg))
	}
	coll, err := c.collectionByID(seg.CollectionId)
	if err != nil {
		return nil, nil, err
	}
	if err := notRestoring(coll); err != nil {
		return nil, nil, err
	}
	return seg, coll, nil
}

func applyFlushSegment(c *applyCtx, cmd *fsmpb.FlushSegment) (proto.Message, error) {
	seg, coll, err := c.liveSegment(cmd.SegmentId)
	if err != nil {
		return nil, err
	}
	if seg.State != fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED {
		// A client retrying a flush whose answer it lost gets the segment again; a
		// different flush of a flushed segment is refused, saying what differs.
		again, err := flushed(nil, layoutOf(coll), seg, cmd.RowCount, cmd.Files, cmd.Meta, seg.FlushedAt)
		if err != nil {
			return nil, err
		}
		if diff := flushDifference(layoutOf(coll), seg, again); diff != "" {
			return nil, preconditionf("segment %d is already flushed, differently: %s; a segment is flushed once", seg.Id, diff)
		}
		return &fsmpb.SegmentResponse{Segment: seg}, nil
	}
	next, err := flushed(c.keep, layoutOf(coll), seg, cmd.RowCount, cmd.Files, cmd.Meta, c.now)
	if err != nil {
		return nil, err
	}
	c.t.segments.put(next)
	return &fsmpb.SegmentResponse{Segment: next}, nil
}

// flushed returns the flushed copy of an allocated segment with its file list, the
// files' keys checked against the collection's layout; keep (nil for none) holds what
// the state will keep.
func flushed(keep *arena, l layout.Layout, seg *fsmpb.Segment, rows int64, files []*fsmpb.File, meta *fsmpb.SegmentMeta, now int64) (*fsmpb.Segment, error) {
	if rows < 0 || rows > maxRowCount {
		return nil, invalidf("segment %d: row count %d is out of range", seg.Id, rows)
	}
	if err := validateSegmentMeta(seg.Id, meta); err != nil {
		return nil, err
	}
	ref := segmentRef(seg)
	blob, err := encodeFiles(files, "segment "+u64(seg.Id), func(f *fsmpb.File) (string, error) { return l.SegmentFileRel(ref, f) })
	if err != nil {
		return nil, err
	}
	next := keep.segment(seg)
	next.State = fsmpb.SegmentState_SEGMENT_STATE_FLUSHED
	next.RowCount = rows
	next.Files = keep.bytes(blob)
	next.FlushedAt = now
	next.LeaseDeadline = 0
	next.PackedMeta = keep.bytes(packSegmentMeta(meta))
	return next, nil
}

// Limits of a segment's metadata.
const (
	maxChannelBytes  = MaxNameLength
	maxPositionBytes = 4 << 10
)

func validateSegmentMeta(id uint64, m *fsmpb.SegmentMeta) error {
	switch {
	case m == nil:
		return nil
	case len(m.Channel) > maxChannelBytes:
		return invalidf("segment %d: channel name is %d bytes; the limit is %d", id, len(m.Channel), maxChannelBytes)
	case len(m.StartPosition) > maxPositionBytes || len(m.DmlPosition) > maxPositionBytes:
		return invalidf("segment %d: a position is over %d bytes", id, maxPositionBytes)
	case fsmpb.SegmentLevel_name[int32(m.Level)] == "":
		return invalidf("segment %d: unknown segment level %d", id, m.Level)
	}
	return nil
}

// flushDifference says how a flush (again, the segment it would make) differs from
// the one that flushed seg, or "" when it is the same.
func flushDifference(l layout.Layout, seg, again *fsmpb.Segment) string {
	key := func(rel string) string { return l.SegmentFileKey(segmentRef(seg), rel) }
	if seg.RowCount != again.RowCount {
		return fmt.Sprintf("%d rows were flushed, this flush says %d", seg.RowCount, again.RowCount)
	}
	if !bytes.Equal(seg.PackedMeta, again.PackedMeta) {
		return "the segment's metadata (level, channel, positions, storage version, sorted flag) differs"
	}
	if bytes.Equal(seg.Files, again.Files) {
		return ""
	}
	had, err1 := filelist.Decode(seg.Files)
	have, err2 := filelist.Decode(again.Files)
	if err1 != nil || err2 != nil {
		return "the file lists differ"
	}
	if len(had) != len(have) {
		return fmt.Sprintf("%d files were flushed, this flush lists %d", len(had), len(have))
	}
	for i := range had {
		a, b := had[i], have[i]
		switch {
		case a.Key != b.Key:
			return fmt.Sprintf("file %d is %q, this flush lists %q", i+1, key(a.Key), key(b.Key))
		case a.Size != b.Size || a.CRC32C != b.CRC32C:
			return fmt.Sprintf("file %q was flushed with size %d and CRC-32C %08x, this flush says %d and %08x", key(a.Key), a.Size, a.CRC32C, b.Size, b.CRC32C)
		case a.LogID != b.LogID || a.Entries != b.Entries || a.TimestampFrom != b.TimestampFrom || a.TimestampTo != b.TimestampTo || a.MemorySize != b.MemorySize:
			return fmt.Sprintf("file %q was flushed with other metadata (log id, entries, timestamps, memory size)", key(a.Key))
		case a.Kind != b.Kind || a.FieldID != b.FieldID:
			return fmt.Sprintf("file %q was flushed as %s of field %d, this flush says %s of field %d", key(a.Key), kindName(a.Kind), a.FieldID, kindName(b.Kind), b.FieldID)
		}
	}
	return "the file lists differ"
}

// encodeFiles validates a command's files (keepAs checks each key against its owner
// and returns the part the file list keeps) and encodes them, sorted by the kept
// part, into a file list blob.
func encodeFiles(files []*fsmpb.File, owner string, keepAs func(*fsmpb.File) (string, error)) ([]byte, error) {
	if len(files) > MaxFilesPerSegment {
		return nil, exhaustedf("%s: %d files given; the limit is %d", owner, len(files), MaxFilesPerSegment)
	}
	entries := make([]filelist.Entry, 0, len(files))
	byRel := make(map[string]string, len(files))
	for _, f := range files {
		if f == nil {
			return nil, invalidf("%s: empty file entry", owner)
		}
		if err := checkKeyLength(f.Key); err != nil {
			return nil, err
		}
		rel, err := keepAs(f)
		if err != nil {
			return nil, invalidf("%v", err)
		}
		if f.FieldId < 0 || f.FieldId > maxFieldID {
			return nil, invalidf("file %q: field id %d is out of range", f.Key, f.FieldId)
		}
		if f.Size > maxSegmentFileSizeByte {
			return nil, invalidf("file %q: size %d is larger than an object can be", f.Key, f.Size)
		}
		if _, dup := byRel[rel]; dup {
			return nil, invalidf("%s: file %q is listed twice", owner, f.Key)
		}
		byRel[rel] = f.Key
		if f.LogId < 0 || f.Entries < 0 || f.MemorySize < 0 {
			return nil, invalidf("file %q: log id, entries and memory size cannot be negative", f.Key)
		}
		entries = append(entries, filelist.Entry{Key: rel, Kind: f.Kind, FieldID: f.FieldId, Size: f.Size, CRC32C: f.Crc32C,
			LogID: f.LogId, Entries: f.Entries, TimestampFrom: f.TimestampFrom, TimestampTo: f.TimestampTo, MemorySize: f.MemorySize})
	}
	slices.SortFunc(entries, func(a, b filelist.Entry) int { return cmp.Compare(a.Key, b.Key) })
	return filelist.EncodeSorted(entries), nil
}

func applyAllocateIndexBuild(c *applyCtx, cmd *fsmpb.AllocateIndexBuild) (proto.Message, error) {
	if err := ValidateLease(cmd.Lease); err != nil {
		return nil, err
	}
	seg, coll, err := c.liveSegment(cmd.SegmentId)
	if err != nil {
		return nil, err
	}
	if seg.State != fsmpb.SegmentState_SEGMENT_STATE_FLUSHED {
		return nil, preconditionf("segment %d is not flushed yet; indexes are built on flushed segments", seg.Id)
	}
	ix := indexByName(coll, cmd.Index)
	if ix == nil {
		return nil, notFoundf("index %q not found on collection %q", cmd.Index, coll.Name)
	}
	buildID, err := c.takeID(idBuild, cmd.BuildId)
	if err != nil {
		return nil, err
	}
	next := proto.CloneOf(seg)
	build := &fsmpb.IndexBuild{
		BuildId:       buildID,
		IndexId:       ix.Id,
		State:         fsmpb.BuildState_BUILD_STATE_ALLOCATED,
		LeaseDeadline: c.now + cmd.Lease,
		CreatedAt:     c.now,
	}
	next.IndexBuilds = append(next.IndexBuilds, build)
	c.t.segments.put(next)
	return &fsmpb.IndexBuildResponse{Segment: next, BuildId: build.BuildId}, nil
}

func applyAddIndexBuild(c *applyCtx, cmd *fsmpb.AddIndexBuild) (proto.Message, error) {
	seg, coll, err := c.liveSegment(cmd.SegmentId)
	if err != nil {
		return nil, err
	}
	next := proto.CloneOf(seg)
	i := slices.IndexFunc(next.IndexBuilds, func(b *fsmpb.IndexBuild) bool { return b.BuildId == cmd.BuildId })
	if i < 0 {
		return nil, notFoundf("index build %d not found in segment %d", cmd.BuildId, seg.Id)
	}
	build := next.IndexBuilds[i]
	if build.State != fsmpb.BuildState_BUILD_STATE_ALLOCATED {
		return nil, preconditionf("index build %d of segment %d is %s; only an allocated build takes files", build.BuildId, seg.Id, buildStateName(build.State))
	}
	l, ref := layoutOf(coll), buildRef(seg, build.BuildId)
	blob, err := encodeFiles(cmd.Files, "index build "+u64(build.BuildId), func(f *fsmpb.File) (string, error) { return l.BuildFileRel(ref, f) })
	if err != nil {
		return nil, err
	}
	build.Files = blob
	build.State = fsmpb.BuildState_BUILD_STATE_READY
	build.ReadyAt = c.now
	build.LeaseDeadline = 0
	// A newer build of the same index replaces the older one.
	for _, b := range next.IndexBuilds {
		if b != build && b.IndexId == build.IndexId && b.State == fsmpb.BuildState_BUILD_STATE_READY {
			dropBuild(b, c.now, fsmpb.DropReason_DROP_REASON_SUPERSEDED)
		}
	}
	c.t.segments.put(next)
	return &fsmpb.SegmentResponse{Segment: next}, nil
}

func applyCompact(c *applyCtx, cmd *fsmpb.Compact) (proto.Message, error) {
	if len(cmd.Inputs) == 0 {
		return nil, invalidf("compaction needs at least one input segment")
	}
	if len(cmd.Inputs) > MaxSegmentsPerCommand || len(cmd.Outputs) > MaxCompactionOutputs {
		return nil, exhaustedf("compaction of %d inputs into %d outputs exceeds the limits (%d inputs, %d outputs)", len(cmd.Inputs), len(cmd.Outputs), MaxSegmentsPerCommand, MaxCompactionOutputs)
	}
	seen := map[uint64]bool{}
	var collectionID, partitionID uint64
	sameOwner := func(s *fsmpb.Segment) error {
		if collectionID == 0 {
			collectionID, partitionID = s.CollectionId, s.PartitionId
			return nil
		}
		if s.CollectionId != collectionID {
			return invalidf("compaction mixes collections: segment %d is in collection %d, segment %d in collection %d", s.Id, s.CollectionId, cmd.Inputs[0], collectionID)
		}
		if s.PartitionId != partitionID {
			return invalidf("compaction mixes partitions: segment %d is in partition %d, segment %d in partition %d", s.Id, s.PartitionId, cmd.Inputs[0], partitionID)
		}
		return nil
	}

	var out []*fsmpb.Segment
	outputIDs := make([]uint64, 0, len(cmd.Outputs))
	for _, o := range cmd.Outputs {
		if o == nil {
			return nil, invalidf("empty compaction output")
		}
		outputIDs = append(outputIDs, o.SegmentId)
	}
	inputIDs := slices.Clone(cmd.Inputs)

	for _, id := range cmd.Inputs {
		if seen[id] {
			return nil, invalidf("segment %d is named twice in the compaction", id)
		}
		seen[id] = true
		s, err := c.segment(id)
		if err != nil {
			return nil, err
		}
		if s.State != fsmpb.SegmentState_SEGMENT_STATE_FLUSHED {
			if s.State == fsmpb.SegmentState_SEGMENT_STATE_DROPPED {
				return nil, preconditionf("compaction input segment %d is already dropped (%s)", id, dropReasonText(s))
			}
			return nil, preconditionf("compaction input segment %d is %s; inputs must be flushed", id, segmentStateName(s.State))
		}
		if err := sameOwner(s); err != nil {
			return nil, err
		}
		n := proto.CloneOf(s)
		n.State = fsmpb.SegmentState_SEGMENT_STATE_DROPPED
		n.DroppedAt = c.now
		n.DropReason = fsmpb.DropReason_DROP_REASON_COMPACTED
		n.CompactedTo = outputIDs
		out = append(out, n)
	}
	for _, o := range cmd.Outputs {
		if seen[o.SegmentId] {
			return nil, invalidf("segment %d is named twice in the compaction", o.SegmentId)
		}
		seen[o.SegmentId] = true
		s, err := c.segment(o.SegmentId)
		if err != nil {
			return nil, err
		}
		if s.State != fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED {
			return nil, preconditionf("compaction output segment %d is %s; outputs must be freshly allocated segments", o.SegmentId, segmentStateName(s.State))
		}
		if err := sameOwner(s); err != nil {
			return nil, err
		}
		coll, err := c.collectionByID(s.CollectionId)
		if err != nil {
			return nil, err
		}
		n, err := flushed(c.keep, layoutOf(coll), s, o.RowCount, o.Files, o.Meta, c.now)
		if err != nil {
			return nil, err
		}
		n.CompactedFrom = inputIDs
		out = append(out, n)
	}
	if coll, err := c.collectionByID(collectionID); err != nil {
		return nil, err
	} else if coll.State != fsmpb.CollectionState_COLLECTION_STATE_ACTIVE {
		return nil, preconditionf("collection %q is %s; only an active collection is compacted", coll.Name, stateName(coll.State))
	}
	resp := make([]*fsmpb.Segment, len(out))
	for i, s := range out {
		c.t.segments.put(s)
		resp[i] = s
		if i < len(cmd.Inputs) {
			resp[i] = withoutFiles(s)
		}
	}
	return &fsmpb.SegmentsResponse{Segments: resp}, nil
}

func applyDropSegments(c *applyCtx, cmd *fsmpb.DropSegments) (proto.Message, error) {
	if len(cmd.SegmentIds) == 0 {
		return nil, invalidf("no segment ids given")
	}
	if len(cmd.SegmentIds) > MaxSegmentsPerCommand {
		return nil, exhaustedf("%d segments given; at most %d per call", len(cmd.SegmentIds), MaxSegmentsPerCommand)
	}
	seen := map[uint64]bool{}
	out := make([]*fsmpb.Segment, 0, len(cmd.SegmentIds))
	for _, id := range cmd.SegmentIds {
		if seen[id] {
			return nil, invalidf("segment %d is named twice", id)
		}
		seen[id] = true
		s, err := c.segment(id)
		if err != nil {
			return nil, err
		}
		if coll, err := c.collectionByID(s.CollectionId); err == nil {
			if err := notRestoring(coll); err != nil {
				return nil, err
			}
		}
		if s.State != fsmpb.SegmentState_SEGMENT_STATE_DROPPED {
			s = dropped(s, c.now, fsmpb.DropReason_DROP_REASON_USER)
			c.t.segments.put(s)
		}
		out = append(out, withoutFiles(s))
	}
	return &fsmpb.SegmentsResponse{Segments: out}, nil
}

// withoutFiles returns a copy of a segment without its and its builds' file lists:
// a response about many segments stays small (it is also kept in the deduplication
// window).
func withoutFiles(s *fsmpb.Segment) *fsmpb.Segment {
	n := proto.CloneOf(s)
	n.Files = nil
	for _, b := range n.IndexBuilds {
		b.Files = nil
	}
	return n
}

// dropped returns the dropped copy of a segment; its builds go with it.
func dropped(s *fsmpb.Segment, now int64, reason fsmpb.DropReason) *fsmpb.Segment {
	n := proto.CloneOf(s)
	n.State = fsmpb.SegmentState_SEGMENT_STATE_DROPPED
	n.DroppedAt = now
	n.DropReason = reason
	for _, b := range n.IndexBuilds {
		if b.State == fsmpb.BuildState_BUILD_STATE_ALLOCATED {
			dropBuild(b, now, reason)
		}
	}
	return n
}

// dropSegmentsWhere drops the collection's live segments that match.
func (c *applyCtx) dropSegmentsWhere(collectionID uint64, reason fsmpb.DropReason, match func(*fsmpb.Segment) bool) {
	var victims []*fsmpb.Segment
	c.eachSegment(collectionID, 0, func(s *fsmpb.Segment) bool {
		if s.State != fsmpb.SegmentState_SEGMENT_STATE_DROPPED && match(s) {
			victims = append(victims, s)
		}
		return true
	})
	for _, s := range victims {
		c.t.segments.put(dropped(s, c.now, reason))
	}
}

func applyExpireAllocations(c *applyCtx, _ *fsmpb.ExpireAllocations) (proto.Message, error) {
	var due []*fsmpb.Segment
	c.eachLeased(func(s *fsmpb.Segment) bool {
		d, _ := earliestLease(s)
		if d >= c.now {
			return false
		}
		due = append(due, s)
		return true
	})
	resp := &fsmpb.ExpireAllocationsResponse{}
	for _, s := range due {
		var n *fsmpb.Segment
		if s.State == fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED && s.LeaseDeadline < c.now {
			n = dropped(s, c.now, fsmpb.DropReason_DROP_REASON_LEASE_EXPIRED)
			resp.SegmentIds = append(resp.SegmentIds, s.Id)
		} else {
			n = proto.CloneOf(s)
		}
		for i, b := range n.IndexBuilds {
			if b.State == fsmpb.BuildState_BUILD_STATE_ALLOCATED && b.LeaseDeadline < c.now {
				dropBuild(b, c.now, fsmpb.DropReason_DROP_REASON_LEASE_EXPIRED)
				resp.BuildIds = append(resp.BuildIds, n.IndexBuilds[i].BuildId)
			}
		}
		c.t.segments.put(n)
	}
	return resp, nil
}

func u64(v uint64) string { return formatUint(v) }

// maxRegisteredSegments bounds one RegisterSegments entry (each segment's file list
// is bounded by MaxFilesPerSegment; a thousand Milvus-sized segments are a few MB).
const maxRegisteredSegments = 1000

func applyRegisterSegments(c *applyCtx, cmd *fsmpb.RegisterSegments) (proto.Message, error) {
	if len(cmd.Segments) == 0 && len(cmd.Builds) == 0 {
		return nil, invalidf("nothing to register: give segments, index builds or both")
	}
	if n := len(cmd.Segments); n > maxRegisteredSegments {
		return nil, invalidf("register at most %d segments at once, not %d", maxRegisteredSegments, n)
	}
	if n := len(cmd.Builds); n > maxRegisteredBuilds {
		return nil, invalidf("register at most %d index builds at once, not %d", maxRegisteredBuilds, n)
	}
	coll, _, err := c.collection(cmd.Database, cmd.Collection)
	if err != nil {
		return nil, err
	}
	if coll.State != fsmpb.CollectionState_COLLECTION_STATE_ACTIVE {
		return nil, preconditionf("collection %q is %s; segments are registered in an active collection", coll.Name, stateName(coll.State))
	}
	l := layoutOf(coll)
	resp := &fsmpb.SegmentsResponse{}
	for _, r := range cmd.Segments {
		if r == nil || r.SegmentId == 0 {
			return nil, invalidf("a registered segment needs its id")
		}
		if slices.IndexFunc(coll.Partitions, func(p *fsmpb.Partition) bool { return p.Id == r.PartitionId }) < 0 {
			return nil, notFoundf("segment %d: partition %d is not in collection %q", r.SegmentId, r.PartitionId, coll.Name)
		}
		id, err := c.takeID(idSegment, r.SegmentId)
		if err != nil {
			return nil, err
		}
		seg := &fsmpb.Segment{Id: id, CollectionId: coll.Id, PartitionId: r.PartitionId,
			State: fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED, AllocatedAt: c.now}
		next, err := flushed(c.keep, l, seg, r.RowCount, r.Files, r.Meta, c.now)
		if err != nil {
			return nil, err
		}
		c.t.segments.put(next)
		resp.Segments = append(resp.Segments, withoutFiles(next))
	}
	if err := registerBuilds(c, coll, cmd.Builds, resp); err != nil {
		return nil, err
	}
	return resp, nil
}
