// Package wallclock is where snapkeep reads the wall clock for times that go into the
// catalog or are compared with times from it (the cluster clock, server/clustertime,
// takes its readings here). Durations are measured with time.Now and time.Since as
// everywhere else: their monotonic readings do not follow wall-clock steps.
//
// In builds with the faultinject tag the reading is offset by what the file named by
// SNAPKEEP_FAULT_CLOCK_FILE holds (faultinject.go), so the fault-injection harness can
// skew one node's clock; normal builds read the system clock and nothing else.
package wallclock

import "time"

// Now returns the wall-clock time, without a monotonic reading in fault-injection
// builds (a skew must show in differences too, as a stepped system clock would).
func Now() time.Time { return now() }
