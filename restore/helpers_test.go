package restore_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"sync"
	"testing"
	"time"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/versitygw"
	"github.com/snapkeep/snapkeep/restore"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// backend is one S3 server the executor is tested against.
type backend struct {
	name string
	// cfg makes clients for it.
	cfg objstore.S3Config
	// copyCRC: CopyObject responses carry the CRC-32C (versitygw).
	copyCRC bool
	// multipart: UploadPartCopy works (not on gofakes3).
	multipart bool
}

func embeddedBackend(t testing.TB) backend {
	t.Helper()
	e, err := objstore.StartEmbedded(context.Background(), objstore.EmbeddedOptions{})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return backend{name: "embedded", cfg: e.Config()}
}

func versityBackend(t testing.TB) backend {
	t.Helper()
	gw := versitygw.Start(t)
	return backend{name: "versitygw", cfg: gw.Config(), copyCRC: true, multipart: true}
}

// forEachBackend runs test against the embedded server and versitygw, in parallel.
func forEachBackend(t *testing.T, test func(t *testing.T, b backend)) {
	t.Helper()
	for _, start := range []func(testing.TB) backend{embeddedBackend, versityBackend} {
		b := start(t)
		t.Run(b.name, func(t *testing.T) {
			t.Parallel()
			test(t, b)
		})
	}
}

// newStore returns a client that releases its connections when the test ends.
func newStore(t testing.TB, cfg objstore.S3Config) *objstore.S3 {
	t.Helper()
	s, err := objstore.NewS3(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func crc32c(data []byte) uint32 {
	return crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
}

// fixture is a set of source objects and the tasks that copy them.
type fixture struct {
	tasks []restore.Task
	data  map[string][]byte // by source key
}

// uploadOpts tune makeFixture.
type uploadOpts struct {
	// sizes of the files, in order; the default is a mix of small sizes.
	sizes []int
	// withCRC says whether file i is uploaded with its CRC-32C (default: every
	// other one), which changes what some servers report after a copy.
	withCRC func(i int) bool
	seed    uint64
}

// makeFixture uploads files under prefix+"src/" and returns tasks copying them
// to prefix+"dst/", with shuffled, sparse task indexes.
func makeFixture(t testing.TB, store objstore.Store, prefix string, opts uploadOpts) fixture {
	t.Helper()
	if opts.sizes == nil {
		opts.sizes = []int{0, 1, 100, 4096, 65536 + 7, 200_000}
		for i := range 14 {
			opts.sizes = append(opts.sizes, 1000+i*997)
		}
	}
	if opts.withCRC == nil {
		opts.withCRC = func(i int) bool { return i%2 == 0 }
	}
	rng := rand.New(rand.NewPCG(opts.seed, 42))
	f := fixture{data: map[string][]byte{}}
	for i, size := range opts.sizes {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(rng.Uint32())
		}
		src := fmt.Sprintf("%ssrc/%05d/file %d+x", prefix, i, i) // spaces and '+' on purpose
		f.data[src] = data
		f.tasks = append(f.tasks, restore.Task{
			Index:  uint32(1000 + 7*i),
			Src:    src,
			Dst:    fmt.Sprintf("%sdst/%05d/file %d+x", prefix, i, i),
			Size:   uint64(size),
			CRC32C: crc32c(data),
		})
	}
	parallelDo(t, len(f.tasks), 16, func(i int) error {
		task := f.tasks[i]
		data := f.data[task.Src]
		_, err := store.Put(context.Background(), task.Src, bytes.NewReader(data), int64(len(data)),
			objstore.PutOptions{CRC32C: task.CRC32C, HasCRC32C: opts.withCRC(i)})
		return err
	})
	rng.Shuffle(len(f.tasks), func(i, j int) { f.tasks[i], f.tasks[j] = f.tasks[j], f.tasks[i] })
	return f
}

// parallelDo runs do(0..n-1) with the given concurrency and fails on the first error.
func parallelDo(t testing.TB, n, concurrency int, do func(i int) error) {
	t.Helper()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	next := make(chan int)
	for range concurrency {
		wg.Go(func() {
			for i := range next {
				if err := do(i); err != nil {
					mu.Lock()
					if first == nil {
						first = err
					}
					mu.Unlock()
				}
			}
		})
	}
	for i := range n {
		next <- i
	}
	close(next)
	wg.Wait()
	require.NoError(t, first)
}

func readAll(t testing.TB, store objstore.Store, key string) []byte {
	t.Helper()
	rc, _, err := store.Get(context.Background(), key)
	require.NoError(t, err, "get %q", key)
	defer rc.Close()
	data, err := io.ReadAll(rc)
	require.NoError(t, err, "read %q", key)
	return data
}

// requireCopied checks every task succeeded, in order, and its destination
// holds exactly its source's bytes.
func requireCopied(t *testing.T, store objstore.Store, f fixture, tasks []restore.Task, results []restore.Result) {
	t.Helper()
	require.Len(t, results, len(tasks))
	for i, r := range results {
		task := tasks[i]
		require.Equal(t, task.Index, r.Index, "results are in input order")
		require.NoError(t, r.Err, "task %d", i)
		require.False(t, r.Permanent)
		require.Equal(t, task.Size, r.Bytes)
		require.GreaterOrEqual(t, r.Attempts, 1)
		require.True(t, bytes.Equal(f.data[task.Src], readAll(t, store, task.Dst)), "%q is byte-identical to %q", task.Dst, task.Src)
	}
}

// fastRetries keeps tests quick: the production backoff starts at 100 ms.
func fastRetries(e *restore.Executor) *restore.Executor {
	e.BackoffBase = time.Millisecond
	e.BackoffMax = 10 * time.Millisecond
	return e
}
