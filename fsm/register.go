package fsm

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// maxRegisteredBuilds bounds the index builds of one RegisterSegments entry (each
// build's file list is bounded by MaxFilesPerSegment).
const maxRegisteredBuilds = 4000

// registerBuilds adds ready index builds whose files are already in the bucket
// (adoption) to flushed segments of coll: the segments of this entry (already put)
// or ones registered before. Each build has the caller's id, names one of the
// collection's indexes by id, and its files are checked against the build's prefix as
// at AddIndexBuild. A segment holds at most one allocated or ready build per index:
// a registration never supersedes (and so never drops) a build. Segments that took
// builds and are not in resp yet are appended to it.
func registerBuilds(c *applyCtx, coll *fsmpb.Collection, builds []*fsmpb.RegisteredBuild, resp *fsmpb.SegmentsResponse) error {
	if len(builds) == 0 {
		return nil
	}
	l := layoutOf(coll)
	touched := make(map[uint64]bool, len(builds))
	var order []uint64
	for _, r := range builds {
		if r == nil || r.BuildId == 0 || r.SegmentId == 0 || r.IndexId == 0 {
			return invalidf("a registered index build needs its segment id, build id and index id")
		}
		if len(r.Files) == 0 {
			return invalidf("index build %d: a registered build lists its files", r.BuildId)
		}
		seg, err := c.segment(r.SegmentId)
		if err != nil {
			return err
		}
		if seg.CollectionId != coll.Id {
			return invalidf("index build %d: segment %d is in collection %d, not in %q", r.BuildId, seg.Id, seg.CollectionId, coll.Name)
		}
		if seg.State != fsmpb.SegmentState_SEGMENT_STATE_FLUSHED {
			return preconditionf("index build %d: segment %d is %s; builds are registered on flushed segments", r.BuildId, seg.Id, segmentStateName(seg.State))
		}
		ix := slices.IndexFunc(coll.Indexes, func(d *fsmpb.IndexDef) bool { return d.Id == r.IndexId })
		if ix < 0 {
			return notFoundf("index build %d: index id %d is not an index of collection %q (create it first)", r.BuildId, r.IndexId, coll.Name)
		}
		for _, b := range seg.IndexBuilds {
			if b.IndexId == r.IndexId && b.State != fsmpb.BuildState_BUILD_STATE_DROPPED {
				return preconditionf("index build %d: segment %d already has build %d of index %q (%s); a segment holds one current build per index",
					r.BuildId, seg.Id, b.BuildId, coll.Indexes[ix].Name, buildStateName(b.State))
			}
		}
		id, err := c.takeID(idBuild, r.BuildId)
		if err != nil {
			return err
		}
		ref := buildRef(seg, id)
		blob, err := encodeFiles(r.Files, "index build "+u64(id), func(f *fsmpb.File) (string, error) { return l.BuildFileRel(ref, f) })
		if err != nil {
			return err
		}
		next := proto.CloneOf(seg)
		next.IndexBuilds = append(next.IndexBuilds, &fsmpb.IndexBuild{
			BuildId:   id,
			IndexId:   r.IndexId,
			State:     fsmpb.BuildState_BUILD_STATE_READY,
			Files:     blob,
			CreatedAt: c.now,
			ReadyAt:   c.now,
		})
		c.t.segments.put(next)
		if !touched[seg.Id] {
			touched[seg.Id] = true
			order = append(order, seg.Id)
		}
	}
	listed := make(map[uint64]int, len(resp.Segments))
	for i, s := range resp.Segments {
		listed[s.Id] = i
	}
	for _, id := range order {
		seg, err := c.segment(id)
		if err != nil {
			return err
		}
		if i, ok := listed[id]; ok {
			resp.Segments[i] = withoutFiles(seg)
		} else {
			resp.Segments = append(resp.Segments, withoutFiles(seg))
		}
	}
	return nil
}
