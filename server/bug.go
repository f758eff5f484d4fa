//go:build !jepsenbug

package server

// bugStaleReads is the fault-injection harness's stale-describe bug (see
// bug_jepsenbug.go): a constant false in normal builds, so the hook compiles away.
const bugStaleReads = false

// bugWallClock is the fault-injection harness's clock-wall bug (bug_jepsenbug.go): the
// leader stamps commands with its own wall clock instead of the cluster clock.
const bugWallClock = false

// bugHealthyDisk is the disk-healthy bug (bug_jepsenbug.go): health ignores the Raft
// log's write errors.
const bugHealthyDisk = false

// dutyPanicHook, when set, makes a background duty's pass panic when it returns true
// for the duty's name: the fault-injection hook that proves the guard (duty.Guard).
// Nil in normal builds; in-package tests set it, -tags jepsenbug reads it from
// SNAPKEEP_PANIC_DUTY (bug_jepsenbug.go).
var dutyPanicHook func(duty string) bool
