package server

import (
	"errors"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

// TestLogWriteTrackerReportsSlowAndFailedWrites: a write of slowLogWrite or more is
// reported (health: degraded) and a failed one counts until a later write succeeds
// and the window has passed.
func TestLogWriteTrackerReportsSlowAndFailedWrites(t *testing.T) {
	var tr logWriteTracker
	require.NoError(t, tr.timed("raft-log", func() error { return nil }))
	d, _ := tr.recentSlowWrite()
	require.Zero(t, d)

	require.NoError(t, tr.timed("raft-log", func() error { time.Sleep(slowLogWrite); return nil }))
	d, at := tr.recentSlowWrite()
	require.GreaterOrEqual(t, d, slowLogWrite)
	require.WithinDuration(t, time.Now(), at, time.Second)

	full := errors.New("no space left on device")
	require.ErrorIs(t, tr.timed("raft-log", func() error { return full }), full)
	err, _ := tr.recentError(time.Minute)
	require.ErrorIs(t, err, full)
	require.NoError(t, tr.timed("raft-log", func() error { return nil }))
	err, _ = tr.recentError(0)
	require.NoError(t, err, "a later successful write clears it once the window has passed")
}
