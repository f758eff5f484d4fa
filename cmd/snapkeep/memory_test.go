package main

import (
	"bytes"
	"log/slog"
	"math"
	"runtime/debug"
	"testing"

	"github.com/stretchr/testify/require"
)

// A --memory-limit that is no size is a usage error before the node starts anything.
func TestServerRefusesABadMemoryLimit(t *testing.T) {
	_, errOut, code := runCLI(t, "server", "--node-id", "n1", "--data-dir", t.TempDir(), "--peers", "n1=127.0.0.1:1", "--memory-limit", "lots")
	require.Equal(t, exitUsage, code, errOut)
	require.Contains(t, errOut, "--memory-limit")
	require.Contains(t, errOut, `size "lots"`)
}

// A size sets the runtime's limit; none lifts it.
func TestApplyMemoryLimit(t *testing.T) {
	before := debug.SetMemoryLimit(-1)
	t.Cleanup(func() { debug.SetMemoryLimit(before) })
	var logs bytes.Buffer
	logger := slog.New(slog.NewTextHandler(&logs, nil))
	require.NoError(t, applyMemoryLimit("900MiB", logger))
	require.Equal(t, int64(900<<20), debug.SetMemoryLimit(-1))
	require.Contains(t, logs.String(), "--memory-limit 900MiB")
	require.NoError(t, applyMemoryLimit("none", logger))
	require.Equal(t, int64(math.MaxInt64), debug.SetMemoryLimit(-1))
	require.Contains(t, logs.String(), "no soft memory limit")
}
