//go:build !jepsenbug

package fsm

// bugGCSkipRefs is the fault-injection harness's gc-skip-refs bug (see bug_jepsenbug.go):
// a constant false in normal builds, so the hook compiles away.
const bugGCSkipRefs = false

// bugPolicyDoubleRun is the FSM's half of the harness's policy-double-run bug (see
// bug_jepsenbug.go): a constant false in normal builds.
const bugPolicyDoubleRun = false

// bugReleaseIgnoresPins is the release-ignores-pins bug (see bug_jepsenbug.go): a
// constant false in normal builds.
const bugReleaseIgnoresPins = false

// bugLeaseTwice and bugAllocationLeaseDivisor are the lease-twice and
// allocation-lease-short bugs (see bug_jepsenbug.go): no-ops in normal builds.
const (
	bugLeaseTwice             = false
	bugAllocationLeaseDivisor = 1
)
