//go:build !jepsenbug

package server

// bugStaleReads is the fault-injection harness's stale-describe bug (see
// bug_jepsenbug.go): a constant false in normal builds, so the hook compiles away.
const bugStaleReads = false
