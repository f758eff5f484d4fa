//go:build !unix

package harness

// claimAcrossProcesses claims nothing where flock is not available: ports are unique
// within a process only.
func claimAcrossProcesses(int) bool { return true }
