package fsm

import (
	"io"

	"google.golang.org/protobuf/proto"
)

// WriteSnapshot writes the view's state in the raft snapshot format (the bytes
// FSM.Restore reads) and returns the number of records. Metadata backups are made of it.
func (v *View) WriteSnapshot(w io.Writer) (int, error) { return writeSnapshot(w, v.r.t) }

// CatalogEmpty reports whether the state holds no catalog: only the default database,
// and no collections, segments, snapshots or restore jobs. A fresh cluster is empty.
func (v *View) CatalogEmpty() bool {
	t := v.r.t
	return t.databases.len() <= 1 && t.collections.len() == 0 && t.segments.len() == 0 &&
		t.snapshots.len() == 0 && t.restoreJobs.len() == 0
}

// WriteSnapshotAt is WriteSnapshot with the applied index recorded in the state set to
// appliedIndex. A restored backup is installed at a log index of the new cluster, not
// of the one it came from; recording that index keeps the FSM's applied index equal
// to Raft's, which linearizable reads rely on.
func (v *View) WriteSnapshotAt(w io.Writer, appliedIndex uint64) (int, error) {
	t := *v.r.t // only read: a shallow copy with another meta record will do
	meta := proto.CloneOf(t.meta)
	meta.AppliedIndex = appliedIndex
	t.meta = meta
	return writeSnapshot(w, &t)
}
