//go:build jepsenbug

package server

import "os"

// bugStaleReads makes a follower serve linearizable reads (DescribeSnapshot,
// ListSnapshots, GetSegment and every other read through readView) from its local FSM
// without the ReadIndex check: a deliberate bug, built only with -tags jepsenbug and
// switched on with SNAPKEEP_BUG=stale-describe, so the harness can prove its checkers
// catch stale reads. Never in a normal build.
var bugStaleReads = os.Getenv("SNAPKEEP_BUG") == "stale-describe"
