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

// bugReleaseIgnoresPins makes ReleaseForDeletion answer a segment deletable (and
// release it) although live snapshots pin it or its builds: the bug the external
// collector was built against, switched on with SNAPKEEP_BUG=release-ignores-pins, so
// the harness can prove its external-collector checker catches a collector deleting
// a snapshot's files. Never in a normal build.
var bugReleaseIgnoresPins = os.Getenv("SNAPKEEP_BUG") == "release-ignores-pins"

// bugLeaseTwice makes every restore or export task grant take the job's other leases
// back into the pool, whatever their deadline (a "rebalancing" grant): their tasks are
// granted again while their holders still copy them. Switched on with
// SNAPKEEP_BUG=lease-twice, so the harness can prove its restore-leases checker
// catches a lease granted twice at once. Never in a normal build.
var bugLeaseTwice = os.Getenv("SNAPKEEP_BUG") == "lease-twice"

// bugAllocationLeaseDivisor makes a segment's allocation lease a hundred-thousandth of what the
// writer asked for (the default hour becomes 36 ms): uploads still in flight lose their
// protection. Switched on with SNAPKEEP_BUG=allocation-lease-short, so the harness can
// prove its in-flight checker catches it. Never in a normal build.
var bugAllocationLeaseDivisor = func() int64 {
	if os.Getenv("SNAPKEEP_BUG") == "allocation-lease-short" {
		return 100_000
	}
	return 1
}()
