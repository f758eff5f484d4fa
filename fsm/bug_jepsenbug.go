//go:build jepsenbug

package fsm

import "os"

// bugGCSkipRefs makes GC ignore snapshot pins (View.SegmentReclaim and the GCCheck
// entry both go through segmentReclaim): a deliberate bug, built only with
// -tags jepsenbug and switched on with SNAPKEEP_BUG=gc-skip-refs, so the harness can
// prove its checkers catch GC deleting referenced files. Never in a normal build.
var bugGCSkipRefs = os.Getenv("SNAPKEEP_BUG") == "gc-skip-refs"

// bugPolicyDoubleRun makes PolicyRun accept a due time equal to the policy's last
// (an off-by-one in the one-run-per-due-time check): with the scheduler's half
// (server/policy), which runs every due time a second time under a new request id,
// each due time gets two runs. Built only with -tags jepsenbug and switched on with
// SNAPKEEP_BUG=policy-double-run, so the harness can prove its policy checker catches
// it. Never in a normal build.
var bugPolicyDoubleRun = os.Getenv("SNAPKEEP_BUG") == "policy-double-run"
