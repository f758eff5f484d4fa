//go:build faultinject

package wallclock

import (
	"os"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Skewable says whether this build reads a settable offset (faultinject builds).
const Skewable = true

// EnvFile names the file whose content, a signed integer of nanoseconds, is added to
// every reading; a missing or empty file means no offset. The harness writes it to skew
// a node and removes it to heal; it survives a restart of the node, as a wrong clock
// would.
const EnvFile = "SNAPKEEP_FAULT_CLOCK_FILE"

// reread bounds how long a changed offset takes to show.
const reread = 20 * time.Millisecond

var skew struct {
	sync.Mutex
	path   string
	offset time.Duration
	readAt time.Time // monotonic; zero: never read
}

func init() { skew.path = os.Getenv(EnvFile) }

func now() time.Time {
	return time.Now().Round(0).Add(offset())
}

func offset() time.Duration {
	if skew.path == "" {
		return 0
	}
	skew.Lock()
	defer skew.Unlock()
	if !skew.readAt.IsZero() && time.Since(skew.readAt) < reread {
		return skew.offset
	}
	skew.readAt = time.Now()
	skew.offset = 0
	if b, err := os.ReadFile(skew.path); err == nil {
		if ns, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64); err == nil {
			skew.offset = time.Duration(ns)
		}
	}
	return skew.offset
}
