package checker

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/snapkeep/snapkeep/jepsen/history"
)

// AllocationLease is the allocation lease of the runs' segments: the nodes' default
// (--default-lease, server.DefaultLease); the workload asks for no other.
const AllocationLease = time.Hour

// leaseExpired matches the refusal of a flush or a compaction whose segment's
// allocation lease expired (fsm: dropReasonText).
var leaseExpired = regexp.MustCompile(`segment (\d+) is (?:already )?dropped \(its allocation lease expired`)

// InFlight checks that uploads in flight keep their protection: a segment's files are
// protected from the GC by its allocation lease until it is flushed, so a lease that
// ends early lets a writer's files go while it is still uploading. Every flush or
// compaction refused because its segment's allocation lease expired must have returned
// at least AllocationLease (less ClockTolerance) after that segment's allocation was
// called; in a run shorter than the lease, no such refusal is allowed at all. (The
// bucket audit checks the files of what was flushed; this checks what was in flight.)
type InFlight struct{}

func (InFlight) Name() string { return "in-flight" }

func (c InFlight) Check(_ context.Context, in Input) ([]Violation, error) {
	allocated := map[uint64]*history.Op{} // segment id → its allocation
	for i := range in.Ops {
		op := &in.Ops[i]
		if op.Kind == history.SegmentAllocate && op.Result == history.OK && op.Output.SegmentID != 0 {
			allocated[op.Output.SegmentID] = op
		}
	}
	var vs []Violation
	for i := range in.Ops {
		op := &in.Ops[i]
		if op.Result != history.Fail || !strings.Contains(op.Error, "allocation lease expired") {
			continue
		}
		m := leaseExpired.FindStringSubmatch(op.Error)
		if m == nil {
			continue
		}
		id, err := strconv.ParseUint(m[1], 10, 64)
		if err != nil {
			continue
		}
		alloc := allocated[id]
		if alloc == nil {
			continue // allocated by an operation whose outcome is unknown: its call time is not known
		}
		if held := time.Duration(op.Return - alloc.Call); held < AllocationLease-ClockTolerance {
			vs = append(vs, Violation{Checker: c.Name(), OpIDs: []int64{alloc.ID, op.ID}, Message: fmt.Sprintf(
				"segment %d: %s (op %d) was refused because its allocation lease expired %v after the allocation was called (op %d); the lease is %v",
				id, op.Kind, op.ID, held.Round(time.Millisecond), alloc.ID, AllocationLease)})
		}
	}
	return vs, nil
}
