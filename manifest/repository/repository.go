package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"reflect"
	"slices"
	"time"

	"github.com/cespare/xxhash/v2"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/objstore"
)

// DefaultKeepGenerations is how many index generations are kept by default.
const DefaultKeepGenerations = 5

// MaxUpdateAttempts is how many times Update tries to write the next generation
// before it gives up on a contended repository.
const MaxUpdateAttempts = 10

// Options tune a Repository. The zero value is the default.
type Options struct {
	// Logger receives what the repository does and what it skips (unparseable keys,
	// failed deletes of old generations); nil discards it.
	Logger *slog.Logger
	// KeepGenerations is how many of the newest index generations Update and Collect
	// keep (older ones are deleted); 0 means DefaultKeepGenerations.
	KeepGenerations int
}

// Repository is an opened repository: a store, a prefix and the marker read at Open.
// It is safe for concurrent use; it caches nothing but the marker, so every call reads
// the current state of the store.
type Repository struct {
	store  objstore.Store
	keys   Keys
	marker Marker
	log    *slog.Logger
	keep   int
}

// Open opens the repository under prefix: it reads and checks the marker. A missing
// marker gives an error wrapping ErrNotARepository and objstore.ErrNotFound; a damaged
// one ErrCorrupt; a marker of a newer version ErrUnsupportedVersion. Open reads one
// object and writes nothing. Safe for concurrent use.
func Open(ctx context.Context, store objstore.Store, prefix string, opts Options) (*Repository, error) {
	if opts.KeepGenerations < 0 {
		return nil, fmt.Errorf("repository: KeepGenerations %d is negative", opts.KeepGenerations)
	}
	keys := NewKeys(prefix)
	m, err := readMarker(ctx, store, keys)
	if err != nil {
		return nil, err
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	keep := opts.KeepGenerations
	if keep == 0 {
		keep = DefaultKeepGenerations
	}
	return &Repository{store: store, keys: keys, marker: m, log: log.With("repository", keys.Prefix()), keep: keep}, nil
}

// Marker returns the marker as read by Open (Update reads it again; this does not).
// Safe for concurrent use.
func (r *Repository) Marker() Marker { return r.marker }

// Keys returns the repository's key builder. Safe for concurrent use.
func (r *Repository) Keys() Keys { return r.keys }

// indexListing is what a listing of P/index/ found.
type indexListing struct {
	gens   []uint64 // parseable generations, ascending
	strays []string // keys under P/index/ that are not generations
}

func (r *Repository) listIndex(ctx context.Context) (indexListing, error) {
	var l indexListing
	err := objstore.Walk(ctx, r.store, r.keys.IndexPrefix(), 0, func(page objstore.ListPage) error {
		for _, o := range page.Objects {
			info, _ := r.keys.Parse(o.Key)
			if info.Kind == KeyIndex {
				l.gens = append(l.gens, info.Generation)
			} else {
				l.strays = append(l.strays, o.Key)
			}
		}
		return nil
	})
	if err != nil {
		return l, fmt.Errorf("repository: %w", err)
	}
	slices.Sort(l.gens)
	if len(l.strays) > 0 {
		r.log.Warn("ignoring keys under the index prefix that are not index generations", "count", len(l.strays), "first", l.strays[0])
	}
	return l, nil
}

// latest reads the newest generation. A generation deleted between the listing and
// the read (by a writer keeping the last K) makes it list again, a few times.
func (r *Repository) latest(ctx context.Context) (*Index, indexListing, error) {
	for attempt := 0; ; attempt++ {
		l, err := r.listIndex(ctx)
		if err != nil {
			return nil, l, err
		}
		if len(l.gens) == 0 {
			return &Index{RepositoryID: r.marker.RepositoryID, Snapshots: []Entry{}}, l, nil
		}
		gen := l.gens[len(l.gens)-1]
		ix, err := r.readIndex(ctx, gen)
		if errors.Is(err, objstore.ErrNotFound) && attempt < 3 {
			continue
		}
		return ix, l, err
	}
}

// readIndex reads and checks generation gen.
func (r *Repository) readIndex(ctx context.Context, gen uint64) (*Index, error) {
	key := r.keys.Index(gen)
	b, err := readSmall(ctx, r.store, key, MaxIndexJSON+IndexHeaderLen)
	if err != nil {
		return nil, fmt.Errorf("repository: read index %q: %w", key, err)
	}
	ix, err := DecodeIndex(key, b)
	if err != nil {
		return nil, err
	}
	if ix.RepositoryID != r.marker.RepositoryID {
		return nil, fmt.Errorf("%w: index %q belongs to repository %s, the marker says %s", ErrCorrupt, key, ix.RepositoryID, r.marker.RepositoryID)
	}
	return ix, nil
}

// Latest returns the newest index generation: the highest generation listed under
// P/index/ (keys there that are not generations are logged and ignored), or the empty
// generation 0 when there is none. A damaged newest generation is an error wrapping
// ErrCorrupt: Latest never falls back to an older one (that would hide updates).
// Safe for concurrent use; the caller owns the result.
func (r *Repository) Latest(ctx context.Context) (*Index, error) {
	ix, _, err := r.latest(ctx)
	return ix, err
}

// Snapshot returns the entry with the given id in the latest generation, or an error
// wrapping ErrNotFound. Safe for concurrent use.
func (r *Repository) Snapshot(ctx context.Context, id string) (Entry, error) {
	ix, err := r.Latest(ctx)
	if err != nil {
		return Entry{}, err
	}
	e, ok := ix.Find(id)
	if !ok {
		return Entry{}, fmt.Errorf("%w: no snapshot %q in generation %d of repository %q", ErrNotFound, id, ix.Generation, r.keys.Prefix())
	}
	return e, nil
}

// Update applies change to the latest generation N and writes it as generation N+1
// with a conditional create; when another writer created N+1 first it reads again and
// retries (up to MaxUpdateAttempts times, with a short random backoff; then the error
// wraps objstore.ErrPreconditionFailed). change gets a deep copy it may modify freely
// and may be called several times, each time on the then-latest generation: it must
// decide from its argument alone (add an entry if absent, remove one if present). Its
// error is returned wrapped. Update sets generation, repository id, writer and
// written_at (now) and sorts the entries by id; an invalid result is refused. A change
// that leaves the entries as they were writes nothing and returns the latest.
//
// writerCluster must be the repository's writer: if the marker (read again by each
// Update) or the latest generation names another cluster, or the marker none, the
// error wraps ErrOtherWriter and nothing is written.
//
// After writing, Update checks the generation is still its own (its ETag, with a HEAD;
// a server that ignored If-None-Match may have let another writer overwrite it: then
// it retries) and deletes generations
// older than the newest KeepGenerations, best effort (a failure is only logged).
// Safe for concurrent use, from any number of processes of the writer cluster.
func (r *Repository) Update(ctx context.Context, writerCluster string, now time.Time, change func(*Index) error) (*Index, error) {
	if err := CheckClusterID(writerCluster); err != nil {
		return nil, fmt.Errorf("repository: update: writer: %w", err)
	}
	m, err := readMarker(ctx, r.store, r.keys)
	if err != nil {
		return nil, err
	}
	if m.RepositoryID != r.marker.RepositoryID {
		return nil, fmt.Errorf("%w: the marker %q now names repository %s; this one was opened as %s (the repository was replaced: open it again)",
			ErrCorrupt, r.keys.Marker(), m.RepositoryID, r.marker.RepositoryID)
	}
	if m.WriterClusterID != writerCluster {
		return nil, r.otherWriter(writerCluster, m.WriterClusterID, "its marker")
	}
	for attempt := 1; ; attempt++ {
		cur, listing, err := r.latest(ctx)
		if err != nil {
			return nil, err
		}
		if cur.Generation > 0 && cur.WriterClusterID != writerCluster {
			return nil, r.otherWriter(writerCluster, cur.WriterClusterID, fmt.Sprintf("index generation %d", cur.Generation))
		}
		next := cur.clone()
		if err := change(next); err != nil {
			return nil, fmt.Errorf("repository %q: update of generation %d: %w", r.keys.Prefix(), cur.Generation, err)
		}
		for i := range next.Snapshots {
			e := &next.Snapshots[i]
			e.CreatedAt, e.ExportedAt = utc(e.CreatedAt), utc(e.ExportedAt)
			if len(e.Labels) == 0 {
				e.Labels = nil
			}
		}
		sortEntries(next.Snapshots)
		if reflect.DeepEqual(normalised(cur.Snapshots), normalised(next.Snapshots)) {
			return cur, nil
		}
		next.Generation = cur.Generation + 1
		next.RepositoryID = r.marker.RepositoryID
		next.WriterClusterID = writerCluster
		next.WrittenAt = utc(now)
		b, err := EncodeIndex(next)
		if err != nil {
			return nil, err
		}
		key := r.keys.Index(next.Generation)
		info, err := r.store.Put(ctx, key, bytes.NewReader(b), int64(len(b)), objstore.PutOptions{IfNoneMatch: true})
		switch {
		case errors.Is(err, objstore.ErrPreconditionFailed):
			r.log.Debug("index generation taken by another writer; retrying", "generation", next.Generation, "attempt", attempt)
		case err != nil:
			return nil, fmt.Errorf("repository: write index %q: %w", key, err)
		default:
			ours, rerr := r.stillOurs(ctx, key, info.ETag, b)
			if rerr != nil {
				return nil, fmt.Errorf("repository: read back index %q: %w", key, rerr)
			}
			if ours {
				r.prune(ctx, listing.gens, next.Generation)
				r.log.Info("index updated", "generation", next.Generation, "snapshots", len(next.Snapshots))
				return next, nil
			}
			r.log.Warn("index generation overwritten by another writer (the server ignores If-None-Match); retrying",
				"generation", next.Generation)
		}
		if attempt >= MaxUpdateAttempts {
			return nil, fmt.Errorf("repository %q: update: gave up after %d attempts, other writers kept writing generation %d first: %w",
				r.keys.Prefix(), attempt, next.Generation, objstore.ErrPreconditionFailed)
		}
		if err := sleep(ctx, backoff(attempt)); err != nil {
			return nil, err
		}
	}
}

// stillOurs reports whether key holds what this writer just put there (b, with the
// ETag the put returned): by ETag with a HEAD when the server gives ETags, else by
// reading it back.
func (r *Repository) stillOurs(ctx context.Context, key, etag string, b []byte) (bool, error) {
	if etag != "" {
		info, err := r.store.Head(ctx, key)
		if err != nil {
			return false, err
		}
		if info.ETag != "" {
			return info.ETag == etag && info.Size == int64(len(b)), nil
		}
	}
	back, err := readSmall(ctx, r.store, key, int64(len(b)))
	if errors.Is(err, ErrCorrupt) { // longer than ours
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return bytes.Equal(back, b), nil
}

// normalised is the entries with nil and empty label maps alike, for comparison.
func normalised(es []Entry) []Entry {
	out := slices.Clone(es)
	for i := range out {
		if len(out[i].Labels) == 0 {
			out[i].Labels = nil
		}
	}
	if out == nil {
		out = []Entry{}
	}
	return out
}

func (r *Repository) otherWriter(writer, owner, where string) error {
	if owner == "" {
		return fmt.Errorf("%w: repository %q is read-only (%s names no writer cluster); cluster %q cannot update it — restore from it by registering it read-only",
			ErrOtherWriter, r.keys.Prefix(), where, writer)
	}
	return fmt.Errorf("%w: repository %q is written by cluster %q (%s), not by this cluster %q; only its writer updates a repository — "+
		"to restore from it here, register it read-only on cluster %q", ErrOtherWriter, r.keys.Prefix(), owner, where, writer, writer)
}

// backoff is a short random delay growing with the attempt: 5–10 ms, up to 160–320 ms.
func backoff(attempt int) time.Duration {
	base := 5 * time.Millisecond << min(attempt-1, 5)
	return base + rand.N(base)
}

func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// prune deletes the listed generations older than the newest r.keep (counting
// written, the one just written), best effort.
func (r *Repository) prune(ctx context.Context, gens []uint64, written uint64) {
	if written <= uint64(r.keep) {
		return
	}
	cut := written - uint64(r.keep) // generations ≤ cut go
	var keys []string
	for _, g := range gens {
		if g <= cut {
			keys = append(keys, r.keys.Index(g))
		}
	}
	for batch := range slices.Chunk(keys, objstore.MaxDeleteBatch) {
		res, err := r.store.Delete(ctx, batch)
		if err != nil {
			r.log.Warn("could not delete old index generations", "count", len(batch), "error", err)
			continue
		}
		for k, err := range res.Failed {
			r.log.Warn("could not delete an old index generation", "key", k, "error", err)
		}
	}
}

// readManifest reads e's manifest whole into memory and checks its size and xxhash64
// against the entry. Memory, not a temporary file: a manifest is about 8.5 bytes per
// file (MaxManifestSize bounds it), a reader needs random access, and the whole object
// must be read anyway to check its xxhash64.
func (r *Repository) readManifest(ctx context.Context, e Entry) ([]byte, error) {
	key := r.keys.Full(e.ManifestKey)
	if err := validateEntry(&e); err != nil {
		return nil, fmt.Errorf("repository: snapshot %q: invalid entry: %v", e.ID, err)
	}
	rc, info, err := r.store.Get(ctx, key)
	if err != nil {
		return nil, fmt.Errorf("repository: snapshot %q: manifest %q: %w", e.ID, key, err)
	}
	defer rc.Close()
	if info.Size != e.ManifestSize {
		return nil, fmt.Errorf("%w: snapshot %q: manifest %q is %d bytes; the index says %d", ErrCorrupt, e.ID, key, info.Size, e.ManifestSize)
	}
	b := make([]byte, e.ManifestSize)
	if _, err := io.ReadFull(rc, b); err != nil {
		return nil, fmt.Errorf("repository: snapshot %q: read manifest %q: %w", e.ID, key, err)
	}
	if h := xxhash.Sum64(b); h != e.ManifestXXHash64 {
		return nil, fmt.Errorf("%w: snapshot %q: manifest %q has xxhash64 %016x; the index says %016x", ErrCorrupt, e.ID, key, h, e.ManifestXXHash64)
	}
	return b, nil
}

// OpenManifest reads e's manifest (one GET, whole, into memory: see MaxManifestSize),
// checks its size and xxhash64 against the entry, opens it, and checks that its header
// and totals agree with the entry (snapshot and collection ids, layout, segments, rows,
// files, bytes). A mismatch or a damaged manifest is an error wrapping ErrCorrupt (the
// manifest package's errors also wrap manifest.ErrCorrupt) naming the snapshot and the
// key; a missing manifest wraps objstore.ErrNotFound. Safe for concurrent use.
func (r *Repository) OpenManifest(ctx context.Context, e Entry) (*manifest.Reader, error) {
	b, err := r.readManifest(ctx, e)
	if err != nil {
		return nil, err
	}
	return r.openManifestBytes(e, b)
}

func (r *Repository) openManifestBytes(e Entry, b []byte) (*manifest.Reader, error) {
	key := r.keys.Full(e.ManifestKey)
	rd, err := manifest.Open(bytes.NewReader(b), int64(len(b)))
	if err != nil {
		return nil, r.manifestError(e, err)
	}
	if err := checkAgainstEntry(rd, e); err != nil {
		return nil, fmt.Errorf("%w: snapshot %q: manifest %q: %v", ErrCorrupt, e.ID, key, err)
	}
	return rd, nil
}

// manifestError names e's snapshot and manifest in err, a manifest package error, and
// makes a corrupt manifest's error wrap ErrCorrupt too.
func (r *Repository) manifestError(e Entry, err error) error {
	key := r.keys.Full(e.ManifestKey)
	if errors.Is(err, manifest.ErrCorrupt) {
		return fmt.Errorf("%w: snapshot %q: manifest %q: %w", ErrCorrupt, e.ID, key, err)
	}
	return fmt.Errorf("repository: snapshot %q: manifest %q: %w", e.ID, key, err)
}

func checkAgainstEntry(rd *manifest.Reader, e Entry) error {
	h := rd.Header()
	s := rd.Summary()
	switch {
	case h.GetSnapshotId() != e.SourceSnapshotID:
		return fmt.Errorf("it is of snapshot %d; the index says %d", h.GetSnapshotId(), e.SourceSnapshotID)
	case h.GetCollectionId() != e.CollectionID:
		return fmt.Errorf("it is of collection %d; the index says %d", h.GetCollectionId(), e.CollectionID)
	case layoutName(h.GetKeyLayout()) != e.Layout:
		return fmt.Errorf("its key layout is %s; the index says %s", layoutName(h.GetKeyLayout()), e.Layout)
	case s.Segments != e.Segments || s.Rows != e.Rows || s.Files != e.Files || s.Bytes != e.Bytes:
		return fmt.Errorf("it holds %d segments, %d rows, %d files and %d bytes; the index says %d, %d, %d and %d",
			s.Segments, s.Rows, s.Files, s.Bytes, e.Segments, e.Rows, e.Files, e.Bytes)
	}
	return nil
}

func layoutName[T ~int32](l T) string { return layout.Name(fsmpb.KeyLayout(l)) }

// File is one data object an entry needs.
type File struct {
	// Key is the data object's full key: Keys.Data(entry's source cluster, Rel).
	Key string
	// Rel is the file's key relative to its source cluster's storage root.
	Rel string
	// Size and CRC32C are the file's, as the manifest records them.
	Size   uint64
	CRC32C uint32
}

// Files calls fn for every data object e needs — each file of each segment and index
// build of its manifest, in manifest order — until fn returns an error, which Files
// returns as is. The manifest is read and checked as by OpenManifest; its blocks are
// decoded in parallel (fn is called from the calling goroutine). Safe for concurrent
// use.
func (r *Repository) Files(ctx context.Context, e Entry, fn func(File) error) error {
	rd, err := r.OpenManifest(ctx, e)
	if err != nil {
		return err
	}
	return r.files(ctx, e, rd, fn)
}

func (r *Repository) files(ctx context.Context, e Entry, rd *manifest.Reader, fn func(File) error) error {
	prefix := r.keys.DataPrefix(e.SourceClusterID)
	var ferr error // fn's error, returned as is
	err := rd.Segments(ctx, manifest.ReadOptions{}, func(s *manifest.Segment) error {
		err := rd.Files(s, func(rel string, fe filelist.Entry) bool {
			ferr = fn(File{Key: prefix + rel, Rel: rel, Size: fe.Size, CRC32C: fe.CRC32C})
			return ferr == nil
		})
		if ferr != nil {
			return ferr
		}
		return err
	})
	if err == nil || (ferr != nil && err == ferr) || ctx.Err() != nil {
		return err
	}
	return r.manifestError(e, err)
}

// NewEntry describes an exported snapshot from its manifest: names, ids, layout,
// creation time, labels, description and totals come from rd; the rest from the
// arguments (id: the repository's id for it, NewID; sourceCluster: the exporting
// cluster; size and xxhash64: of the manifest object, as the source cluster recorded
// them). ManifestKey is ManifestRel(id). A pure function.
func NewEntry(rd *manifest.Reader, id, sourceCluster string, manifestSize int64, manifestXXHash64 uint64, exportedAt time.Time) Entry {
	h := rd.Header()
	s := rd.Summary()
	return Entry{
		ID: id, Name: h.GetSnapshotName(), Database: h.GetDatabaseName(), Collection: h.GetCollectionName(),
		CollectionID: h.GetCollectionId(), SourceClusterID: sourceCluster, SourceSnapshotID: h.GetSnapshotId(),
		Layout: layoutName(h.GetKeyLayout()), CreatedAt: utc(time.Unix(0, h.GetCreatedAt())), ExportedAt: utc(exportedAt),
		ManifestKey: ManifestRel(id), ManifestSize: manifestSize, ManifestXXHash64: manifestXXHash64,
		Segments: s.Segments, Rows: s.Rows, Files: s.Files, Bytes: s.Bytes,
		Labels: cloneLabels(h.GetLabels()), Description: h.GetDescription(),
	}
}

func cloneLabels(m map[string]string) map[string]string {
	if len(m) == 0 {
		return nil
	}
	out := make(map[string]string, len(m))
	for k, v := range m {
		out[k] = v
	}
	return out
}
