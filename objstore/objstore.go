// Package objstore is the narrow object-store interface the rest of snapkeep uses,
// with an S3 implementation (aws-sdk-go-v2) and an embedded S3 server for dev mode.
//
// Keys are full object keys within one bucket. Implementations are safe for concurrent
// use. Every method honours its context; a missing object is reported as ErrNotFound
// and a refused request as ErrAccessDenied (test with errors.Is), whatever the
// backend's own error looks like. IsTransient tells the failures worth retrying.
package objstore

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound means the object (or, for Copy, the source) does not exist.
var ErrNotFound = errors.New("object not found")

// ErrPreconditionFailed means a conditional request's condition did not hold: for a
// Put with PutOptions.IfNoneMatch, an object already exists under the key (S3's 412
// PreconditionFailed, or 409 ConditionalRequestConflict when another conditional
// write to the key was in progress). Matched with errors.Is.
var ErrPreconditionFailed = errors.New("precondition failed")

// ErrAccessDenied means the server refused the request for lack of permission
// (S3 AccessDenied, or any other 403 but RequestTimeTooSkewed). Like
// ErrNotFound it is matched with errors.Is; the backend's error stays in the chain.
var ErrAccessDenied = errors.New("access denied")

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

// CopyInfo is what a server-side copy reports in its own response(s), without
// a further request: the destination's ETag and, when the server computed one,
// its full-object CRC-32C. The size is not reported by CopyObject; HEAD the
// destination when it is needed.
type CopyInfo struct {
	ETag string // without quotes; for a multipart copy, the multipart ETag ("…-N")
	// CRC32C is the destination's full-object CRC-32C (Castagnoli) as the server
	// computed it while copying; set only when HasCRC32C. A composite (checksum of
	// part checksums) value is never reported here.
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
	// IfNoneMatch makes the Put a create: it sends If-None-Match: * and fails with
	// ErrPreconditionFailed when an object already exists under the key. A server
	// without conditional writes ignores the header and overwrites (detect that
	// before relying on it: see the repository registration probe).
	IfNoneMatch bool
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
	// Copy copies src to dst server-side in one request (objects up to 5 GiB),
	// asking the server for the copy's CRC-32C. It makes no other request: the
	// result holds what the copy response carried. A missing src is ErrNotFound.
	Copy(ctx context.Context, src, dst string) (CopyInfo, error)
	// MultipartCopy copies the first srcSize bytes of src to dst server-side with
	// UploadPartCopy in parts of partSize bytes (the last one shorter), asking
	// for a full-object CRC-32C where the server can compute one; the upload is
	// aborted on failure. The result holds what the responses carried.
	MultipartCopy(ctx context.Context, src, dst string, srcSize, partSize int64) (CopyInfo, error)
	// List returns up to maxKeys objects whose keys start with prefix, continuing after
	// token (empty for the first page). maxKeys <= 0 means the server's default (1000).
	List(ctx context.Context, prefix, token string, maxKeys int) (ListPage, error)
	// Delete removes up to 1000 keys in one request.
	Delete(ctx context.Context, keys []string) (DeleteResult, error)
	// PutMultipart uploads body (exactly size bytes) under key as one multipart upload
	// of partSize-byte parts (the last one shorter), reading the parts from body in
	// order, one at a time: for objects larger than one Put takes (5 GiB) read from a
	// stream. It holds at most one part in memory. A body of another length, or (with
	// opts.HasCRC32C) whose CRC-32C is not opts.CRC32C, fails the call before the
	// upload completes, and nothing is stored; any failure aborts the upload.
	PutMultipart(ctx context.Context, key string, body io.Reader, size, partSize int64, opts PutOptions) (ObjectInfo, error)
}

// BucketCopier is a Store that can copy server-side from another bucket of the same endpoint.
type BucketCopier interface {
	// CopyingFrom returns a Store on this store's bucket (same client and credentials) whose Copy and MultipartCopy read their source keys from bucket; every other method acts on this store's bucket.
	CopyingFrom(bucket string) Store
}

// MaxDeleteBatch is the most keys one Delete call takes (the S3 DeleteObjects limit).
const MaxDeleteBatch = 1000
