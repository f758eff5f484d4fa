package main

import (
	"context"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client/datagen"
)

// `collection adopt` registers a Milvus layout already in the bucket: the dry run
// prints the plan and registers nothing; the run registers exactly that.
func TestAdoptCommand(t *testing.T) {
	t.Parallel()
	c := newCLI(t)
	_, err := datagen.WriteMilvusLayout(context.Background(), c.store, datagen.MilvusLayoutOptions{Root: c.cluster.Root(),
		CollectionID: 4401, PartitionIDs: []uint64{4402, 4403}, Segments: 6, FilesPerSegment: 3, FileSize: 10,
		FirstSegmentID: 4410, FirstLogID: 4500})
	require.NoError(t, err)

	out := c.ok("collection", "adopt", "orders", "--layout", "milvus", "--collection-id", "4401", "--partition-name", "4403=archive", "--dry-run", "--dev")
	require.Contains(t, out, "Would register Milvus collection 4401 as orders: 6 segments, 18 files, 180 B (18 objects listed).")
	require.Regexp(t, `(?m)^_default\s+4402\s+3\s+9\s+90 B$`, out)
	require.Regexp(t, `(?m)^archive\s+4403\s+3\s+9\s+90 B$`, out)
	r := c.run("collection", "describe", "orders")
	require.NotEqual(t, exitOK, r.code, "a dry run registers nothing")

	out = c.ok("collection", "adopt", "orders", "--collection-id", "4401", "--partition-name", "4403=archive", "--dev")
	require.Contains(t, out, "Registered Milvus collection 4401 as orders: 6 segments, 18 files")
	out = c.ok("collection", "describe", "orders")
	require.Contains(t, out, "Key layout:   milvus")
	require.Contains(t, out, "0 allocated, 6 flushed (0 rows, 18 files, 180 B), 0 dropped")

	r = c.run("collection", "adopt", "orders", "--collection-id", "4401", "--layout", "snapkeep", "--dev")
	require.NotEqual(t, exitOK, r.code)
	require.Contains(t, r.stderr, "--layout milvus")
}
