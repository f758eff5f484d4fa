//go:build jepsenbug

package fsm

import "os"

// bugGCSkipRefs makes GC ignore snapshot pins (View.SegmentReclaim and the GCCheck
// entry both go through segmentReclaim): a deliberate bug, built only with
// -tags jepsenbug and switched on with SNAPKEEP_BUG=gc-skip-refs, so the harness can
// prove its checkers catch GC deleting referenced files. Never in a normal build.
var bugGCSkipRefs = os.Getenv("SNAPKEEP_BUG") == "gc-skip-refs"
