//go:build !faultinject

package wallclock

import "time"

func now() time.Time { return time.Now() }

// Skewable says whether this build reads a settable offset (faultinject builds).
const Skewable = false
