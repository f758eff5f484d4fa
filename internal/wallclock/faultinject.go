//go:build faultinject

package wallclock

import (
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/snapkeep/snapkeep/internal/faultfile"
)

// EnvFile names the file whose content, a signed integer of nanoseconds, is added to
// every reading; a missing or empty file means no offset. The harness writes it to skew
// a node and removes it to heal; it survives a restart of the node, as a wrong clock
// would.
const EnvFile = "SNAPKEEP_FAULT_CLOCK_FILE"

var skew = faultfile.New(os.Getenv(EnvFile))

func now() time.Time {
	return time.Now().Round(0).Add(offset())
}

func offset() time.Duration {
	ns, err := strconv.ParseInt(strings.TrimSpace(skew.Content()), 10, 64)
	if err != nil {
		return 0
	}
	return time.Duration(ns)
}
