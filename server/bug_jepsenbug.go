//go:build jepsenbug

package server

import (
	"os"
	"strings"
	"sync"
)

// bugStaleReads makes a follower serve linearizable reads (DescribeSnapshot,
// ListSnapshots, GetSegment and every other read through readView) from its local FSM
// without the ReadIndex check: a deliberate bug, built only with -tags jepsenbug and
// switched on with SNAPKEEP_BUG=stale-describe, so the harness can prove its checkers
// catch stale reads. Never in a normal build.
var bugStaleReads = os.Getenv("SNAPKEEP_BUG") == "stale-describe"

// bugWallClock makes the leader stamp commands with its own wall clock
// (wallclock.Now) instead of the cluster clock: the behaviour before the cluster clock,
// switched on with SNAPKEEP_BUG=clock-wall, so the harness can prove its clock checker
// catches a leader whose skewed clock reaches the catalog.
var bugWallClock = os.Getenv("SNAPKEEP_BUG") == "clock-wall"

// bugHealthyDisk makes health ignore the Raft log's write errors — a node whose disk
// is full reports itself healthy (SNAPKEEP_BUG=disk-healthy), so the harness can prove
// its disk checker catches a failing disk nobody is told about.
var bugHealthyDisk = os.Getenv("SNAPKEEP_BUG") == "disk-healthy"

// dutyPanicHook makes the first pass of each duty named in SNAPKEEP_PANIC_DUTY (a
// comma list, e.g. "gc,finisher") panic, once per process: the three-process test
// proves a node keeps serving after a duty panicked. Only with -tags jepsenbug.
var dutyPanicHook = func() func(string) bool {
	names := map[string]*sync.Once{}
	for _, d := range strings.Split(os.Getenv("SNAPKEEP_PANIC_DUTY"), ",") {
		if d = strings.TrimSpace(d); d != "" {
			names[d] = &sync.Once{}
		}
	}
	if len(names) == 0 {
		return nil
	}
	return func(duty string) bool {
		once, ok := names[duty]
		hit := false
		if ok {
			once.Do(func() { hit = true })
		}
		return hit
	}
}()
