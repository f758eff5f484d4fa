package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// `collection adopt` registers a Milvus layout already in the bucket: the dry run
// prints the plan (index builds and unmapped builds included) and registers nothing;
// the run registers exactly that.
func TestAdoptCommand(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	written, err := datagen.WriteMilvusLayout(context.Background(), c.store, datagen.MilvusLayoutOptions{Root: c.cluster.Root(),
		CollectionID: 4401, PartitionIDs: []uint64{4402, 4403}, Segments: 6, FilesPerSegment: 3, FileSize: 10,
		FirstSegmentID: 4410, FirstLogID: 4500, IndexBuilds: 2, IndexFilesPerBuild: 1, TextIndexFiles: 1, FirstBuildID: 4600})
	require.NoError(t, err)
	require.Len(t, written, 6*(3+2+1))
	// Builds 4600, 4603, ... are index 0's ("vec"), 4601, 4604, ... index 1's
	// ("title"); the map names all but segment 4415's "title" build (4616).
	var mapFile strings.Builder
	mapFile.WriteString("# build index\n")
	for _, w := range written {
		if w.Kind == fsmpb.FileKind_FILE_KIND_INDEX && w.Index == 0 {
			fmt.Fprintf(&mapFile, "%d vec\n", w.Build)
		}
	}
	path := filepath.Join(t.TempDir(), "builds.txt")
	require.NoError(t, os.WriteFile(path, []byte(mapFile.String()), 0o600))
	args := []string{"collection", "adopt", "orders", "--layout", "milvus", "--collection-id", "4401", "--partition-name", "4403=archive",
		"--index", "4700:vec:101:index_type=HNSW,metric_type=L2", "--index", "4701:title:102",
		"--build-map", path, "--build-index", "4601=title", "--build-index", "4604=4701", "--build-index", "4607=title",
		"--build-index", "4610=title", "--build-index", "4613=title", "--dev"}

	out := c.ok(append(args, "--dry-run")...)
	require.Contains(t, out, "Would register Milvus collection 4401 as orders: 6 segments, 24 files, 240 B; 11 index builds, 11 files, 110 B (36 objects listed).")
	require.Regexp(t, `(?m)^_default\s+4402\s+3\s+12\s+120 B\s+6$`, out)
	require.Regexp(t, `(?m)^archive\s+4403\s+3\s+12\s+120 B\s+5$`, out)
	require.Regexp(t, `(?m)^vec\s+4700\s+101\s+6\s+6\s+60 B$`, out)
	require.Regexp(t, `(?m)^title\s+4701\s+102\s+5\s+5\s+50 B$`, out)
	require.Contains(t, out, "unmapped build 4616 (segment 4415, 1 files, 10 B), not registered: the build map does not name it and 2 indexes are given")
	r := c.run("collection", "describe", "orders")
	require.NotEqual(t, exitOK, r.code, "a dry run registers nothing")

	// -o json: the plan's builds, each with its index, and the CRC-32C read.
	var plan adoptSummary
	require.NoError(t, json.Unmarshal([]byte(c.ok(append(args, "--dry-run", "--checksum", "--checksum-rate", "1MiB", "-o", "json")...)), &plan))
	require.True(t, plan.DryRun)
	require.Len(t, plan.Builds, 11)
	require.Equal(t, 24+11, plan.Checksummed)
	require.Len(t, plan.Unmapped, 1)
	for _, b := range plan.Builds {
		want := uint64(4700)
		if (b.BuildID-4600)%3 == 1 {
			want = 4701
		}
		require.Equal(t, want, b.IndexID, "build %d", b.BuildID)
	}

	out = c.ok(append(args[:len(args)-1], "--checksum", "--dev")...)
	require.Contains(t, out, "Registered Milvus collection 4401 as orders: 6 segments, 24 files, 240 B; 11 index builds, 11 files, 110 B")
	require.Contains(t, out, "CRC-32C computed by reading 35 files.")
	out = c.ok("collection", "describe", "orders")
	require.Contains(t, out, "Key layout:   milvus")
	require.Contains(t, out, "0 allocated, 6 flushed (0 rows, 24 files, 240 B), 0 dropped")
	out = c.ok("segment", "describe", "4415")
	require.Contains(t, out, "Index build 4615 of index 4700: ready, 1 files (10 B) under snapkeep/index_files/4615/")
	for _, w := range written { // --checksum recorded the CRC-32C of the bytes
		if w.Build == 4615 {
			require.Regexp(t, fmt.Sprintf(`(?m)^index\s+0\s+10\s+%08x\s+%s$`, w.CRC32C, w.Key), out)
		}
	}
	require.NotContains(t, out, "Index build 4616")

	// Run again with the last build mapped: only it is registered.
	out = c.ok(append(args, "--build-index", "4616=title")...)
	require.Contains(t, out, "Resumed an earlier adoption: 6 segments and 11 index builds were registered already.")
	out = c.ok("segment", "describe", "4415")
	require.Contains(t, out, "Index build 4616 of index 4701: ready")

	for _, bad := range []struct {
		args []string
		want string
	}{
		{[]string{"--layout", "snapkeep"}, "--layout milvus"},
		{[]string{"--index", "vec:101"}, "want ID:NAME:FIELD"},
		{[]string{"--index", "x:vec:101"}, "not Milvus's index id"},
		{[]string{"--index", "1:vec:101", "--index", "2:vec:102"}, "given twice"},
		{[]string{"--index", "1:vec:101", "--build-index", "5=nope"}, `index "nope" is not the id or name of an --index`},
		{[]string{"--index", "1:vec:101", "--build-index", "5"}, "want BUILD=INDEX"},
		{[]string{"--index", "1:vec:101", "--index", "2:t:102", "--build-index", "5=vec", "--build-index", "5=t"}, "mapped to two indexes"},
		{[]string{"--build-map", filepath.Join(t.TempDir(), "none")}, "--build-map"},
		{[]string{"--checksum-rate", "fast"}, "--checksum-rate"},
	} {
		r := c.run(append([]string{"collection", "adopt", "x", "--collection-id", "4401", "--dev"}, bad.args...)...)
		require.Equal(t, exitUsage, r.code, "%v: %s", bad.args, r.stderr)
		require.Contains(t, r.stderr, bad.want, bad.args)
	}
}
