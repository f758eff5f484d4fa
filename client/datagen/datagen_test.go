package datagen_test

import (
	"bytes"
	"context"
	"hash/crc32"
	"io"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/clienttest"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
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

// fixture is a fake cluster, a client and an in-memory bucket.
type fixture struct {
	srv   *clienttest.Server
	cl    *client.Client
	store *clienttest.MemStore
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	srv := clienttest.Start(t, clienttest.Options{})
	cl, err := client.NewWithConfig(context.Background(), client.Config{Endpoints: []string{srv.Addr()}, RetryBackoff: time.Millisecond})
	require.NoError(t, err)
	t.Cleanup(func() { _ = cl.Close() })
	return &fixture{srv: srv, cl: cl, store: clienttest.NewMemStore()}
}

func (f *fixture) createCollection(t *testing.T, ctx context.Context, name string) {
	t.Helper()
	_, err := f.cl.CreateCollection(ctx, client.NewCreateCollectionOption(name).WithPartitions("p1"))
	require.NoError(t, err)
}

func TestGenerateWritesFlushedSegments(t *testing.T) {
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
	require.Len(t, f.store.Keys(), 30)

	layout := datagen.Layout(6)
	var first []*snapkeepv1.Segment
	for _, id := range res.SegmentIDs {
		seg, err := f.cl.GetSegment(ctx, client.NewGetSegmentOption(id))
		require.NoError(t, err)
		require.Equal(t, snapkeepv1.SegmentState_SEGMENT_STATE_FLUSHED, seg.GetState())
		require.EqualValues(t, 250, seg.GetRowCount())
		require.Len(t, seg.GetFiles(), 6)
		for j, file := range seg.GetFiles() {
			require.Equal(t, datagen.Key(seg.GetPrefix(), layout[j]), file.GetKey())
			require.Equal(t, layout[j].Kind, file.GetKind())
			require.Equal(t, layout[j].FieldID, file.GetFieldId())
			require.EqualValues(t, 1000, file.GetSize())
		}
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
		for j, file := range seg.GetFiles() {
			require.Equal(t, first[i].GetFiles()[j].GetCrc32C(), file.GetCrc32C())
		}
	}
}

func TestVerifyReportsCorruptAndMissingFiles(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newFixture(t)
	f.createCollection(t, ctx, "docs")
	res, err := datagen.Generate(ctx, f.cl, f.store, datagen.Options{Collection: "docs", Segments: 1, FilesPerSegment: 3, FileSize: 64})
	require.NoError(t, err)
	seg, err := f.cl.GetSegment(ctx, client.NewGetSegmentOption(res.SegmentIDs[0]))
	require.NoError(t, err)

	require.True(t, f.store.Corrupt(seg.GetFiles()[0].GetKey()))
	_, err = f.store.Delete(ctx, []string{seg.GetFiles()[2].GetKey()})
	require.NoError(t, err)

	err = datagen.Verify(ctx, f.store, seg)
	require.ErrorIs(t, err, datagen.ErrMismatch)
	require.ErrorIs(t, err, objstore.ErrNotFound)
	require.Contains(t, err.Error(), seg.GetFiles()[0].GetKey())
	require.Contains(t, err.Error(), seg.GetFiles()[2].GetKey())
	require.NotContains(t, err.Error(), seg.GetFiles()[1].GetKey())
}

func TestGenerateStopsAtTheFirstError(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	f := newFixture(t)
	f.createCollection(t, ctx, "docs")
	var flushes atomic.Int32
	f.srv.SetInterceptor(func(_ context.Context, method string, _ proto.Message) error {
		if method == "FlushSegment" && flushes.Add(1) > 3 {
			return status.Error(codes.ResourceExhausted, "collection \"docs\" has too many segments")
		}
		return nil
	})
	res, err := datagen.Generate(ctx, f.cl, f.store, datagen.Options{Collection: "docs", Segments: 50, FilesPerSegment: 2, FileSize: 10, Concurrency: 2})
	require.ErrorIs(t, err, client.ErrResourceExhausted)
	require.Contains(t, err.Error(), `too many segments`)
	require.Len(t, res.SegmentIDs, 3)
	require.Less(t, int(flushes.Load()), 50, "generation must stop early")
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

// TestGenerateAgainstEmbeddedS3 runs the real S3 client against the embedded server.
func TestGenerateAgainstEmbeddedS3(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	f := newFixture(t)
	f.createCollection(t, ctx, "docs")

	emb, err := objstore.StartEmbedded(ctx, objstore.EmbeddedOptions{})
	require.NoError(t, err)
	defer emb.Close()
	store, err := objstore.NewS3(ctx, emb.Config())
	require.NoError(t, err)
	defer store.Close()

	res, err := datagen.Generate(ctx, f.cl, store, datagen.Options{Collection: "docs", Segments: 3, FilesPerSegment: 4, FileSize: 64 << 10, Seed: 1})
	require.NoError(t, err)
	require.Len(t, res.SegmentIDs, 3)
	for _, id := range res.SegmentIDs {
		seg, err := f.cl.GetSegment(ctx, client.NewGetSegmentOption(id))
		require.NoError(t, err)
		require.True(t, strings.HasPrefix(seg.GetFiles()[0].GetKey(), "snapkeep/collections/"))
		require.NoError(t, datagen.Verify(ctx, store, seg))
	}
	body, _, err := store.Get(ctx, Key0(t, ctx, f, res.SegmentIDs[1]))
	require.NoError(t, err)
	defer body.Close()
	require.True(t, bytes.Equal(readAll(t, datagen.NewContent(1, 1, 0, 64<<10)), readAll(t, body)))
}

// Key0 is the key of the first file of segment id.
func Key0(t *testing.T, ctx context.Context, f *fixture, id uint64) string {
	seg, err := f.cl.GetSegment(ctx, client.NewGetSegmentOption(id))
	require.NoError(t, err)
	return seg.GetFiles()[0].GetKey()
}
