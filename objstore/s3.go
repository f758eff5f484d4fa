package objstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// DefaultRegion is used when S3Config.Region is empty.
const DefaultRegion = "us-east-1"

// multipartCopyConcurrency bounds the UploadPartCopy requests in flight for one
// MultipartCopy: enough to overlap server-side copies without flooding the server.
const multipartCopyConcurrency = 4

// maxMultipartParts is the S3 limit on parts in one multipart upload.
const maxMultipartParts = 10000

// maxListKeys is the most keys S3 returns in one ListObjectsV2 page.
const maxListKeys = 1000

// S3Config locates a bucket on an S3-compatible server.
type S3Config struct {
	// Endpoint overrides the AWS endpoint, e.g. "http://127.0.0.1:7070". Empty: AWS S3.
	Endpoint string
	// Region defaults to DefaultRegion.
	Region string
	Bucket string
	// PathStyle addresses the bucket as http://host/bucket/key, which most
	// S3-compatible servers (and loopback endpoints) need.
	PathStyle bool
	// AccessKey and SecretKey (and optionally SessionToken) select static
	// credentials; without AccessKey the default AWS credential chain is used.
	AccessKey    string
	SecretKey    string
	SessionToken string
	// RetryMaxAttempts is how many times the SDK tries one request (its own
	// retries of throttling, 5xx and connection errors); 0 keeps the SDK's
	// default (3), 1 disables its retries.
	RetryMaxAttempts int
}

// S3 is a Store backed by one bucket of an S3-compatible server.
type S3 struct {
	client     *s3.Client
	httpClient *http.Client
	bucket     string
	region     string
	// srcBucket is where Copy and MultipartCopy read their sources: bucket,
	// unless this store came from CopyingFrom.
	srcBucket string
	// noMultipartChecksum is set once the server has shown that its multipart
	// part checksums cannot be trusted (see MultipartCopy). Shared with the
	// stores CopyingFrom makes: it is the server's fault, not the bucket's.
	noMultipartChecksum *atomic.Bool
}

var (
	_ Store        = (*S3)(nil)
	_ BucketCopier = (*S3)(nil)
)

// NewS3 returns a Store for cfg.Bucket. It makes no request: a wrong endpoint or
// missing bucket shows up on first use.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	if cfg.Bucket == "" {
		return nil, errors.New("objstore: S3Config.Bucket is empty")
	}
	region := cfg.Region
	if region == "" {
		region = DefaultRegion
	}
	loadOpts := []func(*config.LoadOptions) error{
		config.WithRegion(region),
		config.WithHTTPClient(tunedHTTPClient()),
	}
	if cfg.AccessKey != "" {
		loadOpts = append(loadOpts, config.WithCredentialsProvider(
			credentials.NewStaticCredentialsProvider(cfg.AccessKey, cfg.SecretKey, cfg.SessionToken)))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, loadOpts...)
	if err != nil {
		return nil, fmt.Errorf("objstore: load AWS config: %w", err)
	}
	httpClient := newHTTPClient(awsCfg.HTTPClient)
	awsCfg.HTTPClient = httpClient
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if cfg.Endpoint != "" {
			o.BaseEndpoint = aws.String(cfg.Endpoint)
		}
		o.UsePathStyle = cfg.PathStyle
		if cfg.RetryMaxAttempts > 0 {
			o.RetryMaxAttempts = cfg.RetryMaxAttempts
		}
		// The SDK's default (WhenSupported) adds CRC32 trailers with aws-chunked
		// encoding to every upload and validates every download; many
		// S3-compatible servers reject or mangle that. We send a checksum only
		// when the caller supplies one (PutOptions.CRC32C) or the API requires it.
		o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
		o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
	})
	return &S3{
		client:              client,
		httpClient:          httpClient,
		bucket:              cfg.Bucket,
		region:              region,
		srcBucket:           cfg.Bucket,
		noMultipartChecksum: new(atomic.Bool),
	}, nil
}

// CopyingFrom returns a Store on this store's bucket, with the same client, whose
// Copy and MultipartCopy read their sources from bucket (x-amz-copy-source names
// it): a server-side copy between two buckets of one endpoint, which needs
// credentials that may read bucket and write this one. Every other method acts on
// this store's bucket. The result is an *S3 sharing this one's connections, so
// Close on either releases both's idle connections.
func (s *S3) CopyingFrom(bucket string) Store {
	return &S3{
		client:              s.client,
		httpClient:          s.httpClient,
		bucket:              s.bucket,
		region:              s.region,
		srcBucket:           bucket,
		noMultipartChecksum: s.noMultipartChecksum,
	}
}

// tunedHTTPClient is the starting point for the SDK's HTTP client. Its
// transport keeps many idle connections per host: snapkeep sends many
// concurrent requests to one endpoint, and the SDK's default of 10 idle
// connections per host would make most of them reconnect. It is a
// BuildableClient so that loading the config can still add AWS_CA_BUNDLE's roots.
func tunedHTTPClient() *awshttp.BuildableClient {
	return awshttp.NewBuildableClient().WithTransportOptions(func(tr *http.Transport) {
		tr.MaxIdleConns = 1024
		tr.MaxIdleConnsPerHost = 256
		tr.IdleConnTimeout = 90 * time.Second
	})
}

// newHTTPClient turns the loaded config's client into a plain *http.Client
// over the same transport. The SDK's own client wraps its transport in a type
// without CloseIdleConnections, so Close could not release connections.
func newHTTPClient(loaded aws.HTTPClient) *http.Client {
	var transport *http.Transport
	if buildable, ok := loaded.(*awshttp.BuildableClient); ok {
		transport = buildable.GetTransport()
	} else {
		transport = tunedHTTPClient().GetTransport()
	}
	return &http.Client{
		Transport: transport,
		// Like the SDK: follow only redirects that keep the method and body
		// (307, 308); hand the others back as responses for the SDK to report.
		CheckRedirect: func(req *http.Request, via []*http.Request) error {
			code := req.Response.StatusCode
			if (code == http.StatusTemporaryRedirect || code == http.StatusPermanentRedirect) && len(via) < 10 {
				return nil
			}
			return http.ErrUseLastResponse
		},
	}
}

// Bucket is the bucket this store reads and writes.
func (s *S3) Bucket() string { return s.bucket }

// SourceBucket is where Copy and MultipartCopy read their sources: Bucket, unless
// the store came from CopyingFrom.
func (s *S3) SourceBucket() string { return s.srcBucket }

// Close releases idle connections. The store stays usable (new requests dial
// again); call it when done so no connection goroutines linger.
func (s *S3) Close() error {
	s.httpClient.CloseIdleConnections()
	return nil
}

// CreateBucket creates the bucket; an existing bucket is not an error.
func (s *S3) CreateBucket(ctx context.Context) error {
	in := &s3.CreateBucketInput{Bucket: aws.String(s.bucket)}
	if s.region != DefaultRegion {
		// Only us-east-1 may (and must) omit the location.
		in.CreateBucketConfiguration = &types.CreateBucketConfiguration{
			LocationConstraint: types.BucketLocationConstraint(s.region),
		}
	}
	_, err := s.client.CreateBucket(ctx, in)
	if err == nil {
		return nil
	}
	var owned *types.BucketAlreadyOwnedByYou
	var exists *types.BucketAlreadyExists
	if errors.As(err, &owned) || errors.As(err, &exists) {
		return nil
	}
	if code := apiErrorCode(err); code == "BucketAlreadyOwnedByYou" || code == "BucketAlreadyExists" {
		return nil
	}
	return fmt.Errorf("create bucket %q: %w", s.bucket, err)
}

// Put uploads body. A body that is not an io.ReadSeeker is sent with an unsigned
// payload (the SDK cannot hash it without reading it twice) and cannot be
// retried by the SDK. The returned ObjectInfo has Key, Size, ETag and, when the
// server echoes one, CRC32C; LastModified is left zero (PutObject does not
// report it; use Head).
func (s *S3) Put(ctx context.Context, key string, body io.Reader, size int64, opts PutOptions) (ObjectInfo, error) {
	if size < 0 {
		return ObjectInfo{}, fmt.Errorf("put %q: negative size %d", key, size)
	}
	if body == nil {
		if size != 0 {
			return ObjectInfo{}, fmt.Errorf("put %q: nil body with size %d", key, size)
		}
		body = bytes.NewReader(nil)
	}
	contentType := opts.ContentType
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	in := &s3.PutObjectInput{
		Bucket:        aws.String(s.bucket),
		Key:           aws.String(key),
		Body:          body,
		ContentLength: aws.Int64(size),
		ContentType:   aws.String(contentType),
	}
	if opts.HasCRC32C {
		in.ChecksumCRC32C = aws.String(encodeCRC32C(opts.CRC32C))
	}
	if opts.IfNoneMatch {
		in.IfNoneMatch = aws.String("*")
	}
	var optFns []func(*s3.Options)
	if seeker, ok := body.(io.ReadSeeker); ok {
		// The transport sends size bytes and only then notices extra ones, when
		// the server has already stored a truncated object: check up front.
		remaining, err := remainingBytes(seeker)
		if err != nil {
			return ObjectInfo{}, fmt.Errorf("put %q: %w", key, err)
		}
		if remaining != size {
			return ObjectInfo{}, fmt.Errorf("put %q: body has %d bytes, size says %d", key, remaining, size)
		}
	} else {
		in.Body = &exactReader{r: body, remaining: size}
		// Signing the payload needs a SHA-256 of the body before sending it,
		// which means rewinding; a plain reader can only be read once.
		optFns = append(optFns, s3.WithAPIOptions(v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware))
	}
	out, err := s.client.PutObject(ctx, in, optFns...)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("put %q: %w", key, mapError(err, false))
	}
	info := ObjectInfo{Key: key, Size: size, ETag: trimETag(out.ETag)}
	info.CRC32C, info.HasCRC32C = decodeCRC32C(out.ChecksumCRC32C, out.ChecksumType)
	return info, nil
}

// castagnoli is the CRC-32C table.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// PutMultipart uploads exactly size bytes of body under key as one multipart
// upload of partSize-byte parts (the last one shorter): for objects larger than
// PutObject takes (5 GiB), read from a stream. An empty body is one Put.
//
// Memory: the parts are read from body in order, one at a time, into one buffer
// of min(partSize, size) bytes, and uploaded from it (one UploadPart in flight);
// that buffer is all it holds. From a buffer, each part is signed and can be
// retried by the SDK, and goes out with its CRC-32C, which a server with
// checksum support verifies.
//
// The upload is created with a FULL_OBJECT CRC-32C. The body's CRC-32C is
// computed while reading; with opts.HasCRC32C it must equal opts.CRC32C, checked
// before the upload is completed, so a body that does not match is never stored
// whatever the server checks, and it is also sent with CompleteMultipartUpload
// for the server to check against the parts. A body of another length fails the
// same way. Any failure aborts the upload. opts.IfNoneMatch is sent with
// CompleteMultipartUpload (ignored by servers without conditional writes, like
// Put). The result has Key, Size, ETag and the full-object CRC-32C when the server
// returned one.
func (s *S3) PutMultipart(ctx context.Context, key string, body io.Reader, size, partSize int64, opts PutOptions) (ObjectInfo, error) {
	if size < 0 || partSize <= 0 {
		return ObjectInfo{}, fmt.Errorf("multipart put %q: invalid size %d or part size %d", key, size, partSize)
	}
	if body == nil {
		body = bytes.NewReader(nil)
	}
	exact := &exactReader{r: body, remaining: size}
	if size == 0 {
		// An upload of no parts cannot be completed: a plain Put, once the body is
		// known to be empty (a zero-length request body may never be read).
		if err := exact.checkEOF(); err != io.EOF {
			return ObjectInfo{}, fmt.Errorf("multipart put %q: %w", key, err)
		}
		if opts.HasCRC32C && opts.CRC32C != 0 {
			return ObjectInfo{}, fmt.Errorf("multipart put %q: %w", key, bodyChecksumError{want: opts.CRC32C})
		}
		return s.Put(ctx, key, bytes.NewReader(nil), 0, opts)
	}
	partCount := (size + partSize - 1) / partSize
	if partCount > maxMultipartParts {
		return ObjectInfo{}, fmt.Errorf("multipart put %q: %d parts of %d bytes exceed the limit of %d parts",
			key, partCount, partSize, maxMultipartParts)
	}
	contentType := opts.ContentType
	if contentType == "" {
		contentType = "application/octet-stream"
	}
	created, err := s.client.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(key),
		ContentType:       aws.String(contentType),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
		ChecksumType:      types.ChecksumTypeFullObject,
	})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("multipart put %q: create upload: %w", key, mapError(err, false))
	}
	uploadID := created.UploadId
	out, err := s.putParts(ctx, key, uploadID, exact, size, partSize, int(partCount), opts)
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("multipart put %q: %w", key, s.abortUpload(ctx, key, uploadID, err))
	}
	info := ObjectInfo{Key: key, Size: size, ETag: trimETag(out.ETag)}
	info.CRC32C, info.HasCRC32C = decodeCRC32C(out.ChecksumCRC32C, out.ChecksumType)
	return info, nil
}

// putParts reads and uploads the parts of a PutMultipart, checks the body's
// CRC-32C, and completes the upload.
func (s *S3) putParts(ctx context.Context, key string, uploadID *string, body io.Reader, size, partSize int64, partCount int, opts PutOptions) (*s3.CompleteMultipartUploadOutput, error) {
	buf := make([]byte, min(partSize, size))
	parts := make([]types.CompletedPart, 0, partCount)
	var crc uint32
	for i := range partCount {
		part := buf[:min(partSize, size-int64(i)*partSize)]
		partNumber := int32(i + 1)
		if _, err := io.ReadFull(body, part); err != nil {
			return nil, fmt.Errorf("read part %d: %w", partNumber, err)
		}
		crc = crc32.Update(crc, castagnoli, part)
		partCRC := aws.String(encodeCRC32C(crc32.Checksum(part, castagnoli)))
		out, err := s.client.UploadPart(ctx, &s3.UploadPartInput{
			Bucket:         aws.String(s.bucket),
			Key:            aws.String(key),
			UploadId:       uploadID,
			PartNumber:     aws.Int32(partNumber),
			Body:           bytes.NewReader(part),
			ContentLength:  aws.Int64(int64(len(part))),
			ChecksumCRC32C: partCRC,
		})
		if err != nil {
			return nil, fmt.Errorf("part %d: %w", partNumber, mapError(err, false))
		}
		parts = append(parts, types.CompletedPart{PartNumber: aws.Int32(partNumber), ETag: out.ETag, ChecksumCRC32C: partCRC})
	}
	if opts.HasCRC32C && crc != opts.CRC32C {
		return nil, bodyChecksumError{want: opts.CRC32C, got: crc}
	}
	completeIn := &s3.CompleteMultipartUploadInput{
		Bucket:          aws.String(s.bucket),
		Key:             aws.String(key),
		UploadId:        uploadID,
		MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
		MpuObjectSize:   aws.Int64(size),
		ChecksumType:    types.ChecksumTypeFullObject,
	}
	if opts.HasCRC32C {
		completeIn.ChecksumCRC32C = aws.String(encodeCRC32C(opts.CRC32C))
	}
	if opts.IfNoneMatch {
		completeIn.IfNoneMatch = aws.String("*")
	}
	out, err := s.client.CompleteMultipartUpload(ctx, completeIn)
	if err != nil {
		return nil, fmt.Errorf("complete upload: %w", mapError(err, false))
	}
	return out, nil
}

// bodyChecksumError reports a PutMultipart body whose CRC-32C is not the declared
// one: the caller's data, never transient.
type bodyChecksumError struct{ want, got uint32 }

func (e bodyChecksumError) Error() string {
	return fmt.Sprintf("body's CRC-32C %08x is not the declared %08x", e.got, e.want)
}
func (bodyChecksumError) permanentLocal() {}

// remainingBytes is how many bytes r holds from its current position.
func remainingBytes(r io.Seeker) (int64, error) {
	cur, err := r.Seek(0, io.SeekCurrent)
	if err != nil {
		return 0, fmt.Errorf("seek body: %w", err)
	}
	end, err := r.Seek(0, io.SeekEnd)
	if err != nil {
		return 0, fmt.Errorf("seek body: %w", err)
	}
	if _, err := r.Seek(cur, io.SeekStart); err != nil {
		return 0, fmt.Errorf("seek body: %w", err)
	}
	return end - cur, nil
}

// errBodyTooLong reports a Put body with more bytes than its declared size.
var errBodyTooLong error = bodyLongError{}

// bodyLongError and bodyShortError report a Put body whose length is not the
// declared size: the caller's mistake, never transient (the transport hands
// them back inside network-looking errors).
type bodyLongError struct{}

func (bodyLongError) Error() string   { return "body is longer than the declared size" }
func (bodyLongError) permanentLocal() {}

type bodyShortError struct{ remaining int64 }

func (e bodyShortError) Error() string {
	return fmt.Sprintf("body ended %d bytes short of the declared size", e.remaining)
}
func (bodyShortError) permanentLocal() {}

// exactReader passes on exactly remaining bytes of r and fails unless r ends
// right there. It withholds the final bytes until it has seen r's EOF, so a
// body of the wrong length aborts the request before the server has all of
// it, instead of storing a truncated object.
type exactReader struct {
	r         io.Reader
	remaining int64
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.remaining == 0 {
		return 0, e.checkEOF()
	}
	if int64(len(p)) > e.remaining {
		p = p[:e.remaining]
	}
	n, err := e.r.Read(p)
	e.remaining -= int64(n)
	if e.remaining == 0 {
		if eofErr := e.checkEOF(); eofErr != io.EOF {
			return 0, eofErr
		}
		return n, nil
	}
	if err == io.EOF {
		return n, bodyShortError{remaining: e.remaining}
	}
	return n, err
}

// checkEOF returns io.EOF if r has nothing more, else an error.
func (e *exactReader) checkEOF() error {
	var one [1]byte
	for range 100 { // a reader may return (0, nil) a few times; not forever
		n, err := e.r.Read(one[:])
		if n > 0 {
			return errBodyTooLong
		}
		if err == io.EOF {
			return io.EOF
		}
		if err != nil {
			return err
		}
	}
	return io.ErrNoProgress
}

// Get opens the whole object.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, ObjectInfo, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(key),
	})
	if err != nil {
		return nil, ObjectInfo{}, fmt.Errorf("get %q: %w", key, mapError(err, false))
	}
	info := ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         trimETag(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
	}
	info.CRC32C, info.HasCRC32C = decodeCRC32C(out.ChecksumCRC32C, out.ChecksumType)
	return out.Body, info, nil
}

// GetRange opens length bytes from offset; length < 0 reads to the end. As in
// S3, a range reaching past the end is cut short at the end, and an offset at
// or past the end of a non-empty object is an error (InvalidRange). Reading an
// empty object from offset 0, or any length 0 range, gives an empty reader once
// the object is known to exist.
func (s *S3) GetRange(ctx context.Context, key string, offset, length int64) (io.ReadCloser, error) {
	if offset < 0 {
		return nil, fmt.Errorf("get range %q: negative offset %d", key, offset)
	}
	if length == 0 {
		if _, err := s.Head(ctx, key); err != nil {
			return nil, fmt.Errorf("get range %q: %w", key, err)
		}
		return io.NopCloser(bytes.NewReader(nil)), nil
	}
	rangeHeader := fmt.Sprintf("bytes=%d-", offset)
	if length > 0 {
		rangeHeader = fmt.Sprintf("bytes=%d-%d", offset, offset+length-1)
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(key),
		Range:  aws.String(rangeHeader),
	})
	if err != nil {
		if offset == 0 && isInvalidRange(err) {
			// S3 refuses every range of an empty object, even "bytes=0-".
			if info, headErr := s.Head(ctx, key); headErr == nil && info.Size == 0 {
				return io.NopCloser(bytes.NewReader(nil)), nil
			}
		}
		return nil, fmt.Errorf("get range %q %s: %w", key, rangeHeader, mapError(err, false))
	}
	// A server that ignores Range answers 200 with the whole object; hand that
	// back and the caller reads the wrong bytes.
	if start, ok := contentRangeStart(aws.ToString(out.ContentRange)); !ok || start != offset {
		_ = out.Body.Close()
		return nil, fmt.Errorf("get range %q %s: server answered with Content-Range %q",
			key, rangeHeader, aws.ToString(out.ContentRange))
	}
	return out.Body, nil
}

func isInvalidRange(err error) bool {
	var respErr *smithyhttp.ResponseError
	return apiErrorCode(err) == "InvalidRange" ||
		errors.As(err, &respErr) && respErr.HTTPStatusCode() == http.StatusRequestedRangeNotSatisfiable
}

// contentRangeStart parses the first byte position of "bytes a-b/total".
func contentRangeStart(contentRange string) (int64, bool) {
	rest, ok := strings.CutPrefix(contentRange, "bytes ")
	if !ok {
		return 0, false
	}
	first, _, ok := strings.Cut(rest, "-")
	if !ok {
		return 0, false
	}
	start, err := strconv.ParseInt(first, 10, 64)
	return start, err == nil
}

// Head returns the object's metadata, including its CRC32C when the server
// stores full-object checksums.
func (s *S3) Head(ctx context.Context, key string) (ObjectInfo, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{
		Bucket:       aws.String(s.bucket),
		Key:          aws.String(key),
		ChecksumMode: types.ChecksumModeEnabled,
	})
	if err != nil {
		return ObjectInfo{}, fmt.Errorf("head %q: %w", key, mapError(err, true))
	}
	info := ObjectInfo{
		Key:          key,
		Size:         aws.ToInt64(out.ContentLength),
		ETag:         trimETag(out.ETag),
		LastModified: aws.ToTime(out.LastModified),
	}
	info.CRC32C, info.HasCRC32C = decodeCRC32C(out.ChecksumCRC32C, out.ChecksumType)
	return info, nil
}

// Copy copies src to dst with one CopyObject request, asking the server to
// compute the destination's CRC-32C (x-amz-checksum-algorithm: CRC32C), and
// returns what the response carries: the ETag and, from a server with checksum
// support, the CRC-32C of the bytes it wrote. No HEAD follows.
func (s *S3) Copy(ctx context.Context, src, dst string) (CopyInfo, error) {
	out, err := s.client.CopyObject(ctx, &s3.CopyObjectInput{
		Bucket:            aws.String(s.bucket),
		Key:               aws.String(dst),
		CopySource:        aws.String(s.copySource(src)),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32c,
	})
	if err != nil {
		return CopyInfo{}, fmt.Errorf("copy %q to %q: %w", src, dst, mapError(err, false))
	}
	var info CopyInfo
	if r := out.CopyObjectResult; r != nil {
		info.ETag = trimETag(r.ETag)
		info.CRC32C, info.HasCRC32C = decodeCRC32C(r.ChecksumCRC32C, r.ChecksumType)
	}
	return info, nil
}

// MultipartCopy copies the first srcSize bytes of src to dst with
// UploadPartCopy, at most multipartCopyConcurrency parts at a time, and aborts
// the upload on any failure. An empty source is copied with CopyObject (an
// empty byte range is not expressible).
//
// The upload asks for a full-object CRC-32C (CreateMultipartUpload with
// ChecksumAlgorithm CRC32C and ChecksumType FULL_OBJECT; every part's CRC-32C
// handed back on completion), which the server combines from the parts' CRCs
// and returns. Part checksums that cannot be right — missing, or every part of
// a multi-part copy reporting the same value, which is what versitygw v1.8 does
// when the source already has a CRC-32C (it reports the source's whole-object
// checksum for each range) — would leave a wrong checksum stored on the
// object: the upload is then aborted and redone without checksums, and the
// result has HasCRC32C false. A definite fault (a value repeated over parts
// of different lengths, or a missing one) turns checksums off for this store's
// later multipart copies, so the redo is paid once.
func (s *S3) MultipartCopy(ctx context.Context, src, dst string, srcSize, partSize int64) (CopyInfo, error) {
	if srcSize < 0 || partSize <= 0 {
		return CopyInfo{}, fmt.Errorf("multipart copy %q to %q: invalid size %d or part size %d", src, dst, srcSize, partSize)
	}
	if srcSize == 0 {
		return s.Copy(ctx, src, dst)
	}
	partCount := (srcSize + partSize - 1) / partSize
	if partCount > maxMultipartParts {
		return CopyInfo{}, fmt.Errorf("multipart copy %q to %q: %d parts of %d bytes exceed the limit of %d parts",
			src, dst, partCount, partSize, maxMultipartParts)
	}
	withChecksum := !s.noMultipartChecksum.Load()
	info, err := s.multipartCopy(ctx, src, dst, srcSize, partSize, int(partCount), withChecksum)
	if errors.Is(err, errUntrustedPartChecksums) {
		info, err = s.multipartCopy(ctx, src, dst, srcSize, partSize, int(partCount), false)
	}
	if err != nil {
		return CopyInfo{}, fmt.Errorf("multipart copy %q to %q: %w", src, dst, err)
	}
	return info, nil
}

// abortUpload aborts a multipart upload that failed with err and returns err,
// joined with the abort's own failure if any. It aborts even when ctx is done,
// with a budget of its own, or the parts linger (and are billed) on the server.
func (s *S3) abortUpload(ctx context.Context, key string, uploadID *string, err error) error {
	abortCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if _, abortErr := s.client.AbortMultipartUpload(abortCtx, &s3.AbortMultipartUploadInput{
		Bucket:   aws.String(s.bucket),
		Key:      aws.String(key),
		UploadId: uploadID,
	}); abortErr != nil {
		err = errors.Join(err, fmt.Errorf("abort upload %s: %w", aws.ToString(uploadID), abortErr))
	}
	return err
}

// errUntrustedPartChecksums aborts a checksummed multipart copy whose part
// checksums cannot be right, so that it is redone without.
var errUntrustedPartChecksums = errors.New("the server's part checksums cannot be right")

func (s *S3) multipartCopy(ctx context.Context, src, dst string, srcSize, partSize int64, partCount int, withChecksum bool) (CopyInfo, error) {
	createIn := &s3.CreateMultipartUploadInput{
		Bucket: aws.String(s.bucket),
		Key:    aws.String(dst),
	}
	if withChecksum {
		createIn.ChecksumAlgorithm = types.ChecksumAlgorithmCrc32c
		createIn.ChecksumType = types.ChecksumTypeFullObject
	}
	created, err := s.client.CreateMultipartUpload(ctx, createIn)
	if err != nil {
		return CopyInfo{}, fmt.Errorf("create upload: %w", mapError(err, false))
	}
	uploadID := created.UploadId

	var out *s3.CompleteMultipartUploadOutput
	parts, err := s.copyParts(ctx, src, dst, uploadID, srcSize, partSize, partCount)
	if err == nil && withChecksum {
		err = s.checkPartChecksums(parts, srcSize, partSize)
	}
	if err == nil {
		completeIn := &s3.CompleteMultipartUploadInput{
			Bucket:          aws.String(s.bucket),
			Key:             aws.String(dst),
			UploadId:        uploadID,
			MultipartUpload: &types.CompletedMultipartUpload{Parts: parts},
			MpuObjectSize:   aws.Int64(srcSize),
		}
		if withChecksum {
			completeIn.ChecksumType = types.ChecksumTypeFullObject
		}
		out, err = s.client.CompleteMultipartUpload(ctx, completeIn)
		if err != nil {
			err = fmt.Errorf("complete upload: %w", mapError(err, false))
		}
	}
	if err != nil {
		return CopyInfo{}, s.abortUpload(ctx, dst, uploadID, err)
	}
	info := CopyInfo{ETag: trimETag(out.ETag)}
	if withChecksum {
		info.CRC32C, info.HasCRC32C = decodeCRC32C(out.ChecksumCRC32C, out.ChecksumType)
	}
	return info, nil
}

// checkPartChecksums refuses part checksums that cannot be the parts' own
// (see MultipartCopy), turning checksummed multipart copies off for this store
// when the fault is certain.
func (s *S3) checkPartChecksums(parts []types.CompletedPart, srcSize, partSize int64) error {
	for _, p := range parts {
		if aws.ToString(p.ChecksumCRC32C) == "" {
			s.noMultipartChecksum.Store(true)
			return fmt.Errorf("part %d has no CRC-32C: %w", aws.ToInt32(p.PartNumber), errUntrustedPartChecksums)
		}
	}
	if len(parts) < 2 {
		return nil
	}
	first := aws.ToString(parts[0].ChecksumCRC32C)
	for _, p := range parts[1:] {
		if aws.ToString(p.ChecksumCRC32C) != first {
			return nil
		}
	}
	// Every part reports the same CRC. Parts of equal length and content may
	// legitimately do that; over parts of different lengths it is the
	// server's fault (short of a 1 in 2^32 coincidence).
	if srcSize%partSize != 0 {
		s.noMultipartChecksum.Store(true)
	}
	return fmt.Errorf("all %d parts report CRC-32C %s: %w", len(parts), first, errUntrustedPartChecksums)
}

// copyParts runs the UploadPartCopy requests with bounded concurrency and
// returns the completed parts in order. The first failure cancels the rest.
func (s *S3) copyParts(ctx context.Context, src, dst string, uploadID *string, srcSize, partSize int64, partCount int) ([]types.CompletedPart, error) {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	parts := make([]types.CompletedPart, partCount)
	copySource := s.copySource(src)
	sem := make(chan struct{}, multipartCopyConcurrency)
	var wg sync.WaitGroup
	for i := range partCount {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
		}
		if ctx.Err() != nil {
			break
		}
		wg.Go(func() {
			defer func() { <-sem }()
			first := int64(i) * partSize
			last := min(first+partSize, srcSize) - 1
			partNumber := int32(i + 1)
			out, err := s.client.UploadPartCopy(ctx, &s3.UploadPartCopyInput{
				Bucket:          aws.String(s.bucket),
				Key:             aws.String(dst),
				UploadId:        uploadID,
				PartNumber:      aws.Int32(partNumber),
				CopySource:      aws.String(copySource),
				CopySourceRange: aws.String(fmt.Sprintf("bytes=%d-%d", first, last)),
			})
			if err != nil {
				cancel(fmt.Errorf("part %d: %w", partNumber, mapError(err, false)))
				return
			}
			part := types.CompletedPart{PartNumber: aws.Int32(partNumber)}
			if r := out.CopyPartResult; r != nil {
				part.ETag = r.ETag
				part.ChecksumCRC32C = r.ChecksumCRC32C
			}
			parts[i] = part
		})
	}
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return nil, err
	}
	return parts, nil
}

// copySource is the x-amz-copy-source value for key: "bucket/key" (the source
// bucket: see CopyingFrom), URL-encoded except for "/". "+" must be encoded too,
// or servers decode it as a space.
func (s *S3) copySource(key string) string {
	return uriEncode(s.srcBucket + "/" + key)
}

// uriEncode percent-encodes everything but RFC 3986 unreserved characters and "/".
func uriEncode(path string) string {
	const hex = "0123456789ABCDEF"
	var b strings.Builder
	b.Grow(len(path))
	for i := 0; i < len(path); i++ {
		c := path[i]
		switch {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9',
			c == '-', c == '_', c == '.', c == '~', c == '/':
			b.WriteByte(c)
		default:
			b.WriteByte('%')
			b.WriteByte(hex[c>>4])
			b.WriteByte(hex[c&15])
		}
	}
	return b.String()
}

// List returns one page of keys under prefix, in lexical order.
func (s *S3) List(ctx context.Context, prefix, token string, maxKeys int) (ListPage, error) {
	in := &s3.ListObjectsV2Input{
		Bucket: aws.String(s.bucket),
		Prefix: aws.String(prefix),
	}
	if token != "" {
		in.ContinuationToken = aws.String(token)
	}
	if maxKeys > 0 {
		in.MaxKeys = aws.Int32(int32(min(maxKeys, maxListKeys)))
	}
	out, err := s.client.ListObjectsV2(ctx, in)
	if err != nil {
		return ListPage{}, fmt.Errorf("list %q: %w", prefix, mapError(err, false))
	}
	page := ListPage{Objects: make([]ObjectInfo, 0, len(out.Contents))}
	for _, obj := range out.Contents {
		page.Objects = append(page.Objects, ObjectInfo{
			Key:          aws.ToString(obj.Key),
			Size:         aws.ToInt64(obj.Size),
			ETag:         trimETag(obj.ETag),
			LastModified: aws.ToTime(obj.LastModified),
		})
	}
	if aws.ToBool(out.IsTruncated) {
		page.NextToken = aws.ToString(out.NextContinuationToken)
		if page.NextToken == "" {
			return ListPage{}, fmt.Errorf("list %q: truncated listing without a continuation token", prefix)
		}
	}
	return page, nil
}

// Delete removes keys with one DeleteObjects request. A key the server reports
// as missing counts as deleted; other per-key errors land in Failed.
func (s *S3) Delete(ctx context.Context, keys []string) (DeleteResult, error) {
	result := DeleteResult{Failed: map[string]error{}}
	if len(keys) == 0 {
		return result, nil
	}
	if len(keys) > MaxDeleteBatch {
		return DeleteResult{}, fmt.Errorf("delete: %d keys exceed the batch limit of %d", len(keys), MaxDeleteBatch)
	}
	ids := make([]types.ObjectIdentifier, len(keys))
	for i, key := range keys {
		ids[i] = types.ObjectIdentifier{Key: aws.String(key)}
	}
	out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{
		Bucket: aws.String(s.bucket),
		Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(false)},
	})
	if err != nil {
		return DeleteResult{}, fmt.Errorf("delete %d keys (first %q): %w", len(keys), keys[0], mapError(err, false))
	}

	reported := make(map[string]bool, len(keys))
	for _, d := range out.Deleted {
		key := aws.ToString(d.Key)
		if !reported[key] {
			reported[key] = true
			result.Deleted = append(result.Deleted, key)
		}
	}
	for _, e := range out.Errors {
		key, code := aws.ToString(e.Key), aws.ToString(e.Code)
		if reported[key] {
			continue
		}
		reported[key] = true
		if code == "NoSuchKey" || code == "NotFound" {
			result.Deleted = append(result.Deleted, key)
			continue
		}
		result.Failed[key] = fmt.Errorf("delete %q: %s: %s", key, code, aws.ToString(e.Message))
	}
	// With Quiet=false every key should be in the response; one that is not was
	// not confirmed deleted, so the caller must retry it.
	for _, key := range keys {
		if !reported[key] {
			reported[key] = true
			result.Failed[key] = fmt.Errorf("delete %q: not reported in the DeleteObjects response", key)
		}
	}
	return result, nil
}

// mapError turns the backend's "no such object" into ErrNotFound and its
// refusals into ErrAccessDenied (keeping the original error in the chain). isHead: HEAD responses have no body, so a bare
// 404 is all there is to go on.
func mapError(err error, isHead bool) error {
	var noSuchKey *types.NoSuchKey
	var notFound *types.NotFound
	switch code := apiErrorCode(err); {
	case errors.As(err, &noSuchKey), errors.As(err, &notFound),
		code == "NoSuchKey", code == "NotFound":
		return notFoundError{err}
	}
	var respErr *smithyhttp.ResponseError
	if isHead && errors.As(err, &respErr) && respErr.HTTPStatusCode() == http.StatusNotFound {
		return notFoundError{err}
	}
	// Every 403 but a skewed clock (which the SDK corrects on the next
	// attempt) means this request will not be allowed: AccessDenied, a bad
	// signature or key, an archived object (InvalidObjectState), a disabled
	// account. HEAD's 403 has no body and no code.
	if errors.As(err, &respErr) && respErr.HTTPStatusCode() == http.StatusForbidden &&
		apiErrorCode(err) != "RequestTimeTooSkewed" {
		return accessDeniedError{err}
	}
	// versitygw answers an unknown access key with 404 XAdminUserNotFound (S3:
	// 403 InvalidAccessKeyId). On HEAD, without a body, it is a bare 404 and so
	// ErrNotFound: a HEAD cannot tell wrong credentials from a missing object there.
	if code := apiErrorCode(err); code == "AccessDenied" || code == "XAdminUserNotFound" || code == "InvalidAccessKeyId" {
		return accessDeniedError{err}
	}
	if code := apiErrorCode(err); code == "PreconditionFailed" || code == "ConditionalRequestConflict" ||
		(errors.As(err, &respErr) && respErr.HTTPStatusCode() == http.StatusPreconditionFailed) {
		return preconditionError{err}
	}
	return err
}

// preconditionError is ErrPreconditionFailed for errors.Is, keeping the backend error.
type preconditionError struct{ cause error }

func (e preconditionError) Error() string {
	return ErrPreconditionFailed.Error() + ": " + e.cause.Error()
}
func (e preconditionError) Unwrap() []error { return []error{ErrPreconditionFailed, e.cause} }

// notFoundError is ErrNotFound for errors.Is while keeping the backend error in
// the message and in the chain.
type notFoundError struct{ cause error }

func (e notFoundError) Error() string   { return ErrNotFound.Error() + ": " + e.cause.Error() }
func (e notFoundError) Unwrap() []error { return []error{ErrNotFound, e.cause} }

func apiErrorCode(err error) string {
	var apiErr smithy.APIError
	if errors.As(err, &apiErr) {
		return apiErr.ErrorCode()
	}
	return ""
}

func trimETag(etag *string) string {
	return strings.Trim(aws.ToString(etag), `"`)
}

// encodeCRC32C renders a CRC-32C the way S3 expects it: base64 of the 4
// big-endian bytes.
func encodeCRC32C(crc uint32) string {
	var buf [4]byte
	binary.BigEndian.PutUint32(buf[:], crc)
	return base64.StdEncoding.EncodeToString(buf[:])
}

// decodeCRC32C parses a full-object CRC-32C. A composite checksum (a multipart
// upload's checksum of part checksums, rendered "xxxx==-N") is not the
// object's CRC and is ignored.
func decodeCRC32C(value *string, checksumType types.ChecksumType) (uint32, bool) {
	s := aws.ToString(value)
	if s == "" || checksumType == types.ChecksumTypeComposite || strings.Contains(s, "-") {
		return 0, false
	}
	raw, err := base64.StdEncoding.DecodeString(s)
	if err != nil || len(raw) != 4 {
		return 0, false
	}
	return binary.BigEndian.Uint32(raw), true
}
