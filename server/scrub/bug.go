//go:build !jepsenbug

package scrub

// bugScrubFalseLoss is the fault-injection harness's scrub-false-loss bug (see
// bug_jepsenbug.go): a constant false in normal builds.
const bugScrubFalseLoss = false
