// Package analyze checks what an S3-compatible server really does with the requests
// snapkeep makes (after Elasticsearch's repository analysis): read-after-write,
// overwrite visibility, list-after-write, listing order and pagination, conditional
// creates, CopyObject and UploadPartCopy checksums, DeleteObjects' per-key answers,
// the shapes of 404, 416 and 403 errors, concurrent writers to one key, and the
// latency and throughput of each operation.
//
// Every check is a named function over objstore.Store, working under a prefix of its
// own (Target.Prefix), small (bytes, not megabytes, except the throughput and
// UploadPartCopy object of Options.LargeObjectBytes) and bounded in time
// (Options.CheckTimeout). Run deletes everything it wrote, also when a check fails.
// A Result's Outcome says whether snapkeep can rely on the behaviour (OK), works
// around its absence (Unsupported: Result.Fallback says how), cannot run safely on it
// (Unsafe), or could not tell (Error). Results are judged by what the S3 API
// promises, not by what one server happens to do.
package analyze

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"math/rand/v2"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/snapkeep/snapkeep/objstore"
)

// Outcome is a check's verdict.
type Outcome string

// The outcomes, from good to bad.
const (
	// OK: the server behaves as the S3 API promises; snapkeep relies on it.
	OK Outcome = "ok"
	// Unsupported: the behaviour is missing; snapkeep uses the check's fallback.
	Unsupported Outcome = "unsupported"
	// Error: the check could not run to a verdict (a request failed for another reason).
	Error Outcome = "error"
	// Unsafe: the server breaks a promise snapkeep relies on with no fallback.
	Unsafe Outcome = "unsafe"
)

// Rank orders outcomes from best (0) to worst.
func (o Outcome) Rank() int {
	switch o {
	case OK:
		return 0
	case Unsupported:
		return 1
	case Error:
		return 2
	default:
		return 3
	}
}

// Worst is the worse of two outcomes.
func Worst(a, b Outcome) Outcome {
	if b.Rank() > a.Rank() {
		return b
	}
	return a
}

// Result is one check's verdict.
type Result struct {
	// Name is the check's name (see Checks).
	Name    string  `json:"name"`
	Outcome Outcome `json:"outcome"`
	// Detail says exactly what was sent and what came back.
	Detail string `json:"detail"`
	// Feature is what in snapkeep relies on the behaviour; Fallback what snapkeep
	// does without it (empty: nothing, the behaviour is required).
	Feature  string        `json:"feature"`
	Fallback string        `json:"fallback,omitempty"`
	Elapsed  time.Duration `json:"elapsed_ns"`
}

// OpStats are the latencies of one kind of request made during a run.
type OpStats struct {
	Op    string        `json:"op"`
	Count int           `json:"count"`
	Bytes int64         `json:"bytes"` // moved by the requests (put: sent; get: read)
	Min   time.Duration `json:"min_ns"`
	P50   time.Duration `json:"p50_ns"`
	Max   time.Duration `json:"max_ns"`
	Total time.Duration `json:"total_ns"`
}

// BytesPerSecond is the throughput over the requests' total time (0 without bytes).
func (s OpStats) BytesPerSecond() float64 {
	if s.Bytes == 0 || s.Total <= 0 {
		return 0
	}
	return float64(s.Bytes) / s.Total.Seconds()
}

// Report is a run's results.
type Report struct {
	Prefix  string    `json:"prefix"`
	Results []Result  `json:"results"`
	Ops     []OpStats `json:"ops"`
	// CleanupError says what could not be deleted afterwards (empty: everything was).
	CleanupError string `json:"cleanup_error,omitempty"`
}

// Worst is the worst outcome of the report's results (OK for none).
func (r Report) Worst() Outcome {
	w := OK
	for _, res := range r.Results {
		w = Worst(w, res.Outcome)
	}
	return w
}

// Target is what to analyze.
type Target struct {
	// Store is the bucket under test. Run wraps it to time every request.
	Store objstore.Store
	// Prefix is where the checks write (it should be unique to the run and end in
	// "/"); everything under it is deleted at the end.
	Prefix string
	// Config, when its Bucket is set, is Store's S3 settings: the access-denied check
	// builds clients from it with a wrong secret key and an unknown access key.
	Config objstore.S3Config
}

// Options bound a run.
type Options struct {
	// CheckTimeout bounds each check (default 30 s).
	CheckTimeout time.Duration
	// LargeObjectBytes is the size of the one large object (the throughput check and
	// the UploadPartCopy source, copied in parts of 5 MiB). Default and minimum:
	// 5 MiB + 64 KiB, two parts.
	LargeObjectBytes int64
	// Only, when set, runs just the checks with these names.
	Only []string
}

// Part sizes: S3's minimum part size for all but the last part.
const minPartSize = 5 << 20

// DefaultLargeObjectBytes is two parts of an UploadPartCopy: one of 5 MiB, one of 64 KiB.
const DefaultLargeObjectBytes = minPartSize + 64<<10

// Check describes one check.
type Check struct {
	Name     string
	Feature  string
	Fallback string
	run      func(ctx context.Context, e *env) (Outcome, string, error)
}

// env is one run's state shared by the checks.
type env struct {
	store  *timedStore
	prefix string
	cfg    objstore.S3Config
	large  int64

	largeOnce sync.Once
	largeData []byte

	mu      sync.Mutex
	written map[string]bool
}

func (e *env) key(rel string) string {
	e.mu.Lock()
	e.written[e.prefix+rel] = true
	e.mu.Unlock()
	return e.prefix + rel
}

// put writes body under rel with its CRC-32C.
func (e *env) put(ctx context.Context, rel string, body []byte, opts objstore.PutOptions) (objstore.ObjectInfo, error) {
	return e.store.Put(ctx, e.key(rel), bytes.NewReader(body), int64(len(body)), opts)
}

// read reads key whole.
func (e *env) read(ctx context.Context, key string) ([]byte, error) {
	return readAll(ctx, e.store, key)
}

func readAll(ctx context.Context, s objstore.Store, key string) ([]byte, error) {
	rc, _, err := s.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer rc.Close()
	data, err := io.ReadAll(rc)
	if err != nil {
		return nil, fmt.Errorf("read %q: %w", key, err)
	}
	return data, nil
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// CRC32C is the CRC-32C (Castagnoli) of data, as S3's x-amz-checksum-crc32c.
func CRC32C(data []byte) uint32 { return crc32.Checksum(data, castagnoli) }

func withCRC(body []byte) objstore.PutOptions {
	return objstore.PutOptions{CRC32C: CRC32C(body), HasCRC32C: true}
}

// body is size pseudo-random bytes that differ with seed (and size).
func body(seed string, size int) []byte {
	r := rand.New(rand.NewPCG(uint64(CRC32C([]byte(seed))), uint64(size)))
	out := make([]byte, size+8)
	for i := 0; i < size; i += 8 {
		binary.LittleEndian.PutUint64(out[i:], r.Uint64())
	}
	return out[:size]
}

// Checks lists every node-local check, in the order Run runs them.
func Checks() []Check { return slices.Clone(checks) }

var checks = []Check{
	{Name: "read-after-write", run: checkReadAfterWrite,
		Feature: "every write read back at once: snapshot finishing HEADs the uploaded files, a repository's index generation and manifests are read after writing, restores verify copies"},
	{Name: "overwrite-visibility", run: checkOverwrite,
		Feature: "retried uploads and idempotent export/restore copies replace an object and are read back new"},
	{Name: "list-after-write", run: checkListAfterWrite,
		Feature: "listings see every acknowledged write: GC orphan scan, restore pre-check, an export's incremental skip over the repository's data, repository index discovery"},
	{Name: "list-order-pagination", run: checkListOrder,
		Feature: "paginated ListObjectsV2 in byte order, resumed from continuation tokens: GC orphan scan, repository listings"},
	{Name: "conditional-put", run: checkConditionalPut,
		Feature:  "repository writer CAS: index generation N+1 is created with If-None-Match: *",
		Fallback: "none: unsafe to write a repository (registration of a writable repository is refused)"},
	{Name: "concurrent-writers", run: checkConcurrentWriters,
		Feature: "one whole object per key whatever the writers (retries, two executors of one task); exactly one winner among conditional creates (the repository CAS race)"},
	{Name: "copy-checksum", run: checkCopyChecksum,
		Feature:  "restore verification mode: a server-side copy verified from the CopyObject response's CRC-32C, without another request",
		Fallback: "verify each copy with a HEAD's CRC-32C, else by reading it back (GET + CRC-32C)"},
	{Name: "checksum-not-echoed", run: checkChecksumEcho,
		Feature: "restore verification trusts a checksum the server reports: it must be of the bytes stored, never stale metadata echoed back"},
	{Name: "upload-part-copy", run: checkUploadPartCopy,
		Feature:  "server-side copies of files at or over the multipart threshold (default 5 GiB) with UploadPartCopy",
		Fallback: "streamed copy through a node (GET → PUT): repository jobs registered without server-side copy stream; in-bucket restores of files over the threshold cannot"},
	{Name: "delete-objects", run: checkDeleteObjects,
		Feature:  "GC and repository GC batch deletes: DeleteObjects answers every key, a missing key counts as deleted",
		Fallback: "keys not confirmed deleted are retried by the next GC run"},
	{Name: "not-found-404", run: checkNotFound,
		Feature: "a missing object is told from a failure (objstore.ErrNotFound): restore pre-check, repository marker and index discovery, idempotent GC"},
	{Name: "invalid-range-416", run: checkRange,
		Feature:  "range reads (GetRange) of manifests and segment files; a range past the end is refused (416 InvalidRange)",
		Fallback: "a range answered without a matching Content-Range is reported as an error, never returned as data"},
	{Name: "access-denied-403", run: checkAccessDenied,
		Feature:  "refused credentials are reported as such (objstore.ErrAccessDenied): repository probes name the credentials, refusals are not retried",
		Fallback: "a refusal without a 403 is reported as a generic error"},
	{Name: "throughput", run: checkThroughput,
		Feature: "upload and copy rates of snapshots, restores and exports (informational)"},
}

// Run runs the checks against t and deletes what they wrote. It returns an error
// only for a target it cannot use; a failing check is a Result.
func Run(ctx context.Context, t Target, opts Options) (Report, error) {
	if t.Store == nil {
		return Report{}, errors.New("analyze: no store")
	}
	if t.Prefix == "" || !strings.HasSuffix(t.Prefix, "/") {
		return Report{}, fmt.Errorf("analyze: prefix %q must be non-empty and end in '/'", t.Prefix)
	}
	if opts.CheckTimeout <= 0 {
		opts.CheckTimeout = 30 * time.Second
	}
	if opts.LargeObjectBytes < DefaultLargeObjectBytes {
		opts.LargeObjectBytes = DefaultLargeObjectBytes
	}
	e := &env{store: newTimedStore(t.Store), prefix: t.Prefix, cfg: t.Config, large: opts.LargeObjectBytes, written: map[string]bool{}}
	rep := Report{Prefix: t.Prefix}
	defer func() {
		if err := cleanup(ctx, t.Store, t.Prefix, e.writtenKeys()); err != nil {
			rep.CleanupError = err.Error()
		}
	}()
	for _, c := range checks {
		if len(opts.Only) > 0 && !slices.Contains(opts.Only, c.Name) {
			continue
		}
		cctx, cancel := context.WithTimeout(ctx, opts.CheckTimeout)
		start := time.Now()
		outcome, detail, err := runCheck(cctx, c, e)
		cancel()
		if err != nil {
			outcome, detail = Error, err.Error()
			if cctx.Err() != nil && ctx.Err() == nil {
				detail = fmt.Sprintf("did not finish within %v: %v", opts.CheckTimeout, err)
			}
		}
		rep.Results = append(rep.Results, Result{Name: c.Name, Outcome: outcome, Detail: detail,
			Feature: c.Feature, Fallback: c.Fallback, Elapsed: time.Since(start)})
	}
	rep.Ops = e.store.stats()
	return rep, nil
}

// runCheck runs one check, turning a panic into an error.
func runCheck(ctx context.Context, c Check, e *env) (outcome Outcome, detail string, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("check %s panicked: %v", c.Name, r)
		}
	}()
	return c.run(ctx, e)
}

func (e *env) writtenKeys() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	keys := make([]string, 0, len(e.written))
	for k := range e.written {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

// cleanup deletes every key written and whatever a listing of prefix shows (a
// listing may miss keys on a server that breaks list-after-write), with its own
// 30 s budget, so a cancelled run still cleans up.
func cleanup(ctx context.Context, s objstore.Store, prefix string, written []string) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return DeletePrefix(ctx, s, prefix, written...)
}

// DeletePrefix deletes every object listed under prefix, and the keys given.
func DeletePrefix(ctx context.Context, s objstore.Store, prefix string, keys ...string) error {
	all := map[string]bool{}
	for _, k := range keys {
		all[k] = true
	}
	var errs []error
	token := ""
	for {
		page, err := s.List(ctx, prefix, token, 1000)
		if err != nil {
			errs = append(errs, fmt.Errorf("list %q: %w", prefix, err))
			break
		}
		for _, o := range page.Objects {
			all[o.Key] = true
		}
		if page.NextToken == "" || len(page.Objects) == 0 {
			break
		}
		token = page.NextToken
	}
	sorted := make([]string, 0, len(all))
	for k := range all {
		sorted = append(sorted, k)
	}
	slices.Sort(sorted)
	for batch := range slices.Chunk(sorted, objstore.MaxDeleteBatch) {
		res, err := s.Delete(ctx, batch)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for k, e := range res.Failed {
			errs = append(errs, fmt.Errorf("delete %q: %w", k, e))
		}
	}
	return errors.Join(errs...)
}
