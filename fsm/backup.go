package fsm

import "io"

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
