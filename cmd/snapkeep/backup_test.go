package main

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestClusterBackupAndRestoreCommands(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("generate", "--collection", "docs", "--create", "--segments", "2", "--files-per-segment", "2", "--file-size", "1KiB", "--dev")
	dir := t.TempDir()
	path := filepath.Join(dir, "meta.skb")

	out := c.ok("cluster", "backup", path)
	require.Contains(t, out, "wrote "+path)
	require.Regexp(t, `backup of raft index \d+ \(term \d+\) taken by n1 at \S+: \d+ bytes, sha256 [0-9a-f]{64}`, out)

	out = c.ok("cluster", "backup", "--to-s3")
	key := strings.SplitN(out, "\n", 2)[0]
	require.True(t, strings.HasPrefix(key, "snapkeep/backups/backup-"), key)
	require.True(t, slices.Contains(c.keys(), key))

	// Usage: FILE or --to-s3, not both, not neither.
	require.Equal(t, exitUsage, c.run("cluster", "backup").code)
	require.Equal(t, exitUsage, c.run("cluster", "backup", "--to-s3", path).code)

	// The cluster is not empty: refused without --force.
	r := c.run("cluster", "restore", path)
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "not empty")
	require.Contains(t, r.stderr, "--force")

	// A damaged file is refused before anything is sent.
	data, err := os.ReadFile(path)
	require.NoError(t, err)
	data[len(data)/2] ^= 0xff
	bad := filepath.Join(dir, "bad.skb")
	require.NoError(t, os.WriteFile(bad, data, 0o644))
	r = c.run("cluster", "restore", "--force", bad)
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "restore refused")
	require.Contains(t, r.stderr, "SHA-256 does not match")

	out = c.ok("cluster", "restore", "--force", path)
	require.Regexp(t, `restored \S+ at raft index \d+`, out)
	require.Contains(t, c.ok("collection", "list"), "docs")
}
