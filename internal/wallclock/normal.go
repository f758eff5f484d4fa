//go:build !faultinject

package wallclock

import "time"

func now() time.Time { return time.Now() }
