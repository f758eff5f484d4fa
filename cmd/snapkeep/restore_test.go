package main

import (
	"regexp"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestRestoreCommands: snapshot a generated collection, restore it with --wait (plain
// progress lines off a terminal), then status, list, and the errors.
func TestRestoreCommands(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("generate", "--collection", "docs", "--create", "--segments", "3", "--files-per-segment", "4", "--file-size", "2KiB", "--dev")
	c.ok("snapshot", "create", "docs", "nightly")

	out := c.ok("restore", "start", "docs", "nightly", "--target", "docs_copy", "--wait")
	require.Contains(t, out, "Kind:      restore")
	require.Contains(t, out, "State:     completed")
	require.Contains(t, out, "Progress:  100.0%: 12/12 files")
	id := regexp.MustCompile(`Job:\s+(\d+)`).FindStringSubmatch(out)
	require.NotNil(t, id, out)

	out = c.ok("restore", "status", id[1])
	require.Contains(t, out, "Target:    default.docs_copy")
	out = c.ok("restore", "list", "--state", "completed")
	require.Regexp(t, `(?m)^`+id[1]+`\s+restore\s+completed\s+docs/nightly\s+docs_copy\s+100%\s+12/12\s+-\s+`, out)
	require.Contains(t, c.ok("collection", "list"), "docs_copy")

	// Without --wait: the job id at once.
	out = c.ok("restore", "start", "docs", "nightly", "--target", "docs_copy2", "--partitions", "_default")
	require.Regexp(t, `^Started restore job \d+: snapshot "nightly" of "docs" into "docs_copy2"`, out)

	r := c.run("restore", "start", "docs", "nope", "--target", "x")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, `snapshot "nope" not found on collection "docs"`)
	r = c.run("restore", "cancel", id[1])
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, "is already completed")
	r = c.run("restore", "start", "docs", "nightly")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "--target is required")
	r = c.run("restore", "status", "abc")
	require.Equal(t, exitUsage, r.code)
	require.True(t, strings.Contains(r.stderr, `JOB "abc" is not a job id`), r.stderr)
}
