//go:build unix

package harness

import (
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"

	"github.com/stretchr/testify/require"
)

// lockPortFile flocks port's lock file through its own open file description, as
// another process's claim would (flock conflicts between descriptions, even in one
// process); it reports whether the lock was taken, and drops it at cleanup.
func lockPortFile(t *testing.T, port int) bool {
	t.Helper()
	dir := filepath.Join(os.TempDir(), "snapkeep-test-ports")
	require.NoError(t, os.MkdirAll(dir, 0o777))
	f, err := os.OpenFile(filepath.Join(dir, strconv.Itoa(port)), os.O_CREATE|os.O_RDWR, 0o666)
	require.NoError(t, err)
	t.Cleanup(func() { _ = f.Close() })
	return syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB) == nil
}

func TestPortsAreClaimedFromOtherProcesses(t *testing.T) {
	// Ports below PortsLow: never picked, so no other test's pick meets these.
	held, free := 3, 4
	require.True(t, lockPortFile(t, held), "the other process's claim")
	ports.mu.Lock()
	defer ports.mu.Unlock()
	require.False(t, claimAcrossProcesses(held), "a port another process claimed is not ours")
	require.True(t, claimAcrossProcesses(free))
	require.False(t, lockPortFile(t, free), "our claim holds against the others")
	require.False(t, claimBlock(held-1, held), "a block with a port another process claimed is refused")
	require.True(t, ports.given[held-1], "and its ports claimed before the refusal are never picked")
}
