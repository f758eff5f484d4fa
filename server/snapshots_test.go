package server_test

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

// openManifest opens a committed snapshot's manifest from the bucket and verifies it.
func openManifest(t *testing.T, c *servertest.Cluster, snap *pb.Snapshot) *manifest.Reader {
	t.Helper()
	ctx := context.Background()
	info, err := c.Bucket.Store.Head(ctx, snap.ManifestKey)
	require.NoError(t, err)
	require.EqualValues(t, snap.ManifestSize, info.Size)
	ra := objstore.NewReaderAt(ctx, c.Bucket.Store, snap.ManifestKey, info.Size)
	report, err := manifest.Verify(ra, info.Size)
	require.NoError(t, err)
	require.Equal(t, snap.ManifestXxhash64, report.Checksum)
	rd, err := manifest.Open(ra, info.Size)
	require.NoError(t, err)
	return rd
}

// manifestFiles lists every segment file key of a manifest, by segment id.
func manifestFiles(t *testing.T, rd *manifest.Reader) map[uint64][]string {
	t.Helper()
	out := map[uint64][]string{}
	require.NoError(t, rd.Segments(context.Background(), manifest.ReadOptions{}, func(s *manifest.Segment) error {
		out[s.ID] = mustDecodeFiles(t, s.Files)
		return nil
	}))
	return out
}

func flushSegment(t *testing.T, ctx context.Context, cl *client.Client, coll string, files int) *pb.Segment {
	t.Helper()
	s, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption(coll))
	require.NoError(t, err)
	var fs []*pb.File
	for i := 0; i < files; i++ {
		fs = append(fs, insertFile(s.Prefix, fmt.Sprintf("insert/101/%d", 1000+i)))
	}
	s, err = cl.FlushSegment(ctx, client.NewFlushSegmentOption(s.Id).WithRowCount(100).WithFiles(fs...))
	require.NoError(t, err)
	return s
}

func TestSnapshotLifecycle(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl := newClient(t, c)
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs").WithPartitions("p1").WithSchema([]byte("schema-v1")).WithProperty("ttl", "60"))
	require.NoError(t, err)
	a := flushSegment(t, ctx, cl, "docs", 3)
	b := flushSegment(t, ctx, cl, "docs", 2)

	snap, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "nightly").WithDescription("before the migration").WithLabel("env", "prod"))
	require.NoError(t, err)
	require.Equal(t, pb.SnapshotState_SNAPSHOT_STATE_COMMITTED, snap.State)
	require.EqualValues(t, 2, snap.Summary.Segments)
	require.EqualValues(t, 5, snap.Summary.Files)
	require.EqualValues(t, 50, snap.Summary.Bytes)
	require.Equal(t, []byte("schema-v1"), snap.Schema)
	require.Equal(t, "snapkeep/snapshots/"+fmt.Sprint(snap.Id)+".skm", snap.ManifestKey)

	// Compact and drop after the snapshot: it still describes the original files.
	out, err := cl.AllocateSegment(ctx, client.NewAllocateSegmentOption("docs"))
	require.NoError(t, err)
	_, err = cl.CompactSegments(ctx, client.NewCompactSegmentsOption(a.Id, b.Id).WithOutput(out.Id, 200, insertFile(out.Prefix, "insert/101/1")))
	require.NoError(t, err)
	files := manifestFiles(t, openManifest(t, c, snap))
	require.Len(t, files, 2)
	require.Equal(t, keysOf(a), files[a.Id])
	require.Equal(t, keysOf(b), files[b.Id])

	// The collection's drop keeps the snapshot, describable by name.
	_, err = cl.DropCollection(ctx, client.NewDropCollectionOption("docs"))
	require.NoError(t, err)
	got, err := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotOption("docs", "nightly"))
	require.NoError(t, err)
	require.Equal(t, snap.Id, got.Id)
	require.True(t, got.CollectionDropped)
	require.Equal(t, map[string]string{"ttl": "60"}, got.Properties)

	// Drop: the manifest goes, then the record.
	resp, err := cl.DropSnapshot(ctx, client.NewDropSnapshotOption("docs", "nightly"))
	require.NoError(t, err)
	require.True(t, resp.Existed)
	require.Eventually(t, func() bool {
		_, err := c.Bucket.Store.Head(ctx, snap.ManifestKey)
		_, derr := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotByIDOption(snap.Id))
		return errors.Is(err, objstore.ErrNotFound) && errors.Is(derr, client.ErrNotFound)
	}, 20*time.Second, 50*time.Millisecond, "the dropped snapshot's manifest or record stayed")
	resp, err = cl.DropSnapshot(ctx, client.NewDropSnapshotOption("docs", "nightly"))
	require.NoError(t, err)
	require.False(t, resp.Existed, "dropping a missing snapshot succeeds and says so")
}

func keysOf(s *pb.Segment) []string {
	var keys []string
	for _, f := range s.Files {
		keys = append(keys, strings.TrimPrefix(f.Key, s.Prefix))
	}
	slices.Sort(keys)
	return keys
}

// TestSnapshotFinishedByNextLeader kills the leader between SnapshotBegin and
// SnapshotCommit (a failpoint holds it there): the next leader writes the manifest and
// commits the snapshot.
func TestSnapshotFinishedByNextLeader(t *testing.T) {
	held := make(chan string, 8)
	var mu sync.Mutex
	holdOn := map[string]bool{}
	c := servertest.Start(t, 3, servertest.Options{Configure: func(i int, cfg *server.Config) {
		id := cfg.NodeID
		cfg.Failpoints = &server.Failpoints{BeforeSnapshotCommit: func(ctx context.Context, snapshotID uint64) error {
			mu.Lock()
			hold := holdOn[id]
			mu.Unlock()
			if !hold {
				return nil
			}
			held <- id
			<-ctx.Done() // until the node is stopped
			return ctx.Err()
		}}
	}})
	cl := newClient(t, c)
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	seg := flushSegment(t, ctx, cl, "docs", 4)

	leader := c.Leader()
	mu.Lock()
	holdOn[c.Nodes[leader].ID()] = true
	mu.Unlock()
	snap, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "s1").WithAsync())
	require.NoError(t, err)
	require.Equal(t, pb.SnapshotState_SNAPSHOT_STATE_PENDING, snap.State)
	select {
	case id := <-held:
		require.Equal(t, c.Nodes[leader].ID(), id)
	case <-time.After(20 * time.Second):
		t.Fatal("the leader never reached the commit")
	}
	c.Stop(leader)

	var committed *pb.Snapshot
	require.Eventually(t, func() bool {
		s, err := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotByIDOption(snap.Id))
		committed = s
		return err == nil && s.State == pb.SnapshotState_SNAPSHOT_STATE_COMMITTED
	}, 30*time.Second, 50*time.Millisecond, "the next leader did not commit the snapshot")
	files := manifestFiles(t, openManifest(t, c, committed))
	require.Equal(t, map[uint64][]string{seg.Id: keysOf(seg)}, files)
}

// TestListSnapshotsWhileCreating pages through a collection's snapshots while others
// are being created: every snapshot that existed before the listing started is listed
// exactly once, in creation order.
func TestListSnapshotsWhileCreating(t *testing.T) {
	c := servertest.Start(t, 3, servertest.Options{})
	cl := newClient(t, c)
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	flushSegment(t, ctx, cl, "docs", 1)
	var before []uint64
	for i := 0; i < 25; i++ {
		s, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", fmt.Sprint("before", i)).WithAsync().WithLabel("batch", "before"))
		require.NoError(t, err)
		before = append(before, s.Id)
	}

	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			_, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", fmt.Sprint("during", i)).WithAsync())
			if err != nil {
				t.Error(err)
				return
			}
		}
	}()

	var listed []uint64
	for s, err := range cl.ListAllSnapshots(ctx, client.NewListSnapshotsOption().WithCollection("docs").WithPageSize(4)) {
		require.NoError(t, err)
		listed = append(listed, s.Id)
	}
	close(stop)
	wg.Wait()
	require.True(t, slices.IsSorted(listed), "creation order")
	require.Equal(t, len(listed), len(slices.Compact(slices.Clone(listed))), "no snapshot twice")
	for _, id := range before {
		require.Contains(t, listed, id)
	}

	// Label and state filters.
	var labelled []uint64
	for s, err := range cl.ListAllSnapshots(ctx, client.NewListSnapshotsOption().WithCollection("docs").WithLabel("batch", "before")) {
		require.NoError(t, err)
		labelled = append(labelled, s.Id)
	}
	require.Equal(t, before, labelled)
}

func TestSnapshotBadInput(t *testing.T) {
	c := servertest.Start(t, 1, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.SnapshotsPerCollection = 3
	}})
	cl := newClient(t, c)
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	for _, name := range []string{"a", "b"} {
		_, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", name))
		require.NoError(t, err)
	}
	cases := []struct {
		name string
		want error
		msg  string
		call func() error
	}{
		{"empty name", client.ErrInvalidArgument, "snapshot name is empty", func() error {
			_, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", ""))
			return err
		}},
		{"invalid name", client.ErrInvalidArgument, "must start with a letter", func() error {
			_, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "-x"))
			return err
		}},
		{"over-long name", client.ErrInvalidArgument, "the limit is 255", func() error {
			_, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", strings.Repeat("s", 256)))
			return err
		}},
		{"duplicate name", client.ErrAlreadyExists, `snapshot "a" already exists on collection "docs"`, func() error {
			_, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "a"))
			return err
		}},
		{"unknown collection", client.ErrNotFound, `collection "nope" not found in database "default"`, func() error {
			_, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("nope", "x"))
			return err
		}},
		{"describe a missing snapshot", client.ErrNotFound, `snapshot "zz" not found on collection "docs"`, func() error {
			_, err := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotOption("docs", "zz"))
			return err
		}},
		{"describe a missing id", client.ErrNotFound, "snapshot 999999 not found", func() error {
			_, err := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotByIDOption(999999))
			return err
		}},
		{"bad page token", client.ErrInvalidArgument, "page_token", func() error {
			_, err := cl.ListSnapshots(ctx, client.NewListSnapshotsOption().WithPageToken("x"))
			return err
		}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := tc.call()
			require.True(t, errors.Is(err, tc.want), "want %v, got %v", tc.want, err)
			require.Contains(t, err.Error(), tc.msg)
		})
	}
	_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "c"))
	require.NoError(t, err)
	_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "d"))
	require.True(t, errors.Is(err, client.ErrResourceExhausted), "%v", err)
	require.Contains(t, err.Error(), `collection "docs" already has 3 snapshots, the limit`)
	resp, err := cl.DropSnapshot(ctx, client.NewDropSnapshotOption("docs", "missing"))
	require.NoError(t, err)
	require.False(t, resp.Existed)
}

func mustDecodeFiles(t *testing.T, blob []byte) []string {
	t.Helper()
	entries, err := filelist.Decode(blob)
	require.NoError(t, err)
	keys := make([]string, len(entries))
	for i, e := range entries {
		keys[i] = e.Key
	}
	return keys
}

// TestPendingSnapshotIsGivenUp: a snapshot the leader cannot finish before its deadline
// (here every manifest write fails) is marked DELETING with the reason, and the
// synchronous CreateSnapshot says why.
func TestPendingSnapshotIsGivenUp(t *testing.T) {
	c := servertest.Start(t, 1, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.SnapshotPendingTimeout = 2 * time.Second
		cfg.Failpoints = &server.Failpoints{BeforeManifestWrite: func(context.Context, uint64) error {
			return errors.New("bucket unreachable (failpoint)")
		}}
	}})
	cl := newClient(t, c)
	ctx := context.Background()
	_, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption("docs"))
	require.NoError(t, err)
	seg := flushSegment(t, ctx, cl, "docs", 1)
	_, err = cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption("docs", "doomed"))
	require.True(t, errors.Is(err, client.ErrInternal), "%v", err)
	require.Contains(t, err.Error(), `snapshot "doomed"`)
	require.Contains(t, err.Error(), "not committed within 2s; last error: bucket unreachable (failpoint)")

	// Its pins are gone, and so is its record once the (absent) manifest is deleted.
	require.Empty(t, c.Nodes[0].FSM().View().SegmentPinnedBy(seg.Id))
	require.Eventually(t, func() bool {
		_, err := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotOption("docs", "doomed"))
		return errors.Is(err, client.ErrNotFound)
	}, 10*time.Second, 50*time.Millisecond)
}
