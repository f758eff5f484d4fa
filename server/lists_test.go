package server_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/client"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// listMessageLimit is the server's gRPC message limit (server.maxMessageBytes).
const listMessageLimit = 16 << 20

// TestListsPastTheMessageLimit fills every listing with more than the 16 MiB gRPC
// message limit — 70 databases with 256 KiB of properties, 30 collections with 1 MiB
// schemas, 18 snapshots capturing 1 MiB schemas, 20 segments of 1,000 long keys — and
// lists everything through the client with and without schemas. Before listings were
// paged by size, ListCollections and ListDatabases sent everything in one message and
// failed with RESOURCE_EXHAUSTED; ListSnapshots and ListSegments counted only items.
func TestListsPastTheMessageLimit(t *testing.T) {
	t.Parallel() // long and mostly waiting: it overlaps the package's other parallel tests
	c := servertest.Start(t, 1, servertest.Options{})
	cl := newClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()

	// Databases: 70 × 64 properties × 4,000 bytes ≈ 17.5 MiB.
	bigValue := strings.Repeat("v", 4000)
	const databases = 70
	for i := range databases {
		opt := client.NewCreateDatabaseOption(fmt.Sprintf("db%03d", i))
		for p := range 64 {
			opt.WithProperty(fmt.Sprintf("p%02d", p), bigValue)
		}
		_, err := cl.CreateDatabase(ctx, opt)
		require.NoError(t, err)
	}

	// Collections: 30 × 1 MiB schemas.
	const collections = 30
	schemaOf := func(i int) []byte { return bytes.Repeat([]byte{byte('a' + i%26)}, 1<<20) }
	for i := range collections {
		_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(fmt.Sprintf("c%02d", i)).WithSchema(schemaOf(i)))
		require.NoError(t, err)
	}

	// Snapshots: 18 capturing a 1 MiB schema each.
	const snapshots = 18
	for i := range snapshots {
		_, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption(fmt.Sprintf("c%02d", i), "s"))
		require.NoError(t, err)
	}

	// Segments: 20 × 1,000 files with ~900-byte keys ≈ 18 MiB.
	const segments, filesPerSegment = 20, 1000
	pad := strings.Repeat("k", 880)
	for range segments {
		s, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("c00"))
		require.NoError(t, err)
		files := make([]*pb.File, 0, filesPerSegment)
		for f := range filesPerSegment {
			files = append(files, insertFile(s.Prefix, fmt.Sprintf("insert/101/%s%05d", pad, f)))
		}
		_, err = cl.FlushSegment(ctx, client.NewFlushSegmentOption(s.Id).WithRowCount(1).WithFiles(files...))
		require.NoError(t, err)
	}

	t.Run("databases", func(t *testing.T) {
		dbs, err := cl.ListDatabases(ctx)
		require.NoError(t, err)
		require.Len(t, dbs, databases+1) // and "default"
		require.Len(t, dbs[1].Properties, 64)
		pages := 0
		for token := ""; ; pages++ {
			page, err := cl.ListDatabasesPage(ctx, 0, token)
			require.NoError(t, err)
			require.Less(t, proto.Size(page), listMessageLimit)
			if token = page.NextPageToken; token == "" {
				break
			}
		}
		require.Greater(t, pages, 4)
	})

	t.Run("collections", func(t *testing.T) {
		plain, err := cl.ListCollections(ctx, client.NewListCollectionsOption())
		require.NoError(t, err)
		require.Len(t, plain, collections)
		for _, coll := range plain {
			require.Empty(t, coll.Schema, "schemas are left out unless asked")
		}
		full, err := cl.ListCollections(ctx, client.NewListCollectionsOption().WithSchema())
		require.NoError(t, err)
		require.Len(t, full, collections)
		for i, coll := range full {
			require.Equal(t, fmt.Sprintf("c%02d", i), coll.Name)
			require.Equal(t, schemaOf(i), coll.Schema)
		}
		page, err := cl.ListCollectionsPage(ctx, client.NewListCollectionsOption().WithSchema())
		require.NoError(t, err)
		require.NotEmpty(t, page.NextPageToken)
		require.Less(t, proto.Size(page), listMessageLimit)
	})

	t.Run("snapshots", func(t *testing.T) {
		for _, withSchema := range []bool{false, true} {
			opt := client.NewListSnapshotsOption()
			if withSchema {
				opt.WithSchema()
			}
			n := 0
			for snap, err := range cl.ListAllSnapshots(ctx, opt) {
				require.NoError(t, err)
				if withSchema {
					require.Equal(t, schemaOf(n), snap.Schema)
				} else {
					require.Empty(t, snap.Schema)
				}
				n++
			}
			require.Equal(t, snapshots, n)
		}
		page, err := cl.ListSnapshots(ctx, client.NewListSnapshotsOption().WithSchema().WithPageSize(1000))
		require.NoError(t, err)
		require.NotEmpty(t, page.NextPageToken)
		require.Less(t, proto.Size(page), listMessageLimit)
	})

	t.Run("segments", func(t *testing.T) {
		n := 0
		for seg, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption("c00")) {
			require.NoError(t, err)
			require.Len(t, seg.Files, filesPerSegment)
			n++
		}
		require.Equal(t, segments, n)
		page, err := cl.ListSegments(ctx, client.NewListSegmentsOption("c00").WithPageSize(10000))
		require.NoError(t, err)
		require.NotEmpty(t, page.NextPageToken)
		require.Less(t, proto.Size(page), listMessageLimit)
	})

	t.Run("restore jobs", func(t *testing.T) {
		// Restore jobs are small; this checks only that the listing pages through.
		_, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption("c01", "s", "restored"))
		require.NoError(t, err)
		n := 0
		for _, err := range cl.ListAllRestoreJobs(ctx, client.NewListRestoreJobsOption().WithPageSize(1)) {
			require.NoError(t, err)
			n++
		}
		require.Equal(t, 1, n)
	})
}

// TestListCollectionsTokenIsStable pages through collections while others are created
// and dropped: the token is the last name seen, so nothing repeats and nothing that
// stayed is skipped.
func TestListCollectionsTokenIsStable(t *testing.T) {
	c := servertest.Start(t, 1, servertest.Options{})
	cl := newClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	for _, name := range []string{"b", "d", "f", "h"} {
		_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(name))
		require.NoError(t, err)
	}
	page, err := cl.ListCollectionsPage(ctx, client.NewListCollectionsOption().WithPageSize(2))
	require.NoError(t, err)
	require.Equal(t, []string{"b", "d"}, collectionNames(page.Collections))
	require.Equal(t, "d", page.NextPageToken)

	// An insert before the token, one after it, and a drop of an already listed one.
	for _, name := range []string{"a", "e"} {
		_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(name))
		require.NoError(t, err)
	}
	_, err = cl.DropCollection(ctx, client.NewDropCollectionOption("b"))
	require.NoError(t, err)

	page, err = cl.ListCollectionsPage(ctx, client.NewListCollectionsOption().WithPageSize(2).WithPageToken(page.NextPageToken))
	require.NoError(t, err)
	require.Equal(t, []string{"e", "f"}, collectionNames(page.Collections))
	page, err = cl.ListCollectionsPage(ctx, client.NewListCollectionsOption().WithPageSize(2).WithPageToken(page.NextPageToken))
	require.NoError(t, err)
	require.Equal(t, []string{"h"}, collectionNames(page.Collections))
	require.Empty(t, page.NextPageToken)

	_, err = cl.ListCollectionsPage(ctx, client.NewListCollectionsOption().WithPageSize(1001))
	require.ErrorContains(t, err, "page_size 1001 is over the limit of 1000")
}

func collectionNames(colls []*pb.Collection) []string {
	var out []string
	for _, c := range colls {
		out = append(out, c.Name)
	}
	return out
}
