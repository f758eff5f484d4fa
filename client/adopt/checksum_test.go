package adopt_test

import (
	"context"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/client/adopt"
	"github.com/snapkeep/snapkeep/client/datagen"
	"github.com/snapkeep/snapkeep/objstore"
	pb "github.com/snapkeep/snapkeep/rpc/snapkeepv1"
	"github.com/snapkeep/snapkeep/server/servertest"
)

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// files returns every file of a plan: segments', then builds'.
func planFiles(p *adopt.Plan) []*pb.File {
	var out []*pb.File
	for _, s := range p.Segments {
		out = append(out, s.Files...)
	}
	for _, b := range p.Builds {
		out = append(out, b.Files...)
	}
	return out
}

// --checksum reads every adopted file, index builds and text files included, and
// records its CRC-32C: the dry run computes the same, the catalog keeps them.
// Without it the CRC-32C stays 0 (the embedded S3 lists none).
func TestAdoptChecksum(t *testing.T) {
	c := servertest.Start(t, 1, servertest.Options{})
	ctx := context.Background()
	cl, err := client.New(ctx, c.Endpoints()...)
	require.NoError(t, err)
	t.Cleanup(func() { cl.Close() })
	store := c.Bucket.Store
	written, err := datagen.WriteMilvusLayout(ctx, store, datagen.MilvusLayoutOptions{Root: c.Root(), CollectionID: 3001,
		PartitionIDs: []uint64{3002, 3003}, Segments: 12, FilesPerSegment: 3, FileSize: 150_000, FirstSegmentID: 3010,
		FirstLogID: 4000, Seed: 9, IndexBuilds: 1, IndexFilesPerBuild: 2, TextIndexFiles: 1, JSONStatsFiles: 1, FirstBuildID: 5000})
	require.NoError(t, err)
	opts := adopt.Options{Name: "sums", CollectionID: 3001, Root: c.Root(), Indexes: []adopt.Index{{ID: 3100, Name: "vec", FieldID: 101}}}

	plain, err := adopt.Scan(ctx, store, opts)
	require.NoError(t, err)
	require.Len(t, planFiles(plain), len(written))
	for _, f := range planFiles(plain) {
		require.Zero(t, f.Crc32C, "%s: no checksum without --checksum (the embedded S3 lists none)", f.Key)
	}
	require.Zero(t, plain.Checksummed)

	opts.Checksum, opts.ChecksumConcurrency = true, 3
	dry, err := adopt.Scan(ctx, store, opts)
	require.NoError(t, err)
	require.Equal(t, len(written), dry.Checksummed)
	wantCRC := map[string]uint32{}
	for _, w := range written {
		wantCRC[w.Key] = w.CRC32C
	}
	for _, f := range planFiles(dry) {
		body := readAll(ctx, store, f.Key)
		require.Len(t, body, 150_000)
		require.Equal(t, crc32.Checksum(body, castagnoli), f.Crc32C, f.Key)
		require.Equal(t, wantCRC[f.Key], f.Crc32C, f.Key)
	}
	plan, err := adopt.Scan(ctx, store, opts)
	require.NoError(t, err)
	require.Equal(t, dry, plan, "a dry run with --checksum plans what the run registers")

	_, err = adopt.Apply(ctx, cl, plan, opts)
	require.NoError(t, err)
	n := 0
	for seg, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption("sums")) {
		require.NoError(t, err)
		files := seg.Files
		for _, b := range seg.IndexBuilds {
			files = append(files, b.Files...)
		}
		for _, f := range files {
			require.Equal(t, wantCRC[f.Key], f.Crc32C, f.Key)
			n++
		}
	}
	require.Equal(t, len(written), n)
}

// fakeClock is a clock whose time moves only when someone sleeps.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	slept time.Duration
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Sleep(ctx context.Context, d time.Duration) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	c.slept += d
	return ctx.Err()
}

// countingStore counts the bytes read through Get and the reads in flight.
type countingStore struct {
	objstore.Store
	read               atomic.Int64
	inFlight, maxFlght atomic.Int64
}

func (s *countingStore) Get(ctx context.Context, key string) (io.ReadCloser, objstore.ObjectInfo, error) {
	body, info, err := s.Store.Get(ctx, key)
	if err != nil {
		return nil, info, err
	}
	n := s.inFlight.Add(1)
	for m := s.maxFlght.Load(); n > m && !s.maxFlght.CompareAndSwap(m, n); m = s.maxFlght.Load() {
	}
	return &countingBody{ReadCloser: body, s: s}, info, nil
}

type countingBody struct {
	io.ReadCloser
	s    *countingStore
	once sync.Once
}

func (b *countingBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	b.s.read.Add(int64(n))
	return n, err
}

func (b *countingBody) Close() error {
	b.once.Do(func() { b.s.inFlight.Add(-1) })
	return b.ReadCloser.Close()
}

// --checksum-rate paces the reads: with a clock that moves only when the limiter
// sleeps, reading B bytes at R bytes/s takes at least (B - burst)/R of its time (no
// limiter: none at all), and no more than B/R with one reader. The reads in flight
// never exceed the concurrency.
func TestAdoptChecksumIsRateLimited(t *testing.T) {
	c := servertest.Start(t, 1, servertest.Options{})
	ctx := context.Background()
	_, err := datagen.WriteMilvusLayout(ctx, c.Bucket.Store, datagen.MilvusLayoutOptions{Root: c.Root(), CollectionID: 3001,
		PartitionIDs: []uint64{3002}, Segments: 10, FilesPerSegment: 2, FileSize: 100_000, FirstSegmentID: 3010,
		FirstLogID: 4000, IndexBuilds: 1, IndexFilesPerBuild: 1, TextIndexFiles: 1, FirstBuildID: 5000})
	require.NoError(t, err)
	const total = 10 * 4 * 100_000
	const rate = 200_000.0 // bytes/s: 20 s of reading, on the fake clock
	const burst = 64 << 10
	for _, workers := range []int{1, 4} {
		clock := &fakeClock{now: time.Unix(1_800_000_000, 0)}
		store := &countingStore{Store: c.Bucket.Store}
		plan, err := adopt.Scan(ctx, store, adopt.Options{CollectionID: 3001, Root: c.Root(), Checksum: true,
			ChecksumRate: rate, ChecksumConcurrency: workers, Clock: clock, Indexes: []adopt.Index{{ID: 3100, Name: "vec", FieldID: 101}}})
		require.NoError(t, err)
		require.Equal(t, 40, plan.Checksummed)
		require.EqualValues(t, total, store.read.Load())
		// Less a microsecond: the limiter's waits are rounded to whole nanoseconds, and
		// their sum came out 1 ns short once.
		minimum := time.Duration(float64(total-burst)/rate*float64(time.Second)) - time.Microsecond
		require.GreaterOrEqual(t, clock.slept, minimum, "%d readers: %d bytes at %.0f bytes/s", workers, total, rate)
		if workers == 1 {
			require.LessOrEqual(t, clock.slept, time.Duration(float64(total)/rate*float64(time.Second)))
		}
		require.LessOrEqual(t, store.maxFlght.Load(), int64(workers))
	}

	// Unbounded: no sleeping at all.
	clock := &fakeClock{}
	_, err = adopt.Scan(ctx, c.Bucket.Store, adopt.Options{CollectionID: 3001, Root: c.Root(), Checksum: true, Clock: clock})
	require.NoError(t, err)
	require.Zero(t, clock.slept)
}
