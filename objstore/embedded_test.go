package objstore_test

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/stretchr/testify/require"
	"go.uber.org/goleak"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/objstoretest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// embeddedCaps is what gofakes3 supports: no UploadPartCopy, and x-amz-checksum
// headers are stored and echoed but never verified.
var embeddedCaps = objstoretest.Capabilities{MultipartCopy: false, CRC32C: false}

func startEmbedded(t *testing.T, opts objstore.EmbeddedOptions) *objstore.Embedded {
	t.Helper()
	e, err := objstore.StartEmbedded(t.Context(), opts)
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, e.Close()) })
	return e
}

// newStore returns a client for cfg that releases its connections when the test ends.
func newStore(t *testing.T, cfg objstore.S3Config) *objstore.S3 {
	t.Helper()
	s, err := objstore.NewS3(context.Background(), cfg)
	require.NoError(t, err)
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func TestEmbeddedConformance(t *testing.T) {
	t.Parallel()
	t.Run("memory", func(t *testing.T) {
		t.Parallel()
		e := startEmbedded(t, objstore.EmbeddedOptions{})
		objstoretest.Run(t, func(t *testing.T) objstore.Store { return newStore(t, e.Config()) }, embeddedCaps)
	})
	t.Run("file", func(t *testing.T) {
		t.Parallel()
		e := startEmbedded(t, objstore.EmbeddedOptions{Dir: t.TempDir()})
		objstoretest.Run(t, func(t *testing.T) objstore.Store { return newStore(t, e.Config()) }, embeddedCaps)
	})
}

// TestEmbeddedCrossBucket: gofakes3 reads a CopyObject's source bucket from
// x-amz-copy-source, so copies between two of its buckets work (multipart ones
// not: it lacks UploadPartCopy altogether).
func TestEmbeddedCrossBucket(t *testing.T) {
	t.Parallel()
	e := startEmbedded(t, objstore.EmbeddedOptions{Dir: t.TempDir()})
	srcCfg := e.Config()
	srcCfg.Bucket = "snapkeep-other"
	require.NoError(t, newStore(t, srcCfg).CreateBucket(t.Context()))
	objstoretest.RunCrossBucket(t, func(t *testing.T) objstoretest.Buckets {
		return objstoretest.Buckets{Dst: newStore(t, e.Config()), Src: newStore(t, srcCfg), SrcBucket: srcCfg.Bucket}
	}, embeddedCaps)
}

func TestEmbeddedRestartKeepsData(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	ctx := t.Context()
	data := []byte("survives a restart")

	first, err := objstore.StartEmbedded(ctx, objstore.EmbeddedOptions{Dir: dir, Bucket: "keep"})
	require.NoError(t, err)
	store := newStore(t, first.Config())
	_, err = store.Put(ctx, "a/b", bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
	require.NoError(t, err)
	require.NoError(t, store.Close())
	require.NoError(t, first.Close())
	require.NoError(t, first.Close(), "Close is idempotent")
	require.FileExists(t, filepath.Join(dir, "objects.bolt"))

	second := startEmbedded(t, objstore.EmbeddedOptions{Dir: dir, Bucket: "keep"})
	store = newStore(t, second.Config())
	rc, info, err := store.Get(ctx, "a/b")
	require.NoError(t, err)
	defer rc.Close()
	got, err := io.ReadAll(rc)
	require.NoError(t, err)
	require.Equal(t, data, got)
	require.Equal(t, int64(len(data)), info.Size)
}

func TestEmbeddedDirLockedByAnotherServer(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	startEmbedded(t, objstore.EmbeddedOptions{Dir: dir})
	_, err := objstore.StartEmbedded(t.Context(), objstore.EmbeddedOptions{Dir: dir})
	require.Error(t, err, "a second server on the same dir fails instead of waiting forever")
}

func TestEmbeddedDefaults(t *testing.T) {
	e := startEmbedded(t, objstore.EmbeddedOptions{})
	require.True(t, strings.HasPrefix(e.Endpoint(), "http://127.0.0.1:"), e.Endpoint())
	require.Equal(t, objstore.DefaultEmbeddedBucket, e.Bucket())
	cfg := e.Config()
	require.Equal(t, e.Endpoint(), cfg.Endpoint)
	require.Equal(t, e.Bucket(), cfg.Bucket)
	require.True(t, cfg.PathStyle)
	require.Equal(t, "us-east-1", cfg.Region)
	require.NotEmpty(t, cfg.AccessKey)
}

func TestEmbeddedListenError(t *testing.T) {
	e := startEmbedded(t, objstore.EmbeddedOptions{})
	addr := strings.TrimPrefix(e.Endpoint(), "http://")
	_, err := objstore.StartEmbedded(t.Context(), objstore.EmbeddedOptions{Addr: addr})
	require.Error(t, err, "address in use")
}

// TestEmbeddedLimitations pins down what gofakes3 lacks, so a gofakes3 upgrade
// that adds a feature shows up here (and embeddedCaps can be widened).
func TestEmbeddedLimitations(t *testing.T) {
	t.Parallel()
	e := startEmbedded(t, objstore.EmbeddedOptions{})
	store := newStore(t, e.Config())
	ctx := t.Context()
	data := bytes.Repeat([]byte("x"), 1000)
	_, err := store.Put(ctx, "src", bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
	require.NoError(t, err)

	t.Run("no-UploadPartCopy", func(t *testing.T) {
		_, err := store.MultipartCopy(ctx, "src", "dst", int64(len(data)), 5<<20)
		require.Error(t, err)
		require.NotErrorIs(t, err, objstore.ErrNotFound)
		_, err = store.Head(ctx, "dst")
		require.ErrorIs(t, err, objstore.ErrNotFound, "the failed upload was aborted, nothing completed")
	})
	t.Run("no-checksums-kept", func(t *testing.T) {
		// gofakes3 would store a checksum header unchecked and echo it (even a stale
		// one after an overwrite, and on copies); the embedded server keeps none, so
		// nothing it reports can vouch for the wrong content.
		_, err := store.Put(ctx, "bad-crc", bytes.NewReader(data), int64(len(data)),
			objstore.PutOptions{CRC32C: 12345, HasCRC32C: true})
		require.NoError(t, err, "a wrong checksum is accepted: gofakes3 verifies none")
		info, err := store.Head(ctx, "bad-crc")
		require.NoError(t, err)
		require.False(t, info.HasCRC32C)

		copied, err := store.Copy(ctx, "bad-crc", "bad-crc-copy")
		require.NoError(t, err)
		require.False(t, copied.HasCRC32C, "CopyObject answers with the ETag only")
		require.NotEmpty(t, copied.ETag)
		info, err = store.Head(ctx, "bad-crc-copy")
		require.NoError(t, err)
		require.False(t, info.HasCRC32C)
	})
}

// TestEmbeddedLogger checks that a passed logger receives gofakes3's messages.
func TestEmbeddedLogger(t *testing.T) {
	var buf syncBuffer
	logger := slog.New(slog.NewTextHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug}))
	e := startEmbedded(t, objstore.EmbeddedOptions{Logger: logger})
	store := newStore(t, e.Config())
	_, err := store.Head(t.Context(), "nothing")
	require.ErrorIs(t, err, objstore.ErrNotFound)
	require.Contains(t, buf.String(), "HEAD OBJECT")
}

type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// TestEmbeddedFileDuringGrowth reads and copies an object while writes grow
// the bbolt file. s3bolt alone hands out slices of the memory map that outlive
// their transaction: without boltBackend, reads return wrong bytes and copies
// crash the process (SIGSEGV/SIGBUS) when the file is remapped.
func TestEmbeddedFileDuringGrowth(t *testing.T) {
	t.Parallel()
	e := startEmbedded(t, objstore.EmbeddedOptions{Dir: t.TempDir()})
	store := newStore(t, e.Config())
	ctx := t.Context()
	data := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	_, err := store.Put(ctx, "read-me", bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
	require.NoError(t, err)

	stop := make(chan struct{})
	var readers sync.WaitGroup
	readErrs := make(chan error, 4)
	for range cap(readErrs) {
		readers.Go(func() {
			readErrs <- readUntil(ctx, stop, store, "read-me", data)
		})
	}
	for i := range 16 {
		_, err := store.Put(ctx, fmt.Sprintf("grow-%d", i), bytes.NewReader(data), int64(len(data)), objstore.PutOptions{})
		require.NoError(t, err)
		_, err = store.Copy(ctx, "read-me", fmt.Sprintf("copy-%d", i))
		require.NoError(t, err)
	}
	close(stop)
	readers.Wait()
	close(readErrs)
	for err := range readErrs {
		require.NoError(t, err)
	}
}

// readUntil reads key over and over until stop is closed, checking its content.
func readUntil(ctx context.Context, stop <-chan struct{}, store objstore.Store, key string, want []byte) error {
	for {
		select {
		case <-stop:
			return nil
		default:
		}
		rc, _, err := store.Get(ctx, key)
		if err != nil {
			return err
		}
		got, err := io.ReadAll(rc)
		_ = rc.Close()
		if err != nil {
			return fmt.Errorf("read %q: %w", key, err)
		}
		if !bytes.Equal(got, want) {
			return fmt.Errorf("read %q: content differs", key)
		}
	}
}

func crc32cOf(data []byte) uint32 {
	return crc32.Checksum(data, crc32.MakeTable(crc32.Castagnoli))
}
