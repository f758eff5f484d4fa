package fsm

import (
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
			if files, bytes, err = FileListTotals(s.Files); err != nil {
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
