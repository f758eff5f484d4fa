package repository

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/errgroup"

	"github.com/snapkeep/snapkeep/manifest"
	"github.com/snapkeep/snapkeep/objstore"
)

// VerifyOptions tune Verify. The zero value is the default.
type VerifyOptions struct {
	// Deep reads every referenced data object and checks its CRC-32C against the
	// manifest's; otherwise presence and size are checked (from listings only).
	Deep bool
	// Parallelism bounds the data objects read at once when Deep; 0 means 8.
	Parallelism int
	// MaxListed bounds the problems and unknown keys listed in the report (all are
	// counted); 0 means 1000.
	MaxListed int
}

// Problem is one thing Verify found wrong.
type Problem struct {
	// Snapshot is the repository snapshot id concerned; empty for a problem of the
	// repository itself (marker, index generations).
	Snapshot string
	// Key is the full key of the object concerned.
	Key string
	// Detail says what is wrong.
	Detail string
}

func (p Problem) String() string {
	if p.Snapshot == "" {
		return fmt.Sprintf("%s: %s", p.Key, p.Detail)
	}
	return fmt.Sprintf("snapshot %s: %s: %s", p.Snapshot, p.Key, p.Detail)
}

// VerifyReport says what Verify checked and found. A plain value.
type VerifyReport struct {
	// Generation is the index generation verified; Snapshots its entries.
	Generation uint64
	Snapshots  int
	// ManifestsVerified counts manifests that passed every check.
	ManifestsVerified int
	// DataObjects counts distinct referenced data objects found with the right size
	// (DataBytes their bytes); DeepChecked those of them read and found with the
	// right CRC-32C.
	DataObjects uint64
	DataBytes   uint64
	DeepChecked uint64
	// Unreferenced counts data objects and manifests no entry of the generation
	// references (what Collect would consider), UnreferencedBytes their bytes.
	Unreferenced      uint64
	UnreferencedBytes uint64
	// UnknownKeys lists keys under the prefix that are not the format's (the first
	// MaxListed); UnknownCount counts them all. They are reported, not problems.
	UnknownKeys  []string
	UnknownCount int
	// Problems lists the first MaxListed problems; ProblemCount counts them all.
	Problems     []Problem
	ProblemCount int
}

// OK reports whether Verify found no problem.
func (r VerifyReport) OK() bool { return r.ProblemCount == 0 }

// Verify checks the repository against its latest index generation:
//
//   - the marker is there and is this repository's; every listed index generation
//     decodes (the latest must, or Verify stops with its error);
//   - every entry's manifest is there, with the size and xxhash64 the entry records,
//     passes manifest.Verify, and agrees with the entry (OpenManifest's checks);
//   - every data object an entry needs is there with the manifest's size — found by
//     listing P/ once, never one HEAD per file — and, with Deep, has the manifest's
//     CRC-32C (each object read once, Parallelism at a time).
//
// Each problem names the snapshot and the key; a data object several snapshots need
// gives one problem per snapshot. Keys under P that are not the format's are reported
// (never a failure), as are objects no entry references.
//
// The error is non-nil only when Verify could not go on: the latest generation is
// unreadable (also reported as a problem), a listing failed, or ctx ended; the report
// then holds what was found so far.
//
// Memory: per source cluster, in turn, 24 bytes per distinct data object its entries
// reference (a 96-bit fingerprint of the key, size and CRC-32C; about 200 MB for 8
// million) plus a byte of state each, and one manifest at a time. A problem's key is
// recovered by walking the cluster's manifests again, only when it has problems.
//
// Verify only reads. Safe for concurrent use, also with writers: it checks the
// generation it read first.
func (r *Repository) Verify(ctx context.Context, opts VerifyOptions) (VerifyReport, error) {
	if opts.Parallelism <= 0 {
		opts.Parallelism = 8
	}
	if opts.MaxListed <= 0 {
		opts.MaxListed = 1000
	}
	v := &verifier{r: r, opts: opts, fp: newFingerprinter()}
	err := v.run(ctx)
	return v.rep, err
}

type verifier struct {
	r    *Repository
	opts VerifyOptions
	rep  VerifyReport
	fp   *fingerprinter
	ix   *Index

	byCluster map[string][]int // entry indexes by source cluster
	manifests map[string]bool  // full manifest keys of the entries
	done      map[string]bool  // clusters checked
}

func (v *verifier) problem(snapshot, key, format string, args ...any) {
	v.rep.ProblemCount++
	if len(v.rep.Problems) < v.opts.MaxListed {
		v.rep.Problems = append(v.rep.Problems, Problem{Snapshot: snapshot, Key: key, Detail: fmt.Sprintf(format, args...)})
	}
}

func (v *verifier) run(ctx context.Context) error {
	r := v.r
	m, err := readMarker(ctx, r.store, r.keys)
	markerRead := err == nil
	switch {
	case ctx.Err() != nil:
		return ctx.Err()
	case err != nil:
		v.problem("", r.keys.Marker(), "%v", err)
	case m.RepositoryID != r.marker.RepositoryID:
		v.problem("", r.keys.Marker(), "names repository %s; it was opened as %s", m.RepositoryID, r.marker.RepositoryID)
	}
	ix, listing, err := r.latest(ctx)
	if err != nil {
		if ctx.Err() == nil && len(listing.gens) > 0 {
			v.problem("", r.keys.Index(listing.gens[len(listing.gens)-1]), "latest generation: %v", err)
		}
		return err
	}
	v.ix = ix
	v.rep.Generation = ix.Generation
	v.rep.Snapshots = len(ix.Snapshots)
	for _, g := range listing.gens {
		if g == ix.Generation {
			continue
		}
		if _, err := r.readIndex(ctx, g); err != nil && !errors.Is(err, objstore.ErrNotFound) {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			v.problem("", r.keys.Index(g), "%v", err)
		}
	}
	v.byCluster = map[string][]int{}
	v.manifests = map[string]bool{}
	v.done = map[string]bool{}
	for i, e := range ix.Snapshots {
		v.byCluster[e.SourceClusterID] = append(v.byCluster[e.SourceClusterID], i)
		v.manifests[r.keys.Full(e.ManifestKey)] = true
	}

	// One listing of the whole prefix, in key order: each cluster's data objects are
	// contiguous (they share a prefix), so clusters are checked one after another.
	var cur *clusterCheck
	sawMarker := false
	err = objstore.Walk(ctx, r.store, r.keys.Prefix(), 0, func(page objstore.ListPage) error {
		for _, o := range page.Objects {
			info, _ := r.keys.Parse(o.Key)
			switch info.Kind {
			case KeyMarker:
				sawMarker = true
			case KeyIndex:
			case KeyManifest:
				if !v.manifests[o.Key] {
					v.rep.Unreferenced++
					v.rep.UnreferencedBytes += uint64(o.Size)
				}
			case KeyData:
				if cur == nil || cur.cluster != info.Cluster {
					if err := v.finish(ctx, cur); err != nil {
						return err
					}
					if cur, err = v.start(ctx, info.Cluster); err != nil {
						return err
					}
				}
				if err := cur.object(o); err != nil {
					return err
				}
			default:
				v.rep.UnknownCount++
				if len(v.rep.UnknownKeys) < v.opts.MaxListed {
					v.rep.UnknownKeys = append(v.rep.UnknownKeys, o.Key)
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("repository: verify: %w", err)
	}
	if err := v.finish(ctx, cur); err != nil {
		return err
	}
	// Clusters whose entries need data but have no object at all.
	for _, e := range ix.Snapshots {
		if v.done[e.SourceClusterID] {
			continue
		}
		c, err := v.start(ctx, e.SourceClusterID)
		if err != nil {
			return err
		}
		if err := v.finish(ctx, c); err != nil {
			return err
		}
	}
	if !sawMarker && markerRead {
		v.problem("", r.keys.Marker(), "the marker is not listed")
	}
	return nil
}

// Record states of a clusterCheck.
const (
	stateMissing = iota // not listed (yet)
	stateOK
	stateBad // wrong size, wrong CRC-32C, unreadable: see detail
)

// clusterCheck checks one source cluster's data objects.
type clusterCheck struct {
	v       *verifier
	cluster string
	entries []int // entries whose manifests passed, to walk again for problems
	refs    refSet

	mu     sync.Mutex // guards state and detail while deep reads run
	state  []uint8
	detail map[int]string

	g       *errgroup.Group
	gctx    context.Context
	checked atomic.Uint64
}

// start reads and verifies the manifests of cluster's entries and collects the data
// objects they need.
func (v *verifier) start(ctx context.Context, cluster string) (*clusterCheck, error) {
	v.done[cluster] = true
	c := &clusterCheck{v: v, cluster: cluster, detail: map[int]string{}}
	for _, i := range v.byCluster[cluster] {
		e := v.ix.Snapshots[i]
		ok, err := v.checkManifest(ctx, e, func(f File) error {
			h, h2 := v.fp.of(f.Key)
			c.refs.add(ref{h: h, h2: h2, crc: f.CRC32C, size: f.Size})
			return nil
		})
		if err != nil {
			return nil, err
		}
		if ok {
			c.entries = append(c.entries, i)
		}
	}
	c.refs.compact()
	c.state = make([]uint8, len(c.refs.s))
	c.g, c.gctx = errgroup.WithContext(ctx)
	c.g.SetLimit(v.opts.Parallelism)
	return c, nil
}

// checkManifest reads, verifies and walks e's manifest, reporting problems; ok says
// whether it passed. The error is ctx's only.
func (v *verifier) checkManifest(ctx context.Context, e Entry, fn func(File) error) (ok bool, err error) {
	r := v.r
	key := r.keys.Full(e.ManifestKey)
	fail := func(err error) (bool, error) {
		if ctx.Err() != nil {
			return false, ctx.Err()
		}
		v.problem(e.ID, key, "%v", err)
		return false, nil
	}
	b, err := r.readManifest(ctx, e)
	if err != nil {
		return fail(err)
	}
	if _, err := manifest.Verify(bytes.NewReader(b), int64(len(b))); err != nil {
		return fail(r.manifestError(e, err))
	}
	rd, err := r.openManifestBytes(e, b)
	if err != nil {
		return fail(err)
	}
	if err := r.files(ctx, e, rd, fn); err != nil {
		return fail(err)
	}
	v.rep.ManifestsVerified++
	return true, nil
}

// object checks one listed data object of the cluster.
func (c *clusterCheck) object(o objstore.ObjectInfo) error {
	v := c.v
	h, h2 := v.fp.of(o.Key)
	lo, hi := c.refs.group(h, h2)
	if lo == hi {
		v.rep.Unreferenced++
		v.rep.UnreferencedBytes += uint64(o.Size)
		return nil
	}
	var match []int
	c.mu.Lock() // deep reads of other objects may be updating state and detail
	for j := lo; j < hi; j++ {
		if c.refs.s[j].size == uint64(o.Size) {
			match = append(match, j)
			if !v.opts.Deep {
				c.state[j] = stateOK
			}
			continue
		}
		c.state[j] = stateBad
		c.detail[j] = fmt.Sprintf("the object is %d bytes; the manifest says %d", o.Size, c.refs.s[j].size)
	}
	c.mu.Unlock()
	if len(match) == 0 {
		return nil
	}
	v.rep.DataObjects++
	v.rep.DataBytes += uint64(o.Size)
	if !v.opts.Deep {
		return nil
	}
	if err := c.gctx.Err(); err != nil {
		return err
	}
	c.g.Go(func() error { return c.deep(o, match) })
	return nil
}

// deep reads one object and checks its CRC-32C against the records in match.
func (c *clusterCheck) deep(o objstore.ObjectInfo, match []int) error {
	crc, n, err := readCRC(c.gctx, c.v.r.store, o.Key)
	if c.gctx.Err() != nil {
		return c.gctx.Err()
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	good := true
	for _, j := range match {
		want := c.refs.s[j]
		switch {
		case err != nil:
			c.state[j], c.detail[j] = stateBad, fmt.Sprintf("could not read it: %v", err)
		case n != want.size:
			c.state[j], c.detail[j] = stateBad, fmt.Sprintf("read %d bytes; the manifest says %d", n, want.size)
		case crc != want.crc:
			c.state[j], c.detail[j] = stateBad, fmt.Sprintf("CRC-32C %08x; the manifest says %08x", crc, want.crc)
		default:
			c.state[j] = stateOK
			continue
		}
		good = false
	}
	if good {
		c.checked.Add(1)
	}
	return nil
}

func readCRC(ctx context.Context, store objstore.Store, key string) (uint32, uint64, error) {
	rc, _, err := store.Get(ctx, key)
	if err != nil {
		return 0, 0, err
	}
	defer rc.Close()
	h := crc32.New(castagnoli)
	n, err := io.Copy(h, rc)
	if err != nil {
		return 0, uint64(n), err
	}
	return h.Sum32(), uint64(n), nil
}

// finish waits for the cluster's deep reads and reports its problems: records not
// listed (missing) or bad, each for every entry that needs it.
func (v *verifier) finish(ctx context.Context, c *clusterCheck) error {
	if c == nil {
		return nil
	}
	if err := c.g.Wait(); err != nil {
		return err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	v.rep.DeepChecked += c.checked.Load()
	bad := false
	for _, s := range c.state {
		if s != stateOK {
			bad = true
			break
		}
	}
	if !bad {
		return nil
	}
	for _, i := range c.entries {
		e := v.ix.Snapshots[i]
		err := v.r.Files(ctx, e, func(f File) error {
			h, h2 := v.fp.of(f.Key)
			j := c.refs.find(ref{h: h, h2: h2, crc: f.CRC32C, size: f.Size})
			switch {
			case j < 0: // cannot happen: the same manifest gave the record
			case c.state[j] == stateMissing:
				v.problem(e.ID, f.Key, "missing (%d bytes expected)", f.Size)
			case c.state[j] == stateBad:
				v.problem(e.ID, f.Key, "%s", c.detail[j])
			}
			return nil
		})
		if err != nil {
			if ctx.Err() != nil {
				return ctx.Err()
			}
			v.problem(e.ID, v.r.keys.Full(e.ManifestKey), "reading the manifest again: %v", err)
		}
	}
	return nil
}
