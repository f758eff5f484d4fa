package fsm

import (
	"slices"

	"github.com/google/btree"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// View is a consistent, point-in-time read view of the state. It is cheap to take and
// never blocks Apply; use one per request and drop it. Returned records are shared
// with the store and must not be modified.
type View struct {
	r reader
}

// AppliedIndex is the log index the view reflects.
func (v *View) AppliedIndex() uint64 { return v.r.meta().AppliedIndex }

// Database finds a database by name ("" means "default").
func (v *View) Database(name string) (*fsmpb.Database, error) { return v.r.database(name) }

// DatabaseByID finds a database by id.
func (v *View) DatabaseByID(id uint64) (*fsmpb.Database, error) { return v.r.databaseByID(id) }

// Databases lists every database in name order.
func (v *View) Databases() []*fsmpb.Database { return v.r.databases() }

// Collection finds a live (not dropped) collection by database and name.
func (v *View) Collection(database, name string) (*fsmpb.Collection, *fsmpb.Database, error) {
	return v.r.collection(database, name)
}

// CollectionByID finds any collection, dropped ones included.
func (v *View) CollectionByID(id uint64) (*fsmpb.Collection, error) { return v.r.collectionByID(id) }

// Collections lists a database's live collections in name order.
func (v *View) Collections(database string) ([]*fsmpb.Collection, error) {
	db, err := v.r.database(database)
	if err != nil {
		return nil, err
	}
	return v.r.liveCollections(db.Id), nil
}

// CollectionOrDropped finds a live collection by name or, when there is none, the
// most recently dropped one of that name whose record GC has not removed yet (a
// scan: describes only).
func (v *View) CollectionOrDropped(database, name string) (*fsmpb.Collection, *fsmpb.Database, error) {
	db, err := v.r.database(database)
	if err != nil {
		return nil, nil, err
	}
	c, _, err := v.r.collection(database, name)
	if err == nil {
		return c, db, nil
	}
	var newest *fsmpb.Collection
	v.r.t.collections.each(func(d *fsmpb.Collection) bool {
		if d.DatabaseId == db.Id && d.Name == name && d.State == fsmpb.CollectionState_COLLECTION_STATE_DROPPED &&
			(newest == nil || d.DroppedAt > newest.DroppedAt || (d.DroppedAt == newest.DroppedAt && d.Id > newest.Id)) {
			newest = d
		}
		return true
	})
	if newest == nil {
		return nil, nil, err
	}
	return newest, db, nil
}

// KeysOfCollection returns the key builder of a collection's layout (the snapkeep
// layout's when the collection is unknown: a collection's record outlives its
// segments', so a segment's collection is always known).
func (v *View) KeysOfCollection(id uint64) FileKeys {
	c, err := v.r.collectionByID(id)
	if err != nil {
		return KeysFor(fsmpb.KeyLayout_KEY_LAYOUT_SNAPKEEP)
	}
	return KeysOf(c)
}

// Segment finds a segment by id.
func (v *View) Segment(id uint64) (*fsmpb.Segment, error) { return v.r.segment(id) }

// EachSegment calls fn for a collection's segments with id > after, in id order, until
// fn returns false.
func (v *View) EachSegment(collectionID, after uint64, fn func(*fsmpb.Segment) bool) {
	v.r.eachSegment(collectionID, after, fn)
}

// NextLeaseDeadline is the earliest lease deadline of any allocation (segment or index
// build), and whether there is one. The leader proposes ExpireAllocations once its
// clock passes it.
func (v *View) NextLeaseDeadline() (int64, bool) {
	var deadline int64
	found := false
	v.r.eachLeased(func(s *fsmpb.Segment) bool {
		deadline, found = earliestLease(s)
		return false
	})
	return deadline, found
}

// Nodes lists the registered nodes in id order.
func (v *View) Nodes() []*fsmpb.Node { return v.r.nodes() }

// SegmentSummary counts a collection's segments by state.
type SegmentSummary struct {
	Allocated, Flushed, Dropped uint64
	FlushedRows                 int64
	FlushedFiles, FlushedBytes  uint64
}

// SummarizeSegments counts a collection's segments.
func (v *View) SummarizeSegments(collectionID uint64) (SegmentSummary, error) {
	var sum SegmentSummary
	var err error
	v.r.eachSegment(collectionID, 0, func(s *fsmpb.Segment) bool {
		switch s.State {
		case fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED:
			sum.Allocated++
		case fsmpb.SegmentState_SEGMENT_STATE_FLUSHED:
			sum.Flushed++
			sum.FlushedRows += s.RowCount
			var files int
			var bytes uint64
			if files, bytes, err = filelist.Totals(s.Files); err != nil {
				return false
			}
			sum.FlushedFiles += uint64(files)
			sum.FlushedBytes += bytes
		case fsmpb.SegmentState_SEGMENT_STATE_DROPPED:
			sum.Dropped++
		}
		return true
	})
	return sum, err
}

// Snapshot finds a snapshot by id, in any state.
func (v *View) Snapshot(id uint64) (*fsmpb.Snapshot, error) {
	s, ok := v.r.t.snapshots.get(&fsmpb.Snapshot{Id: id})
	if !ok {
		return nil, notFoundf("snapshot %d not found", id)
	}
	return s, nil
}

// SnapshotByName finds a pending or committed snapshot by database, collection and
// snapshot name. The live collection of that name is searched first; when it has no
// such snapshot (or the collection was dropped), the newest dropped collection of that
// name that has one.
func (v *View) SnapshotByName(database, collection, name string) (*fsmpb.Snapshot, error) {
	return v.r.snapshotByName(database, collection, name)
}

// SnapshotFilter selects snapshots for EachSnapshot.
type SnapshotFilter struct {
	Database   string // "" means "default"
	Collection string // "" means every collection of the database
	States     []fsmpb.SnapshotState
	Labels     map[string]string // every label must match
}

func (f SnapshotFilter) match(s *fsmpb.Snapshot) bool {
	if len(f.States) > 0 && !slices.Contains(f.States, s.State) {
		return false
	}
	for k, want := range f.Labels {
		if got, ok := s.Labels[k]; !ok || got != want {
			return false
		}
	}
	return true
}

// EachSnapshot visits the snapshots that match the filter with id > after, in
// creation order, until fn returns false. Snapshots of dropped collections are
// included (they outlive their collection).
func (v *View) EachSnapshot(f SnapshotFilter, after uint64, fn func(*fsmpb.Snapshot) bool) error {
	db, err := v.r.database(f.Database)
	if err != nil {
		return err
	}
	visit := func(s *fsmpb.Snapshot) bool {
		if !f.match(s) {
			return true
		}
		return fn(s)
	}
	if f.Collection != "" {
		v.r.eachSnapshotOf(db.Id, f.Collection, after, visit)
		return nil
	}
	v.r.t.snapshots.primary.AscendGreaterOrEqual(&fsmpb.Snapshot{Id: after + 1}, func(s *fsmpb.Snapshot) bool {
		if s.DatabaseId != db.Id {
			return true
		}
		return visit(s)
	})
	return nil
}

// UnfinishedSnapshots lists pending and deleting snapshots, oldest first: the leader's
// work.
func (v *View) UnfinishedSnapshots() []*fsmpb.Snapshot {
	var out []*fsmpb.Snapshot
	v.r.t.snapshots.secondary[snapshotsUnfinished].tree.Ascend(func(s *fsmpb.Snapshot) bool {
		out = append(out, s)
		return true
	})
	return out
}

// SegmentPinnedBy lists the live snapshots that pin a segment.
func (v *View) SegmentPinnedBy(segmentID uint64) []uint64 {
	return pinnedBy(v.r.t.segmentPins, segmentID)
}

// BuildPinnedBy lists the live snapshots that pin an index build.
func (v *View) BuildPinnedBy(buildID uint64) []uint64 { return pinnedBy(v.r.t.buildPins, buildID) }

func pinnedBy(tree *btree.BTreeG[pin], id uint64) []uint64 {
	var out []uint64
	tree.AscendGreaterOrEqual(pin{id: id}, func(p pin) bool {
		if p.id != id {
			return false
		}
		out = append(out, p.snapshot)
		return true
	})
	return out
}

// RestoreJob finds a restore job by id.
func (v *View) RestoreJob(id uint64) (*fsmpb.RestoreJob, error) { return v.r.restoreJob(id) }

// RestorePlan is a job's plan.
func (v *View) RestorePlan(jobID uint64) (*fsmpb.RestorePlan, error) {
	p, ok := v.r.restorePlan(jobID)
	if !ok {
		return nil, notFoundf("restore job %d has no plan", jobID)
	}
	return p, nil
}

// RestorePlanParts are a job's plan parts in task order, without the empty ones (a
// restore or export has one part; a repository restore one per planned batch).
func (v *View) RestorePlanParts(jobID uint64) []*fsmpb.RestorePlan {
	var out []*fsmpb.RestorePlan
	for _, p := range v.r.restorePlanParts(jobID) {
		if len(p.Segments) > 0 {
			out = append(out, p)
		}
	}
	return out
}

// EachRestoreJob visits restore jobs with id > after, in creation order, until fn
// returns false.
func (v *View) EachRestoreJob(after uint64, fn func(*fsmpb.RestoreJob) bool) {
	v.r.t.restoreJobs.primary.AscendGreaterOrEqual(&fsmpb.RestoreJob{Id: after + 1}, fn)
}

// RunningRestoreJobs lists the pending and copying jobs, oldest first.
func (v *View) RunningRestoreJobs() []*fsmpb.RestoreJob {
	var out []*fsmpb.RestoreJob
	v.r.t.restoreJobs.secondary[restoreJobsRunning].tree.Ascend(func(j *fsmpb.RestoreJob) bool {
		out = append(out, j)
		return true
	})
	return out
}

// PooledTasks counts a job's tasks waiting for a lease.
func (v *View) PooledTasks(jobID uint64) int {
	n := 0
	v.r.t.restorePool.AscendGreaterOrEqual(taskRange{job: jobID}, func(r taskRange) bool {
		if r.job != jobID {
			return false
		}
		n += int(r.end - r.start)
		return true
	})
	return n
}

// RestoreLeases lists the leases, earliest deadline first.
func (v *View) RestoreLeases() []*fsmpb.RestoreLease {
	var out []*fsmpb.RestoreLease
	v.r.t.restoreLeases.secondary[restoreLeasesByDeadline].tree.Ascend(func(l *fsmpb.RestoreLease) bool {
		out = append(out, l)
		return true
	})
	return out
}

// Request returns what the deduplication window remembers of a request id: the
// command it became and its result; nil when the window does not hold it.
func (v *View) Request(id string) *fsmpb.RequestRecord { return v.r.request(id) }

// RequestWindow returns the seqs of the oldest and the newest request the
// deduplication window holds (oldest is 0 while it holds none). Seqs count every
// remembered request of the cluster's life, in the order they were applied.
func (v *View) RequestWindow() (oldest, last uint64) {
	if rec, ok := v.r.t.requests.secondary[requestsBySeq].tree.Min(); ok {
		oldest = rec.Seq
	}
	return oldest, v.r.meta().LastRequestSeq
}
