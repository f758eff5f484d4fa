package harness

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
)

func TestBinaryName(t *testing.T) {
	for _, tc := range []struct {
		tags []string
		want string
	}{
		{nil, "snapkeep"},
		{[]string{"jepsenbug"}, "snapkeep-jepsenbug"},
		{[]string{"a", "b"}, "snapkeep-a-b"},
	} {
		require.Equal(t, tc.want, binaryName(tc.tags), "%v", tc.tags)
	}
}

func TestDeclaresModule(t *testing.T) {
	for _, tc := range []struct {
		name, goMod string
		want        bool
	}{
		{"the repository", "module github.com/snapkeep/snapkeep\n\ngo 1.26.0\n", true},
		{"quoted", "// c\nmodule \"github.com/snapkeep/snapkeep\"\n", true},
		{"the bench module", "module github.com/snapkeep/snapkeep/bench\n", false},
		{"no module line", "go 1.26.0\n", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			path := filepath.Join(t.TempDir(), "go.mod")
			require.NoError(t, os.WriteFile(path, []byte(tc.goMod), 0o644))
			require.Equal(t, tc.want, declaresModule(path))
		})
	}
	require.False(t, declaresModule(filepath.Join(t.TempDir(), "missing")))
}

// TestBuildSnapkeepReusesTheBinary: the first build in a process compiles, the second
// returns the same file untouched.
func TestBuildSnapkeepReusesTheBinary(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: compiles the snapkeep binary (make test runs it: it runs without -short)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	dir := t.TempDir()
	bin, err := BuildSnapkeep(ctx, BuildOptions{Dir: dir})
	require.NoError(t, err)
	require.Equal(t, filepath.Join(dir, "snapkeep"), bin)
	before, err := os.Stat(bin)
	require.NoError(t, err)
	again, err := BuildSnapkeep(ctx, BuildOptions{Dir: dir})
	require.NoError(t, err)
	require.Equal(t, bin, again)
	after, err := os.Stat(bin)
	require.NoError(t, err)
	require.Equal(t, before.ModTime(), after.ModTime(), "reused, not rebuilt")
	entries, err := os.ReadDir(dir)
	require.NoError(t, err)
	require.Len(t, entries, 1, "no temporary file left beside the binary")
	out, err := exec.CommandContext(ctx, bin, "--help").CombinedOutput()
	require.NoError(t, err, "%s", out)
}
