package datagen_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server"
	"github.com/snapkeep/snapkeep/server/servertest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

const (
	insert = snapkeepv1.FileKind_FILE_KIND_INSERT
	delta  = snapkeepv1.FileKind_FILE_KIND_DELTA
	stats  = snapkeepv1.FileKind_FILE_KIND_STATS
	bm25   = snapkeepv1.FileKind_FILE_KIND_BM25
)

func TestLayout(t *testing.T) {
	tests := []struct {
		n    int
		want []datagen.FileSpec
	}{
		{1, []datagen.FileSpec{{insert, 100, 1}}},
		{2, []datagen.FileSpec{{insert, 100, 1}, {stats, 100, 2}}},
		{3, []datagen.FileSpec{{insert, 100, 1}, {delta, 0, 2}, {stats, 100, 3}}},
		{4, []datagen.FileSpec{{insert, 100, 1}, {insert, 101, 2}, {delta, 0, 3}, {stats, 100, 4}}},
		{8, []datagen.FileSpec{{insert, 100, 1}, {insert, 101, 2}, {insert, 102, 3}, {insert, 103, 4}, {insert, 100, 5},
			{delta, 0, 6}, {stats, 100, 7}, {bm25, 104, 8}}},
	}
	for _, tt := range tests {
		require.Equal(t, tt.want, datagen.Layout(tt.n), "n=%d", tt.n)
	}
	require.Equal(t, "root/collections/1/segments/2/insert/101/7",
		datagen.Key("root/collections/1/segments/2/", datagen.FileSpec{Kind: insert, FieldID: 101, LogID: 7}))
}

func readAll(t *testing.T, r io.Reader) []byte {
	t.Helper()
	b, err := io.ReadAll(r)
	require.NoError(t, err)
	return b
}

func TestContentIsDeterministicAndSeekable(t *testing.T) {
	for _, size := range []int64{0, 1, 7, 8, 13, 4096, 100_003} {
		a := readAll(t, datagen.NewContent(42, 3, 1, size))
		require.Len(t, a, int(size))
		require.Equal(t, a, readAll(t, datagen.NewContent(42, 3, 1, size)), "same inputs, same bytes")
		require.Equal(t, crc32.Checksum(a, crc32.MakeTable(crc32.Castagnoli)), datagen.NewContent(42, 3, 1, size).CRC32C())
		if size < 8 {
			continue
		}
		for _, other := range []*datagen.Content{datagen.NewContent(43, 3, 1, size), datagen.NewContent(42, 4, 1, size), datagen.NewContent(42, 3, 2, size)} {
			require.NotEqual(t, a, readAll(t, other))
		}

		c := datagen.NewContent(42, 3, 1, size)
		for _, off := range []int64{0, 1, 5, 8, 9, size / 2, size - 3} {
			if off >= size {
				continue
			}
			buf := make([]byte, 11)
			n, err := c.ReadAt(buf, off)
			end := min(off+11, size)
			require.Equal(t, a[off:end], buf[:n], "ReadAt(%d)", off)
			if end < off+11 {
				require.ErrorIs(t, err, io.EOF)
			} else {
				require.NoError(t, err)
			}
		}
		_, err := c.Seek(size/3, io.SeekStart)
		require.NoError(t, err)
		require.Equal(t, a[size/3:], readAll(t, c))
		pos, err := c.Seek(-5, io.SeekEnd)
		require.NoError(t, err)
		require.Equal(t, size-5, pos)
		require.Equal(t, a[size-5:], readAll(t, c))
	}
}

// fixture is a one-node cluster, a client for it and a bucket on the embedded S3
// server.
type fixture struct {
	cl    *client.Client
	store *objstore.S3
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	ctx := context.Background()
	// A lone voter has no peer to lose: short Raft timeouts only make it elect itself
	// sooner.
	cluster := servertest.Start(t, 1, servertest.Options{Configure: func(_ int, cfg *server.Config) {
		cfg.HeartbeatTimeout, cfg.ElectionTimeout, cfg.LeaderLeaseTimeout = 50*time.Millisecond, 50*time.Millisecond, 50*time.Millisecond
	}})
	cl, err := client.NewWithConfig(ctx, client.Config{Endpoints: cluster.Endpoints(), RetryBackoff: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	return &fixture{cl: cl, store: cluster.Bucket.Store}
}

func (f *fixture) createCollection(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	_, err := f.cl.CreateCollection(ctx, client.NewCreateCollectionOption(name).WithPartitions("p1"))
	require.NoError(t, err)
}

// keys lists every key in the bucket.
func (f *fixture) keys(t *testing.T, ctx context.Context) []string {
	t.Helper()
	var keys []string
	token := ""
	for {
		page, err := f.store.List(ctx, "", token, 1000)
		require.NoError(t, err)
		for _, o := range page.Objects {
			keys = append(keys, o.Key)
		}
		if page.NextToken == "" {
			return keys
		}
		token = page.NextToken
	}
}

// corrupt overwrites the object at key with its bytes, one of them flipped. The store
// keeps the new bytes' own checksum: only the catalog's record tells them apart.
func (f *fixture) corrupt(t *testing.T, ctx context.Context, key string) {
	t.Helper()
	body, _, err := f.store.Get(ctx, key)
	require.NoError(t, err)
	data := readAll(t, body)
	require.NoError(t, body.Close())
	require.NotEmpty(t, data)
	data[len(data)/2] ^= 0xff
	sum := crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
	_, err = f.store.Put(ctx, key, bytes.NewReader(data), int64(len(data)), objstore.PutOptions{CRC32C: sum, HasCRC32C: true})
	require.NoError(t, err)
}

func TestGenerateWritesFlushedSegments(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newFixture(t)
	f.createCollection(t, ctx, "docs")

	var progress []int
	opts := datagen.Options{
		Collection: "docs", Partition: "p1", Segments: 5, FilesPerSegment: 6, FileSize: 1000,
		Concurrency: 3, Seed: 7, RowsPerSegment: 250,
		Progress: func(done, total int) {
			require.Equal(t, 5, total)
			progress = append(progress, done)
		},
	}
	res, err := datagen.Generate(ctx, f.cl, f.store, opts)
	require.NoError(t, err)
	require.Len(t, res.SegmentIDs, 5)
	require.Equal(t, 30, res.Files)
	require.EqualValues(t, 30_000, res.Bytes)
	require.Positive(t, res.Elapsed)
	require.Equal(t, []int{1, 2, 3, 4, 5}, progress)
	require.Len(t, f.keys(t, ctx), 30)

	layout := datagen.Layout(6)
	var first []*snapkeepv1.Segment
	for _, id := range res.SegmentIDs {
		seg, err := f.cl.GetSegment(ctx, client.NewGetSegmentOption(id))
		require.NoError(t, err)
		require.Equal(t, snapkeepv1.SegmentState_SEGMENT_STATE_FLUSHED, seg.GetState())
		require.EqualValues(t, 250, seg.GetRowCount())
		require.Equal(t, fmt.Sprintf("snapkeep/collections/%d/segments/%d/", seg.GetCollectionId(), id), seg.GetPrefix())
		// The catalog lists a segment's files in key order, not in upload order.
		files := filesByKey(seg)
		require.Len(t, files, 6)
		for _, spec := range layout {
			file := files[datagen.Key(seg.GetPrefix(), spec)]
			require.NotNil(t, file, "segment %d has no file %+v", id, spec)
			require.Equal(t, spec.Kind, file.GetKind())
			require.Equal(t, spec.FieldID, file.GetFieldId())
			require.EqualValues(t, 1000, file.GetSize())
		}
		require.True(t, slices.IsSortedFunc(seg.GetFiles(), func(a, b *snapkeepv1.File) int { return strings.Compare(a.GetKey(), b.GetKey()) }))
		require.NoError(t, datagen.Verify(ctx, f.store, seg))
		first = append(first, seg)
	}

	// The same seed writes the same bytes for the same ordinals, under new ids.
	f.createCollection(t, ctx, "again")
	opts.Collection, opts.Progress = "again", nil
	res2, err := datagen.Generate(ctx, f.cl, f.store, opts)
	require.NoError(t, err)
	for i, id := range res2.SegmentIDs {
		seg, err := f.cl.GetSegment(ctx, client.NewGetSegmentOption(id))
		require.NoError(t, err)
		require.NotEqual(t, first[i].GetPrefix(), seg.GetPrefix())
		before := filesByKey(first[i])
		for _, spec := range layout {
			require.Equal(t, before[datagen.Key(first[i].GetPrefix(), spec)].GetCrc32C(), filesByKey(seg)[datagen.Key(seg.GetPrefix(), spec)].GetCrc32C())
		}
	}
}

func TestVerifyReportsCorruptAndMissingFiles(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newFixture(t)
	f.createCollection(t, ctx, "docs")
	res, err := datagen.Generate(ctx, f.cl, f.store, datagen.Options{Collection: "docs", Segments: 1, FilesPerSegment: 3, FileSize: 64})
	require.NoError(t, err)
	seg, err := f.cl.GetSegment(ctx, client.NewGetSegmentOption(res.SegmentIDs[0]))
	require.NoError(t, err)

	f.corrupt(t, ctx, seg.GetFiles()[0].GetKey())
	_, err = f.store.Delete(ctx, []string{seg.GetFiles()[2].GetKey()})
	require.NoError(t, err)

	err = datagen.Verify(ctx, f.store, seg)
	require.ErrorIs(t, err, datagen.ErrMismatch)
	require.ErrorIs(t, err, objstore.ErrNotFound)
	require.Contains(t, err.Error(), seg.GetFiles()[0].GetKey())
	require.Contains(t, err.Error(), seg.GetFiles()[2].GetKey())
	require.NotContains(t, err.Error(), seg.GetFiles()[1].GetKey())
}

// TestGenerateStopsAtTheFirstError drops the partition under a running generation:
// the next allocation fails, and generation stops with that error and the segments
// flushed until then. One segment at a time makes the point of failure exact.
func TestGenerateStopsAtTheFirstError(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newFixture(t)
	f.createCollection(t, ctx, "docs")
	var dropErr error
	res, err := datagen.Generate(ctx, f.cl, f.store, datagen.Options{
		Collection: "docs", Partition: "p1", Segments: 50, FilesPerSegment: 2, FileSize: 10, Concurrency: 1,
		Progress: func(done, _ int) {
			if done == 3 {
				_, dropErr = f.cl.DropPartition(ctx, client.NewDropPartitionOption("docs", "p1"))
			}
		},
	})
	require.NoError(t, dropErr)
	require.ErrorIs(t, err, client.ErrNotFound)
	require.Equal(t, `datagen: allocate segment 4 of 50: not found: partition "p1" not found in collection "docs"`, err.Error())
	require.Len(t, res.SegmentIDs, 3)
	require.Equal(t, 6, res.Files)

	// Generation stopped early: nothing was allocated after the failure, and the
	// three flushed segments went with their partition.
	resp, err := f.cl.ListSegments(ctx, client.NewListSegmentsOption("docs"))
	require.NoError(t, err)
	var ids []uint64
	for _, seg := range resp.GetSegments() {
		ids = append(ids, seg.GetId())
		require.Equal(t, snapkeepv1.SegmentState_SEGMENT_STATE_DROPPED, seg.GetState())
		require.Equal(t, snapkeepv1.DropReason_DROP_REASON_PARTITION_DROPPED, seg.GetDropReason())
	}
	require.Equal(t, res.SegmentIDs, ids)
	require.Len(t, f.keys(t, ctx), 6)
}

// refusingStore refuses every upload, as S3 does with wrong credentials.
type refusingStore struct{ objstore.Store }

func (refusingStore) Put(context.Context, string, io.Reader, int64, objstore.PutOptions) (objstore.ObjectInfo, error) {
	return objstore.ObjectInfo{}, fmt.Errorf("put: %w", objstore.ErrAccessDenied)
}

// TestFailedGenerateDropsItsAllocations: when uploads fail (wrong credentials), the
// segments generate allocated are dropped, not left allocated until their lease ends.
func TestFailedGenerateDropsItsAllocations(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newFixture(t)
	f.createCollection(t, ctx, "docs")
	res, err := datagen.Generate(ctx, f.cl, refusingStore{f.store}, datagen.Options{
		Collection: "docs", Segments: 6, FilesPerSegment: 2, FileSize: 10, Concurrency: 3,
	})
	require.ErrorIs(t, err, objstore.ErrAccessDenied)
	require.Empty(t, res.SegmentIDs)

	resp, err := f.cl.ListSegments(ctx, client.NewListSegmentsOption("docs"))
	require.NoError(t, err)
	require.NotEmpty(t, resp.GetSegments())
	for _, seg := range resp.GetSegments() {
		require.Equal(t, snapkeepv1.SegmentState_SEGMENT_STATE_DROPPED, seg.GetState(), "segment %d", seg.GetId())
	}
}

func TestGenerateRejectsBadOptions(t *testing.T) {
	for _, opts := range []datagen.Options{
		{Segments: 1, FilesPerSegment: 1},
		{Collection: "c", Segments: -1, FilesPerSegment: 1},
		{Collection: "c", Segments: 1, FilesPerSegment: 0},
		{Collection: "c", Segments: 1, FilesPerSegment: 1, FileSize: -1},
	} {
		_, err := datagen.Generate(context.Background(), nil, nil, opts)
		require.Error(t, err, "%+v", opts)
	}
}

// TestGenerateWritesTheSeededContent reads an object back through the S3 client and
// compares it with the content its seed and ordinals make.
func TestGenerateWritesTheSeededContent(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := newFixture(t)
	f.createCollection(t, ctx, "docs")

	res, err := datagen.Generate(ctx, f.cl, f.store, datagen.Options{Collection: "docs", Segments: 3, FilesPerSegment: 4, FileSize: 64 << 10, Seed: 1})
	require.NoError(t, err)
	require.Len(t, res.SegmentIDs, 3)
	for _, id := range res.SegmentIDs {
		seg, err := f.cl.GetSegment(ctx, client.NewGetSegmentOption(id))
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(seg.GetFiles()[0].GetKey(), "snapkeep/collections/"))
		require.NoError(t, datagen.Verify(ctx, f.store, seg))
	}
	body, _, err := f.store.Get(ctx, Key0(t, ctx, f, res.SegmentIDs[1], 4))
	require.NoError(t, err)
	defer body.Close()
	require.True(t, bytes.Equal(readAll(t, datagen.NewContent(1, 1, 0, 64<<10)), readAll(t, body)))
}

// Key0 is the key of the first file of segment id's layout of n files.
func Key0(t *testing.T, ctx context.Context, f *fixture, id uint64, n int) string {
	seg, err := f.cl.GetSegment(ctx, client.NewGetSegmentOption(id))
	require.NoError(t, err)
	key := datagen.Key(seg.GetPrefix(), datagen.Layout(n)[0])
	require.Contains(t, filesByKey(seg), key)
	return key
}

// filesByKey indexes a segment's files by key.
func filesByKey(seg *snapkeepv1.Segment) map[string]*snapkeepv1.File {
	out := make(map[string]*snapkeepv1.File)
	for _, f := range seg.GetFiles() {
		out[f.GetKey()] = f
	}
	return out
}
