package env

import (
	"context"
	"os"
	"path/filepath"

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
	if err := os.MkdirAll(filepath.Join(dir, "s3"), 0o755); err != nil {
		return nil, err
	}
	logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
	if err != nil {
		return nil, err
	}
	gw, err := versitygw.StartProcess(ctx, versitygw.Options{Binary: bin, Dir: filepath.Join(dir, "s3"), Log: logf, Bucket: opts.Bucket,
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
	return &S3{GW: gw, Store: store, Dir: filepath.Join(dir, "s3"), log: logf}, nil
}

// Config is the bucket's client configuration.
func (s *S3) Config() objstore.S3Config { return s.GW.Config() }

// Stop stops the gateway.
func (s *S3) Stop() {
	_ = s.Store.Close()
	_ = s.GW.Stop()
	_ = s.log.Close()
}
