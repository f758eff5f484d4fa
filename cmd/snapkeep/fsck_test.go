package main

import (
	"context"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFsckCommand: clean after a snapshot (deep too); a deleted manifest makes it
// fail with exit status 1, naming the key and the broken snapshot; usage errors.
func TestFsckCommand(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("generate", "--collection", "docs", "--create", "--segments", "2", "--files-per-segment", "3", "--file-size", "1KiB", "--dev")
	snapID := regexp.MustCompile(`\(id (\d+)\)`).FindStringSubmatch(c.ok("snapshot", "create", "docs", "s1"))
	require.Len(t, snapID, 2)

	out := c.ok("fsck", "--deep")
	require.Regexp(t, `(?m)^fsck at log index \d+: clean \(\S+\)$`, out)
	require.Contains(t, out, "1 collections, 6 files expected (6.0 KiB)")
	require.Contains(t, out, "1 manifests checked")
	require.Contains(t, out, "deep: 6 files read back (6.0 KiB) by 1 node(s), CRC-32C compared") // newCLI's cluster has one node
	require.Contains(t, c.ok("fsck", "--collection", "docs"), ": clean (")

	var manifest string
	for _, k := range c.keys() {
		if regexp.MustCompile(`^snapkeep/snapshots/\d+\.skm$`).MatchString(k) {
			manifest = k
		}
	}
	require.NotEmpty(t, manifest)
	_, err := c.store.Delete(context.Background(), []string{manifest})
	require.NoError(t, err)
	r := c.run("fsck")
	require.Equal(t, exitError, r.code, r.stdout)
	require.Regexp(t, `(?m)^manifest-missing\s+`+regexp.QuoteMeta(manifest)+`\s+0\s+\d+\s+none\s+`+snapID[1]+`\s+snapshot docs/s1`, r.stdout)
	require.Contains(t, r.stdout, "snapshots broken: "+snapID[1])
	require.Contains(t, r.stderr, "fsck found 1 problems; snapshots broken: "+snapID[1])

	r = c.run("fsck", "--database", "default")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "a database without a collection")
	r = c.run("fsck", "--collection", "nope")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, `"nope"`)
}
