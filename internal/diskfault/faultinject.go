//go:build faultinject

package diskfault

import (
	"fmt"
	"os"
	"strings"
	"sync"
	"syscall"
	"time"
)

// EnvFile names the file holding the fault to inject: "enospc" or "eio" (every write
// fails with that errno), "slow DURATION" (every write waits that long first; for
// instance "slow 400ms"); missing or empty: none.
const EnvFile = "SNAPKEEP_FAULT_DISK_FILE"

const reread = 20 * time.Millisecond

var fault struct {
	sync.Mutex
	path   string
	mode   string
	delay  time.Duration
	readAt time.Time
}

func init() { fault.path = os.Getenv(EnvFile) }

// Check returns the error to fail a write to where with, after the delay to slow it
// by.
func Check(where string) error {
	mode, delay := current()
	switch mode {
	case "enospc":
		return &os.PathError{Op: "write", Path: where, Err: syscall.ENOSPC}
	case "eio":
		return &os.PathError{Op: "write", Path: where, Err: syscall.EIO}
	case "slow":
		time.Sleep(delay)
	}
	return nil
}

func current() (string, time.Duration) {
	if fault.path == "" {
		return "", 0
	}
	fault.Lock()
	defer fault.Unlock()
	if !fault.readAt.IsZero() && time.Since(fault.readAt) < reread {
		return fault.mode, fault.delay
	}
	fault.readAt = time.Now()
	fault.mode, fault.delay = parse(fault.path)
	return fault.mode, fault.delay
}

func parse(path string) (string, time.Duration) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", 0
	}
	fields := strings.Fields(string(b))
	if len(fields) == 0 {
		return "", 0
	}
	switch fields[0] {
	case "enospc", "eio":
		return fields[0], 0
	case "slow":
		if len(fields) == 2 {
			if d, err := time.ParseDuration(fields[1]); err == nil {
				return "slow", d
			}
		}
	}
	fmt.Fprintf(os.Stderr, "diskfault: %s: cannot parse %q\n", path, string(b))
	return "", 0
}
