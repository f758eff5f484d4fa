package main

import (
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
)

func TestGCCommands(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("generate", "--collection", "docs", "--create", "--segments", "2", "--files-per-segment", "3", "--file-size", "1KiB", "--dev")
	segs := regexp.MustCompile(`(?m)^(\d+)\s+_default\s+flushed`).FindAllStringSubmatch(c.ok("segment", "list", "docs"), -1)
	require.Len(t, segs, 2)
	c.ok("segment", "drop", segs[0][1])
	before := c.keys()

	out := c.ok("gc", "run", "--dry-run", "--grace", "0s", "--no-orphan-scan")
	require.Contains(t, out, "would delete 3 objects (3.0 KiB), 1 records removed")
	require.Regexp(t, `(?m)^would delete\s+dropped segment\s+3\s+3\.0 KiB\s+1$`, out)
	require.Regexp(t, `(?m)^snapkeep/collections/\d+/segments/`+segs[0][1]+`/insert/\S+\s+1\.0 KiB\s+dropped segment\s+segment `+segs[0][1]+`$`, out)
	require.Equal(t, before, c.keys(), "a dry run deletes nothing")

	out = c.ok("gc", "run", "--grace", "0s")
	require.Contains(t, out, "deleted 3 objects (3.0 KiB), 1 records removed, 0 errors")
	require.Len(t, c.keys(), len(before)-3)

	out = c.ok("gc", "status")
	require.Regexp(t, `(?m)^\d+\s+\S+\s+\S+\s+yes\s+-\s+3\s+3\.0 KiB\s+1\s+0$`, out, "the dry run")
	require.Regexp(t, `(?m)^\d+\s+\S+\s+\S+\s+no\s+\d+ listed\s+3\s+3\.0 KiB\s+1\s+0$`, out, "the real run")
}
