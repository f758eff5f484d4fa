package gc

import (
	"fmt"
	"sort"
	"time"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// PreviewDrop is a dry run of dropping snapshots: the objects GC would delete (past
// the grace period) once all of snaps were dropped, listed as candidates with the
// reason and owner a run gives them, and the snapshots' space taken together. It is
// the classification of the snapshots' exclusive figures (fsm.View.DropPreview), so
// the report's totals are exactly their exclusive objects and bytes. Nothing is
// proposed or recorded, and nothing is listed in the store: uploads a run would find
// under a never-completed build's prefix are not counted.
func (s *Schedule) PreviewDrop(view *fsm.View, snaps []*fsmpb.Snapshot, maxCandidates int) (*Result, fsm.Space) {
	return PreviewDrop(view, s.cfg, snaps, maxCandidates)
}

// PreviewDrop is Schedule.PreviewDrop with the collector's configuration given.
func PreviewDrop(view *fsm.View, cfg Config, snaps []*fsmpb.Snapshot, maxCandidates int) (*Result, fsm.Space) {
	if maxCandidates <= 0 {
		maxCandidates = 10000
	}
	now := cfg.clusterNow()
	r := &run{cfg: cfg, opts: Options{DryRun: true, MaxCandidates: maxCandidates}, now: now,
		deleted: map[string]*fsmpb.GCCount{}, kept: map[string]*fsmpb.GCCount{}, result: &Result{},
		rep: &fsmpb.GCReport{DryRun: true, Node: cfg.Node, StartedAt: now.UnixNano()}}
	space := view.DropPreview(snaps, func(f fsm.Freed) {
		var reason, owner string
		var keys []Candidate
		switch {
		case f.Snapshot != nil:
			reason, owner = fsm.ReasonSnapshotManifest, fmt.Sprintf("snapshot %d (%s)", f.Snapshot.Id, f.Snapshot.Name)
			keys = []Candidate{{Key: r.key(f.Snapshot.ManifestKey), Size: f.Snapshot.ManifestSize, Reason: reason, Owner: owner}}
		case f.Build != nil:
			seg, b := f.Segment, f.Build
			reason, owner = fsm.ReasonDroppedBuild, fmt.Sprintf("index build %d of segment %d", b.BuildId, seg.Id)
			fk := view.KeysOfCollection(seg.CollectionId)
			keys = r.fileCandidates(b.Files, func(rel string) string { return fk.Build(seg, b.BuildId, rel) }, reason, owner)
		default:
			seg := f.Segment
			reason, owner = segmentReason(seg), fmt.Sprintf("segment %d", seg.Id)
			fk := view.KeysOfCollection(seg.CollectionId)
			keys = r.fileCandidates(seg.Files, func(rel string) string { return fk.Segment(seg, rel) }, reason, owner)
			for _, b := range seg.IndexBuilds {
				keys = append(keys, r.fileCandidates(b.Files, func(rel string) string { return fk.Build(seg, b.BuildId, rel) }, reason, owner)...)
			}
		}
		r.count(r.deleted, reason, uint64(len(keys)), sumSizes(keys), 1)
		r.candidates(keys...)
		r.rep.ObjectsDeleted += uint64(len(keys))
		r.rep.BytesFreed += sumSizes(keys)
		r.rep.RecordsRemoved++
	})
	r.rep.FinishedAt = time.Now().UnixNano()
	r.rep.Deleted = sortedCounts(r.deleted)
	r.result.Report = r.rep
	sort.Slice(r.result.Candidates, func(i, k int) bool { return r.result.Candidates[i].Key < r.result.Candidates[k].Key })
	return r.result, space
}
