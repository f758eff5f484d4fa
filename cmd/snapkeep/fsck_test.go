package main

import (
	"context"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestFsckCommand: clean after a snapshot (deep too); a deleted manifest makes it
// fail with exit status 1, naming the key and the broken snapshot; snapshot verify
// repairs it and records the result; usage errors.
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

	// snapshot verify repairs it on request and records the result; deep reads the files.
	out = c.ok("snapshot", "verify", "docs", "s1")
	require.Regexp(t, `^snapshot docs/s1 \(id `+snapID[1]+`\): repaired at .* \(sizes\), manifest repaired 1 times; 1 problems: manifest-missing `+regexp.QuoteMeta(manifest), out)
	require.Contains(t, c.ok("fsck"), ": clean (")
	require.Regexp(t, `\): ok at .* \(deep\), manifest repaired 1 times\n$`, c.ok("snapshot", "verify", "--id", snapID[1], "--deep"))
	require.Contains(t, c.ok("snapshot", "describe", "docs", "s1"), "(deep), manifest repaired 1 times")
	r = c.run("snapshot", "verify", "docs", "nope")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "nope")

	r = c.run("fsck", "--database", "default")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "a database without a collection")
	r = c.run("fsck", "--collection", "nope")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, `"nope"`)
}
