package env

import (
	"os"
	"testing"
)

func TestMemoryFSFreeIsZeroOffATmpfs(t *testing.T) {
	if free := MemoryFSFree(t.TempDir() + "/missing"); free != 0 {
		t.Fatalf("a missing directory has %d bytes free, want 0", free)
	}
	if _, err := os.Stat("/proc/meminfo"); err == nil && MemAvailable() <= 0 {
		t.Fatalf("MemAvailable is %d with /proc/meminfo present", MemAvailable())
	}
}
