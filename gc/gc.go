// Package gc is snapkeep's garbage collector. It runs on the leader, each interval and
// on demand, and reclaims what nothing needs any more: dropped segments (compacted,
// dropped, of a dropped partition or collection, expired allocations, the targets of
// failed or cancelled restores), dropped index builds, the manifests of deleted
// snapshots, the records of dropped collections nothing refers to, and orphan objects
// in snapkeep's own namespaces under the storage root that no record owns. Objects
// anywhere else under the root — a Milvus-layout collection's files included — are
// deleted only when a dropped record lists them (or, for an upload never listed, sits
// under the record's own prefixes): another system's objects are never orphans.
//
// A run plans from one read view of the FSM, with the FSM's own rules
// (View.SegmentReclaim, BuildReclaim, CollectionReclaim, KeyOwned); asks GCCheck — a
// log entry, so ordered with every other change — which candidates are still
// reclaimable; deletes only the objects of those, in batches; and removes records only
// once their objects are gone (GCRemove, which checks again). A failed delete leaves
// its record in place: the next run tries again. A dry run plans, and stops there.
package gc

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/objstore"
)

// Cluster is what a run needs of the node it runs on (the leader).
type Cluster interface {
	// View returns a consistent read view of the FSM.
	View() *fsm.View
	// Propose applies a command through Raft and decodes its response into resp.
	Propose(ctx context.Context, cmd proto.Message, resp proto.Message) error
}

// Config is the collector's standing configuration.
type Config struct {
	// Root is the storage root ("" for the bucket's top); keys outside it are never
	// touched.
	Root string
	// Grace is how long a segment or index build stays after it was dropped; an
	// orphan must be OrphanGrace old (by its last-modified time) to go.
	Grace, OrphanGrace time.Duration
	// DeleteRate bounds deletions, in objects per second (0: unbounded).
	DeleteRate float64
	// Concurrency bounds the delete (and list) requests in flight (default 4).
	Concurrency int
	// SkipPrefixes are root-relative key prefixes the orphan scan leaves alone (the
	// metadata backups): objects under them are never orphans.
	SkipPrefixes []string
	// Node names the node in reports.
	Node   string
	Logger *slog.Logger
	// Now is the cluster clock, for the graces (times in the catalog are its
	// readings); nil: time.Now.
	Now func() time.Time
}

// clusterNow reads cfg.Now.
func (cfg Config) clusterNow() time.Time {
	if cfg.Now == nil {
		return time.Now()
	}
	return cfg.Now()
}

// Options tune one run.
type Options struct {
	DryRun bool
	// OrphanScan lists snapkeep's own namespaces (fsm.OwnedNamespaces) for objects no
	// record owns.
	OrphanScan bool
	// Grace and OrphanGrace, when set, replace the configured ones for this run.
	Grace, OrphanGrace *time.Duration
	// MaxCandidates bounds the candidates a result lists (default 10,000); the
	// report counts them all.
	MaxCandidates int
	// SkipQuietReport leaves out of the kept reports a run that deleted and removed
	// nothing, failed nothing and scanned no orphans (periodic runs with nothing to do).
	SkipQuietReport bool
}

// Candidate is one object a run deletes (or, dry, would delete), and why.
type Candidate struct {
	Key          string
	Size         uint64
	LastModified time.Time // orphans only
	Reason       string
	// Owner names the record the object belongs to ("segment 12", "snapshot 7"), or
	// why none owns it for an orphan.
	Owner string
}

// Result is a run's report and its candidates.
type Result struct {
	Report     *fsmpb.GCReport
	Candidates []Candidate
	// CandidatesCut says Candidates was cut at MaxCandidates.
	CandidatesCut bool
}

// maxCheck bounds the candidates of one GCCheck or GCRemove entry.
const maxCheck = 2000

// job is one record to reclaim and what deleting it takes.
type job struct {
	kind    string // "segment", "build", "snapshot"
	segment *fsmpb.Segment
	build   *fsmpb.IndexBuild
	snap    *fsmpb.Snapshot
	reason  string
	owner   string
	keys    []Candidate
	// listPrefixes: also delete whatever is listed under these prefixes (an upload
	// never registered: an expired allocation, a restore's partial copy).
	listPrefixes []string
	failed       bool
}

type run struct {
	cluster Cluster
	store   objstore.Store
	cfg     Config
	opts    Options
	grace   time.Duration
	orphanG time.Duration
	now     time.Time
	rep     *fsmpb.GCReport
	deleted map[string]*fsmpb.GCCount
	kept    map[string]*fsmpb.GCCount
	mu      sync.Mutex // guards rep, deleted, kept during deletion
	limiter *limiter
	result  *Result
}

// Run runs one collection. It returns an error only when the run could not be made
// at all; failed deletes are counted in the report and retried next run.
func Run(ctx context.Context, cluster Cluster, store objstore.Store, cfg Config, opts Options) (*Result, error) {
	if cfg.Concurrency <= 0 {
		cfg.Concurrency = 4
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.MaxCandidates <= 0 {
		opts.MaxCandidates = 10000
	}
	r := &run{
		cluster: cluster, store: store, cfg: cfg, opts: opts,
		grace: cfg.Grace, orphanG: cfg.OrphanGrace,
		now:     cfg.clusterNow(),
		deleted: map[string]*fsmpb.GCCount{},
		kept:    map[string]*fsmpb.GCCount{},
		limiter: newLimiter(cfg.DeleteRate),
		result:  &Result{},
	}
	if opts.Grace != nil {
		r.grace = *opts.Grace
	}
	if opts.OrphanGrace != nil {
		r.orphanG = *opts.OrphanGrace
	}
	r.rep = &fsmpb.GCReport{DryRun: opts.DryRun, Node: cfg.Node, StartedAt: r.now.UnixNano(), OrphanScan: opts.OrphanScan}

	view := cluster.View()
	jobs := r.planRecords(view)
	r.expandPrefixes(ctx, jobs)
	var orphans []Candidate
	if opts.OrphanScan {
		var err error
		if orphans, err = r.planOrphans(ctx, view); err != nil {
			return nil, err
		}
	}
	if opts.DryRun {
		// The report says what the run would delete and remove.
		for _, j := range jobs {
			r.count(r.deleted, j.reason, uint64(len(j.keys)), sumSizes(j.keys), 1)
			r.candidates(j.keys...)
			r.rep.ObjectsDeleted += uint64(len(j.keys))
			r.rep.BytesFreed += sumSizes(j.keys)
			r.rep.RecordsRemoved++
		}
		for _, o := range orphans {
			r.count(r.deleted, fsm.ReasonOrphan, 1, o.Size, 0)
			r.candidates(o)
			r.rep.ObjectsDeleted++
			r.rep.BytesFreed += o.Size
		}
		if err := r.planCollections(ctx, view, true); err != nil {
			return nil, err
		}
		return r.finish(ctx)
	}

	jobs, orphans, err := r.check(ctx, jobs, orphans)
	if err != nil {
		return nil, err
	}
	r.deleteAll(ctx, jobs, orphans)
	if err := r.removeRecords(ctx, jobs); err != nil {
		r.fail(err)
	}
	if err := r.planCollections(ctx, cluster.View(), false); err != nil {
		r.fail(err)
	}
	return r.finish(ctx)
}

func (r *run) key(rel string) string {
	if r.cfg.Root == "" {
		return rel
	}
	return r.cfg.Root + "/" + rel
}

func (r *run) count(m map[string]*fsmpb.GCCount, reason string, objects, bytes, records uint64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	c := m[reason]
	if c == nil {
		c = &fsmpb.GCCount{Reason: reason}
		m[reason] = c
	}
	c.Objects += objects
	c.Bytes += bytes
	c.Records += records
}

func (r *run) candidates(cs ...Candidate) {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range cs {
		if len(r.result.Candidates) >= r.opts.MaxCandidates {
			r.result.CandidatesCut = true
			return
		}
		r.result.Candidates = append(r.result.Candidates, c)
	}
}

func (r *run) fail(err error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.rep.ErrorCount++
	if len(r.rep.Errors) < 20 {
		r.rep.Errors = append(r.rep.Errors, err.Error())
	}
}

func sumSizes(cs []Candidate) uint64 {
	var n uint64
	for _, c := range cs {
		n += c.Size
	}
	return n
}

// segmentReason names why a dropped segment's objects go.
func segmentReason(s *fsmpb.Segment) string {
	switch s.DropReason {
	case fsmpb.DropReason_DROP_REASON_COMPACTED:
		return "compacted segment"
	case fsmpb.DropReason_DROP_REASON_LEASE_EXPIRED:
		return "expired allocation"
	case fsmpb.DropReason_DROP_REASON_RESTORE_ABORTED:
		return "failed or cancelled restore"
	case fsmpb.DropReason_DROP_REASON_RELEASED:
		return "released segment"
	}
	return fsm.ReasonDroppedSegment
}

// fileCandidates lists a file list's objects under prefix.
func (r *run) fileCandidates(blob []byte, key func(rel string) string, reason, owner string) []Candidate {
	var out []Candidate
	_ = filelist.ForEach(blob, func(e filelist.Entry) bool {
		out = append(out, Candidate{Key: r.key(key(e.Key)), Size: e.Size, Reason: reason, Owner: owner})
		return true
	})
	return out
}

// planRecords finds the dropped segments and builds and the deleted snapshots whose
// objects may go, and counts what stays.
func (r *run) planRecords(view *fsm.View) []*job {
	now, grace := r.now.UnixNano(), r.grace.Nanoseconds()
	var jobs []*job
	view.EachDroppedSegment(func(s *fsmpb.Segment) bool {
		files, bytes, _ := filelist.Totals(s.Files)
		if ok, why := view.SegmentReclaim(s, now, grace); !ok {
			r.count(r.kept, why, uint64(files), bytes, 1)
			return true
		}
		j := &job{kind: "segment", segment: s, reason: segmentReason(s), owner: fmt.Sprintf("segment %d", s.Id)}
		keys := view.KeysOfCollection(s.CollectionId)
		j.keys = r.fileCandidates(s.Files, func(rel string) string { return keys.Segment(s, rel) }, j.reason, j.owner)
		for _, b := range s.IndexBuilds {
			j.keys = append(j.keys, r.fileCandidates(b.Files, func(rel string) string { return keys.Build(s, b.BuildId, rel) }, j.reason, j.owner)...)
			if b.ReadyAt == 0 {
				j.listPrefixes = append(j.listPrefixes, r.key(keys.BuildPrefix(s, b.BuildId)))
			}
		}
		if s.FlushedAt == 0 {
			// Uploads the catalog never listed: take whatever sits under the
			// segment's own prefixes (in the snapkeep layout, its builds' too).
			for _, p := range keys.UploadPrefixes(s) {
				j.listPrefixes = append(j.listPrefixes, r.key(p))
			}
		}
		jobs = append(jobs, j)
		return true
	})
	view.EachSegmentWithDroppedBuilds(func(s *fsmpb.Segment) bool {
		for _, b := range s.IndexBuilds {
			if b.State != fsmpb.BuildState_BUILD_STATE_DROPPED {
				continue
			}
			files, bytes, _ := filelist.Totals(b.Files)
			if ok, why := view.BuildReclaim(s, b, now, grace); !ok {
				r.count(r.kept, why, uint64(files), bytes, 1)
				continue
			}
			owner := fmt.Sprintf("index build %d of segment %d", b.BuildId, s.Id)
			keys := view.KeysOfCollection(s.CollectionId)
			j := &job{kind: "build", segment: s, build: b, reason: fsm.ReasonDroppedBuild, owner: owner,
				keys: r.fileCandidates(b.Files, func(rel string) string { return keys.Build(s, b.BuildId, rel) }, fsm.ReasonDroppedBuild, owner)}
			if b.ReadyAt == 0 {
				j.listPrefixes = []string{r.key(keys.BuildPrefix(s, b.BuildId))}
			}
			jobs = append(jobs, j)
		}
		return true
	})
	for _, snap := range view.UnfinishedSnapshots() {
		if snap.State != fsmpb.SnapshotState_SNAPSHOT_STATE_DELETING {
			continue
		}
		owner := fmt.Sprintf("snapshot %d (%s)", snap.Id, snap.Name)
		jobs = append(jobs, &job{kind: "snapshot", snap: snap, reason: fsm.ReasonSnapshotManifest, owner: owner,
			keys: []Candidate{{Key: r.key(snap.ManifestKey), Size: snap.ManifestSize, Reason: fsm.ReasonSnapshotManifest, Owner: owner}}})
	}
	return jobs
}

// planOrphans lists snapkeep's own namespaces under the root (fsm.OwnedNamespaces)
// and returns the objects no record owns and that are older than the orphan grace.
func (r *run) planOrphans(ctx context.Context, view *fsm.View) ([]Candidate, error) {
	root := ""
	if r.cfg.Root != "" {
		root = r.cfg.Root + "/"
	}
	var out []Candidate
	for _, ns := range fsm.OwnedNamespaces {
		err := objstore.Walk(ctx, r.store, root+ns, 1000, func(page objstore.ListPage) error {
			r.rep.ObjectsScanned += uint64(len(page.Objects))
			for _, obj := range page.Objects {
				rel := strings.TrimPrefix(obj.Key, root)
				if r.skipped(rel) {
					continue
				}
				owned, why := view.KeyOwned(rel)
				switch {
				case owned:
					continue
				case r.now.Sub(obj.LastModified) < r.orphanG:
					r.count(r.kept, "orphan "+fsm.ReasonWithinGrace, 1, uint64(obj.Size), 0)
				default:
					out = append(out, Candidate{Key: obj.Key, Size: uint64(obj.Size), LastModified: obj.LastModified, Reason: fsm.ReasonOrphan, Owner: why})
				}
			}
			return nil
		})
		if err != nil {
			return nil, fmt.Errorf("orphan scan: %w", err)
		}
	}
	return out, nil
}

// skipped reports whether a root-relative key is under one of Config.SkipPrefixes.
func (r *run) skipped(rel string) bool {
	for _, p := range r.cfg.SkipPrefixes {
		if p != "" && strings.HasPrefix(rel, p) {
			return true
		}
	}
	return false
}

// check asks the FSM which candidates are still reclaimable, in entries of at most
// maxCheck candidates, and keeps only those.
func (r *run) check(ctx context.Context, jobs []*job, orphans []Candidate) ([]*job, []Candidate, error) {
	var okSegs, okBuilds = map[uint64]bool{}, map[[2]uint64]bool{}
	for start := 0; start < len(jobs); start += maxCheck {
		cmd := &fsmpb.GCCheck{Grace: r.grace.Nanoseconds(), OrphanGrace: r.orphanG.Nanoseconds()}
		for _, j := range jobs[start:min(start+maxCheck, len(jobs))] {
			switch j.kind {
			case "segment":
				cmd.Segments = append(cmd.Segments, j.segment.Id)
			case "build":
				cmd.Builds = append(cmd.Builds, &fsmpb.BuildRef{SegmentId: j.segment.Id, BuildId: j.build.BuildId})
			}
		}
		var resp fsmpb.GCCheckResponse
		if err := r.cluster.Propose(ctx, cmd, &resp); err != nil {
			return nil, nil, fmt.Errorf("GC check: %w", err)
		}
		for _, id := range resp.Segments {
			okSegs[id] = true
		}
		for _, b := range resp.Builds {
			okBuilds[[2]uint64{b.SegmentId, b.BuildId}] = true
		}
	}
	var kept []*job
	for _, j := range jobs {
		switch {
		case j.kind == "segment" && !okSegs[j.segment.Id],
			j.kind == "build" && !okBuilds[[2]uint64{j.segment.Id, j.build.BuildId}]:
			r.count(r.kept, fsm.ReasonStillReferenced, uint64(len(j.keys)), sumSizes(j.keys), 1)
			continue
		}
		kept = append(kept, j)
	}
	var okOrphans []Candidate
	for start := 0; start < len(orphans); start += maxCheck {
		chunk := orphans[start:min(start+maxCheck, len(orphans))]
		cmd := &fsmpb.GCCheck{Grace: r.grace.Nanoseconds(), OrphanGrace: r.orphanG.Nanoseconds()}
		for _, o := range chunk {
			rel := o.Key
			if r.cfg.Root != "" {
				rel = strings.TrimPrefix(o.Key, r.cfg.Root+"/")
			}
			cmd.Orphans = append(cmd.Orphans, &fsmpb.OrphanCandidate{Key: rel, LastModified: o.LastModified.UnixNano()})
		}
		var resp fsmpb.GCCheckResponse
		if err := r.cluster.Propose(ctx, cmd, &resp); err != nil {
			return nil, nil, fmt.Errorf("GC check: %w", err)
		}
		accepted := map[uint32]bool{}
		for _, i := range resp.Orphans {
			accepted[i] = true
		}
		for i, o := range chunk {
			if accepted[uint32(i)] {
				okOrphans = append(okOrphans, o)
			} else {
				r.count(r.kept, "orphan now owned", 1, o.Size, 0)
			}
		}
	}
	return kept, okOrphans, nil
}

// expandPrefixes adds to each job whose uploads the catalog never listed (an expired
// allocation, a restore's partial copy, a build never completed) whatever is listed
// under its prefix.
func (r *run) expandPrefixes(ctx context.Context, jobs []*job) {
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	for _, j := range jobs {
		for _, prefix := range j.listPrefixes {
			wg.Add(1)
			sem <- struct{}{}
			go func(j *job, prefix string) {
				defer wg.Done()
				defer func() { <-sem }()
				defer r.recoverJob("list "+prefix, func() { j.failed = true })
				r.expandPrefix(ctx, j, prefix)
			}(j, prefix)
		}
	}
	wg.Wait()
}

// expandPrefix adds to j whatever is listed under prefix and j does not hold yet.
func (r *run) expandPrefix(ctx context.Context, j *job, prefix string) {
	err := objstore.Walk(ctx, r.store, prefix, 1000, func(page objstore.ListPage) error {
		r.mu.Lock()
		defer r.mu.Unlock()
		known := make(map[string]bool, len(j.keys))
		for _, c := range j.keys {
			known[c.Key] = true
		}
		for _, obj := range page.Objects {
			if !known[obj.Key] {
				j.keys = append(j.keys, Candidate{Key: obj.Key, Size: uint64(obj.Size), Reason: j.reason, Owner: j.owner})
			}
		}
		return nil
	})
	if err != nil {
		r.fail(err)
		r.mu.Lock()
		j.failed = true
		r.mu.Unlock()
	}
}

// deleteAll deletes the jobs' objects and the orphans, in batches.
func (r *run) deleteAll(ctx context.Context, jobs []*job, orphans []Candidate) {
	sem := make(chan struct{}, r.cfg.Concurrency)
	var wg sync.WaitGroup
	type item struct {
		c Candidate
		j *job // nil for an orphan
	}
	var items []item
	for _, j := range jobs {
		for _, c := range j.keys {
			items = append(items, item{c, j})
		}
		if len(j.keys) == 0 {
			r.count(r.deleted, j.reason, 0, 0, 0)
		}
	}
	for _, o := range orphans {
		items = append(items, item{o, nil})
	}
	for start := 0; start < len(items); start += objstore.MaxDeleteBatch {
		batch := items[start:min(start+objstore.MaxDeleteBatch, len(items))]
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			defer r.recoverJob("delete a batch", func() {
				for _, it := range batch {
					if it.j != nil {
						it.j.failed = true
					}
				}
			})
			keys := make([]string, len(batch))
			for i, it := range batch {
				keys[i] = it.c.Key
			}
			err := r.limiter.wait(ctx, len(batch))
			var res objstore.DeleteResult
			if err == nil {
				res, err = r.deleteWithRetry(ctx, keys)
			}
			if err != nil {
				// Nothing of this batch counts as deleted: its records stay for the
				// next run.
				r.fail(fmt.Errorf("delete %d objects from %s: %w", len(keys), keys[0], err))
				r.mu.Lock()
				for _, it := range batch {
					if it.j != nil {
						it.j.failed = true
					}
				}
				r.mu.Unlock()
				return
			}
			for _, it := range batch {
				if ferr := res.Failed[it.c.Key]; ferr != nil {
					r.fail(fmt.Errorf("delete %s: %w", it.c.Key, ferr))
					r.mu.Lock()
					if it.j != nil {
						it.j.failed = true
					}
					r.mu.Unlock()
					continue
				}
				r.count(r.deleted, it.c.Reason, 1, it.c.Size, 0)
				r.mu.Lock()
				r.rep.ObjectsDeleted++
				r.rep.BytesFreed += it.c.Size
				r.mu.Unlock()
				r.candidates(it.c)
			}
		}()
	}
	wg.Wait()
}

func (r *run) deleteWithRetry(ctx context.Context, keys []string) (objstore.DeleteResult, error) {
	var err error
	for attempt := 0; attempt < 5; attempt++ {
		var res objstore.DeleteResult
		if res, err = r.store.Delete(ctx, keys); err == nil {
			return res, nil
		}
		if !objstore.IsTransient(err) {
			return objstore.DeleteResult{}, err
		}
		select {
		case <-ctx.Done():
			return objstore.DeleteResult{}, ctx.Err()
		case <-time.After(time.Duration(100<<attempt) * time.Millisecond):
		}
	}
	return objstore.DeleteResult{}, err
}

// removeRecords removes the records whose objects are all gone.
func (r *run) removeRecords(ctx context.Context, jobs []*job) error {
	var segs []uint64
	var builds []*fsmpb.BuildRef
	var errs []error
	reasonOf := map[[2]uint64]string{} // (segment, build) → the job's reason
	for _, j := range jobs {
		if j.failed {
			continue
		}
		switch j.kind {
		case "segment":
			segs = append(segs, j.segment.Id)
			reasonOf[[2]uint64{j.segment.Id, 0}] = j.reason
		case "build":
			builds = append(builds, &fsmpb.BuildRef{SegmentId: j.segment.Id, BuildId: j.build.BuildId})
			reasonOf[[2]uint64{j.segment.Id, j.build.BuildId}] = j.reason
		case "snapshot":
			err := r.cluster.Propose(ctx, &fsmpb.SnapshotRemove{SnapshotId: j.snap.Id}, nil)
			switch {
			case err == nil:
				r.count(r.deleted, j.reason, 0, 0, 1)
				r.rep.RecordsRemoved++
			case !errors.Is(err, fsm.ErrNotFound) && !errors.Is(err, fsm.ErrFailedPrecondition):
				errs = append(errs, fmt.Errorf("remove snapshot %d: %w", j.snap.Id, err))
			}
		}
	}
	for start := 0; start < len(segs) || start < len(builds); start += maxCheck {
		cmd := &fsmpb.GCRemove{Grace: r.grace.Nanoseconds()}
		if start < len(segs) {
			cmd.Segments = segs[start:min(start+maxCheck, len(segs))]
		}
		if start < len(builds) {
			cmd.Builds = builds[start:min(start+maxCheck, len(builds))]
		}
		var resp fsmpb.GCRemoveResponse
		if err := r.cluster.Propose(ctx, cmd, &resp); err != nil {
			errs = append(errs, fmt.Errorf("remove records: %w", err))
			continue
		}
		for _, id := range resp.SegmentIds {
			r.count(r.deleted, reasonOf[[2]uint64{id, 0}], 0, 0, 1)
		}
		for _, b := range resp.RemovedBuilds {
			r.count(r.deleted, reasonOf[[2]uint64{b.SegmentId, b.BuildId}], 0, 0, 1)
		}
		r.rep.RecordsRemoved += resp.Segments + resp.Builds
	}
	return errors.Join(errs...)
}

// planCollections removes (or, dry, counts) the records of dropped collections nothing
// refers to any more.
func (r *run) planCollections(ctx context.Context, view *fsm.View, dry bool) error {
	var ids []uint64
	view.EachCollection(func(c *fsmpb.Collection) bool {
		if c.State != fsmpb.CollectionState_COLLECTION_STATE_DROPPED {
			return true
		}
		if ok, _ := view.CollectionReclaim(c); ok {
			ids = append(ids, c.Id)
		}
		return true
	})
	if len(ids) == 0 {
		return nil
	}
	if dry {
		r.count(r.deleted, fsm.ReasonDroppedColl, 0, 0, uint64(len(ids)))
		r.rep.RecordsRemoved += uint64(len(ids))
		return nil
	}
	var resp fsmpb.GCRemoveResponse
	if err := r.cluster.Propose(ctx, &fsmpb.GCRemove{Collections: ids, Grace: r.grace.Nanoseconds()}, &resp); err != nil {
		return fmt.Errorf("remove collection records: %w", err)
	}
	r.count(r.deleted, fsm.ReasonDroppedColl, 0, 0, resp.Collections)
	r.rep.RecordsRemoved += resp.Collections
	return nil
}

// finish completes the report, records it (unless the run was a quiet one the
// options say not to record) and returns the result.
func (r *run) finish(ctx context.Context) (*Result, error) {
	r.rep.FinishedAt = time.Now().UnixNano()
	r.rep.Deleted = sortedCounts(r.deleted)
	r.rep.Kept = sortedCounts(r.kept)
	quiet := r.rep.ObjectsDeleted == 0 && r.rep.RecordsRemoved == 0 && r.rep.ErrorCount == 0 && !r.opts.DryRun && !r.opts.OrphanScan
	if !(quiet && r.opts.SkipQuietReport) {
		var recorded fsmpb.GCReport
		if err := r.cluster.Propose(ctx, &fsmpb.GCRecordReport{Report: r.rep}, &recorded); err != nil {
			r.cfg.Logger.Warn("record GC report", "err", err)
		} else {
			r.rep = &recorded
		}
	}
	r.result.Report = r.rep
	sort.Slice(r.result.Candidates, func(i, k int) bool { return r.result.Candidates[i].Key < r.result.Candidates[k].Key })
	return r.result, nil
}

func sortedCounts(m map[string]*fsmpb.GCCount) []*fsmpb.GCCount {
	out := make([]*fsmpb.GCCount, 0, len(m))
	for _, c := range m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, k int) bool { return out[i].Reason < out[k].Reason })
	return out
}

// recoverJob, deferred on a worker goroutine, turns a panic into a failure of the run
// (markFailed keeps the work's records for the next run) instead of ending the process.
func (r *run) recoverJob(what string, markFailed func()) {
	if p := recover(); p != nil {
		r.fail(fmt.Errorf("%s: panic: %v", what, p))
		r.mu.Lock()
		markFailed()
		r.mu.Unlock()
	}
}
