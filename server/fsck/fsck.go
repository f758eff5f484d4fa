// Package fsck cross-checks the catalog, the snapshots' manifests and the bucket:
// every file the catalog says must exist is listed with its size (and, deep, read
// back with its CRC-32C); every committed snapshot's manifest is present, matches the
// size and xxhash64 the catalog recorded, decodes, and lists exactly the segments,
// files and index builds the snapshot captured; objects no record owns are reported
// as orphans with their ages.
//
// It reads one catalog view (one log index) and the bucket as it is while it runs:
// an object written or deleted meanwhile may be reported, so a report with problems
// is worth a second run before acting on it. It never writes.
package fsck

import (
	"bytes"
	"context"
	"fmt"
	"hash/crc32"
	"io"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/cespare/xxhash/v2"
	"golang.org/x/time/rate"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/objstore"
)

// Problem kinds.
const (
	Missing          = "missing"           // an expected object is not in the listing
	SizeMismatch     = "size-mismatch"     // listed with another size than the catalog's
	ChecksumMismatch = "checksum-mismatch" // deep: read back with another CRC-32C
	ReadError        = "read-error"        // deep: could not be read
	ManifestMissing  = "manifest-missing"
	ManifestDamaged  = "manifest-damaged" // size or xxhash64 not the catalog's, or undecodable
	// ManifestReadError: listed, but reading it failed (what it holds is not known).
	ManifestReadError = "manifest-read-error"
	ManifestContent   = "manifest-content" // decodes, but lists other segments or files than captured
	// CatalogDamaged: a record's own file list does not decode. The catalog is the
	// authority, so nothing can be repaired from it: restore the metadata backup.
	CatalogDamaged = "catalog-damaged"
)

// Options say what to check.
type Options struct {
	// Database and Collection limit the check to one collection ("" for both: every
	// collection; Database "" is "default" when Collection is set). A dropped
	// collection of that name is checked when no live one has it.
	Database, Collection string
	// Deep reads every expected data file and compares its CRC-32C.
	Deep bool
	// Readers are the other nodes: deep reads are shared between them and this one,
	// batch by batch (a batch a reader fails is read here).
	Readers []Reader
	// ReadBatch is how many files one batch of deep reads holds (default 64).
	ReadBatch int
	// Concurrency bounds listings and deep reads in flight (default 8).
	Concurrency int
	// BytesPerSecond limits deep reads (0: no limit).
	BytesPerSecond int64
	// Now dates orphans (default time.Now()).
	Now time.Time
}

// Problem is one thing found wrong.
type Problem struct {
	Kind string
	Key  string // full object key
	// Size is what the bucket has (0 when missing), Want what the catalog says.
	Size, Want uint64
	Detail     string
	Collection string // database/name
	// What needs the object: segments, index builds and the snapshots that pin them.
	Segments, Builds, Snapshots []uint64
}

// Orphan is an object under a checked prefix that no record owns.
type Orphan struct {
	Key  string
	Size uint64
	Age  time.Duration
}

// Report is what a check found.
type Report struct {
	AppliedIndex uint64
	Collections  int
	// Files and bytes the catalog expects, objects and bytes listed under their
	// prefixes, files read back (deep).
	FilesExpected, BytesExpected uint64
	ObjectsListed, BytesListed   uint64
	FilesRead, BytesRead         uint64
	ManifestsChecked             int
	// ReadersFailed: other nodes that failed a batch of deep reads (then read here).
	ReadersFailed []string
	Problems      []Problem
	Orphans       []Orphan
	Deep          bool
}

// Clean reports whether nothing is wrong: orphans are garbage for the collector,
// not damage, and do not count.
func (r *Report) Clean() bool { return len(r.Problems) == 0 }

// BrokenSnapshots are the snapshots a problem affects, sorted.
func (r *Report) BrokenSnapshots() []uint64 {
	seen := map[uint64]bool{}
	for _, p := range r.Problems {
		for _, s := range p.Snapshots {
			seen[s] = true
		}
	}
	out := make([]uint64, 0, len(seen))
	for s := range seen {
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

// expected is an object the catalog says exists.
type expected struct {
	size      uint64
	listed    int64 // the size the listing gave; -1: not listed (yet)
	crc       uint32
	coll      string
	segment   uint64
	build     uint64
	snapshots []uint64
}

type checker struct {
	view  *fsm.View
	store objstore.Store
	root  layout.Root
	opts  Options

	mu       sync.Mutex
	rep      *Report
	want     map[string]*expected // full key → what the catalog says
	prefixes map[string]bool      // full prefixes to list
	// others: listed objects no expected file is (manifests, orphans, uploads in
	// flight); an expected file's listing is kept in its expected entry, so a check of
	// millions of files holds one entry per file, not two.
	others map[string]objstore.ObjectInfo
}

// Check runs fsck over view and store (the cluster's bucket, keys under root). An
// error means the check could not run (a listing failed for good, the collection is
// unknown); what it found wrong is in the report.
func Check(ctx context.Context, view *fsm.View, store objstore.Store, root layout.Root, opts Options) (*Report, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	c := &checker{view: view, store: store, root: root, opts: opts,
		rep:  &Report{AppliedIndex: view.AppliedIndex(), Deep: opts.Deep},
		want: map[string]*expected{}, prefixes: map[string]bool{}, others: map[string]objstore.ObjectInfo{}}
	colls, err := c.collections()
	if err != nil {
		return nil, err
	}
	c.rep.Collections = len(colls)
	ids := map[uint64]*fsmpb.Collection{}
	for _, coll := range colls {
		ids[coll.Id] = coll
		c.expectCollection(coll)
	}
	snaps := c.committedSnapshots(ids)
	if len(snaps) > 0 {
		c.prefixes[root.FullPrefix("snapshots/")] = true
	}
	if err := c.listAll(ctx); err != nil {
		return nil, err
	}
	c.compare()
	if err := c.checkManifests(ctx, snaps); err != nil {
		return nil, err
	}
	if opts.Deep {
		if err := c.readBack(ctx); err != nil {
			return nil, err
		}
	}
	c.sortReport()
	return c.rep, nil
}

// CheckSnapshot checks one committed snapshot: its manifest, and the files of the
// segments and index builds it pins (sizes by listing; deep: CRC-32C by reading).
// Every problem names the snapshot. Orphans are not looked for.
func CheckSnapshot(ctx context.Context, view *fsm.View, store objstore.Store, root layout.Root, snap *fsmpb.Snapshot, opts Options) (*Report, error) {
	return CheckSnapshots(ctx, view, store, root, []*fsmpb.Snapshot{snap}, opts)
}

// CheckSnapshots checks committed snapshots as CheckSnapshot does, each prefix listed
// once for all of them (snapshots of one collection share most of their files). A
// problem names every snapshot of snaps it affects.
func CheckSnapshots(ctx context.Context, view *fsm.View, store objstore.Store, root layout.Root, snaps []*fsmpb.Snapshot, opts Options) (*Report, error) {
	if opts.Concurrency <= 0 {
		opts.Concurrency = 8
	}
	c := &checker{view: view, store: store, root: root, opts: opts,
		rep:  &Report{AppliedIndex: view.AppliedIndex(), Deep: opts.Deep},
		want: map[string]*expected{}, prefixes: map[string]bool{}, others: map[string]objstore.ObjectInfo{}}
	colls := map[uint64]bool{}
	for _, snap := range snaps {
		coll, err := view.CollectionByID(snap.CollectionId)
		if err != nil {
			return nil, err
		}
		colls[coll.Id] = true
		keys := fsm.KeysOf(coll)
		name := collName(coll)
		pins := []uint64{snap.Id}
		for _, id := range snap.SegmentIds {
			s, err := view.Segment(id)
			if err != nil {
				return nil, fmt.Errorf("snapshot %d pins segment %d: %w", snap.Id, id, err)
			}
			c.expectFiles(keys.Layout(), s.Files, func(rel string) string { return keys.Segment(s, rel) }, name, s.Id, 0, pins)
			for _, b := range s.IndexBuilds {
				if _, pinned := slices.BinarySearch(snap.BuildIds, b.BuildId); pinned {
					c.expectFiles(keys.Layout(), b.Files, func(rel string) string { return keys.Build(s, b.BuildId, rel) }, name, s.Id, b.BuildId, pins)
				}
			}
		}
		c.prefixes[root.Full(snap.ManifestKey)] = true // one listing of the manifest's own key
	}
	c.rep.Collections = len(colls)
	if err := c.listAll(ctx); err != nil {
		return nil, err
	}
	c.compareExpected()
	if err := c.checkManifests(ctx, snaps); err != nil {
		return nil, err
	}
	if opts.Deep {
		if err := c.readBack(ctx); err != nil {
			return nil, err
		}
	}
	c.sortReport()
	return c.rep, nil
}

// IsManifestProblem reports whether a problem kind is about a manifest (which the
// catalog can rewrite) rather than a data file (which it cannot). A manifest that
// could not be read is neither: see IsReadFailure.
func IsManifestProblem(kind string) bool {
	return kind == ManifestMissing || kind == ManifestDamaged || kind == ManifestContent
}

// IsReadFailure reports whether a problem kind says only that an object could not be
// read (a fault of the store or the network, perhaps passing): nothing is known of
// its content, so it proves no damage.
func IsReadFailure(kind string) bool {
	return kind == ReadError || kind == ManifestReadError
}

func (c *checker) collections() ([]*fsmpb.Collection, error) {
	if c.opts.Collection != "" {
		coll, _, err := c.view.CollectionOrDropped(c.opts.Database, c.opts.Collection)
		if err != nil {
			return nil, err
		}
		return []*fsmpb.Collection{coll}, nil
	}
	var out []*fsmpb.Collection
	c.view.EachCollection(func(coll *fsmpb.Collection) bool {
		out = append(out, coll)
		return true
	})
	return out, nil
}

func collName(coll *fsmpb.Collection) string {
	return fmt.Sprintf("%s (id %d)", coll.Name, coll.Id)
}

// expectCollection records the files coll's records need: a flushed segment's, a
// dropped segment's while a snapshot pins it, a ready build's of a flushed segment,
// a build's while a snapshot pins it. Uploads in flight (allocated segments and
// builds) are not expected: their files may not be there yet.
func (c *checker) expectCollection(coll *fsmpb.Collection) {
	keys := fsm.KeysOf(coll)
	name := collName(coll)
	c.view.EachSegment(coll.Id, 0, func(s *fsmpb.Segment) bool {
		pins := c.view.SegmentPinnedBy(s.Id)
		if s.State == fsmpb.SegmentState_SEGMENT_STATE_FLUSHED || (s.State == fsmpb.SegmentState_SEGMENT_STATE_DROPPED && len(pins) > 0) {
			c.expectFiles(keys.Layout(), s.Files, func(rel string) string { return keys.Segment(s, rel) }, name, s.Id, 0, pins)
		}
		for _, b := range s.IndexBuilds {
			bpins := c.view.BuildPinnedBy(b.BuildId)
			live := b.State == fsmpb.BuildState_BUILD_STATE_READY && s.State == fsmpb.SegmentState_SEGMENT_STATE_FLUSHED
			if live || (b.State != fsmpb.BuildState_BUILD_STATE_ALLOCATED && len(bpins) > 0) {
				c.expectFiles(keys.Layout(), b.Files, func(rel string) string { return keys.Build(s, b.BuildId, rel) }, name, s.Id, b.BuildId, bpins)
			}
		}
		return true
	})
}

func (c *checker) expectFiles(l layout.Layout, blob []byte, key func(rel string) string, coll string, segment, build uint64, pins []uint64) {
	err := filelist.ForEach(blob, func(e filelist.Entry) bool {
		rel := key(e.Key)
		full := c.root.Full(rel)
		if w, ok := c.want[full]; ok {
			// another snapshot of the same check pins it too
			for _, p := range pins {
				if !slices.Contains(w.snapshots, p) {
					// the slice may be shared by a segment's files: copy on append
					w.snapshots = append(slices.Clip(w.snapshots), p)
				}
			}
			return true
		}
		c.want[full] = &expected{size: e.Size, listed: -1, crc: e.CRC32C, coll: coll, segment: segment, build: build, snapshots: pins}
		c.rep.FilesExpected++
		c.rep.BytesExpected += e.Size
		prefix := l.ListPrefix(rel)
		if prefix == "" {
			prefix = rel
		}
		c.prefixes[c.root.FullPrefix(prefix)] = true
		return true
	})
	if err != nil {
		c.rep.Problems = append(c.rep.Problems, Problem{Kind: CatalogDamaged, Collection: coll, Segments: []uint64{segment},
			Snapshots: pins, Detail: fmt.Sprintf("the catalog's file list of segment %d does not decode: %v", segment, err)})
	}
}

// committedSnapshots are the committed snapshots of the collections in ids.
func (c *checker) committedSnapshots(ids map[uint64]*fsmpb.Collection) []*fsmpb.Snapshot {
	var out []*fsmpb.Snapshot
	for _, db := range c.view.Databases() {
		_ = c.view.EachSnapshot(fsm.SnapshotFilter{Database: db.Name, States: []fsmpb.SnapshotState{fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED}}, 0,
			func(s *fsmpb.Snapshot) bool {
				if ids[s.CollectionId] != nil {
					out = append(out, s)
				}
				return true
			})
	}
	return out
}

// listAll lists every prefix once, in parallel, dropping prefixes another prefix
// covers.
func (c *checker) listAll(ctx context.Context) error {
	all := make([]string, 0, len(c.prefixes))
	for p := range c.prefixes {
		all = append(all, p)
	}
	sort.Strings(all)
	var prefixes []string
	for _, p := range all {
		if n := len(prefixes); n > 0 && strings.HasPrefix(p, prefixes[n-1]) {
			continue
		}
		prefixes = append(prefixes, p)
	}
	sem := make(chan struct{}, c.opts.Concurrency)
	errs := make(chan error, len(prefixes))
	var wg sync.WaitGroup
	for _, p := range prefixes {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			errs <- c.list(ctx, p)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

func (c *checker) list(ctx context.Context, prefix string) error {
	return objstore.Walk(ctx, c.store, prefix, 1000, func(page objstore.ListPage) error {
		c.mu.Lock()
		defer c.mu.Unlock()
		for _, o := range page.Objects {
			if w, ok := c.want[o.Key]; ok {
				w.listed = o.Size
			} else {
				c.others[o.Key] = o
			}
			c.rep.ObjectsListed++
			c.rep.BytesListed += uint64(o.Size)
		}
		return nil
	})
}

// compareExpected reports expected objects missing from the listing or listed with
// another size.
func (c *checker) compareExpected() {
	for key, w := range c.want {
		switch {
		case w.listed < 0:
			c.problem(Missing, key, 0, w, "not in the bucket's listing: data loss")
		case uint64(w.listed) != w.size:
			c.problem(SizeMismatch, key, uint64(w.listed), w, fmt.Sprintf("listed with %d bytes, the catalog has %d", w.listed, w.size))
		}
	}
}

// compare reports expected objects missing or of another size, and listed objects
// nothing owns.
func (c *checker) compare() {
	c.compareExpected()
	for key, o := range c.others {
		rel, ok := c.root.Relative(key)
		if !ok {
			continue
		}
		if owned, _ := c.view.KeyOwned(rel); owned {
			continue // a record owns it: an upload in flight, a dropped file for GC, a manifest
		}
		c.rep.Orphans = append(c.rep.Orphans, Orphan{Key: key, Size: uint64(o.Size), Age: c.opts.Now.Sub(o.LastModified)})
	}
}

func (c *checker) problem(kind, key string, size uint64, w *expected, detail string) {
	p := Problem{Kind: kind, Key: key, Size: size, Want: w.size, Detail: detail, Collection: w.coll,
		Segments: []uint64{w.segment}, Snapshots: w.snapshots}
	if w.build != 0 {
		p.Builds = []uint64{w.build}
	}
	c.mu.Lock()
	c.rep.Problems = append(c.rep.Problems, p)
	c.mu.Unlock()
}

// checkManifests checks each committed snapshot's manifest: listed with the recorded
// size, read back with the recorded xxhash64, decoded (every checksum inside), and
// listing exactly the captured segments, with the catalog's file lists and pinned
// builds.
func (c *checker) checkManifests(ctx context.Context, snaps []*fsmpb.Snapshot) error {
	for _, s := range snaps {
		if err := ctx.Err(); err != nil {
			return err
		}
		c.rep.ManifestsChecked++
		key := c.root.Full(s.ManifestKey)
		mp := func(kind, detail string, size uint64) {
			c.rep.Problems = append(c.rep.Problems, Problem{Kind: kind, Key: key, Size: size, Want: s.ManifestSize,
				Detail:     fmt.Sprintf("snapshot %s/%s (id %d): %s", s.CollectionName, s.Name, s.Id, detail),
				Collection: fmt.Sprintf("%s (id %d)", s.CollectionName, s.CollectionId), Snapshots: []uint64{s.Id}})
		}
		o, ok := c.others[key]
		if !ok {
			mp(ManifestMissing, "the manifest is not in the bucket's listing", 0)
			continue
		}
		body, err := readAll(ctx, c.store, key)
		if err != nil {
			mp(ManifestReadError, fmt.Sprintf("cannot read the manifest: %v", err), uint64(o.Size))
			continue
		}
		if uint64(len(body)) != s.ManifestSize || xxhash.Sum64(body) != s.ManifestChecksum {
			mp(ManifestDamaged, fmt.Sprintf("the manifest has %d bytes with xxhash64 %016x; the catalog recorded %d bytes with %016x",
				len(body), xxhash.Sum64(body), s.ManifestSize, s.ManifestChecksum), uint64(len(body)))
			continue
		}
		if _, err := manifest.Verify(bytes.NewReader(body), int64(len(body))); err != nil {
			mp(ManifestDamaged, fmt.Sprintf("the manifest does not decode: %v", err), uint64(len(body)))
			continue
		}
		if diff := c.manifestDiff(ctx, s, body); diff != "" {
			mp(ManifestContent, diff, uint64(len(body)))
		}
	}
	return nil
}

// manifestDiff says how the manifest's segments differ from what s captured ("" when
// they do not).
func (c *checker) manifestDiff(ctx context.Context, s *fsmpb.Snapshot, body []byte) string {
	rd, err := manifest.Open(bytes.NewReader(body), int64(len(body)))
	if err != nil {
		return fmt.Sprintf("the manifest does not open: %v", err)
	}
	captured := map[uint64]bool{}
	for _, id := range s.SegmentIds {
		captured[id] = true
	}
	var diffs []string
	seen := map[uint64]bool{}
	err = rd.Segments(ctx, manifest.ReadOptions{}, func(m *manifest.Segment) error {
		seen[m.ID] = true
		if !captured[m.ID] {
			diffs = append(diffs, fmt.Sprintf("segment %d is not captured", m.ID))
			return nil
		}
		seg, err := c.view.Segment(m.ID)
		if err != nil {
			diffs = append(diffs, fmt.Sprintf("segment %d: %v", m.ID, err))
			return nil
		}
		if !bytes.Equal(m.Files, seg.Files) {
			diffs = append(diffs, fmt.Sprintf("segment %d's file list is not the catalog's", m.ID))
		}
		var want []uint64
		for _, b := range seg.IndexBuilds {
			if _, pinned := slices.BinarySearch(s.BuildIds, b.BuildId); pinned {
				want = append(want, b.BuildId)
			}
		}
		var got []uint64
		for _, b := range m.IndexBuilds {
			got = append(got, b.BuildID)
		}
		slices.Sort(want)
		slices.Sort(got)
		if !slices.Equal(want, got) {
			diffs = append(diffs, fmt.Sprintf("segment %d: index builds %v, captured %v", m.ID, got, want))
		}
		return nil
	})
	if err != nil {
		return fmt.Sprintf("the manifest's segments do not read: %v", err)
	}
	for _, id := range s.SegmentIds {
		if !seen[id] {
			diffs = append(diffs, fmt.Sprintf("captured segment %d is not in it", id))
		}
	}
	if len(diffs) > 5 {
		diffs = append(diffs[:5], fmt.Sprintf("… %d more", len(diffs)-5))
	}
	return strings.Join(diffs, "; ")
}

func readAll(ctx context.Context, store objstore.Store, key string) ([]byte, error) {
	r, _, err := store.Get(ctx, key)
	if err != nil {
		return nil, err
	}
	defer r.Close()
	return io.ReadAll(r)
}

// readBack reads every expected object that is listed with its size and compares its
// CRC-32C with the catalog's, in batches shared between this node and the Readers.
func (c *checker) readBack(ctx context.Context) error {
	var items []ReadItem
	for k, w := range c.want {
		if w.listed >= 0 && uint64(w.listed) == w.size {
			items = append(items, ReadItem{Key: k, Size: w.size, CRC32C: w.crc})
		}
	}
	slices.SortFunc(items, func(a, b ReadItem) int { return strings.Compare(a.Key, b.Key) })
	size := c.opts.ReadBatch
	if size <= 0 {
		size = 64
	}
	batches := make(chan []ReadItem, len(items)/size+1)
	for start := 0; start < len(items); start += size {
		batches <- items[start:min(start+size, len(items))]
	}
	close(batches)
	// Each reader gets its share of the rate.
	share := c.opts.BytesPerSecond
	if share > 0 {
		share = max(1, share/int64(1+len(c.opts.Readers)))
	}
	var retry sync.Mutex
	var again [][]ReadItem // batches a reader failed, read here at the end
	var wg sync.WaitGroup
	for _, r := range c.opts.Readers {
		wg.Go(func() {
			for batch := range batches {
				if ctx.Err() != nil {
					return
				}
				res, err := r.ReadBack(ctx, batch, share, c.opts.Concurrency)
				if err != nil {
					retry.Lock()
					again = append(again, batch)
					retry.Unlock()
					c.mu.Lock()
					c.rep.ReadersFailed = append(c.rep.ReadersFailed, fmt.Sprintf("%s: %v", r.Name(), err))
					c.mu.Unlock()
					return // this reader takes no more
				}
				c.add(res)
			}
		})
	}
	here := func(batch []ReadItem) {
		res := ReadBack(ctx, c.store, batch, share, c.opts.Concurrency)
		c.add(res)
	}
	wg.Go(func() {
		for batch := range batches {
			if ctx.Err() != nil {
				return
			}
			here(batch)
		}
	})
	wg.Wait()
	for _, batch := range again {
		if ctx.Err() != nil {
			break
		}
		here(batch)
	}
	return ctx.Err()
}

// add counts a batch's reads and reports its problems.
func (c *checker) add(res ReadResults) {
	c.mu.Lock()
	c.rep.FilesRead += res.Files
	c.rep.BytesRead += res.Bytes
	c.mu.Unlock()
	for _, p := range res.Problems {
		if w := c.want[p.Key]; w != nil { // want is only read while reads run
			c.problem(p.Kind, p.Key, p.Read, w, p.Detail)
		}
	}
}

// ReadItem is a file to read back: its full key and what the catalog says.
type ReadItem struct {
	Key    string
	Size   uint64
	CRC32C uint32 // 0 with Size > 0: unknown, size only
}

// ReadProblem is what reading one file found wrong.
type ReadProblem struct {
	Key, Kind, Detail string
	Read              uint64 // bytes read
}

// ReadResults are a batch's reads: files and bytes read, and the problems.
type ReadResults struct {
	Files, Bytes uint64
	Problems     []ReadProblem
}

// Reader reads batches of files back on another node (Internal.FsckRead).
type Reader interface {
	Name() string
	// ReadBack reads items at most bytesPerSecond (0: no limit), concurrency at once.
	// An error means the batch was not read (the node could not be asked).
	ReadBack(ctx context.Context, items []ReadItem, bytesPerSecond int64, concurrency int) (ReadResults, error)
}

var castagnoli = crc32.MakeTable(crc32.Castagnoli)

// ReadBack reads items from store, concurrency at once (default 8) and at most
// bytesPerSecond (0: no limit), and compares each one's size and CRC-32C with the
// item's. It is what a node does for Internal.FsckRead.
func ReadBack(ctx context.Context, store objstore.Store, items []ReadItem, bytesPerSecond int64, concurrency int) ReadResults {
	if concurrency <= 0 {
		concurrency = 8
	}
	limit := rate.Inf
	burst := 1 << 30
	if bytesPerSecond > 0 {
		limit, burst = rate.Limit(bytesPerSecond), int(max(bytesPerSecond, 1<<20))
	}
	lim := rate.NewLimiter(limit, burst)
	var mu sync.Mutex
	var out ReadResults
	sem := make(chan struct{}, concurrency)
	var wg sync.WaitGroup
	for _, it := range items {
		if ctx.Err() != nil {
			break
		}
		sem <- struct{}{}
		wg.Go(func() {
			defer func() { <-sem }()
			n, p := readOne(ctx, store, lim, it)
			mu.Lock()
			defer mu.Unlock()
			if n >= 0 {
				out.Files++
				out.Bytes += uint64(n)
			}
			if p != nil {
				out.Problems = append(out.Problems, *p)
			}
		})
	}
	wg.Wait()
	return out
}

// readBuffers: deep reads go through 256 KiB buffers, reused: fewer read calls per
// object than io.Copy's 32 KiB, and no buffer allocated per object.
var readBuffers = sync.Pool{New: func() any { b := make([]byte, 256<<10); return &b }}

// readOne reads it; n is the bytes read (-1: not read, the context ended first).
func readOne(ctx context.Context, store objstore.Store, lim *rate.Limiter, it ReadItem) (int64, *ReadProblem) {
	if err := lim.WaitN(ctx, int(min(it.Size, uint64(lim.Burst())))); err != nil {
		return -1, nil
	}
	r, _, err := store.Get(ctx, it.Key)
	if err != nil {
		if ctx.Err() != nil {
			return -1, nil
		}
		return 0, &ReadProblem{Key: it.Key, Kind: ReadError, Detail: fmt.Sprintf("cannot read it: %v", err)}
	}
	defer r.Close()
	h := crc32.New(castagnoli)
	buf := readBuffers.Get().(*[]byte)
	n, err := io.CopyBuffer(h, r, *buf)
	readBuffers.Put(buf)
	switch {
	case err != nil:
		if ctx.Err() != nil {
			return -1, nil
		}
		return n, &ReadProblem{Key: it.Key, Kind: ReadError, Read: uint64(n), Detail: fmt.Sprintf("reading it failed after %d bytes: %v", n, err)}
	case uint64(n) != it.Size:
		return n, &ReadProblem{Key: it.Key, Kind: SizeMismatch, Read: uint64(n), Detail: fmt.Sprintf("read %d bytes, the catalog has %d", n, it.Size)}
	case it.CRC32C == 0 && it.Size > 0:
		return n, nil // the catalog does not know this file's CRC-32C: size only
	case h.Sum32() != it.CRC32C:
		return n, &ReadProblem{Key: it.Key, Kind: ChecksumMismatch, Read: uint64(n),
			Detail: fmt.Sprintf("CRC-32C %08x read back, the catalog has %08x", h.Sum32(), it.CRC32C)}
	}
	return n, nil
}

func (c *checker) sortReport() {
	slices.SortFunc(c.rep.Problems, func(a, b Problem) int {
		return strings.Compare(a.Kind+"\x00"+a.Key+a.Detail, b.Kind+"\x00"+b.Key+b.Detail)
	})
	slices.SortFunc(c.rep.Orphans, func(a, b Orphan) int { return strings.Compare(a.Key, b.Key) })
}
