package fsm

import (
	"slices"

	"github.com/google/btree"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Space: what a live snapshot keeps in storage, split by what garbage collection would
// do if it were dropped. Every object the snapshot needs (the listed files of its
// captured segments and index builds, and its manifest) is one of:
//
//   - live: its segment is not dropped (and, for a build's file, neither is the build):
//     the collection still uses it, so dropping snapshots frees nothing of it;
//   - shared: dropped, but GC keeps it for something besides this snapshot: another
//     live snapshot pins the segment (or one of its builds) or the build, or a stopped
//     restore's copies may still land (the same rules as SegmentReclaim and
//     BuildReclaim, with this snapshot's pins left out);
//   - exclusive: dropped and kept by this snapshot alone: dropping it lets the next GC
//     run past the grace period delete it. A segment dropped within the grace period
//     counts here too: it goes once the grace has passed. Exclusive also holds the
//     manifest (once committed: before that its size is unknown) and the listed files
//     of any index build a dropped segment still holds that the snapshot did not
//     capture (a dropped segment goes whole). Uploads GC finds by listing a prefix
//     (a build never completed) are not in the catalog and not counted.
//
// Holds do not matter here (they refuse a drop; they keep no object of their own).
// The cost is a few B-tree lookups per captured segment and build: the sizes of pinned
// file lists are kept with the pins (tables.segmentSizes, buildSizes).

// listSize is what a pinned object's file list holds: a segment's own files or an
// index build's.
type listSize struct {
	id    uint64
	files uint64
	bytes uint64
}

func lessListSize(a, b listSize) bool { return a.id < b.id }

func sizeOfList(id uint64, blob []byte) listSize {
	// Stored lists were validated when written; a corrupt one would count as empty.
	files, bytes, _ := filelist.Totals(blob)
	return listSize{id: id, files: uint64(files), bytes: bytes}
}

func (t *tables) segmentFileList(id uint64) []byte {
	if s, ok := t.segments.get(&fsmpb.Segment{Id: id}); ok {
		return s.Files
	}
	return nil
}

func (t *tables) buildFileList(id uint64) []byte {
	if _, b := t.buildByID(id); b != nil {
		return b.Files
	}
	return nil
}

// buildByID finds an index build (build ids are unique) and the segment holding it.
func (t *tables) buildByID(id uint64) (*fsmpb.Segment, *fsmpb.IndexBuild) {
	var owner uint64
	t.segments.nested[segmentsBuildIDs].tree.AscendGreaterOrEqual(nestedID{id: id}, func(n nestedID) bool {
		if n.id == id {
			owner = n.owner
		}
		return false
	})
	s, ok := t.segments.get(&fsmpb.Segment{Id: owner})
	if owner == 0 || !ok {
		return nil, nil
	}
	for _, b := range s.IndexBuilds {
		if b.BuildId == id {
			return s, b
		}
	}
	return s, nil
}

// Space is what snapshots keep in storage, in objects and bytes (see above).
type Space struct {
	ExclusiveObjects, ExclusiveBytes uint64
	SharedObjects, SharedBytes       uint64
	LiveObjects, LiveBytes           uint64
}

func (sp *Space) addExclusive(n listSize) {
	sp.ExclusiveObjects += n.files
	sp.ExclusiveBytes += n.bytes
}

func (sp *Space) addShared(n listSize) {
	sp.SharedObjects += n.files
	sp.SharedBytes += n.bytes
}

func (sp *Space) addLive(n listSize) {
	sp.LiveObjects += n.files
	sp.LiveBytes += n.bytes
}

// Freed is one record whose objects dropping snapshots would let GC delete: a dropped
// segment (its listed files and those of every build it holds), a dropped index build
// of a live segment (Build set, Segment its owner), or a snapshot's manifest (Snapshot
// set).
type Freed struct {
	Segment  *fsmpb.Segment
	Build    *fsmpb.IndexBuild
	Snapshot *fsmpb.Snapshot
}

// SnapshotSpace is what a live (pending or committed) snapshot keeps; false for a
// deleting one, whose pins are released already.
func (v *View) SnapshotSpace(s *fsmpb.Snapshot) (Space, bool) {
	if !isLiveSnapshot(s) {
		return Space{}, false
	}
	return v.r.space([]*fsmpb.Snapshot{s}, nil), true
}

// DropPreview is what the live snapshots among snaps keep taken together — exclusive
// is what dropping all of them frees, which can be more than the sum of their own
// exclusive figures — and calls freed (when not nil) for each record whose objects that
// would free, in segment id order after the manifests.
func (v *View) DropPreview(snaps []*fsmpb.Snapshot, freed func(Freed)) Space {
	live := slices.DeleteFunc(slices.Clone(snaps), func(s *fsmpb.Snapshot) bool { return !isLiveSnapshot(s) })
	slices.SortFunc(live, func(a, b *fsmpb.Snapshot) int { return compareUint(a.Id, b.Id) })
	live = slices.CompactFunc(live, func(a, b *fsmpb.Snapshot) bool { return a.Id == b.Id })
	if len(live) == 0 {
		return Space{}
	}
	return v.r.space(live, freed)
}

func compareUint(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// space classifies what snaps (live, sorted by id, distinct) keep together.
func (r reader) space(snaps []*fsmpb.Snapshot, freed func(Freed)) Space {
	if freed == nil {
		freed = func(Freed) {}
	}
	ids := make([]uint64, len(snaps))
	segmentIDs, buildIDs := snaps[0].SegmentIds, snaps[0].BuildIds
	for i, s := range snaps {
		ids[i] = s.Id
		if i > 0 {
			segmentIDs = mergeSorted(segmentIDs, s.SegmentIds)
			buildIDs = mergeSorted(buildIDs, s.BuildIds)
		}
	}
	inSet := func(snapshot uint64) bool {
		_, found := slices.BinarySearch(ids, snapshot)
		return found
	}
	captured := func(build uint64) bool {
		_, found := slices.BinarySearch(buildIDs, build)
		return found
	}

	var sp Space
	for _, s := range snaps {
		if s.ManifestSize > 0 {
			sp.addExclusive(listSize{files: 1, bytes: s.ManifestSize})
			freed(Freed{Snapshot: s})
		}
	}
	segs, sizes := r.pinnedSegments(snaps, segmentIDs)
	for i, id := range segmentIDs {
		seg := segs[i]
		if seg == nil {
			continue // cannot happen: a pinned segment keeps its record
		}
		own := sizes[i]
		if own.id != id {
			own = sizeOfList(id, seg.Files) // cannot happen either: the pins keep its size
		}
		switch {
		case seg.State != fsmpb.SegmentState_SEGMENT_STATE_DROPPED:
			sp.addLive(own)
			for _, b := range seg.IndexBuilds {
				if !captured(b.BuildId) {
					continue
				}
				size := pinnedSize(r.t.buildSizes, b.BuildId, b.Files)
				switch {
				case b.State != fsmpb.BuildState_BUILD_STATE_DROPPED:
					sp.addLive(size)
				case pinnedOutside(r.t.buildPins, b.BuildId, inSet):
					sp.addShared(size)
				default:
					sp.addExclusive(size)
					freed(Freed{Segment: seg, Build: b})
				}
			}
		case r.segmentKeptOutside(seg, inSet):
			sp.addShared(own)
			for _, b := range seg.IndexBuilds {
				if captured(b.BuildId) {
					sp.addShared(pinnedSize(r.t.buildSizes, b.BuildId, b.Files))
				}
			}
		default:
			// A dropped segment goes whole: every build it holds goes with it.
			sp.addExclusive(own)
			for _, b := range seg.IndexBuilds {
				if captured(b.BuildId) {
					sp.addExclusive(pinnedSize(r.t.buildSizes, b.BuildId, b.Files))
				} else {
					sp.addExclusive(sizeOfList(b.BuildId, b.Files))
				}
			}
			freed(Freed{Segment: seg})
		}
	}
	return sp
}

// pinnedSegments returns the records and the sizes kept with the pins of segmentIDs
// (sorted, distinct: what snaps pin), each aligned with the ids (nil, and a zero size,
// where missing), found by ordered walks (findSorted).
func (r reader) pinnedSegments(snaps []*fsmpb.Snapshot, segmentIDs []uint64) ([]*fsmpb.Segment, []listSize) {
	var segs []*fsmpb.Segment
	if oneCollection(snaps) {
		segs = r.segmentsOf(snaps[0].CollectionId, segmentIDs)
	} else {
		segs = make([]*fsmpb.Segment, len(segmentIDs))
		findSorted(r.t.segments.primary, segmentIDs, func(id uint64) *fsmpb.Segment { return &fsmpb.Segment{Id: id} },
			func(s *fsmpb.Segment) uint64 { return s.Id }, func(i int, s *fsmpb.Segment) { segs[i] = s })
	}
	sizes := make([]listSize, len(segmentIDs))
	findSorted(r.t.segmentSizes, segmentIDs, func(id uint64) listSize { return listSize{id: id} },
		func(n listSize) uint64 { return n.id }, func(i int, n listSize) { sizes[i] = n })
	return segs, sizes
}

func oneCollection(snaps []*fsmpb.Snapshot) bool {
	for _, s := range snaps[1:] {
		if s.CollectionId != snaps[0].CollectionId {
			return false
		}
	}
	return true
}

// segmentKeptOutside says whether GC keeps a dropped segment for something besides the
// snapshots in the set: SegmentReclaim's rules, grace aside, without their pins.
func (r reader) segmentKeptOutside(s *fsmpb.Segment, inSet func(uint64) bool) bool {
	if s.DropReason == fsmpb.DropReason_DROP_REASON_RESTORE_ABORTED && r.restoreWritesPending(s.CollectionId) {
		return true
	}
	if pinnedOutside(r.t.segmentPins, s.Id, inSet) {
		return true
	}
	for _, b := range s.IndexBuilds {
		if pinnedOutside(r.t.buildPins, b.BuildId, inSet) {
			return true
		}
	}
	return false
}

// pinnedOutside says whether a snapshot outside the set pins id.
func pinnedOutside(tree *btree.BTreeG[pin], id uint64, inSet func(uint64) bool) bool {
	outside := false
	tree.AscendGreaterOrEqual(pin{id: id}, func(p pin) bool {
		if p.id != id {
			return false
		}
		outside = !inSet(p.snapshot)
		return !outside
	})
	return outside
}

// pinnedSize is a pinned object's size as kept with its pins (its file list only if
// the size is missing, which the pins never allow).
func pinnedSize(sizes *btree.BTreeG[listSize], id uint64, blob []byte) listSize {
	if n, ok := sizes.Get(listSize{id: id}); ok {
		return n
	}
	return sizeOfList(id, blob)
}

// mergeSorted is the union of two sorted id lists, sorted and distinct.
func mergeSorted(a, b []uint64) []uint64 {
	out := make([]uint64, 0, len(a)+len(b))
	i, j := 0, 0
	for i < len(a) || j < len(b) {
		var next uint64
		switch {
		case j >= len(b) || (i < len(a) && a[i] < b[j]):
			next, i = a[i], i+1
		case i >= len(a) || b[j] < a[i]:
			next, j = b[j], j+1
		default:
			next, i, j = a[i], i+1, j+1
		}
		if len(out) == 0 || out[len(out)-1] != next {
			out = append(out, next)
		}
	}
	return out
}
