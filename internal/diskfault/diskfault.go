// Package diskfault injects disk faults into a node's Raft log, its term-and-vote
// store and its raft snapshots, in builds with the faultinject tag: the fault-injection
// harness's disk nemesis (docs/JEPSEN.md). Normal builds inject nothing; Check is then
// a constant nil the compiler removes.
package diskfault

// Where a write goes (the argument of Check).
const (
	RaftLog      = "raft-log"
	RaftStable   = "raft-stable"
	RaftSnapshot = "raft-snapshot"
)
