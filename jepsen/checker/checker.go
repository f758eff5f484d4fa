// Package checker holds the checkers of a fault-injection run. Each reads the
// recorded history (and, for the end-of-run audits, the healed cluster and its bucket)
// and reports violations; a checker must be able to fail (the harness's --bug runs
// prove it does).
package checker

import (
	"context"
	"errors"
	"time"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/jepsen/history"
	"github.com/snapkeep/snapkeep/objstore"
)

// Violation is one broken guarantee, with the operations that show it.
type Violation struct {
	Checker string  `json:"checker"`
	Message string  `json:"message"`
	OpIDs   []int64 `json:"op_ids,omitempty"`
	// Artifact is a file the checker wrote in the output directory to explain it (for
	// example porcupine's HTML visualization), relative to that directory.
	Artifact string `json:"artifact,omitempty"`
}

// EndState is the cluster after the run, healed and quiesced.
type EndState struct {
	// Client reaches the healed cluster (linearizable reads).
	Client *client.Client
	// Store is the cluster's bucket, read directly; Root its key prefix.
	Store objstore.Store
	Root  string
	// NodeHashes is each node's FSM hash once every node applied the same index
	// (node id → hash); empty when the harness could not get it from a node, which
	// NodeErrors then explains.
	NodeHashes map[string]string
	NodeErrors map[string]string
	// DataDirs is each node's data directory (node id → path), for the checkers that
	// read them once the nodes are stopped (see StoppedNodes).
	DataDirs map[string]string
	// Repository is the repositories workload's repository (nil when it did not run).
	Repository *RepositoryEnd
}

// StoppedNodes is implemented by checkers that read the nodes' data directories: the
// harness stops every node before running them, after the checkers that need the live
// cluster.
type StoppedNodes interface {
	StoppedNodes() bool
}

// Input is what every checker gets.
type Input struct {
	Ops    []history.Op
	Faults []history.Fault
	End    *EndState
	// OutDir is the run's output directory, for artifacts.
	OutDir string
	// Start is the wall-clock time of the history's time 0, for comparing the
	// history's times with times the cluster stamped (zero: not known).
	Start time.Time
}

// Checker checks one guarantee. An error means the checker could not run (that fails
// the run too); a broken guarantee is a Violation.
type Checker interface {
	Name() string
	Check(ctx context.Context, in Input) ([]Violation, error)
}

// Summarizer is implemented by checkers that say what their last Check covered (for
// example how many due times it could hold to account): the harness writes it into
// summary.txt and its log.
type Summarizer interface {
	Summary() string
}

// ErrUnknown is wrapped by the error of a checker that could not decide: porcupine's
// search ran out of its time budget. The guarantee is then neither shown to hold nor
// shown broken; the run must report it as "unknown" (it is an error, so it does not
// pass), never as OK and never as a violation. Test with errors.Is.
var ErrUnknown = errors.New("checker: unknown (search timed out)")

// All returns every checker, in the order the harness runs them.
func All() []Checker {
	return []Checker{
		&Registry{},
		&Catalog{},
		LostUndone{},
		BucketAudit{},
		ExternalCollector{},
		Restores{},
		Repository{},
		Fsck{},
		&Policy{},
		InFlight{},
		DiskFaults{},
		Convergence{},
		LogMatching{}, // this one and the next two read the stopped nodes' data dirs
		&ClusterClock{},
		&NodeInvariants{},
		&Scrub{},
	}
}
