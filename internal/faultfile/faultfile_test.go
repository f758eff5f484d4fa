package faultfile

import (
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestContentFollowsTheFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "fault")
	f := New(path)
	require.Empty(t, f.Content())
	require.NoError(t, os.WriteFile(path, []byte("enospc"), 0o644))
	require.Eventually(t, func() bool { return f.Content() == "enospc" }, time.Second, Reread/2)
	require.NoError(t, os.Remove(path))
	require.Eventually(t, func() bool { return f.Content() == "" }, time.Second, Reread/2)
	require.Empty(t, New("").Content())
}
