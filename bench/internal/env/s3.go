package env

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"syscall"

	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/objstore/versitygw"
)

// S3 is a running versitygw (posix backend) with its bucket, and a client for it.
// versitygw's posix backend does not fsync on PUT: its figures are an upper bound on
// what real object storage gives.
type S3 struct {
	GW    *versitygw.Process
	Store *objstore.S3
	// Dir is the posix backend's directory: the bucket is Dir/<bucket>, an object the
	// file at its key under it, with its metadata in xattrs.
	Dir string
	log *os.File
}

// S3Options tune StartS3With.
type S3Options struct {
	// Bucket is the bucket created at start (default versitygw.DefaultBucket).
	Bucket string
	// DataDir is the posix backend's directory (default dir/s3): it may be on another
	// filesystem than the log.
	DataDir string
	// CloseConnections runs versitygw as it starts by default, closing every client
	// connection after its response; otherwise it keeps them alive (--keep-alive), as
	// S3 services do.
	CloseConnections bool
}

// StartS3 starts versitygw with its directory and log under dir, keeping connections
// alive.
func StartS3(ctx context.Context, dir string) (*S3, error) {
	return StartS3With(ctx, dir, S3Options{})
}

// StartS3With starts versitygw with its directory and log under dir, with the root
// account's fixed keys (versitygw.AccessKey and SecretKey: every gateway the
// benchmark starts takes the same ones).
func StartS3With(ctx context.Context, dir string, opts S3Options) (*S3, error) {
	bin, err := Bin("versitygw")
	if err != nil {
		return nil, err
	}
	data := opts.DataDir
	if data == "" {
		data = filepath.Join(dir, "s3")
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(data, 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		return nil, err
	}
	gw, err := versitygw.StartProcess(ctx, versitygw.Options{Binary: bin, Dir: data, Log: logf, Bucket: opts.Bucket,
		KeepAlive: !opts.CloseConnections})
	if err != nil {
		_ = logf.Close()
		return nil, err
	}
	store, err := objstore.NewS3(ctx, gw.Config())
	if err != nil {
		_ = gw.Stop()
		_ = logf.Close()
		return nil, err
	}
	return &S3{GW: gw, Store: store, Dir: data, log: logf}, nil
}

// Config is the bucket's client configuration.
func (s *S3) Config() objstore.S3Config { return s.GW.Config() }

// Stop stops the gateway.
func (s *S3) Stop() {
	_ = s.Store.Close()
	_ = s.GW.Stop()
	_ = s.log.Close()
}

// MemoryFSFree is the free bytes of dir if it is a tmpfs, else 0.
func MemoryFSFree(dir string) int64 {
	var st syscall.Statfs_t
	if err := syscall.Statfs(dir, &st); err != nil || st.Type != tmpfsMagic {
		return 0
	}
	return int64(st.Bavail) * st.Bsize
}

// tmpfsMagic is TMPFS_MAGIC of statfs(2).
const tmpfsMagic = 0x01021994

// MemAvailable is the machine's MemAvailable from /proc/meminfo in bytes, 0 if unknown.
func MemAvailable() int64 {
	b, err := os.ReadFile("/proc/meminfo")
	if err != nil {
		return 0
	}
	for line := range strings.SplitSeq(string(b), "\n") {
		if rest, ok := strings.CutPrefix(line, "MemAvailable:"); ok {
			var kib int64
			if _, err := fmt.Sscan(strings.TrimSuffix(strings.TrimSpace(rest), " kB"), &kib); err == nil {
				return kib << 10
			}
		}
	}
	return 0
}
