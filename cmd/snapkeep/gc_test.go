package main

import (
	"context"
	"fmt"
	"regexp"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/encoding/protojson"

	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
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

// TestSnapshotSpaceCommands: snapshot describe and list show what a snapshot keeps
// alone and shares, gc run --dry-run --drop-snapshot previews it, and dropping the
// snapshot then collecting with no grace frees exactly its exclusive objects and bytes
// from the bucket.
func TestSnapshotSpaceCommands(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	c.ok("generate", "--collection", "docs", "--create", "--segments", "3", "--files-per-segment", "3", "--file-size", "1KiB", "--dev")
	segs := regexp.MustCompile(`(?m)^(\d+)\s+_default\s+flushed`).FindAllStringSubmatch(c.ok("segment", "list", "docs"), -1)
	require.Len(t, segs, 3)
	c.ok("snapshot", "create", "docs", "s1")
	c.ok("snapshot", "create", "docs", "s2")
	c.ok("segment", "drop", segs[0][1]) // kept by s1 and s2
	c.ok("snapshot", "create", "docs", "s3")
	c.ok("segment", "drop", segs[1][1]) // kept by s1, s2 and s3

	out := c.ok("snapshot", "describe", "docs", "s1")
	require.Regexp(t, `(?m)^Exclusive:\s+1 objects, \d+ B: kept by this snapshot alone; dropping it frees them$`, out, "its manifest")
	require.Regexp(t, `(?m)^Shared:\s+6 objects, 6\.0 KiB: dropped from the collection, also kept by other snapshots$`, out)
	require.Regexp(t, `(?m)^Live:\s+3 objects, 3\.0 KiB: still in use by the collection$`, out)

	// Once s2 goes (and its manifest with it), the first segment is s1's alone.
	c.ok("snapshot", "drop", "docs", "s2")
	c.ok("gc", "run", "--grace", "0s", "--no-orphan-scan")
	out = c.ok("snapshot", "list", "--collection", "docs")
	require.Regexp(t, `(?m)^ID\s+COLLECTION\s+NAME\s+STATE\s+CREATED\s+SEGMENTS\s+FILES\s+SIZE\s+EXCLUSIVE\s+SHARED\s+VERIFIED\s+HELD\s+POLICY\s+LABELS$`, out)
	require.Regexp(t, `(?m)^\d+\s+docs\s+s1\s+committed\s+\S+\s+3\s+9\s+9\.0 KiB\s+3\.\d KiB\s+3\.0 KiB\s+-\s+-\s+-\s+-$`, out)
	require.Regexp(t, `(?m)^\d+\s+docs\s+s3\s+committed\s+\S+\s+2\s+6\s+6\.0 KiB\s+\d+ B\s+3\.0 KiB\s+-\s+-\s+-\s+-$`, out)

	var described snapkeepv1.DescribeSnapshotResponse
	require.NoError(t, protojson.Unmarshal([]byte(c.ok("snapshot", "describe", "docs", "s1", "-o", "json")), &described))
	space := described.GetSnapshot().GetSpace()
	manifest := described.GetSnapshot().GetManifestSize()
	require.Equal(t, uint64(4), space.GetExclusiveObjects())
	require.Equal(t, 3*1024+manifest, space.GetExclusiveBytes())

	before := c.objectSizes()
	out = c.ok("gc", "run", "--dry-run", "--drop-snapshot", "docs/s1")
	require.Contains(t, out, fmt.Sprintf("Dropping docs/s1 would free 4 objects (%s) once the grace period has passed, 2 records removed; nothing was dropped or deleted", humanBytes(3*1024+manifest)))
	require.Regexp(t, `(?m)^snapkeep/collections/\d+/segments/`+segs[0][1]+`/insert/\S+\s+1\.0 KiB\s+dropped segment\s+segment `+segs[0][1]+`$`, out)
	require.Regexp(t, `(?m)^snapkeep/snapshots/\d+\.skm\s+.*deleted snapshot's manifest\s+snapshot \d+ \(s1\)$`, out)
	require.Equal(t, before, c.objectSizes(), "a preview deletes nothing")

	r := c.run("gc", "run", "--drop-snapshot", "docs/s1")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, "--drop-snapshot previews a drop and needs --dry-run")
	r = c.run("gc", "run", "--dry-run", "--drop-snapshot", "docs")
	require.Equal(t, exitUsage, r.code)
	require.Contains(t, r.stderr, `--drop-snapshot "docs": want COLLECTION/NAME or DATABASE/COLLECTION/NAME`)
	r = c.run("gc", "run", "--dry-run", "--drop-snapshot", "docs/nope")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, `snapshot "nope" not found on collection "docs"`)
	r = c.run("gc", "run", "--dry-run", "--drop-snapshot", "docs/s2")
	require.Equal(t, exitError, r.code)
	require.Contains(t, r.stderr, `snapshot "s2" not found`, "a dropped snapshot is not found by name")

	c.ok("snapshot", "drop", "docs", "s1")
	c.ok("gc", "run", "--grace", "0s", "--no-orphan-scan")
	after := c.objectSizes()
	var freedObjects, freedBytes uint64
	for key, size := range before {
		if _, ok := after[key]; !ok {
			freedObjects++
			freedBytes += size
		}
	}
	require.Equal(t, space.GetExclusiveObjects(), freedObjects)
	require.Equal(t, space.GetExclusiveBytes(), freedBytes)
	require.Len(t, after, len(before)-int(freedObjects), "nothing new appeared")
}

// objectSizes maps every key in the cluster's bucket to its size.
func (c *cli) objectSizes() map[string]uint64 {
	c.t.Helper()
	out := map[string]uint64{}
	token := ""
	for {
		page, err := c.store.List(context.Background(), "", token, 1000)
		require.NoError(c.t, err)
		for _, o := range page.Objects {
			out[o.Key] = uint64(o.Size)
		}
		if page.NextToken == "" {
			return out
		}
		token = page.NextToken
	}
}
