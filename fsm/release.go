package fsm

import (
	"fmt"
	"slices"
	"strings"

	"github.com/google/btree"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
)

// ReleaseForDeletion: an external collector (a system with its own GC, as Milvus has)
// asks which segments, builds and objects it may delete. The answer is decided here, at
// one place in the log, and recorded by this entry: a live segment or ready build
// answered deletable is dropped (DROP_REASON_RELEASED) in the same entry, and a dropped
// one can never be captured by a snapshot, so nothing answered deletable is pinned or
// restored from afterwards. Refused, with the reason: whatever a live snapshot pins
// (a running restore pins its snapshot), a running restore writes, or an upload in
// flight (an allocated segment or build) holds.

// maxReleaseItems bounds one request.
const maxReleaseItems = 10000

func applyReleaseForDeletion(c *applyCtx, cmd *fsmpb.ReleaseForDeletion) (proto.Message, error) {
	if n := len(cmd.SegmentIds) + len(cmd.Builds) + len(cmd.Keys); n > maxReleaseItems {
		return nil, exhaustedf("a release asks about at most %d items, not %d", maxReleaseItems, n)
	} else if n == 0 {
		return nil, invalidf("a release needs at least one segment, build or key")
	}
	for _, b := range cmd.Builds {
		if b == nil || b.SegmentId == 0 || b.BuildId == 0 {
			return nil, invalidf("a build to release needs its segment id and build id")
		}
	}
	for _, k := range cmd.Keys {
		if err := checkKeyLength(k); err != nil {
			return nil, err
		}
	}
	resp := &fsmpb.ReleaseForDeletionResponse{}
	add := func(ok bool, format string, args ...any) {
		resp.Verdicts = append(resp.Verdicts, &fsmpb.ReleaseVerdict{Deletable: ok, Reason: fmt.Sprintf(format, args...)})
	}
	for _, id := range cmd.SegmentIds {
		ok, why := c.releaseSegment(id)
		add(ok, "%s", why)
	}
	for _, b := range cmd.Builds {
		ok, why := c.releaseBuild(b.SegmentId, b.BuildId)
		add(ok, "%s", why)
	}
	for _, k := range cmd.Keys {
		ok, why := c.releaseKey(k)
		add(ok, "%s", why)
	}
	return resp, nil
}

// releaseSegment decides on a segment, dropping it when it is live and deletable.
func (c *applyCtx) releaseSegment(id uint64) (bool, string) {
	s, err := c.segment(id)
	if err != nil {
		return true, fmt.Sprintf("segment %d is not registered", id)
	}
	if why := c.segmentHeld(s); why != "" {
		return false, why
	}
	for _, b := range s.IndexBuilds {
		if bugReleaseIgnoresPins {
			break
		}
		if why := c.pinnedWhy(c.t.buildPins, b.BuildId, fmt.Sprintf("index build %d of segment %d", b.BuildId, s.Id)); why != "" {
			return false, why
		}
	}
	if s.State == fsmpb.SegmentState_SEGMENT_STATE_DROPPED {
		return true, fmt.Sprintf("segment %d is dropped (%s) and nothing pins it", s.Id, dropReasonText(s))
	}
	c.t.segments.put(dropped(s, c.now, fsmpb.DropReason_DROP_REASON_RELEASED))
	return true, fmt.Sprintf("segment %d released: dropped, no snapshot can capture it", s.Id)
}

// segmentHeld says why a segment's files must stay, or "".
func (c *applyCtx) segmentHeld(s *fsmpb.Segment) string {
	switch {
	case s.State == fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED && s.RestoreJobId != 0:
		return fmt.Sprintf("segment %d is being written by restore job %d", s.Id, s.RestoreJobId)
	case s.State == fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED:
		return fmt.Sprintf("segment %d is an upload in flight (allocated, not flushed)", s.Id)
	case s.DropReason == fsmpb.DropReason_DROP_REASON_RESTORE_ABORTED && c.restoreWritesPending(s.CollectionId):
		return fmt.Sprintf("segment %d is the target of a stopped restore whose copies may still be landing", s.Id)
	}
	if job := c.restoreJobOfTarget(s.CollectionId); job != nil && isRunningRestore(job) {
		return fmt.Sprintf("segment %d belongs to collection %d, which restore job %d is writing", s.Id, s.CollectionId, job.Id)
	}
	if bugReleaseIgnoresPins {
		return ""
	}
	return c.pinnedWhy(c.t.segmentPins, s.Id, fmt.Sprintf("segment %d", s.Id))
}

// pinnedWhy names the live snapshots that pin id, or "".
func (c *applyCtx) pinnedWhy(tree *btree.BTreeG[pin], id uint64, what string) string {
	ids := pinnedBy(tree, id)
	if len(ids) == 0 {
		return ""
	}
	var names []string
	for _, sid := range ids[:min(len(ids), 5)] {
		if snap, ok := c.t.snapshots.get(&fsmpb.Snapshot{Id: sid}); ok {
			names = append(names, fmt.Sprintf("%q (id %d) of collection %q", snap.Name, snap.Id, snap.CollectionName))
		}
	}
	more := ""
	if len(ids) > len(names) {
		more = fmt.Sprintf(" and %d more", len(ids)-len(names))
	}
	return fmt.Sprintf("%s is pinned by snapshot %s%s", what, strings.Join(names, ", "), more)
}

// releaseBuild decides on an index build, dropping it when it is ready and deletable.
func (c *applyCtx) releaseBuild(segmentID, buildID uint64) (bool, string) {
	s, err := c.segment(segmentID)
	if err != nil {
		return true, fmt.Sprintf("segment %d is not registered", segmentID)
	}
	i := slices.IndexFunc(s.IndexBuilds, func(b *fsmpb.IndexBuild) bool { return b.BuildId == buildID })
	if i < 0 {
		return true, fmt.Sprintf("index build %d is not registered in segment %d", buildID, segmentID)
	}
	b := s.IndexBuilds[i]
	what := fmt.Sprintf("index build %d of segment %d", buildID, segmentID)
	if why := c.pinnedWhy(c.t.buildPins, buildID, what); why != "" {
		return false, why
	}
	if b.State == fsmpb.BuildState_BUILD_STATE_ALLOCATED {
		return false, what + " is an upload in flight (allocated, not added)"
	}
	if s.State != fsmpb.SegmentState_SEGMENT_STATE_DROPPED {
		if job := c.restoreJobOfTarget(s.CollectionId); job != nil && isRunningRestore(job) {
			return false, fmt.Sprintf("%s belongs to collection %d, which restore job %d is writing", what, s.CollectionId, job.Id)
		}
	}
	if b.State == fsmpb.BuildState_BUILD_STATE_DROPPED || s.State == fsmpb.SegmentState_SEGMENT_STATE_DROPPED {
		return true, what + " is dropped and nothing pins it"
	}
	next := proto.CloneOf(s)
	dropBuild(next.IndexBuilds[i], c.now, fsmpb.DropReason_DROP_REASON_RELEASED)
	c.t.segments.put(next)
	return true, what + " released: dropped, no snapshot can capture it"
}

// releaseKey decides on one object by its owner. A file of a live segment is refused
// (release the segment); a key no record lists is not snapkeep's to keep, unless it
// sits under an upload in flight or is a snapshot's manifest.
func (c *applyCtx) releaseKey(key string) (bool, string) {
	own, ok := layout.Parse(key)
	if !ok {
		if owned, why := c.keyOwned(key); owned {
			return false, fmt.Sprintf("%q is a %s", key, why)
		}
		return true, fmt.Sprintf("%q is no registered segment's file", key)
	}
	s, err := c.segment(own.Segment)
	if err != nil || (own.Collection != 0 && s.CollectionId != own.Collection) || (own.Partition != 0 && s.PartitionId != own.Partition) {
		return true, fmt.Sprintf("%q: its segment is not registered", key)
	}
	if coll, err := c.collectionByID(s.CollectionId); err != nil || coll.GetLayout() != own.Layout {
		return true, fmt.Sprintf("%q: no segment of its key layout", key)
	}
	blob, what := s.Files, fmt.Sprintf("segment %d", s.Id)
	var build *fsmpb.IndexBuild
	if own.Build != 0 {
		i := slices.IndexFunc(s.IndexBuilds, func(b *fsmpb.IndexBuild) bool { return b.BuildId == own.Build })
		if i < 0 {
			if s.State == fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED {
				return false, fmt.Sprintf("%q sits under segment %d, an upload in flight", key, s.Id)
			}
			return true, fmt.Sprintf("%q: its index build is not registered", key)
		}
		build = s.IndexBuilds[i]
		blob, what = build.Files, fmt.Sprintf("index build %d of segment %d", build.BuildId, s.Id)
	}
	if !listed(blob, own.Rel) {
		switch {
		case s.State == fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED:
			return false, fmt.Sprintf("%q sits under segment %d, an upload in flight", key, s.Id)
		case build != nil && build.State == fsmpb.BuildState_BUILD_STATE_ALLOCATED:
			return false, fmt.Sprintf("%q sits under %s, an upload in flight", key, what)
		}
		return true, fmt.Sprintf("%q is not in the file list of %s", key, what)
	}
	if build != nil {
		if why := c.pinnedWhy(c.t.buildPins, build.BuildId, what); why != "" {
			return false, why
		}
		if build.State != fsmpb.BuildState_BUILD_STATE_DROPPED && s.State != fsmpb.SegmentState_SEGMENT_STATE_DROPPED {
			return false, fmt.Sprintf("%q is a file of live %s: release the build itself", key, what)
		}
		return true, fmt.Sprintf("%q is a file of dropped %s, which nothing pins", key, what)
	}
	if why := c.segmentHeld(s); why != "" {
		return false, why
	}
	if s.State != fsmpb.SegmentState_SEGMENT_STATE_DROPPED {
		return false, fmt.Sprintf("%q is a file of live %s: release the segment itself", key, what)
	}
	return true, fmt.Sprintf("%q is a file of dropped %s, which nothing pins", key, what)
}
