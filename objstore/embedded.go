package objstore

// The embedded server is gofakes3 v1.2.0 behind a loopback http.Server. What it
// does and does not do, as far as this package relies on it (checked by
// embedded_test.go and the conformance suite):
//
//   - Supported: PutObject, GetObject (with Range), HeadObject, CopyObject
//     (also from another bucket: S3.CopyingFrom), ListObjectsV2 with prefix and
//     continuation tokens, DeleteObjects, and multipart uploads of uploaded
//     parts (S3.PutMultipart).
//   - UploadPartCopy is missing: a part PUT without a body is refused
//     (MissingContentLength), so MultipartCopy fails against it.
//   - S3 checksums are not implemented: x-amz-checksum-* headers are neither
//     verified nor computed. gofakes3 stores every x-amz-* request header as
//     object metadata and echoes it on GET/HEAD, so a CRC32C sent with Put
//     comes back from Head verbatim, even a wrong one. Content-MD5 is verified.
//   - No authentication: any access key and signature is accepted.
//   - Objects are held whole in memory (in-memory backend) or in a bbolt file
//     (file backend, Dir set), so it suits dev mode and tests, not big data.

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3bolt"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	bolt "go.etcd.io/bbolt"
)

// Credentials the embedded server hands out in Config. It does not check them,
// but the SDK needs some to sign requests.
const (
	EmbeddedAccessKey = "snapkeep-dev"
	EmbeddedSecretKey = "snapkeep-dev-secret"
)

// DefaultEmbeddedBucket is the bucket created when EmbeddedOptions.Bucket is empty.
const DefaultEmbeddedBucket = "snapkeep"

// embeddedDBFile is the bbolt file that holds a file-backed server's objects.
const embeddedDBFile = "objects.bolt"

// EmbeddedOptions configure StartEmbedded.
type EmbeddedOptions struct {
	// Dir holds the objects (in one bbolt file) so they survive a restart.
	// Empty: objects live in memory and vanish on Close.
	Dir string
	// Addr is the listen address; default "127.0.0.1:0" (a free loopback port).
	Addr string
	// Bucket is created at start if missing; default DefaultEmbeddedBucket.
	Bucket string
	// Logger receives gofakes3's and the HTTP server's messages; nil discards them.
	Logger *slog.Logger
}

// Embedded is an S3-compatible server running in this process.
type Embedded struct {
	server *http.Server
	// closeBackend releases the backend's file; nil when in memory.
	closeBackend func() error
	endpoint     string
	bucket       string
	served       chan struct{} // closed when Serve returns

	closeOnce sync.Once
	closeErr  error
}

// StartEmbedded starts the server and creates the bucket. Stop it with Close.
func StartEmbedded(ctx context.Context, opts EmbeddedOptions) (*Embedded, error) {
	addr := opts.Addr
	if addr == "" {
		addr = "127.0.0.1:0"
	}
	bucket := opts.Bucket
	if bucket == "" {
		bucket = DefaultEmbeddedBucket
	}

	backend, closeBackend, err := openEmbeddedBackend(opts.Dir)
	if err != nil {
		return nil, err
	}
	abandon := func() {
		if closeBackend != nil {
			_ = closeBackend()
		}
	}
	if err := ensureBucket(backend, bucket); err != nil {
		abandon()
		return nil, err
	}

	fakeOpts := []gofakes3.Option{gofakes3.WithLogger(gofakes3.DiscardLog())}
	errorLog := log.New(io.Discard, "", 0)
	if opts.Logger != nil {
		fakeOpts = []gofakes3.Option{gofakes3.WithLogger(slogAdapter{opts.Logger})}
		errorLog = slog.NewLogLogger(opts.Logger.Handler(), slog.LevelWarn)
	}
	faker := gofakes3.New(backend, fakeOpts...)

	var lc net.ListenConfig
	ln, err := lc.Listen(ctx, "tcp", addr)
	if err != nil {
		abandon()
		return nil, fmt.Errorf("objstore: embedded S3 listen on %s: %w", addr, err)
	}
	e := &Embedded{
		server: &http.Server{
			Handler:           faker.Server(),
			ErrorLog:          errorLog,
			ReadHeaderTimeout: 10 * time.Second,
		},
		closeBackend: closeBackend,
		endpoint:     "http://" + ln.Addr().String(),
		bucket:       bucket,
		served:       make(chan struct{}),
	}
	go func() {
		defer close(e.served)
		if err := e.server.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && opts.Logger != nil {
			opts.Logger.Error("embedded S3 server stopped", "err", err)
		}
	}()
	if opts.Logger != nil {
		opts.Logger.Info("embedded S3 server started", "endpoint", e.endpoint, "bucket", bucket, "dir", opts.Dir)
	}
	return e, nil
}

// openEmbeddedBackend opens a bbolt-backed store in dir, or an in-memory one
// (with a nil close function).
// bbolt (s3bolt) rather than s3afero: it keeps keys in S3's byte order, while
// s3afero maps keys onto directories, which breaks listing order ("a/b-c"
// sorts before "a/b/x" in S3) and cannot hold both "a" and "a/b".
func openEmbeddedBackend(dir string) (gofakes3.Backend, func() error, error) {
	if dir == "" {
		return withoutChecksums{s3mem.New()}, nil, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, nil, fmt.Errorf("objstore: embedded S3 dir: %w", err)
	}
	path := filepath.Join(dir, embeddedDBFile)
	// A timeout, because bbolt otherwise waits forever for another process's lock.
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 2 * time.Second})
	if err != nil {
		return nil, nil, fmt.Errorf("objstore: embedded S3 open %s: %w", path, err)
	}
	backend := &boltBackend{Backend: s3bolt.New(db), db: db}
	return withoutChecksums{backend}, backend.close, nil
}

// withoutChecksums keeps no checksum headers with the objects. gofakes3 stores every
// x-amz-* header a PUT sent and answers HEAD (and copies) with it, unchecked — even
// a stale one after the object was overwritten without checksum — so a checksum it
// reported would vouch for nothing. Without them, a restore's verification reads the
// copy back.
type withoutChecksums struct {
	gofakes3.Backend
}

func stripChecksums(meta map[string]string) map[string]string {
	out := make(map[string]string, len(meta))
	for k, v := range meta {
		lk := strings.ToLower(k)
		if strings.HasPrefix(lk, "x-amz-checksum") || strings.HasPrefix(lk, "x-amz-sdk-checksum") {
			continue
		}
		out[k] = v
	}
	return out
}

func (w withoutChecksums) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	return w.Backend.PutObject(bucket, key, stripChecksums(meta), input, size, conditions)
}

func (w withoutChecksums) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	return w.Backend.CopyObject(srcBucket, srcKey, dstBucket, dstKey, stripChecksums(meta))
}

// boltBackend works around a use-after-unmap in s3bolt: it decodes objects
// straight out of bbolt's memory map and returns slices (contents, hash) that
// outlive the read transaction, so a concurrent write that grows the file
// unmaps them (SIGBUS, seen in the conformance suite) or reuses their pages
// (silently wrong data); s3bolt's CopyObject even reads such a slice after its
// own write. Here reads copy the object out under a read lock and every write
// takes the write lock, so no write runs while such slices are read.
type boltBackend struct {
	*s3bolt.Backend
	db *bolt.DB
	mu sync.RWMutex
}

// close closes the file once no read is copying out of its memory map (a
// request may outlive an http.Server that was closed rather than shut down).
func (b *boltBackend) close() error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.db.Close()
}

func (b *boltBackend) GetObject(bucket, key string, rangeRequest *gofakes3.ObjectRangeRequest) (*gofakes3.Object, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	obj, err := b.Backend.GetObject(bucket, key, rangeRequest)
	if err != nil {
		return nil, err
	}
	return detachObject(obj)
}

func (b *boltBackend) HeadObject(bucket, key string) (*gofakes3.Object, error) {
	b.mu.RLock()
	defer b.mu.RUnlock()
	obj, err := b.Backend.HeadObject(bucket, key)
	if err != nil {
		return nil, err
	}
	return detachObject(obj)
}

// detachObject copies obj's contents and hash out of the memory map.
func detachObject(obj *gofakes3.Object) (*gofakes3.Object, error) {
	data, err := io.ReadAll(obj.Contents)
	if closeErr := obj.Contents.Close(); err == nil {
		err = closeErr
	}
	if err != nil {
		return nil, err
	}
	detached := *obj
	detached.Contents = io.NopCloser(bytes.NewReader(data))
	detached.Hash = bytes.Clone(obj.Hash)
	return &detached, nil
}

func (b *boltBackend) PutObject(bucket, key string, meta map[string]string, input io.Reader, size int64, conditions *gofakes3.PutConditions) (gofakes3.PutObjectResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.PutObject(bucket, key, meta, input, size, conditions)
}

// CopyObject is gofakes3.CopyObject on a detached source: s3bolt's own reads
// the source hash after the write that may have remapped the file (SIGSEGV).
func (b *boltBackend) CopyObject(srcBucket, srcKey, dstBucket, dstKey string, meta map[string]string) (gofakes3.CopyObjectResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	src, err := b.Backend.GetObject(srcBucket, srcKey, nil)
	if err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	if src, err = detachObject(src); err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	if _, err := b.Backend.PutObject(dstBucket, dstKey, meta, src.Contents, src.Size, nil); err != nil {
		return gofakes3.CopyObjectResult{}, err
	}
	return gofakes3.CopyObjectResult{
		ETag:         gofakes3.FormatETag(src.Hash),
		LastModified: gofakes3.NewContentTime(time.Now()),
	}, nil
}

func (b *boltBackend) DeleteObject(bucket, key string) (gofakes3.ObjectDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.DeleteObject(bucket, key)
}

func (b *boltBackend) DeleteMulti(bucket string, keys ...string) (gofakes3.MultiDeleteResult, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.DeleteMulti(bucket, keys...)
}

func (b *boltBackend) CreateBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.CreateBucket(name)
}

func (b *boltBackend) DeleteBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.DeleteBucket(name)
}

func (b *boltBackend) ForceDeleteBucket(name string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.Backend.ForceDeleteBucket(name)
}

func ensureBucket(backend gofakes3.Backend, bucket string) error {
	exists, err := backend.BucketExists(bucket)
	if err != nil {
		return fmt.Errorf("objstore: embedded S3 bucket %q: %w", bucket, err)
	}
	if exists {
		return nil
	}
	if err := backend.CreateBucket(bucket); err != nil {
		return fmt.Errorf("objstore: embedded S3 create bucket %q: %w", bucket, err)
	}
	return nil
}

// Endpoint is the server's base URL, "http://127.0.0.1:PORT".
func (e *Embedded) Endpoint() string { return e.endpoint }

// Bucket is the bucket created at start.
func (e *Embedded) Bucket() string { return e.bucket }

// Config is what NewS3 needs to talk to this server.
func (e *Embedded) Config() S3Config {
	return S3Config{
		Endpoint:  e.endpoint,
		Region:    DefaultRegion,
		Bucket:    e.bucket,
		PathStyle: true,
		AccessKey: EmbeddedAccessKey,
		SecretKey: EmbeddedSecretKey,
	}
}

// Close stops the server, waiting up to 5 s for requests in flight, then
// closes the backing file. Calling it again returns the first result.
func (e *Embedded) Close() error {
	e.closeOnce.Do(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		err := e.server.Shutdown(ctx)
		if err != nil {
			// Requests still running: cut them off rather than leave them behind.
			err = errors.Join(err, e.server.Close())
		}
		<-e.served
		if e.closeBackend != nil {
			err = errors.Join(err, e.closeBackend())
		}
		if err != nil {
			e.closeErr = fmt.Errorf("objstore: close embedded S3: %w", err)
		}
	})
	return e.closeErr
}

// slogAdapter sends gofakes3's log lines to slog. gofakes3 logs every request
// at INFO, so those go to DEBUG here.
type slogAdapter struct{ logger *slog.Logger }

func (a slogAdapter) Print(level gofakes3.LogLevel, v ...any) {
	msg := strings.TrimSuffix(fmt.Sprintln(v...), "\n") // gofakes3 expects Println spacing
	switch level {
	case gofakes3.LogErr:
		a.logger.Error(msg, "component", "gofakes3")
	case gofakes3.LogWarn:
		a.logger.Warn(msg, "component", "gofakes3")
	default:
		a.logger.Debug(msg, "component", "gofakes3")
	}
}
