package server_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/servertest"
)

func newClient(t *testing.T, c *servertest.Cluster) *client.Client {
	t.Helper()
	cl, err := client.New(context.Background(), c.Endpoints()...)
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	return cl
}

func insertFile(prefix, rel string) *pb.File {
	return &pb.File{Key: prefix + rel, Kind: pb.FileKind_FILE_KIND_INSERT, FieldId: 101, Size: 10, Crc32C: 7}
}

// TestBadInputThroughClient sends malformed and conflicting requests through the Go
// client: each gets a precise status code and message, and none changes the catalog.
func TestBadInputThroughClient(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl := newClient(t, c)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()

	// Fixtures.
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs").WithPartitions("p1"))
	require.NoError(t, err)
	_, err = cl.CreateCollection(ctx, client.NewCreateCollectionOption("other"))
	require.NoError(t, err)
	_, err = cl.CreateIndex(ctx, client.NewCreateIndexOption("docs", "vec", 101))
	require.NoError(t, err)
	flush := func(coll string, partition string) *pb.Segment {
		s, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption(coll).WithPartition(partition))
		require.NoError(t, err)
		s, err = cl.FlushSegment(ctx, client.NewFlushSegmentOption(s.Id).WithRowCount(10).WithFiles(insertFile(s.Prefix, "insert/101/1")))
		require.NoError(t, err)
		return s
	}
	flushed := flush("docs", "")
	flushed2 := flush("docs", "")
	inP1 := flush("docs", "p1")
	otherSeg := flush("other", "")
	dropped := flush("docs", "")
	_, err = cl.DropSegments(ctx, client.NewDropSegmentsOption(dropped.Id))
	require.NoError(t, err)
	allocated, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs"))
	require.NoError(t, err)
	p := allocated.Prefix
	require.True(t, strings.HasPrefix(p, "snapkeep/collections/"), p)

	c.WaitConverged()
	before := c.Nodes[c.Leader()].FSM().CatalogHash()

	type call func() error
	cases := []struct {
		name string
		want error
		msg  string
		call call
	}{
		{"empty collection name", client.ErrInvalidArgument, "collection name is empty", func() error {
			_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(""))
			return err
		}},
		{"collection name with a slash", client.ErrInvalidArgument, "only letters, digits", func() error {
			_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("a/b"))
			return err
		}},
		{"collection name starting with a digit", client.ErrInvalidArgument, "must start with a letter", func() error {
			_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("1abc"))
			return err
		}},
		{"over-long collection name", client.ErrInvalidArgument, "the limit is 255", func() error {
			_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(strings.Repeat("x", 300)))
			return err
		}},
		{"over-long database name", client.ErrInvalidArgument, "the limit is 255", func() error {
			_, err := cl.CreateDatabase(ctx, client.NewCreateDatabaseOption(strings.Repeat("d", 256)))
			return err
		}},
		{"duplicate collection", client.ErrAlreadyExists, `collection "docs" already exists in database "default"`, func() error {
			_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
			return err
		}},
		{"duplicate database", client.ErrAlreadyExists, `database "default" already exists`, func() error {
			_, err := cl.CreateDatabase(ctx, client.NewCreateDatabaseOption("default"))
			return err
		}},
		{"schema over the limit", client.ErrInvalidArgument, "1 MiB", func() error {
			_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("big").WithSchema(make([]byte, 1<<20+1)))
			return err
		}},
		{"unknown database", client.ErrNotFound, `database "nope" not found`, func() error {
			_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("x").WithDatabase("nope"))
			return err
		}},
		{"unknown collection on describe", client.ErrNotFound, `collection "nope" not found in database "default"`, func() error {
			_, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption("nope"))
			return err
		}},
		{"unknown collection on drop", client.ErrNotFound, `collection "nope" not found`, func() error {
			_, err := cl.DropCollection(ctx, client.NewDropCollectionOption("nope"))
			return err
		}},
		{"drop the default database", client.ErrInvalidArgument, "cannot be dropped", func() error {
			return cl.DropDatabase(ctx, client.NewDropDatabaseOption("default"))
		}},
		{"duplicate partition", client.ErrAlreadyExists, `partition "p1" already exists in collection "docs"`, func() error {
			_, err := cl.CreatePartition(ctx, client.NewCreatePartitionOption("docs", "p1"))
			return err
		}},
		{"unknown partition on drop", client.ErrNotFound, `partition "zz" not found in collection "docs"`, func() error {
			_, err := cl.DropPartition(ctx, client.NewDropPartitionOption("docs", "zz"))
			return err
		}},
		{"unknown partition on allocate", client.ErrNotFound, `partition "zz" not found`, func() error {
			_, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs").WithPartition("zz"))
			return err
		}},
		{"drop the _default partition", client.ErrInvalidArgument, "cannot be dropped", func() error {
			_, err := cl.DropPartition(ctx, client.NewDropPartitionOption("docs", "_default"))
			return err
		}},
		{"duplicate index", client.ErrAlreadyExists, `index "vec" already exists`, func() error {
			_, err := cl.CreateIndex(ctx, client.NewCreateIndexOption("docs", "vec", 101))
			return err
		}},
		{"unknown index on drop", client.ErrNotFound, `index "nope" not found`, func() error {
			_, err := cl.DropIndex(ctx, client.NewDropIndexOption("docs", "nope"))
			return err
		}},
		{"unknown segment on flush", client.ErrNotFound, "segment 987654 not found", func() error {
			_, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(987654))
			return err
		}},
		{"unknown segment on get", client.ErrNotFound, "segment 987654 not found", func() error {
			_, err := cl.GetSegment(ctx, client.NewGetSegmentOption(987654))
			return err
		}},
		{"flushing a segment twice", client.ErrFailedPrecondition, fmt.Sprintf("segment %d is already flushed", flushed.Id), func() error {
			_, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(flushed.Id).WithFiles(insertFile(flushed.Prefix, "insert/101/2")))
			return err
		}},
		{"flushing a dropped segment", client.ErrFailedPrecondition, "is dropped", func() error {
			_, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(dropped.Id))
			return err
		}},
		{"file key outside the segment prefix", client.ErrInvalidArgument, fmt.Sprintf("key %q is outside segment %d's prefix %q", flushed.Prefix+"insert/101/9", allocated.Id, allocated.Prefix), func() error {
			_, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(allocated.Id).WithFiles(insertFile(flushed.Prefix, "insert/101/9")))
			return err
		}},
		{"file key outside the storage root", client.ErrInvalidArgument, `outside the storage root "snapkeep/"`, func() error {
			_, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(allocated.Id).WithFiles(insertFile("elsewhere/", "x")))
			return err
		}},
		{"file key with ..", client.ErrInvalidArgument, `".." path component`, func() error {
			_, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(allocated.Id).WithFiles(insertFile(p, "insert/../../../x")))
			return err
		}},
		{"file key with an empty component", client.ErrInvalidArgument, "empty path component", func() error {
			_, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(allocated.Id).WithFiles(insertFile(p, "insert//1")))
			return err
		}},
		{"file in the wrong kind directory", client.ErrInvalidArgument, `"insert/" directory`, func() error {
			_, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(allocated.Id).WithFiles(insertFile(p, "delta/1")))
			return err
		}},
		{"file listed twice", client.ErrInvalidArgument, "listed twice", func() error {
			_, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(allocated.Id).WithFiles(insertFile(p, "insert/1"), insertFile(p, "insert/1")))
			return err
		}},
		{"compaction inputs from two collections", client.ErrInvalidArgument, "mixes collections", func() error {
			_, err := cl.CompactSegments(ctx, client.NewCompactSegmentsOption(flushed.Id, otherSeg.Id))
			return err
		}},
		{"compaction inputs from two partitions", client.ErrInvalidArgument, "mixes partitions", func() error {
			_, err := cl.CompactSegments(ctx, client.NewCompactSegmentsOption(flushed.Id, inP1.Id))
			return err
		}},
		{"compaction input already dropped", client.ErrFailedPrecondition, fmt.Sprintf("segment %d is already dropped", dropped.Id), func() error {
			_, err := cl.CompactSegments(ctx, client.NewCompactSegmentsOption(flushed.Id, dropped.Id))
			return err
		}},
		{"compaction output already flushed", client.ErrFailedPrecondition, "freshly allocated", func() error {
			_, err := cl.CompactSegments(ctx, client.NewCompactSegmentsOption(flushed.Id).WithOutput(flushed2.Id, 1))
			return err
		}},
		{"compaction output with a bad key", client.ErrInvalidArgument, "is outside segment", func() error {
			_, err := cl.CompactSegments(ctx, client.NewCompactSegmentsOption(flushed.Id, flushed2.Id).WithOutput(allocated.Id, 20, insertFile(flushed.Prefix, "insert/101/5")))
			return err
		}},
		{"compaction of nothing", client.ErrInvalidArgument, "at least one input", func() error {
			_, err := cl.CompactSegments(ctx, client.NewCompactSegmentsOption())
			return err
		}},
		{"drop of an unknown segment", client.ErrNotFound, "segment 55555 not found", func() error {
			_, err := cl.DropSegments(ctx, client.NewDropSegmentsOption(flushed.Id, 55555))
			return err
		}},
		{"index build on an allocated segment", client.ErrFailedPrecondition, "not flushed yet", func() error {
			_, err := cl.AllocateIndexBuild(ctx, client.NewAllocateIndexBuildOption(allocated.Id, "vec"))
			return err
		}},
		{"index build of an unknown index", client.ErrNotFound, `index "nope" not found`, func() error {
			_, err := cl.AllocateIndexBuild(ctx, client.NewAllocateIndexBuildOption(flushed.Id, "nope"))
			return err
		}},
		{"lease out of range", client.ErrInvalidArgument, "lease", func() error {
			_, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs").WithLease(30*24*time.Hour))
			return err
		}},
		{"too many properties", client.ErrInvalidArgument, "the limit is 64", func() error {
			props := map[string]string{}
			for i := 0; i < 65; i++ {
				props[fmt.Sprint("k", i)] = "v"
			}
			_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("props").WithProperties(props))
			return err
		}},
		{"bad page token", client.ErrInvalidArgument, "page_token", func() error {
			_, err := cl.ListSegments(ctx, client.NewListSegmentsOption("docs").WithPageToken("garbage"))
			return err
		}},
		{"page size over the limit", client.ErrInvalidArgument, "page_size", func() error {
			_, err := cl.ListSegments(ctx, client.NewListSegmentsOption("docs").WithPageSize(100000))
			return err
		}},
	}
	require.GreaterOrEqual(t, len(cases), 30)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.Error(t, err)
			require.True(t, errors.Is(err, tc.want), "want %v, got %v", tc.want, err)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
	// Nothing was half-applied: the catalog is as before (the only entries since are
	// rejected commands, which change nothing but the applied index).
	c.WaitConverged()
	require.Equal(t, before, c.Nodes[c.Leader()].FSM().CatalogHash())
}
