//go:build unix

package harness

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
)

// claimAcrossProcesses takes an exclusive flock on a lock file named for port in a
// directory every process on this machine shares, and keeps it until this process
// exits (the kernel drops it then, however the process ends). The test binaries of
// several packages run at once, each with its own record of the ports it handed out:
// without the lock two of them could pick the same port and one node's bind, or
// rebind after a restart, fail with "address already in use". It reports false when
// another live process holds the port; when the lock cannot be made at all (no
// shared temp dir), it claims nothing and reports true, as before the lock.
func claimAcrossProcesses(port int) bool {
	dir := filepath.Join(os.TempDir(), "snapkeep-test-ports")
	if err := os.MkdirAll(dir, 0o777); err != nil {
		return true
	}
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	if err != nil {
		return true
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		_ = f.Close()
		return false
	}
	ports.claims = append(ports.claims, f) // held open, so locked, for the process's life
	return true
}
