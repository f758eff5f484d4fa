//go:build faultinject

package fsm

// checkInvariants: fault-injection builds check the invariants of invariants.go after
// every command.
const checkInvariants = true
