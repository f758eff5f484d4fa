// Package objstore is the narrow object-store interface the rest of snapkeep uses,
// with an S3 implementation (aws-sdk-go-v2) and an embedded S3 server for dev mode.
//
// Keys are full object keys within one bucket. Implementations are safe for concurrent
// use. Every method honours its context; a missing object is reported as ErrNotFound
// (test with errors.Is), whatever the backend's own error looks like.
package objstore

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound means the object (or, for Copy, the source) does not exist.
var ErrNotFound = errors.New("object not found")

// ObjectInfo describes one stored object.
type ObjectInfo struct {
	Key          string
	Size         int64
	ETag         string // as the server returned it, without quotes
	LastModified time.Time
	// CRC32C is the object's CRC-32C when the server reported one (HasCRC32C).
	CRC32C    uint32
	HasCRC32C bool
}

// PutOptions tune Put.
type PutOptions struct {
	// CRC32C, when HasCRC32C is set, is sent with the upload and checked by servers that
	// support S3 checksums, so a corrupted upload is refused rather than stored.
	CRC32C    uint32
	HasCRC32C bool
	// ContentType defaults to application/octet-stream.
	ContentType string
}

// ListPage is one page of a listing, in lexical key order.
type ListPage struct {
	Objects []ObjectInfo
	// NextToken continues the listing; empty on the last page.
	NextToken string
}

// DeleteResult reports a batch delete. A key that did not exist counts as deleted.
type DeleteResult struct {
	Deleted []string
	// Failed maps a key to why it could not be deleted; retry those later.
	Failed map[string]error
}

// Store is the object-store interface. See the package comment for the contract.
type Store interface {
	// Put uploads body (exactly size bytes) under key, replacing any object there.
	// A body of another length fails the call and stores nothing. The result's
	// LastModified may be zero (S3 does not report it on upload); use Head.
	Put(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) (ObjectInfo, error)
	// Get opens the whole object. The caller closes the reader.
	Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error)
	// GetRange opens length bytes from offset (length < 0: to the end). A range
	// running past the end is cut short there; an offset at or past the end of a
	// non-empty object is an error other than ErrNotFound. An empty object reads
	// as empty from offset 0.
	GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error)
	// Head returns the object's metadata.
	Head(ctx context.Context, key string) (ObjectInfo, error)
	// Copy copies src to dst server-side in one request (objects up to 5 GiB).
	Copy(ctx context.Context, src, dst string) (ObjectInfo, error)
	// MultipartCopy copies src (of srcSize bytes) to dst server-side with
	// UploadPartCopy in parts of partSize bytes; the upload is aborted on failure.
	MultipartCopy(ctx context.Context, src, dst string, srcSize, partSize int64) (ObjectInfo, error)
	// List returns up to maxKeys objects whose keys start with prefix, continuing after
	// token (empty for the first page). maxKeys <= 0 means the server's default (1000).
	List(ctx context.Context, prefix, token string, maxKeys int) (ListPage, error)
	// Delete removes up to 1000 keys in one request.
	Delete(ctx context.Context, keys []string) (DeleteResult, error)
}

// MaxDeleteBatch is the most keys one Delete call takes (the S3 DeleteObjects limit).
const MaxDeleteBatch = 1000
