package fsm

import (
	"slices"
	"strconv"
	"strings"

	"github.com/google/btree"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
)

// Garbage collection. The leader plans from a read view with the rules below, asks
// GCCheck whether each candidate is still reclaimable at that point of the log, deletes
// the objects of those only, and then removes their records with GCRemove (which
// checks again). The same rules answer both, so the check can never be looser than the
// plan, and a file anything still needs — a live segment's, a pending or committed
// snapshot's, a running restore's — is never a candidate.

// GCReportsKept is how many GC reports the state keeps.
const GCReportsKept = 20

// maxGCItems bounds the candidates of one GCCheck or GCRemove entry.
const maxGCItems = 10000

// Reasons, as GC reports name them.
const (
	ReasonDroppedSegment   = "dropped segment"
	ReasonDroppedBuild     = "dropped index build"
	ReasonSnapshotManifest = "deleted snapshot's manifest"
	ReasonDroppedColl      = "dropped collection"
	ReasonOrphan           = "orphan"
	ReasonWithinGrace      = "within grace period"
	ReasonPinned           = "pinned by a snapshot"
	ReasonLive             = "live"
	ReasonLiveAllocation   = "under a live allocation"
	ReasonStillReferenced  = "still referenced"
	ReasonRestoreWriting   = "a cancelled or failed restore's copies may still land"
)

// SegmentReclaim says whether a segment's objects may be deleted and its record
// removed: dropped at least grace before now and pinned by no live snapshot. A dropped
// segment can never be pinned again (snapshots capture flushed segments only), so the
// answer does not change back once it is yes. Otherwise it says why the segment stays.
func (v *View) SegmentReclaim(s *fsmpb.Segment, now, grace int64) (bool, string) {
	return v.r.segmentReclaim(s, now, grace)
}

func (r reader) segmentReclaim(s *fsmpb.Segment, now, grace int64) (bool, string) {
	switch {
	case s.State != fsmpb.SegmentState_SEGMENT_STATE_DROPPED:
		return false, ReasonLive
	case now-s.DroppedAt < grace:
		return false, ReasonWithinGrace
	case s.DropReason == fsmpb.DropReason_DROP_REASON_RESTORE_ABORTED && r.restoreWritesPending(s.CollectionId):
		return false, ReasonRestoreWriting
	case bugGCSkipRefs:
		// jepsenbug gc-skip-refs only (false in normal builds): ignore the pins.
		return true, ""
	case r.pinned(r.t.segmentPins, s.Id):
		return false, ReasonPinned
	}
	for _, b := range s.IndexBuilds {
		if r.pinned(r.t.buildPins, b.BuildId) {
			return false, ReasonPinned
		}
	}
	return true, ""
}

// BuildReclaim says the same of a dropped index build of a live segment (the builds of
// a dropped segment go with it).
func (v *View) BuildReclaim(s *fsmpb.Segment, b *fsmpb.IndexBuild, now, grace int64) (bool, string) {
	return v.r.buildReclaim(s, b, now, grace)
}

func (r reader) buildReclaim(s *fsmpb.Segment, b *fsmpb.IndexBuild, now, grace int64) (bool, string) {
	switch {
	case s.State == fsmpb.SegmentState_SEGMENT_STATE_DROPPED, b.State != fsmpb.BuildState_BUILD_STATE_DROPPED:
		return false, ReasonLive
	case now-b.DroppedAt < grace:
		return false, ReasonWithinGrace
	case r.pinned(r.t.buildPins, b.BuildId):
		return false, ReasonPinned
	}
	return true, ""
}

// CollectionReclaim says whether a dropped collection's record may go: no segment
// records left, no snapshot record (in any state) and no running restore referring to
// it.
func (v *View) CollectionReclaim(c *fsmpb.Collection) (bool, string) { return v.r.collectionReclaim(c) }

func (r reader) collectionReclaim(c *fsmpb.Collection) (bool, string) {
	if c.State != fsmpb.CollectionState_COLLECTION_STATE_DROPPED {
		return false, ReasonLive
	}
	hasSegment := false
	r.eachSegment(c.Id, 0, func(*fsmpb.Segment) bool {
		hasSegment = true
		return false
	})
	if hasSegment {
		return false, ReasonStillReferenced
	}
	referenced := false
	r.eachSnapshotOf(c.DatabaseId, c.Name, 0, func(s *fsmpb.Snapshot) bool {
		referenced = s.CollectionId == c.Id
		return !referenced
	})
	if referenced {
		return false, ReasonStillReferenced
	}
	for _, j := range r.runningJobs() {
		if j.TargetCollectionId == c.Id || j.SourceCollectionId == c.Id {
			return false, ReasonStillReferenced
		}
	}
	return true, ""
}

func (r reader) pinned(tree *btree.BTreeG[pin], id uint64) bool {
	return len(pinnedBy(tree, id)) > 0
}

func (r reader) runningJobs() []*fsmpb.RestoreJob {
	var out []*fsmpb.RestoreJob
	r.t.restoreJobs.secondary[restoreJobsRunning].tree.Ascend(func(j *fsmpb.RestoreJob) bool {
		out = append(out, j)
		return true
	})
	return out
}

// KeyOwned says whether any record owns an object (its key relative to the storage
// root), and if so which: the orphan scan deletes only keys nothing owns. A key under
// an allocated segment or index build belongs to an upload in flight and is always
// owned; a key under a dropped segment or build is owned by it until GC reclaims it.
func (v *View) KeyOwned(key string) (bool, string) { return v.r.keyOwned(key) }

func (r reader) keyOwned(key string) (bool, string) {
	if rest, ok := strings.CutPrefix(key, "snapshots/"); ok {
		id, err := strconv.ParseUint(strings.TrimSuffix(rest, ".skm"), 10, 64)
		if err == nil && strings.HasSuffix(rest, ".skm") && ManifestKey(id) == key {
			if _, ok := r.t.snapshots.get(&fsmpb.Snapshot{Id: id}); ok {
				return true, "snapshot manifest"
			}
		}
		return false, "no snapshot"
	}
	own, ok := layout.Parse(key)
	if !ok {
		return false, "not a snapkeep key"
	}
	s, err := r.segment(own.Segment)
	if err != nil || (own.Collection != 0 && s.CollectionId != own.Collection) ||
		(own.Partition != 0 && s.PartitionId != own.Partition) {
		return false, "no segment"
	}
	// A key of one layout never belongs to a collection of the other.
	if coll, err := r.collectionByID(s.CollectionId); err != nil || coll.GetLayout() != own.Layout {
		return false, "no segment of its layout"
	}
	switch s.State {
	case fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED:
		return true, ReasonLiveAllocation
	case fsmpb.SegmentState_SEGMENT_STATE_DROPPED:
		return true, ReasonDroppedSegment
	}
	if own.Build != 0 {
		i := slices.IndexFunc(s.IndexBuilds, func(b *fsmpb.IndexBuild) bool { return b.BuildId == own.Build })
		if i < 0 {
			return false, "no index build"
		}
		b := s.IndexBuilds[i]
		switch b.State {
		case fsmpb.BuildState_BUILD_STATE_ALLOCATED:
			return true, ReasonLiveAllocation
		case fsmpb.BuildState_BUILD_STATE_DROPPED:
			return true, ReasonDroppedBuild
		}
		return listed(b.Files, own.Rel), "index build file"
	}
	if listed(s.Files, own.Rel) {
		return true, "segment file"
	}
	return false, "not in its segment's file list"
}

// listed reports whether a file list holds rel.
func listed(blob []byte, rel string) bool {
	found := false
	_ = filelist.ForEach(blob, func(e filelist.Entry) bool {
		found = e.Key == rel
		return !found && e.Key < rel
	})
	return found
}

func applyGCCheck(c *applyCtx, cmd *fsmpb.GCCheck) (proto.Message, error) {
	if n := len(cmd.Segments) + len(cmd.Builds) + len(cmd.Collections) + len(cmd.Orphans); n > maxGCItems {
		return nil, exhaustedf("a GC check takes at most %d candidates, not %d", maxGCItems, n)
	}
	resp := &fsmpb.GCCheckResponse{}
	for _, id := range cmd.Segments {
		if s, err := c.segment(id); err == nil {
			if ok, _ := c.segmentReclaim(s, c.now, cmd.Grace); ok {
				resp.Segments = append(resp.Segments, id)
			}
		}
	}
	for _, ref := range cmd.Builds {
		if s, b := c.build(ref); b != nil {
			if ok, _ := c.buildReclaim(s, b, c.now, cmd.Grace); ok {
				resp.Builds = append(resp.Builds, ref)
			}
		}
	}
	for _, id := range cmd.Collections {
		if coll, err := c.collectionByID(id); err == nil {
			if ok, _ := c.collectionReclaim(coll); ok {
				resp.Collections = append(resp.Collections, id)
			}
		}
	}
	for i, o := range cmd.Orphans {
		if c.now-o.LastModified < cmd.OrphanGrace {
			continue
		}
		if owned, _ := c.keyOwned(o.Key); !owned {
			resp.Orphans = append(resp.Orphans, uint32(i))
		}
	}
	return resp, nil
}

func (r reader) build(ref *fsmpb.BuildRef) (*fsmpb.Segment, *fsmpb.IndexBuild) {
	s, err := r.segment(ref.SegmentId)
	if err != nil {
		return nil, nil
	}
	for _, b := range s.IndexBuilds {
		if b.BuildId == ref.BuildId {
			return s, b
		}
	}
	return s, nil
}

func applyGCRemove(c *applyCtx, cmd *fsmpb.GCRemove) (proto.Message, error) {
	if n := len(cmd.Segments) + len(cmd.Builds) + len(cmd.Collections); n > maxGCItems {
		return nil, exhaustedf("a GC removal takes at most %d records, not %d", maxGCItems, n)
	}
	resp := &fsmpb.GCRemoveResponse{}
	for _, id := range cmd.Segments {
		if s, err := c.segment(id); err == nil {
			if ok, _ := c.segmentReclaim(s, c.now, cmd.Grace); ok {
				c.t.segments.remove(s)
				resp.Segments++
				resp.SegmentIds = append(resp.SegmentIds, id)
			}
		}
	}
	for _, ref := range cmd.Builds {
		s, b := c.build(ref)
		if b == nil {
			continue
		}
		if ok, _ := c.buildReclaim(s, b, c.now, cmd.Grace); ok {
			n := proto.CloneOf(s)
			n.IndexBuilds = slices.DeleteFunc(n.IndexBuilds, func(x *fsmpb.IndexBuild) bool { return x.BuildId == ref.BuildId })
			c.t.segments.put(n)
			resp.Builds++
			resp.RemovedBuilds = append(resp.RemovedBuilds, ref)
		}
	}
	for _, id := range cmd.Collections {
		if coll, err := c.collectionByID(id); err == nil {
			if ok, _ := c.collectionReclaim(coll); ok {
				c.t.collections.remove(coll)
				resp.Collections++
			}
		}
	}
	return resp, nil
}

func applyGCRecordReport(c *applyCtx, cmd *fsmpb.GCRecordReport) (proto.Message, error) {
	if cmd.Report == nil {
		return nil, invalidf("no report given")
	}
	rep := proto.CloneOf(cmd.Report)
	meta := proto.CloneOf(c.t.meta)
	meta.LastGcReport++
	c.t.meta = meta
	rep.Id = meta.LastGcReport
	if len(rep.Errors) > 20 {
		rep.Errors = rep.Errors[:20]
	}
	c.t.gcReports.put(rep)
	for c.t.gcReports.len() > GCReportsKept {
		oldest, _ := c.t.gcReports.primary.Min()
		c.t.gcReports.remove(oldest)
	}
	return rep, nil
}

// EachDroppedSegment visits dropped segments, earliest dropped first, until fn returns
// false.
func (v *View) EachDroppedSegment(fn func(*fsmpb.Segment) bool) {
	v.r.t.segments.secondary[segmentsDropped].tree.Ascend(fn)
}

// EachSegmentWithDroppedBuilds visits live segments that hold a dropped index build.
func (v *View) EachSegmentWithDroppedBuilds(fn func(*fsmpb.Segment) bool) {
	v.r.t.segments.secondary[segmentsWithDroppedBuilds].tree.Ascend(fn)
}

// EachCollection visits every collection, dropped ones included, in id order.
func (v *View) EachCollection(fn func(*fsmpb.Collection) bool) { v.r.t.collections.each(fn) }

// GCReports lists the kept GC reports, newest first.
func (v *View) GCReports() []*fsmpb.GCReport {
	var out []*fsmpb.GCReport
	v.r.t.gcReports.primary.Descend(func(r *fsmpb.GCReport) bool {
		out = append(out, r)
		return true
	})
	return out
}
