//go:build !jepsenbug

package policy

// bugDoubleRun is the scheduler's half of the fault-injection harness's
// policy-double-run bug (see bug_jepsenbug.go): a constant false in normal builds, so
// the hook compiles away.
const bugDoubleRun = false
