package fsm

import (
	"io"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
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

// WriteSnapshotAt is WriteSnapshot for installing the state into another cluster:
// the applied index recorded in the state is set to appliedIndex and the node
// registrations are replaced by nodes. A restored backup is installed at a log index
// of the new cluster, not of the one it came from; recording that index keeps the
// FSM's applied index equal to Raft's, which linearizable reads rely on. And the
// backed-up cluster's registrations name that cluster's addresses: kept, they would
// make nodes forward writes to it. The catalog is unchanged (CatalogHash is equal).
func (v *View) WriteSnapshotAt(w io.Writer, appliedIndex uint64, nodes []*fsmpb.Node) (int, error) {
	t := *v.r.t // only read: a shallow copy with other meta and nodes will do
	meta := proto.CloneOf(t.meta)
	meta.AppliedIndex = appliedIndex
	t.meta = meta
	t.nodes = newTables().nodes
	for _, n := range nodes {
		t.nodes.put(proto.CloneOf(n))
	}
	return writeSnapshot(w, &t)
}
