// Package datagen writes synthetic segments: it allocates segments in a collection,
// uploads files of deterministic pseudo-random content at the keys of the collection's
// layout (under the segment's prefix, or Milvus's own keys) with
// CRC-32C checksums, and flushes them. The CLI's generate command, the demo,
// benchmarks and tests use it; Verify reads a segment's files back and checks them.
package datagen

import (
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// Defaults for Options.
const (
	DefaultConcurrency    = 16
	DefaultRowsPerSegment = 1000
)

// Options say what Generate writes.
type Options struct {
	// Database ("" for "default"), Collection (required) and Partition ("" for
	// "_default") receive the segments.
	Database, Collection, Partition string
	// Segments is how many segments to write; FilesPerSegment (≥ 1) how many files
	// each has (see Layout); FileSize (≥ 0) the size of every file in bytes.
	Segments, FilesPerSegment int
	FileSize                  int64
	// Concurrency bounds the uploads in flight, and the segments being written, across
	// the whole run (0: DefaultConcurrency).
	Concurrency int
	// Seed makes the content: the same seed gives the same bytes for the same segment
	// and file ordinals, whatever ids the cluster hands out.
	Seed int64
	// RowsPerSegment is the row count recorded at flush (0: DefaultRowsPerSegment).
	RowsPerSegment int64
	// Progress, when set, is called after each flushed segment with the number of
	// segments done so far and the total, one call at a time.
	Progress func(done, total int)
	// Root is the storage root, needed to build the keys of a Milvus-layout
	// collection ("" asks the cluster: ClusterStatus). A snapkeep-layout segment's
	// keys come from the prefix the cluster hands out.
	Root string
}

// Result reports what Generate wrote.
type Result struct {
	// SegmentIDs are the flushed segments, in generation order.
	SegmentIDs []uint64
	// Files and Bytes count the files of the flushed segments.
	Files   int
	Bytes   int64
	Elapsed time.Duration
}

func (o Options) validate() (Options, error) {
	switch {
	case o.Collection == "":
		return o, errors.New("datagen: no collection given")
	case o.Segments < 0:
		return o, fmt.Errorf("datagen: %d segments: the count cannot be negative", o.Segments)
	case o.FilesPerSegment < 1:
		return o, fmt.Errorf("datagen: %d files per segment: each segment needs at least one", o.FilesPerSegment)
	case o.FileSize < 0:
		return o, fmt.Errorf("datagen: file size %d: the size cannot be negative", o.FileSize)
	case o.RowsPerSegment < 0:
		return o, fmt.Errorf("datagen: %d rows per segment: the count cannot be negative", o.RowsPerSegment)
	}
	if o.Concurrency <= 0 {
		o.Concurrency = DefaultConcurrency
	}
	if o.RowsPerSegment == 0 {
		o.RowsPerSegment = DefaultRowsPerSegment
	}
	return o, nil
}

// Generate writes opts.Segments segments, each allocated with cl, uploaded to store
// under the prefix the cluster hands out and flushed with its file list.
//
// On error it stops, waits for the work in flight and returns the first error with
// the Result of the segments flushed until then. A segment it allocated but could not
// flush is dropped again (its uploads become garbage for GC), so a failed run leaves
// no allocations behind; if even the drop fails, the lease expiry drops it later.
func Generate(ctx context.Context, cl *client.Client, store objstore.Store, opts Options) (*Result, error) {
	start := time.Now()
	opts, err := opts.validate()
	if err != nil {
		return nil, err
	}
	keyOf, err := keyBuilder(ctx, cl, opts)
	if err != nil {
		return nil, err
	}
	g := &generator{
		cl:       cl,
		store:    store,
		opts:     opts,
		keyOf:    keyOf,
		layout:   Layout(opts.FilesPerSegment),
		uploads:  make(chan struct{}, opts.Concurrency),
		flushed:  make([]uint64, opts.Segments),
		segSlots: make(chan struct{}, opts.Concurrency),
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)

	var wg sync.WaitGroup
dispatch:
	for i := range opts.Segments {
		select {
		case g.segSlots <- struct{}{}:
		case <-ctx.Done():
			break dispatch
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-g.segSlots }()
			if err := g.writeSegment(ctx, i); err != nil {
				g.fail(err, cancel)
			}
		}()
	}
	wg.Wait()

	res := &Result{Elapsed: time.Since(start), Files: g.files, Bytes: g.bytes}
	for _, id := range g.flushed {
		if id != 0 {
			res.SegmentIDs = append(res.SegmentIDs, id)
		}
	}
	if g.err == nil && ctx.Err() != nil {
		g.err = fmt.Errorf("datagen: %w", context.Cause(ctx))
	}
	return res, g.err
}

// keyBuilder returns how the collection's files are named: datagen.Key under the
// segment's prefix, or Milvus's keys under the storage root.
func keyBuilder(ctx context.Context, cl *client.Client, opts Options) (func(*snapkeepv1.Segment, FileSpec) (string, error), error) {
	desc, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption(opts.Collection).WithDatabase(opts.Database))
	if err != nil {
		return nil, fmt.Errorf("datagen: describe collection %q: %w", opts.Collection, err)
	}
	if desc.GetCollection().GetLayout() != snapkeepv1.KeyLayout_KEY_LAYOUT_MILVUS {
		return func(seg *snapkeepv1.Segment, f FileSpec) (string, error) { return Key(seg.GetPrefix(), f), nil }, nil
	}
	root := opts.Root
	if root == "" {
		st, err := cl.ClusterStatus(ctx)
		if err != nil {
			return nil, fmt.Errorf("datagen: ask the storage root: %w", err)
		}
		root = st.GetStorage().GetRoot()
	}
	return func(seg *snapkeepv1.Segment, f FileSpec) (string, error) { return MilvusKey(root, seg, f) }, nil
}

// MilvusKey is the key of f in a Milvus-layout segment under the storage root:
// "<root>/insert_log/<collection>/<partition>/<segment>/<field>/<log id>" and the like.
func MilvusKey(root string, seg *snapkeepv1.Segment, f FileSpec) (string, error) {
	ref := layout.Segment{Collection: seg.GetCollectionId(), Partition: seg.GetPartitionId(), Segment: seg.GetId()}
	key, err := layout.DataFileKey(layout.Milvus, ref, fsmpb.FileKind(f.Kind), f.FieldID, f.LogID)
	if err != nil {
		return "", fmt.Errorf("datagen: %w", err)
	}
	if root = strings.Trim(root, "/"); root != "" {
		key = root + "/" + key
	}
	return key, nil
}

type generator struct {
	cl       *client.Client
	store    objstore.Store
	opts     Options
	keyOf    func(*snapkeepv1.Segment, FileSpec) (string, error)
	layout   []FileSpec
	uploads  chan struct{} // semaphore: uploads in flight
	segSlots chan struct{} // semaphore: segments being written

	mu      sync.Mutex
	err     error    // the first failure
	flushed []uint64 // segment id by ordinal, 0 until flushed
	done    int
	files   int
	bytes   int64
}

func (g *generator) fail(err error, cancel context.CancelCauseFunc) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.err == nil {
		g.err = err
		cancel(err)
	}
}

// writeSegment allocates, uploads and flushes the segment with ordinal i.
func (g *generator) writeSegment(ctx context.Context, i int) error {
	o := g.opts
	if ctx.Err() != nil {
		return context.Cause(ctx) // the run failed: allocate nothing more
	}
	// The allocation is not cancelled with the run: one cancelled in flight may still
	// be applied, and without its id it could not be dropped again.
	allocCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dropTimeout)
	seg, err := g.cl.AllocateSegment(allocCtx, client.NewAllocateSegmentOption(o.Collection).
		WithDatabase(o.Database).WithPartition(o.Partition))
	cancel()
	if err != nil {
		return fmt.Errorf("datagen: allocate segment %d of %d: %w", i+1, o.Segments, err)
	}
	files := make([]*snapkeepv1.File, len(g.layout))
	errs := make([]error, len(g.layout))
	var wg sync.WaitGroup
	for j, spec := range g.layout {
		select {
		case g.uploads <- struct{}{}:
		case <-ctx.Done():
			errs[j] = context.Cause(ctx)
		}
		if errs[j] != nil {
			break
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			defer func() { <-g.uploads }()
			files[j], errs[j] = g.upload(ctx, seg, i, j, spec)
		}()
	}
	wg.Wait()
	if err := firstError(ctx, errs); err != nil {
		return g.dropAllocated(ctx, seg.GetId(), err)
	}
	if _, err := g.cl.FlushSegment(ctx, client.NewFlushSegmentOption(seg.GetId()).
		WithRowCount(o.RowsPerSegment).WithFiles(files...)); err != nil {
		return g.dropAllocated(ctx, seg.GetId(), fmt.Errorf("datagen: flush segment %d: %w", seg.GetId(), err))
	}

	g.mu.Lock()
	defer g.mu.Unlock()
	g.flushed[i] = seg.GetId()
	g.done++
	g.files += len(files)
	g.bytes += int64(len(files)) * o.FileSize
	if o.Progress != nil {
		o.Progress(g.done, o.Segments)
	}
	return nil
}

// dropTimeout bounds allocating a segment, and dropping one whose writing failed:
// calls that run on when the run is cancelled.
const dropTimeout = 30 * time.Second

// dropAllocated drops segment id, which this run allocated but could not finish, and
// returns cause (with the drop's own failure, if any). It runs even when ctx is
// cancelled — a cancelled run is exactly when allocations would be left behind.
func (g *generator) dropAllocated(ctx context.Context, id uint64, cause error) error {
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), dropTimeout)
	defer cancel()
	if _, err := g.cl.DropSegments(ctx, client.NewDropSegmentsOption(id)); err != nil {
		return errors.Join(cause, fmt.Errorf("datagen: drop the unfinished segment %d (its lease will expire instead): %w", id, err))
	}
	return cause
}

// firstError picks the error to report from a segment's uploads: the first that is
// not just the run being cancelled, as that one says why the run was cancelled.
func firstError(ctx context.Context, errs []error) error {
	var first error
	for _, err := range errs {
		if err == nil {
			continue
		}
		if ctx.Err() == nil || !errors.Is(err, context.Cause(ctx)) && !errors.Is(err, ctx.Err()) {
			return err
		}
		if first == nil {
			first = err
		}
	}
	return first
}

// upload writes file j of segment ordinal i and describes it for the flush.
func (g *generator) upload(ctx context.Context, seg *snapkeepv1.Segment, i, j int, spec FileSpec) (*snapkeepv1.File, error) {
	key, err := g.keyOf(seg, spec)
	if err != nil {
		return nil, err
	}
	content := NewContent(g.opts.Seed, i, j, g.opts.FileSize)
	sum := content.CRC32C()
	if _, err := g.store.Put(ctx, key, content, content.Size(), objstore.PutOptions{CRC32C: sum, HasCRC32C: true}); err != nil {
		return nil, fmt.Errorf("datagen: segment %d: upload %q: %w", seg.GetId(), key, err)
	}
	return &snapkeepv1.File{Key: key, Kind: spec.Kind, FieldId: spec.FieldID, Size: uint64(content.Size()), Crc32C: sum}, nil
}

// ErrMismatch means an object's size or CRC-32C differs from the catalog's record.
var ErrMismatch = errors.New("object does not match the catalog")

// Verify reads back every file of seg, including those of its ready index builds, and
// checks each against the size and CRC-32C the catalog records (the size alone for a
// file registered without a CRC-32C, recorded as 0). It reports every bad
// file, joined: test with errors.Is for ErrMismatch or objstore.ErrNotFound.
func Verify(ctx context.Context, store objstore.Store, seg *snapkeepv1.Segment) error {
	files := seg.GetFiles()
	for _, b := range seg.GetIndexBuilds() {
		if b.GetState() == snapkeepv1.IndexBuildState_INDEX_BUILD_STATE_READY {
			files = append(files[:len(files):len(files)], b.GetFiles()...)
		}
	}
	var errs []error
	for _, f := range files {
		if err := verifyFile(ctx, store, f); err != nil {
			if ctx.Err() != nil {
				return err
			}
			errs = append(errs, fmt.Errorf("segment %d: %w", seg.GetId(), err))
		}
	}
	return errors.Join(errs...)
}

func verifyFile(ctx context.Context, store objstore.Store, f *snapkeepv1.File) error {
	body, _, err := store.Get(ctx, f.GetKey())
	if err != nil {
		return fmt.Errorf("read %q: %w", f.GetKey(), err)
	}
	defer body.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, body)
	if err != nil {
		return fmt.Errorf("read %q: %w", f.GetKey(), err)
	}
	// A CRC-32C of 0 means none was registered: the size is all there is to check.
	if uint64(n) != f.GetSize() || (f.GetCrc32C() != 0 && h.Sum32() != f.GetCrc32C()) {
		return fmt.Errorf("%q has %d bytes with CRC-32C %08x, the catalog records %d bytes with %08x: %w",
			f.GetKey(), n, h.Sum32(), f.GetSize(), f.GetCrc32C(), ErrMismatch)
	}
	return nil
}
