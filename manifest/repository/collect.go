package repository

import (
	"context"
	"fmt"
	"time"

	"github.com/snapkeep/snapkeep/objstore"
)

// CollectOptions tune Collect.
type CollectOptions struct {
	// DryRun lists what would be deleted and deletes nothing. It makes the same
	// requests as a real run but the deletes, so its candidates are exactly what a
	// real run started then would delete.
	DryRun bool
	// Grace spares unreferenced manifests and data objects whose LastModified is
	// after Now minus Grace: objects of exports that have not updated the index yet.
	// 0 means none. Old index generations are deleted by count, whatever their age.
	Grace time.Duration
	// Now is the time Grace counts back from; zero means time.Now().
	Now time.Time
	// Protected spares any key it returns true for: the caller's exports in progress
	// must protect every key they have written or will reuse, from before they check
	// whether an object exists until their Update has returned. nil protects nothing.
	// It is called from Collect's goroutine, once per candidate.
	Protected func(key string) bool
	// KeepGenerations is how many of the newest index generations to keep; 0 means
	// the repository's (Options.KeepGenerations).
	KeepGenerations int
	// MaxListed bounds the candidates, unknown keys and errors listed in the report
	// (all are counted); 0 means 1000.
	MaxListed int
}

// Candidate is an object Collect deleted or, in a dry run, would delete.
type Candidate struct {
	Key          string
	Kind         KeyKind
	Size         int64
	LastModified time.Time
}

// CollectReport says what Collect did. A plain value.
type CollectReport struct {
	DryRun bool
	// Generation is the index generation whose entries decided what is referenced.
	Generation uint64
	// Referenced counts distinct data objects and manifests the entries reference.
	Referenced uint64
	// Scanned counts the objects listed under the prefix.
	Scanned uint64
	// Candidates lists, in key order, the first MaxListed objects deleted (or to be
	// deleted); CandidateCount and CandidateBytes count them all.
	Candidates     []Candidate
	CandidateCount uint64
	CandidateBytes uint64
	// Generations counts the old index generations among the candidates.
	Generations uint64
	// Deleted and DeletedBytes count the objects the store confirmed deleted (0 in a
	// dry run).
	Deleted      uint64
	DeletedBytes uint64
	// Protected, Young and Spared count unreferenced objects kept: protected by the
	// caller, younger than Grace, or referenced by an entry of a newer generation
	// written while Collect ran.
	Protected, Young, Spared uint64
	// UnknownKeys lists keys under the prefix that are not the format's (never
	// deleted); UnknownCount counts them.
	UnknownKeys  []string
	UnknownCount uint64
	// Errors lists failed deletes (the first MaxListed); ErrorCount counts them.
	// Those objects stay for the next run.
	Errors     []string
	ErrorCount uint64
}

// Collect deletes what no entry of the latest index references: data objects under
// P/data/ and manifests under P/snapshots/ (except protected keys and objects younger
// than Grace), and index generations older than the newest KeepGenerations. The marker,
// the newest generations and keys that are not the format's are never deleted.
//
// It reads the latest generation and every entry's manifest first: if any cannot be
// read, Collect deletes nothing and returns the error (it cannot know what that entry
// needs). Then it lists the whole prefix once and deletes in batches of at most
// objstore.MaxDeleteBatch keys. Before each batch it reads the latest generation again
// and spares what entries added since reference (a manifest of theirs that cannot be
// read stops Collect there, before that batch). A batch the store refuses, or keys it
// fails to delete, are reported in Errors and the run goes on; the error is non-nil
// only when Collect could not decide safely (index, manifest or listing unreadable)
// or ctx ended, with the report of what was done so far.
//
// Memory: 8 bytes per distinct referenced data object (a 64-bit hash of its key: about
// 64 MB for 8 million, twice that at peak while the set is built), the entries'
// manifest keys, one manifest at a time and one batch of candidates. Two keys with the
// same 64-bit hash make an unreferenced object look referenced: it is kept (never the
// other way round).
//
// Collect must not run concurrently with another Collect of the same repository.
// Exports may run concurrently when they protect their keys (CollectOptions.Protected).
func (r *Repository) Collect(ctx context.Context, opts CollectOptions) (CollectReport, error) {
	if opts.Grace < 0 || opts.KeepGenerations < 0 {
		return CollectReport{}, fmt.Errorf("repository: collect: negative Grace or KeepGenerations")
	}
	if opts.Now.IsZero() {
		opts.Now = time.Now()
	}
	if opts.KeepGenerations == 0 {
		opts.KeepGenerations = r.keep
	}
	if opts.MaxListed <= 0 {
		opts.MaxListed = 1000
	}
	c := &collector{r: r, opts: opts, rep: CollectReport{DryRun: opts.DryRun},
		ids: map[string]bool{}, manifests: map[string]bool{}, extra: map[uint64]bool{}}
	err := c.run(ctx)
	return c.rep, err
}

type collector struct {
	r    *Repository
	opts CollectOptions
	rep  CollectReport

	gen       uint64          // the newest generation read
	ids       map[string]bool // entries whose references are in the sets
	manifests map[string]bool // full keys of referenced manifests
	data      hashSet         // hashes of referenced data keys
	extra     map[uint64]bool // hashes of data keys referenced by entries added since
	building  bool            // adding to data (false: to extra)

	batch []objstore.ObjectInfo
	kinds map[string]KeyKind
}

func (c *collector) run(ctx context.Context) error {
	r := c.r
	ix, err := r.Latest(ctx)
	if err != nil {
		return fmt.Errorf("repository: collect: %w", err)
	}
	c.gen = ix.Generation
	c.rep.Generation = ix.Generation
	c.building = true
	for _, e := range ix.Snapshots {
		if err := c.addEntry(ctx, e); err != nil {
			return err
		}
	}
	c.data.compact()
	c.building = false
	c.rep.Referenced = uint64(len(c.data.s) + len(c.manifests))

	c.kinds = map[string]KeyKind{}
	err = objstore.Walk(ctx, r.store, r.keys.Prefix(), 0, func(page objstore.ListPage) error {
		for _, o := range page.Objects {
			c.rep.Scanned++
			if err := c.consider(ctx, o); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("repository: collect: %w", err)
	}
	return c.flush(ctx)
}

// addEntry adds what e references to the sets.
func (c *collector) addEntry(ctx context.Context, e Entry) error {
	c.ids[e.ID] = true
	c.manifests[c.r.keys.Full(e.ManifestKey)] = true
	err := c.r.Files(ctx, e, func(f File) error {
		h := keyHash(f.Key)
		if c.building {
			c.data.add(h)
		} else {
			c.extra[h] = true
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("repository: collect: deleting nothing, snapshot %q's references are unknown: %w", e.ID, err)
	}
	return nil
}

func (c *collector) referenced(kind KeyKind, key string) bool {
	switch kind {
	case KeyManifest:
		return c.manifests[key]
	case KeyData:
		h := keyHash(key)
		return c.data.has(h) || c.extra[h]
	}
	return false
}

// consider decides about one listed object.
func (c *collector) consider(ctx context.Context, o objstore.ObjectInfo) error {
	info, _ := c.r.keys.Parse(o.Key)
	switch info.Kind {
	case KeyMarker:
		return nil
	case KeyIndex:
		if info.Generation+uint64(c.opts.KeepGenerations) > c.rep.Generation {
			return nil
		}
	case KeyManifest, KeyData:
		if c.referenced(info.Kind, o.Key) {
			return nil
		}
	default:
		c.rep.UnknownCount++
		if len(c.rep.UnknownKeys) < c.opts.MaxListed {
			c.rep.UnknownKeys = append(c.rep.UnknownKeys, o.Key)
		}
		return nil
	}
	if c.opts.Protected != nil && c.opts.Protected(o.Key) {
		c.rep.Protected++
		return nil
	}
	if info.Kind != KeyIndex && c.opts.Grace > 0 && o.LastModified.After(c.opts.Now.Add(-c.opts.Grace)) {
		c.rep.Young++
		return nil
	}
	c.batch = append(c.batch, o)
	c.kinds[o.Key] = info.Kind
	if len(c.batch) >= objstore.MaxDeleteBatch {
		return c.flush(ctx)
	}
	return nil
}

// refresh reads the latest generation and adds the references of entries it has that
// the sets lack.
func (c *collector) refresh(ctx context.Context) error {
	ix, err := c.r.Latest(ctx)
	if err != nil {
		return fmt.Errorf("repository: collect: %w", err)
	}
	if ix.Generation == c.gen {
		return nil
	}
	c.gen = ix.Generation
	for _, e := range ix.Snapshots {
		if c.ids[e.ID] {
			continue
		}
		if err := c.addEntry(ctx, e); err != nil {
			return err
		}
		c.r.log.Info("collect: sparing the objects of a snapshot exported meanwhile", "snapshot", e.ID, "generation", ix.Generation)
	}
	return nil
}

// flush deletes (or, dry, records) the batch, less what a newer generation references.
func (c *collector) flush(ctx context.Context) error {
	if len(c.batch) == 0 {
		return nil
	}
	if err := c.refresh(ctx); err != nil {
		return err
	}
	keys := make([]string, 0, len(c.batch))
	sizes := make(map[string]int64, len(c.batch))
	for _, o := range c.batch {
		kind := c.kinds[o.Key]
		if c.referenced(kind, o.Key) {
			c.rep.Spared++
			continue
		}
		keys = append(keys, o.Key)
		sizes[o.Key] = o.Size
		c.rep.CandidateCount++
		c.rep.CandidateBytes += uint64(o.Size)
		if kind == KeyIndex {
			c.rep.Generations++
		}
		if len(c.rep.Candidates) < c.opts.MaxListed {
			c.rep.Candidates = append(c.rep.Candidates, Candidate{Key: o.Key, Kind: kind, Size: o.Size, LastModified: o.LastModified})
		}
	}
	c.batch = c.batch[:0]
	clear(c.kinds)
	if c.opts.DryRun || len(keys) == 0 {
		return nil
	}
	res, err := c.r.store.Delete(ctx, keys)
	if err != nil {
		if ctx.Err() != nil {
			return ctx.Err()
		}
		c.fail(fmt.Sprintf("delete of %d keys from %q: %v", len(keys), keys[0], err), uint64(len(keys)))
		return nil
	}
	for _, k := range res.Deleted {
		c.rep.Deleted++
		c.rep.DeletedBytes += uint64(sizes[k])
	}
	for k, err := range res.Failed {
		c.fail(fmt.Sprintf("delete %q: %v", k, err), 1)
	}
	c.r.log.Info("collect: deleted a batch", "deleted", len(res.Deleted), "failed", len(res.Failed))
	return nil
}

func (c *collector) fail(msg string, n uint64) {
	c.rep.ErrorCount += n
	if len(c.rep.Errors) < c.opts.MaxListed {
		c.rep.Errors = append(c.rep.Errors, msg)
	}
	c.r.log.Warn("collect: "+msg, "count", n)
}
