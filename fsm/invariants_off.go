//go:build !faultinject

package fsm

// checkInvariants: normal builds check no invariants at run time (see invariants.go).
const checkInvariants = false
