package fsm

import (
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Running totals for metrics. Some tables carry a tally: a function that weighs one
// record (a count in the slot of its state, and for segments their files), and the sum
// of the weights of every record in the table, which put and remove keep in step. The
// totals are derived from the records alone — never stored, not in raft snapshots or
// in Hash — and a raft snapshot restore rebuilds them as it puts the records back, so
// every node with the same records has the same totals. Reading them is O(1): a scrape
// never walks a million segments.

// countSlots is the number of weights a tally carries.
const countSlots = 8

// counts is a tally's weights (or sums of weights).
type counts [countSlots]int64

// count updates the table's totals for old (when hadOld) being replaced by rec (when
// hasNew).
func (t *table[T]) count(old T, hadOld bool, rec T, hasNew bool) {
	if t.tally == nil {
		return
	}
	if hadOld {
		w := t.tally(old)
		for i := range w {
			t.totals[i] -= w[i]
		}
	}
	if hasNew {
		w := t.tally(rec)
		for i := range w {
			t.totals[i] += w[i]
		}
	}
}

// snapshotBrokenSlot counts the committed snapshots whose last verification found
// them broken (VerifyBroken).
const snapshotBrokenSlot = 4

// Segment tally slots: the count by state at [state], the files by state at
// [segmentFilesSlot+state].
const segmentFilesSlot = 4

func (t *tables) setTallies() {
	t.collections.tally = func(c *fsmpb.Collection) (w counts) {
		w[stateSlot(int32(c.State), 4)]++
		return w
	}
	t.segments.tally = func(s *fsmpb.Segment) (w counts) {
		slot := stateSlot(int32(s.State), 4)
		w[slot]++
		files, _ := filelist.Count(s.Files) // O(1): the count heads the blob
		for _, b := range s.IndexBuilds {
			n, _ := filelist.Count(b.Files)
			files += n
		}
		w[segmentFilesSlot+slot] += int64(files)
		return w
	}
	t.snapshots.tally = func(s *fsmpb.Snapshot) (w counts) {
		w[stateSlot(int32(s.State), 4)]++
		if s.State == fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED && s.Verification != nil && VerifyBroken(s.Verification.Outcome) {
			w[snapshotBrokenSlot]++
		}
		return w
	}
	t.restoreJobs.tally = func(j *fsmpb.RestoreJob) (w counts) {
		w[stateSlot(int32(j.State), 6)]++
		return w
	}
}

// stateSlot maps an enum value to its slot; values beyond the known ones (a newer
// node's) count as unspecified (slot 0).
func stateSlot(state int32, slots int) int {
	if state < 0 || int(state) >= slots {
		return 0
	}
	return int(state)
}

// Stats are the sizes of the state, for metrics. Arrays are indexed by the state enum's
// value (index 0 counts records in an unknown state).
type Stats struct {
	AppliedIndex uint64
	Databases    int
	Nodes        int
	// Collections by fsmpb.CollectionState.
	Collections [4]int64
	// Segments by fsmpb.SegmentState, and the files they list (their index builds'
	// included) by the segment's state.
	Segments     [4]int64
	SegmentFiles [4]int64
	// Snapshots by fsmpb.SnapshotState.
	Snapshots [4]int64
	// SnapshotsBroken: committed snapshots whose last verification found a manifest
	// that could not be repaired or lost data.
	SnapshotsBroken int64
	// RestoreJobs by fsmpb.RestoreState.
	RestoreJobs [6]int64
	// Requests is how many request ids the deduplication window holds.
	Requests int
	// GCReports is how many GC reports are kept.
	GCReports int
}

// Stats returns the sizes of the view's state. It is O(1).
func (v *View) Stats() Stats {
	t := v.r.t
	s := Stats{
		AppliedIndex: t.meta.AppliedIndex,
		Databases:    t.databases.len(),
		Nodes:        t.nodes.len(),
		Requests:     t.requests.len(),
		GCReports:    t.gcReports.len(),
	}
	copy(s.Collections[:], t.collections.totals[:])
	copy(s.Segments[:], t.segments.totals[:segmentFilesSlot])
	copy(s.SegmentFiles[:], t.segments.totals[segmentFilesSlot:])
	copy(s.Snapshots[:], t.snapshots.totals[:snapshotBrokenSlot])
	s.SnapshotsBroken = t.snapshots.totals[snapshotBrokenSlot]
	copy(s.RestoreJobs[:], t.restoreJobs.totals[:])
	return s
}
