// Package restore holds the node side of restore jobs: the Executor that copies
// a batch of files (server-side, or streamed between two stores) and verifies
// each copy, and Precheck, which checks in bulk (by listing, not one HEAD per
// file) that a job's source objects exist with their recorded sizes. The
// leader's planning and leases live in server/ and fsm/. See DESIGN.md in this
// directory.
package restore

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/snapkeep/snapkeep/objstore"
)

// Defaults and limits of the Executor.
const (
	DefaultConcurrency = 16
	// DefaultMultipartThreshold is also the largest threshold: CopyObject
	// copies at most 5 GiB.
	DefaultMultipartThreshold int64 = 5 << 30
	DefaultPartSize           int64 = 256 << 20
	// DefaultStreamPartSize is smaller than DefaultPartSize because a streamed
	// multipart upload holds a part in memory.
	DefaultStreamPartSize int64 = 32 << 20
	// MinPartSize is S3's smallest part (except the last).
	MinPartSize int64 = 5 << 20
	// MaxPartSize is S3's largest part.
	MaxPartSize        int64 = 5 << 30
	DefaultMaxAttempts       = 5
	DefaultBackoffBase       = 100 * time.Millisecond
	DefaultBackoffMax        = 5 * time.Second

	maxParts = 10000
)

// castagnoli is the CRC-32C table.
var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// Task is one file to copy.
type Task struct {
	Index uint32 // the task's number in its job (opaque to the executor, echoed in results)
	Src   string // full source key
	Dst   string // full destination key
	Size  uint64 // expected size
	// CRC32C is the expected CRC-32C (Castagnoli) of the content; 0 for a non-empty
	// file means it was not registered (a file may be flushed without one): the copy
	// is then verified by reading both the source and the copy (a file whose CRC-32C
	// truly is 0 gets the same, slower, check).
	CRC32C uint32
}

// Result is one task's outcome.
type Result struct {
	Index uint32
	// Err is nil when the file was copied (and, with Verify, verified). It
	// names the keys.
	Err error
	// Permanent: the job should fail, retrying cannot help: the source is
	// missing (errors.Is objstore.ErrNotFound), access is denied
	// (objstore.ErrAccessDenied), the copy's checksum or size is not the
	// expected one (ErrMismatch), or the server refused the request as
	// invalid. A transient failure that outlasted MaxAttempts, and a task cut
	// short or never started because ctx ended, are not permanent.
	Permanent bool
	// Attempts is the number of copy requests made in this run (0 if the task
	// never started); for a streamed copy, the number of times it was streamed
	// (a GET and its upload).
	Attempts int
	// Bytes is the size copied (Task.Size) on success, else 0.
	Bytes uint64
	// Verified says what checked the copy when it succeeded (see Verification).
	Verified Verification
}

// Verification is what a successful copy was checked with, weakest to strongest.
type Verification string

const (
	// NotVerified: the copy request succeeded; nothing else was checked.
	NotVerified Verification = ""
	// VerifiedByCopyResponse: the CRC-32C the server returned in the copy's response
	// equals the expected one. The server's own computation, no further request.
	VerifiedByCopyResponse Verification = "copy-response"
	// VerifiedByHead: HEAD of the copy reported the expected size and a CRC-32C equal
	// to the expected one. Some servers keep the checksum as stored metadata copied
	// from the source: then it proves the source's record was copied, not the bytes.
	VerifiedByHead Verification = "head"
	// VerifiedByStream (Executor.Stream): the bytes read from the source had the
	// expected size and CRC-32C, computed while streaming them (a mismatch withholds
	// the last bytes, so the upload fails and stores nothing), and the upload declared
	// that CRC-32C (x-amz-checksum-crc32c; for a multipart upload, each part's and the
	// whole object's). That proves the source's bytes. It proves the destination's
	// bytes only on a server that checks the declared checksum against what it
	// received and refuses a mismatch (S3, versitygw); the embedded gofakes3 checks
	// nothing, so there it proves only that the right bytes were sent.
	VerifiedByStream Verification = "stream"
	// VerifiedByReadBack: the copy was read back in full and its size and streamed
	// CRC-32C equal the expected ones (for a file registered without a CRC-32C, the
	// source's, read the same way): the only check of the bytes themselves.
	VerifiedByReadBack Verification = "read-back"
)

// ErrMismatch is matched (errors.Is) by every MismatchError.
var ErrMismatch = errors.New("copy does not match the expected content")

// MismatchError reports a copy whose size or CRC-32C is not the task's.
type MismatchError struct {
	Src, Dst string
	What     string // "size" or "CRC-32C"
	Want     uint64
	Got      uint64
	// From says where Got came from: "the copy response", "HEAD", or "the
	// content read back".
	From string
	// Reported is set when a server's report disagreed with the task and
	// reading the content back confirmed it; it describes that report.
	Reported string
}

func (e *MismatchError) Error() string {
	format := func(v uint64) string {
		if e.What == "size" {
			return fmt.Sprintf("%d bytes", v)
		}
		return fmt.Sprintf("%08x", v)
	}
	msg := fmt.Sprintf("copy of %q to %q: %s mismatch: want %s, got %s (from %s)",
		e.Src, e.Dst, e.What, format(e.Want), format(e.Got), e.From)
	if e.Reported != "" {
		msg += "; " + e.Reported
	}
	return msg
}

// Is makes errors.Is(err, ErrMismatch) true.
func (e *MismatchError) Is(target error) bool { return target == ErrMismatch }

// Executor copies batches of tasks server-side with bounded concurrency,
// retrying transient failures and (with Verify) verifying every copy; or, with
// Stream, by reading each source and uploading it (see Stream).
//
// Per task: one CopyObject below MultipartThreshold, a MultipartCopy at or
// above it. With Verify, a CRC-32C in the copy's own response is compared with
// the task's (no further request: the common case on a server with checksum
// support); without one, the copy is HEADed for its size and, when HEAD has no
// full-object CRC-32C either, read back with a streamed GET to compute it. A
// mismatch a server reports is confirmed by reading the content back before the
// task is failed: a permanent failure fails the whole job, so it must not rest
// on a server's bookkeeping (gofakes3 echoes the source's upload header;
// versitygw v1.8 has reported wrong multipart checksums).
//
// The zero value of every field but Store takes the default. An Executor may
// run several batches at once.
type Executor struct {
	// Store is where copies are written (Task.Dst). Its Copy and MultipartCopy
	// make the server-side copies: for a copy from another bucket of the same
	// endpoint, a store from objstore.BucketCopier's CopyingFrom (with Source a
	// store on that bucket, for verification reads).
	Store objstore.Store
	// Source is where Task.Src is read: by Stream, and by verifications that read
	// the source (a task without a CRC-32C). nil: Store (one bucket).
	Source objstore.Store
	// Stream copies each task by a GET from Source and an upload into Store
	// instead of a server-side copy: between endpoints or credentials. The bytes
	// are checked while streaming: their CRC-32C against the task's and their
	// length against its size; on a mismatch the last bytes are withheld from the
	// upload, so it fails and nothing is stored, whatever the server checks. The
	// upload also declares the task's CRC-32C (when it has one), for a server with
	// checksum support to check the bytes it received, and a CRC-32C the upload's
	// response echoes is compared too. A source mismatch fails the task for good
	// (MismatchError); a failed GET or upload redoes the whole stream (MaxAttempts).
	// Files at or above MultipartThreshold are uploaded in StreamPartSize parts
	// from the one GET (objstore.Store.PutMultipart). Memory: one part per
	// multipart stream, so at most Concurrency × StreamPartSize; a single upload
	// buffers nothing.
	Stream bool
	// StreamPartSize is the part size of a streamed multipart upload (default
	// 32 MiB; at least 5 MiB, at most 5 GiB, raised so no upload needs more than
	// 10,000 parts).
	StreamPartSize int64
	// Limiter, if set, limits the bytes per second this Executor moves: a
	// streamed copy waits for every chunk it reads, a server-side copy waits for
	// Task.Size bytes before each copy request, and reads for verification wait
	// for their bytes. nil: unlimited. See NewLimiter.
	Limiter Limiter
	// Concurrency is how many tasks are copied at once (default 16).
	Concurrency int
	// MultipartThreshold is the size from which a file is copied with
	// MultipartCopy (default and maximum 5 GiB, CopyObject's limit).
	MultipartThreshold int64
	// PartSize is the multipart copy's part size (default 256 MiB; at least
	// 5 MiB, at most 5 GiB, and raised so no copy needs more than 10,000 parts).
	PartSize int64
	// Verify checks every copy's CRC-32C (and size, where known) against the task,
	// as cheaply as the server allows: its copy response's checksum, else HEAD's,
	// else a read-back (Result.Verified says which).
	Verify bool
	// ReadBack, with Verify, reads every copy back in full and checks its size and
	// streamed CRC-32C, whatever checksums the server reports.
	ReadBack bool
	// MaxAttempts is how many times one step of a task (the copy; each
	// verification request) is tried in one run when it fails transiently
	// (default 5).
	MaxAttempts int
	// BackoffBase and BackoffMax shape the wait between attempts: exponential
	// from BackoffBase (default 100 ms) up to BackoffMax (default 5 s), with
	// jitter (a random time between half the step and the step).
	BackoffBase time.Duration
	BackoffMax  time.Duration
	// Logger receives retries (debug), failures (warn) and verification
	// oddities (warn); nil discards.
	Logger *slog.Logger
}

// config is an Executor with its defaults filled in.
type config struct {
	Executor
	// sameStore: no Source was given, sources are read from Store.
	sameStore bool
}

func (e *Executor) config() config {
	c := config{Executor: *e}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.MultipartThreshold <= 0 || c.MultipartThreshold > DefaultMultipartThreshold {
		c.MultipartThreshold = DefaultMultipartThreshold
	}
	if c.PartSize <= 0 {
		c.PartSize = DefaultPartSize
	}
	c.PartSize = min(max(c.PartSize, MinPartSize), MaxPartSize)
	if c.StreamPartSize <= 0 {
		c.StreamPartSize = DefaultStreamPartSize
	}
	c.StreamPartSize = min(max(c.StreamPartSize, MinPartSize), MaxPartSize)
	if c.Source == nil {
		c.Source = c.Store
		c.sameStore = true
	}
	if c.MaxAttempts <= 0 {
		c.MaxAttempts = DefaultMaxAttempts
	}
	if c.BackoffBase <= 0 {
		c.BackoffBase = DefaultBackoffBase
	}
	if c.BackoffMax <= 0 {
		c.BackoffMax = DefaultBackoffMax
	}
	c.BackoffMax = max(c.BackoffMax, c.BackoffBase)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Run copies tasks, at most Concurrency at a time, and returns one Result per
// task, in input order. It returns when every task is done or, once ctx ends,
// abandoned: the tasks not started then, and the ones cut short, get a
// non-permanent error wrapping ctx's.
func (e *Executor) Run(ctx context.Context, tasks []Task) []Result {
	c := e.config()
	results := make([]Result, len(tasks))
	if min(c.Concurrency, len(tasks)) == 1 {
		// One worker: the caller's goroutine is it.
		for i, t := range tasks {
			results[i] = c.runTaskSafely(ctx, t)
		}
		return results
	}
	var next atomic.Int64
	var wg sync.WaitGroup
	for range min(c.Concurrency, len(tasks)) {
		wg.Go(func() {
			for {
				i := int(next.Add(1) - 1)
				if i >= len(tasks) {
					return
				}
				results[i] = c.runTaskSafely(ctx, tasks[i])
			}
		})
	}
	wg.Wait()
	return results
}

// runTask copies and verifies one task.
func (c *config) runTask(ctx context.Context, t Task) Result {
	res := Result{Index: t.Index}
	if err := ctx.Err(); err != nil {
		res.Err = fmt.Errorf("copy %q to %q: not started: %w", t.Src, t.Dst, err)
		return res
	}
	if err := validate(t, c.sameStore); err != nil {
		res.Err, res.Permanent = err, true
		c.Logger.Warn("restore task failed", "src", t.Src, "dst", t.Dst, "err", err)
		return res
	}

	var info objstore.CopyInfo
	var err error
	multipart := int64(t.Size) >= c.MultipartThreshold
	if c.Stream {
		res.Verified, err = c.stream(ctx, t, &res.Attempts)
	} else {
		err = c.retry(ctx, t, "copy", func() error {
			// The server moves the bytes: wait for them before asking it to.
			if err := waitBytes(ctx, c.Limiter, t.Size); err != nil {
				return err
			}
			res.Attempts++
			var err error
			if multipart {
				info, err = c.Store.MultipartCopy(ctx, t.Src, t.Dst, int64(t.Size), c.partSize(t.Size))
			} else {
				info, err = c.Store.Copy(ctx, t.Src, t.Dst)
			}
			return err
		})
	}
	if err != nil && errors.Is(err, objstore.ErrNotFound) && ctx.Err() == nil {
		err = fmt.Errorf("source object %q is missing: %w", t.Src, err)
	}
	if err == nil && c.Verify && !c.Stream {
		if res.Verified, err = c.verify(ctx, t, info); err != nil && !errors.Is(err, ErrMismatch) {
			err = fmt.Errorf("verify copy of %q to %q: %w", t.Src, t.Dst, err)
		}
	}
	if err != nil {
		res.Err, res.Permanent = c.classify(ctx, t, err)
		if res.Permanent {
			c.Logger.Warn("restore task failed", "src", t.Src, "dst", t.Dst, "attempts", res.Attempts, "err", res.Err)
		} else if ctx.Err() == nil {
			c.Logger.Info("restore task not done, will be retried later", "src", t.Src, "dst", t.Dst, "attempts", res.Attempts, "err", res.Err)
		}
		return res
	}
	res.Bytes = t.Size
	return res
}

// validate checks a task. A source key equal to its destination is a task
// copying a file onto itself, unless sources come from another store
// (sameStore false): an export keeps a file's key in another bucket.
func validate(t Task, sameStore bool) error {
	switch {
	case t.Src == "" || t.Dst == "":
		return fmt.Errorf("copy %q to %q: empty key", t.Src, t.Dst)
	case t.Src == t.Dst && sameStore:
		return fmt.Errorf("copy %q to itself", t.Src)
	case t.Size > maxParts*uint64(MaxPartSize):
		return fmt.Errorf("copy %q to %q: %d bytes is more than S3 can hold in one object", t.Src, t.Dst, t.Size)
	}
	return nil
}

// classify decides whether a task's final error is permanent.
func (c *config) classify(ctx context.Context, t Task, err error) (error, bool) {
	switch {
	case errors.Is(err, ErrMismatch):
		return err, true
	case ctx.Err() != nil:
		// Cut short by the caller: whatever failed, the task was not tried to the end.
		if !errors.Is(err, ctx.Err()) {
			err = fmt.Errorf("%w (and %w)", err, ctx.Err())
		}
		return err, false
	case errors.Is(err, errDestinationGone), errors.Is(err, errLimit):
		return err, false
	case objstore.IsTransient(err):
		return fmt.Errorf("gave up after %d attempts: %w", c.MaxAttempts, err), false
	default:
		return err, true
	}
}

// partSize is the part size for a multipart copy of size bytes.
func (c *config) partSize(size uint64) int64 {
	return partSizeFor(c.PartSize, size)
}

// partSizeFor is ps, raised (in whole MiB) so that size bytes take at most
// 10,000 parts.
func partSizeFor(ps int64, size uint64) int64 {
	if need := int64((size + maxParts - 1) / maxParts); need > ps {
		const mib = 1 << 20
		ps = min((need+mib-1)/mib*mib, MaxPartSize)
	}
	return ps
}

// errDestinationGone: the copy succeeded but its destination was gone when
// verified (deleted by someone else): not the source's fault, try again later.
var errDestinationGone = errors.New("the copy's destination vanished before it was verified")

// verify checks the copy of t against the task, as cheaply as the copy
// response allows (or, with ReadBack, by reading it back), and says how.
func (c *config) verify(ctx context.Context, t Task, info objstore.CopyInfo) (Verification, error) {
	if t.CRC32C == 0 && t.Size > 0 { // empty content's CRC-32C is 0: that one is known
		return c.verifyWithoutChecksum(ctx, t)
	}
	if c.ReadBack {
		crc, n, err := c.readBack(ctx, t)
		if err != nil {
			return NotVerified, err
		}
		return VerifiedByReadBack, checkContent(t, crc, n, nil)
	}
	if info.HasCRC32C {
		if info.CRC32C == t.CRC32C {
			return VerifiedByCopyResponse, nil
		}
		return VerifiedByReadBack, c.confirm(ctx, t, mismatch(t, "CRC-32C", uint64(t.CRC32C), uint64(info.CRC32C), "the copy response"))
	}

	var head objstore.ObjectInfo
	err := c.retry(ctx, t, "head", func() error {
		var err error
		head, err = c.Store.Head(ctx, t.Dst)
		return err
	})
	if err != nil {
		if errors.Is(err, objstore.ErrNotFound) && ctx.Err() == nil {
			return NotVerified, fmt.Errorf("%w: %w", errDestinationGone, err)
		}
		return NotVerified, err
	}
	if head.Size < 0 || uint64(head.Size) != t.Size {
		return NotVerified, mismatch(t, "size", t.Size, uint64(head.Size), "HEAD")
	}
	if head.HasCRC32C {
		if head.CRC32C == t.CRC32C {
			return VerifiedByHead, nil
		}
		return VerifiedByReadBack, c.confirm(ctx, t, mismatch(t, "CRC-32C", uint64(t.CRC32C), uint64(head.CRC32C), "HEAD"))
	}
	crc, n, err := c.readBack(ctx, t)
	if err != nil {
		return NotVerified, err
	}
	return VerifiedByReadBack, checkContent(t, crc, n, nil)
}

// verifyWithoutChecksum verifies the copy of a file registered without a CRC-32C: the
// source is read in full (streamed) for its CRC-32C, then the copy is read back and
// must have the same size and CRC-32C.
func (c *config) verifyWithoutChecksum(ctx context.Context, t Task) (Verification, error) {
	srcCRC, srcN, err := c.readKey(ctx, t, c.Source, t.Src)
	if err != nil {
		return NotVerified, err
	}
	if srcN != t.Size {
		return NotVerified, mismatch(t, "size", t.Size, srcN, "the source read in full")
	}
	want := t
	want.CRC32C = srcCRC
	crc, n, err := c.readBack(ctx, t)
	if err != nil {
		return NotVerified, err
	}
	if err := checkContent(want, crc, n, nil); err != nil {
		var m *MismatchError
		if errors.As(err, &m) {
			m.From = "the content read back (the source read in full has CRC-32C " + fmt.Sprintf("%08x", srcCRC) + ")"
		}
		return VerifiedByReadBack, err
	}
	return VerifiedByReadBack, nil
}

// confirm reads the copy back after a server reported a mismatch: the task
// fails only if the content disagrees too.
func (c *config) confirm(ctx context.Context, t Task, reported *MismatchError) error {
	crc, n, err := c.readBack(ctx, t)
	if err != nil {
		return err
	}
	if err := checkContent(t, crc, n, reported); err != nil {
		return err
	}
	c.Logger.Warn("restore: the server reported a wrong checksum for a correct copy",
		"src", t.Src, "dst", t.Dst, "reported", fmt.Sprintf("%08x", reported.Got), "from", reported.From,
		"content", fmt.Sprintf("%08x", crc))
	return nil
}

func checkContent(t Task, crc uint32, n uint64, reported *MismatchError) error {
	var err *MismatchError
	switch {
	case n != t.Size:
		err = mismatch(t, "size", t.Size, n, "the content read back")
	case crc != t.CRC32C:
		err = mismatch(t, "CRC-32C", uint64(t.CRC32C), uint64(crc), "the content read back")
	default:
		return nil
	}
	if reported != nil {
		err.Reported = fmt.Sprintf("%s had reported %s %08x", reported.From, reported.What, reported.Got)
	}
	return err
}

func mismatch(t Task, what string, want, got uint64, from string) *MismatchError {
	return &MismatchError{Src: t.Src, Dst: t.Dst, What: what, Want: want, Got: got, From: from}
}

// readBack streams the copy and returns its CRC-32C and length. A read that
// breaks off transiently is resumed where it stopped (a range GET), so a
// large object is not read twice.
func (c *config) readBack(ctx context.Context, t Task) (uint32, uint64, error) {
	crc, n, err := c.readKey(ctx, t, c.Store, t.Dst)
	if err != nil && errors.Is(err, objstore.ErrNotFound) && ctx.Err() == nil {
		return 0, 0, fmt.Errorf("%w: %w", errDestinationGone, err)
	}
	return crc, n, err
}

// readKey streams key (the task's source, from Source, or its copy, from Store) and
// returns its CRC-32C and length, resuming a read that broke off transiently where
// it stopped. The bytes count against the Limiter.
func (c *config) readKey(ctx context.Context, t Task, store objstore.Store, key string) (uint32, uint64, error) {
	var crc uint32
	var n uint64
	err := c.retry(ctx, t, "read "+key, func() error {
		var rc io.ReadCloser
		var err error
		if n > 0 && n < t.Size {
			rc, err = store.GetRange(ctx, key, int64(n), -1)
		} else {
			crc, n = 0, 0
			rc, _, err = store.Get(ctx, key)
		}
		if err != nil {
			return err
		}
		defer rc.Close()
		w := &crcWriter{crc: crc}
		_, err = io.Copy(w, limitReader(ctx, rc, c.Limiter))
		crc, n = w.crc, n+w.n
		if err != nil {
			return fmt.Errorf("read %q: %w", key, err)
		}
		return nil
	})
	if err != nil {
		return 0, 0, err
	}
	return crc, n, nil
}

type crcWriter struct {
	crc uint32
	n   uint64
}

func (w *crcWriter) Write(p []byte) (int, error) {
	w.crc = crc32.Update(w.crc, castagnoli, p)
	w.n += uint64(len(p))
	return len(p), nil
}

// retry runs one step of t with retries (see retryLoop).
func (c *config) retry(ctx context.Context, t Task, what string, step func() error) error {
	return retryLoop(ctx, retryPolicy{c.MaxAttempts, c.BackoffBase, c.BackoffMax, c.Logger}, step,
		func() []any { return []any{"step", what, "src", t.Src, "dst", t.Dst} })
}

// runTaskSafely is runTask on a worker goroutine: a panic becomes the task's failure
// (retried like any other) instead of ending the process.
func (c *config) runTaskSafely(ctx context.Context, t Task) (res Result) {
	defer func() {
		if p := recover(); p != nil {
			res = Result{Index: t.Index, Err: fmt.Errorf("copy %s to %s: panic: %v", t.Src, t.Dst, p)}
		}
	}()
	return c.runTask(ctx, t)
}
