package checker

import (
	"context"
	"fmt"
	"strings"

	"github.com/snapkeep/snapkeep/jepsen/nemesis"
)

// DiskFaults checks that a node whose disk fails says so: for every disk fault that
// failed writes (ENOSPC or EIO), the nemesis must have seen the node report the
// failing Raft log on /health while the fault lasted (unhealthy, reason log_write_error), or
// the process must have exited (hashicorp/raft panics when it cannot persist a term
// or a vote). A node that keeps answering healthy on a disk that fails every write
// is the "full disk looked healthy" bug. That nothing is corrupt afterwards is the
// convergence and log-matching checkers' part, at the end of the run.
type DiskFaults struct{}

func (DiskFaults) Name() string { return "disk-faults" }

func (c DiskFaults) Check(_ context.Context, in Input) ([]Violation, error) {
	var vs []Violation
	for _, f := range in.Faults {
		if f.Kind != nemesis.Disk || !(strings.HasPrefix(f.Note, "enospc") || strings.HasPrefix(f.Note, "eio")) {
			continue
		}
		if f.End == 0 {
			continue // not healed before the run ended: not observed to its end
		}
		if strings.Contains(f.Note, nemesis.DiskNotReported) && !strings.Contains(f.Note, nemesis.DiskExited) {
			vs = append(vs, Violation{Checker: c.Name(), Message: fmt.Sprintf(
				"fault %d: %s's disk failed every write (%s) and the node kept reporting itself healthy", f.ID, f.Target, f.Note)})
		}
	}
	return vs, nil
}
