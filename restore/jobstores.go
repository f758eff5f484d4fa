package restore

import (
	"github.com/snapkeep/snapkeep/objstore"
)

// JobStores are where a job's tasks are read and written, as one node reaches them:
// for a restore both are the cluster's bucket; for an export the cluster's bucket and
// the repository's; for a repository restore the other way round.
type JobStores struct {
	// Source holds the tasks' sources (nil: Dest, one bucket); Dest receives the copies.
	Source, Dest objstore.Store
	// Stream copies by reading from Source and writing to Dest; otherwise copies are
	// server-side (Dest copies from Source's bucket: see objstore.BucketCopier).
	Stream bool
	// Limiter bounds this node's bytes per second for the job's repository (nil: none).
	Limiter Limiter
}
