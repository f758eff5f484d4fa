//go:build faultinject

package wallclock

import (
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/internal/faultfile"
)

func TestOffsetFromTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "clock")
	skew = faultfile.New(path)
	require.WithinDuration(t, time.Now(), Now(), time.Second)

	require.NoError(t, os.WriteFile(path, []byte(strconv.FormatInt(int64(-26*time.Hour), 10)), 0o644))
	require.Eventually(t, func() bool {
		return time.Now().Add(-26*time.Hour).Sub(Now()).Abs() < time.Second
	}, time.Second, 5*time.Millisecond)

	require.NoError(t, os.Remove(path))
	require.Eventually(t, func() bool { return time.Since(Now()).Abs() < time.Second }, time.Second, 5*time.Millisecond)
}
