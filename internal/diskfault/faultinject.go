//go:build faultinject

package diskfault

import (
	"fmt"
	"os"
	"strings"
	"syscall"
	"time"

	"github.com/snapkeep/snapkeep/internal/faultfile"
)

// EnvFile names the file holding the fault to inject: "enospc" or "eio" (every write
// fails with that errno), "slow DURATION" (every write waits that long first; for
// instance "slow 400ms"); missing or empty: none.
const EnvFile = "SNAPKEEP_FAULT_DISK_FILE"

var fault = faultfile.New(os.Getenv(EnvFile))

// Check returns the error to fail a write to where with, after the delay to slow it
// by.
func Check(where string) error {
	fields := strings.Fields(fault.Content())
	if len(fields) == 0 {
		return nil
	}
	switch {
	case fields[0] == "enospc":
		return &os.PathError{Op: "write", Path: where, Err: syscall.ENOSPC}
	case fields[0] == "eio":
		return &os.PathError{Op: "write", Path: where, Err: syscall.EIO}
	case fields[0] == "slow" && len(fields) == 2:
		if d, err := time.ParseDuration(fields[1]); err == nil {
			time.Sleep(d)
			return nil
		}
	}
	fmt.Fprintf(os.Stderr, "diskfault: cannot parse %q\n", strings.Join(fields, " "))
	return nil
}
