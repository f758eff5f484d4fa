//go:build faultinject

package diskfault

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/internal/faultfile"
)

func TestFaultFromTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "disk")
	fault = faultfile.New(path)
	require.NoError(t, Check(RaftLog))

	set := func(s string) {
		require.NoError(t, os.WriteFile(path, []byte(s), 0o644))
		time.Sleep(2 * faultfile.Reread)
	}
	set("enospc")
	require.True(t, errors.Is(Check(RaftLog), syscall.ENOSPC))
	set("eio\n")
	require.True(t, errors.Is(Check(RaftStable), syscall.EIO))
	set("slow 50ms")
	start := time.Now()
	require.NoError(t, Check(RaftSnapshot))
	require.GreaterOrEqual(t, time.Since(start), 50*time.Millisecond)
	require.NoError(t, os.Remove(path))
	time.Sleep(2 * faultfile.Reread)
	require.NoError(t, Check(RaftLog))
}
