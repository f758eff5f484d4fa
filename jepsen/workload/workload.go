// Package workload is the harness's clients: each runs one operation at a time against
// a node it picks at random, and records it in the history (Invoke before the call,
// Complete after it) with the node it was sent to. Every call is a single attempt (a
// client bound to one node, retries and leader following off) under a short deadline;
// errors are classified as definite (Fail) or indefinite (Unknown), never retried.
package workload

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/jepsen/history"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// Workload names.
const (
	Snapshots = "snapshots"
	Segments  = "segments"
	Restores  = "restores"
	GC        = "gc"
	// Repositories exports snapshots to the repository Repository (registered by
	// SetupRepository), restores from it, and collects its garbage.
	Repositories = "repositories"
	// Policies runs the snapshot policies PolicySpecs (created by SetupPolicies):
	// reads them, lists their snapshots, runs them by hand and holds their snapshots.
	Policies = "policies"
	// Milvus plays Milvus on MilvusCollection (its key layout and ids, its own garbage
	// collector through ReleaseForDeletion; see milvus.go).
	Milvus = "milvus"
	// Scrub verifies snapshots on request (VerifySnapshot, sizes or deep) while the
	// leader's scrubber verifies them on its schedule.
	Scrub = "scrub"
)

// All is every workload.
var All = []string{Snapshots, Segments, Restores, GC, Repositories, Policies, Milvus, Scrub}

// Repository is the repository the repositories workload uses: another bucket of the
// cluster's S3 server, reached through the same fault proxy.
const (
	Repository       = "backup"
	RepositoryBucket = "backups"
	RepositoryPrefix = "jepsen"
)

// Collections and snapshot names the clients work on: a small set, so they collide,
// but not so small that one name gathers more writes of unknown outcome than the
// linearizability search can decide (each stays open to the end of the history: with
// 4 names a 5-minute run left ~60 per name, and one search timed out).
var (
	Collections   = []string{"c0", "c1"}
	SnapshotNames = []string{"s0", "s1", "s2", "s3", "s4", "s5", "s6", "s7"}
)

// OpTimeout is every operation's deadline (GC runs get GCTimeout).
const (
	OpTimeout = 5 * time.Second
	GCTimeout = 10 * time.Second
)

// Dialer returns a single-attempt client bound to a node.
type Dialer func(ctx context.Context, node string) (*client.Client, error)

// Config configures the clients.
type Config struct {
	Clients   int
	Seed      int64
	Workloads []string
	Nodes     []string
	Dial      Dialer
	History   *history.History
	// Store is the bucket, written directly (segment files are uploaded before the
	// flush that names them); Root the nodes' storage root, with its trailing slash.
	Store objstore.Store
	Root  string
}

// Setup creates the collections (an existing one is fine).
func Setup(ctx context.Context, cl *client.Client) error {
	for _, c := range Collections {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		_, err := cl.CreateCollection(cctx, client.NewCreateCollectionOption(c))
		cancel()
		if err != nil && !errors.Is(err, client.ErrAlreadyExists) {
			return fmt.Errorf("create collection %s: %w", c, err)
		}
	}
	return nil
}

// Classify maps an error to an outcome: nil OK; a definite refusal Fail; anything
// that may have taken effect (timeouts, Unavailable, broken connections, internal
// errors) Unknown.
func Classify(err error) history.Outcome {
	if err == nil {
		return history.OK
	}
	switch client.Code(err) {
	case codes.NotFound, codes.AlreadyExists, codes.FailedPrecondition, codes.InvalidArgument, codes.PermissionDenied:
		return history.Fail
	}
	return history.Unknown
}

// segment is a segment a client knows of.
type segment struct {
	id     uint64
	coll   string
	prefix string
}

// shared is what the clients know together, so their operations touch the same
// records.
type shared struct {
	mu        sync.Mutex
	allocated []segment // allocated, not yet flushed or used as a compaction output
	flushed   []segment // flushed (or maybe flushed), not yet dropped or compacted
	seen      []uint64  // every segment id ever returned
	jobs      []uint64
	restores  int
	pol       policyShared
	milvus    milvusShared
}

func (s *shared) take(list *[]segment, r *rand.Rand, coll string) (segment, bool) {
	var idx []int
	for i, seg := range *list {
		if coll == "" || seg.coll == coll {
			idx = append(idx, i)
		}
	}
	if len(idx) == 0 {
		return segment{}, false
	}
	i := idx[r.IntN(len(idx))]
	seg := (*list)[i]
	*list = append((*list)[:i], (*list)[i+1:]...)
	return seg, true
}

// Run runs the clients until ctx is done and returns the number of operations.
func Run(ctx context.Context, cfg Config) int {
	var sh shared
	var wg sync.WaitGroup
	var mu sync.Mutex
	total := 0
	for i := 0; i < cfg.Clients; i++ {
		w := &worker{id: i, cfg: cfg, sh: &sh, rng: rand.New(rand.NewPCG(uint64(cfg.Seed), uint64(i)+1)), clients: map[string]*client.Client{}}
		wg.Add(1)
		go func() {
			defer wg.Done()
			n := w.run(ctx)
			mu.Lock()
			total += n
			mu.Unlock()
		}()
	}
	wg.Wait()
	return total
}

type worker struct {
	id      int
	cfg     Config
	sh      *shared
	rng     *rand.Rand
	clients map[string]*client.Client
	files   int
	writes  int // request ids given so far
	// snapColls are the collections the snapshot, restore and export operations pick
	// from: Collections, and MilvusCollection when the milvus workload runs.
	snapColls []string
	milvusIDs int
}

// WritesWithRequestID are the operations made of exactly one write that carries a
// request id (the client sets one on every catalog write; GCRun and CollectRepository
// have none): their Unknown outcomes can be looked up afterwards (LookupRequests).
// An operation listed here must make no other write under its context.
var WritesWithRequestID = map[history.Kind]bool{
	history.SnapshotCreate: true, history.SnapshotDrop: true,
	history.SegmentAllocate: true, history.SegmentFlush: true, history.SegmentCompact: true, history.SegmentDrop: true,
	history.RestoreStart: true, history.RestoreCancel: true,
	history.ExportStart: true, history.RepoRestoreStart: true,
	history.PolicyExecute: true, history.HoldAdd: true, history.HoldRemove: true,
	history.BuildAllocate: true, history.BuildAdd: true, history.Release: true,
}

type gen func(ctx context.Context) bool // false: nothing to do now

func (w *worker) run(ctx context.Context) int {
	defer func() {
		for _, c := range w.clients {
			_ = c.Close()
		}
	}()
	enabled := map[string]bool{}
	for _, name := range w.cfg.Workloads {
		enabled[name] = true
	}
	w.snapColls = Collections
	if enabled[Milvus] {
		w.snapColls = append(slices.Clip(Collections), MilvusCollection)
	}
	var gens []gen
	add := func(weight int, g gen) {
		for range weight {
			gens = append(gens, g)
		}
	}
	if enabled[Snapshots] {
		add(3, w.snapshotCreate)
		add(2, w.snapshotDrop)
		add(3, w.snapshotDescribe)
		add(2, w.snapshotList)
	}
	if enabled[Segments] {
		add(3, w.segmentAllocate)
		add(3, w.segmentFlush)
		add(1, w.segmentCompact)
		add(1, w.segmentDrop)
		add(2, w.segmentGet)
	}
	if enabled[Restores] {
		add(1, w.restoreStart)
		add(2, w.restoreStatus)
		add(1, w.restoreCancel)
	}
	if enabled[GC] {
		add(1, w.gcRun)
	}
	if enabled[Repositories] {
		add(1, w.exportStart)
		add(1, w.repoRestoreStart)
		add(1, w.restoreStatus)
		if enabled[GC] {
			add(1, w.repoCollect)
		}
	}
	if enabled[Policies] {
		add(2, w.policyDescribe)
		add(3, w.policySnapshots)
		add(1, w.policyExecute)
		add(1, w.holdAdd)
		add(1, w.holdRemove)
	}
	if enabled[Milvus] {
		add(2, w.milvusAllocate)
		add(2, w.milvusFlush)
		add(1, w.milvusIndex)
		add(1, w.milvusDrop)
		add(2, w.milvusCollect)
	}
	if enabled[Scrub] {
		add(2, w.snapshotVerify)
	}
	n := 0
	for ctx.Err() == nil && len(gens) > 0 {
		if gens[w.rng.IntN(len(gens))](ctx) {
			n++
		}
		// a short pause keeps the two shared cores usable
		select {
		case <-ctx.Done():
		case <-time.After(time.Duration(10+w.rng.IntN(40)) * time.Millisecond):
		}
	}
	return n
}

// call runs one operation on a random node and records it. do returns the output.
func (w *worker) call(ctx context.Context, kind history.Kind, in history.Input, timeout time.Duration,
	do func(ctx context.Context, cl *client.Client) (history.Output, error)) (history.Output, history.Outcome) {
	node := w.cfg.Nodes[w.rng.IntN(len(w.cfg.Nodes))]
	cl, ok := w.clients[node]
	if !ok {
		var err error
		if cl, err = w.cfg.Dial(ctx, node); err != nil {
			op := w.cfg.History.Invoke(w.id, kind, in)
			w.cfg.History.Complete(op, node, history.Fail, history.Output{}, fmt.Errorf("dial (not sent): %w", err))
			return history.Output{}, history.Fail
		}
		w.clients[node] = cl
	}
	// The operation's deadline is its own, not the run's: an operation in flight when
	// the run ends completes (or times out) normally.
	octx, cancel := context.WithTimeout(context.WithoutCancel(ctx), timeout)
	defer cancel()
	var op *history.Op
	if WritesWithRequestID[kind] {
		w.writes++
		id := fmt.Sprintf("jepsen-c%d-w%d", w.id, w.writes)
		octx = client.WithRequestID(octx, id)
		op = w.cfg.History.InvokeWrite(w.id, kind, in, id)
	} else {
		op = w.cfg.History.Invoke(w.id, kind, in)
	}
	out, err := do(octx, cl)
	res := Classify(err)
	if res != history.OK {
		out = history.Output{}
	}
	w.cfg.History.Complete(op, node, res, out, err)
	return out, res
}

func (w *worker) pick(list []string) string { return list[w.rng.IntN(len(list))] }

func state(s fmt.Stringer) string {
	v := s.String()
	for _, p := range []string{"SNAPSHOT_STATE_", "SEGMENT_STATE_", "RESTORE_STATE_"} {
		v = strings.TrimPrefix(v, p)
	}
	return v
}

func (w *worker) snapshotCreate(ctx context.Context) bool {
	in := history.Input{Collection: w.pick(w.snapColls), Name: w.pick(SnapshotNames)}
	w.call(ctx, history.SnapshotCreate, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		s, err := cl.CreateSnapshot(ctx, client.NewCreateSnapshotOption(in.Collection, in.Name))
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{SnapshotID: s.GetId(), State: state(s.GetState())}, nil
	})
	return true
}

func (w *worker) snapshotDrop(ctx context.Context) bool {
	in := history.Input{Collection: w.pick(w.snapColls), Name: w.pick(SnapshotNames)}
	w.call(ctx, history.SnapshotDrop, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		r, err := cl.DropSnapshot(ctx, client.NewDropSnapshotOption(in.Collection, in.Name))
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{Existed: r.GetExisted()}, nil
	})
	return true
}

func (w *worker) snapshotDescribe(ctx context.Context) bool {
	in := history.Input{Collection: w.pick(w.snapColls), Name: w.pick(SnapshotNames)}
	w.call(ctx, history.SnapshotDescribe, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		s, err := cl.DescribeSnapshot(ctx, client.NewDescribeSnapshotOption(in.Collection, in.Name))
		if errors.Is(err, client.ErrNotFound) {
			return history.Output{Found: false}, nil // a definite answer: absent
		}
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{Found: true, SnapshotID: s.GetId(), State: state(s.GetState())}, nil
	})
	return true
}

func (w *worker) snapshotVerify(ctx context.Context) bool {
	in := history.Input{Collection: w.pick(w.snapColls), Name: w.pick(SnapshotNames), Deep: w.rng.IntN(2) == 0}
	w.call(ctx, history.SnapshotVerify, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		opt := client.NewVerifySnapshotOption(in.Collection, in.Name)
		if in.Deep {
			opt = opt.WithDeep()
		}
		s, err := cl.VerifySnapshot(ctx, opt)
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{SnapshotID: s.GetId(), State: state(s.GetState()),
			Outcome: strings.TrimPrefix(s.GetVerification().GetOutcome().String(), "SNAPSHOT_VERIFY_OUTCOME_")}, nil
	})
	return true
}

func (w *worker) snapshotList(ctx context.Context) bool {
	in := history.Input{Collection: w.pick(w.snapColls)}
	w.call(ctx, history.SnapshotList, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		r, err := cl.ListSnapshots(ctx, client.NewListSnapshotsOption().WithCollection(in.Collection).WithPageSize(1000))
		if err != nil {
			return history.Output{}, err
		}
		out := history.Output{States: map[string]string{}}
		for _, s := range r.GetSnapshots() {
			out.States[s.GetName()] = state(s.GetState())
		}
		return out, nil
	})
	return true
}

func (w *worker) segmentAllocate(ctx context.Context) bool {
	in := history.Input{Collection: w.pick(Collections)}
	var seg *snapkeepv1.Segment
	_, res := w.call(ctx, history.SegmentAllocate, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		var err error
		seg, err = cl.AllocateSegment(ctx, client.NewAllocateSegmentOption(in.Collection))
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{SegmentID: seg.GetId(), State: state(seg.GetState())}, nil
	})
	if res == history.OK {
		w.sh.mu.Lock()
		w.sh.allocated = append(w.sh.allocated, segment{id: seg.GetId(), coll: in.Collection, prefix: seg.GetPrefix()})
		w.sh.seen = append(w.sh.seen, seg.GetId())
		w.sh.mu.Unlock()
	}
	return true
}

// upload writes n small files under prefix straight to the bucket.
func (w *worker) upload(ctx context.Context, prefix string, n int) ([]history.File, []*snapkeepv1.File, error) {
	var hf []history.File
	var pf []*snapkeepv1.File
	for i := 0; i < n; i++ {
		w.files++
		f, err := w.put(ctx, fmt.Sprintf("%sinsert/0/%d", prefix, w.files*100+w.id))
		if err != nil {
			return nil, nil, err
		}
		hf = append(hf, f)
		pf = append(pf, &snapkeepv1.File{Key: f.Key, Kind: snapkeepv1.FileKind_FILE_KIND_INSERT, Size: uint64(f.Size), Crc32C: f.CRC32C})
	}
	return hf, pf, nil
}

func files(fs []*snapkeepv1.File) []history.File {
	var out []history.File
	for _, f := range fs {
		out = append(out, history.File{Key: f.GetKey(), Size: int64(f.GetSize()), CRC32C: f.GetCrc32C()})
	}
	return out
}

func (w *worker) segmentFlush(ctx context.Context) bool {
	w.sh.mu.Lock()
	seg, ok := w.sh.take(&w.sh.allocated, w.rng, "")
	w.sh.mu.Unlock()
	if !ok {
		return false
	}
	hf, pf, err := w.upload(ctx, seg.prefix, 1+w.rng.IntN(3))
	if err != nil {
		return false
	}
	in := history.Input{SegmentID: seg.id, Files: hf}
	_, res := w.call(ctx, history.SegmentFlush, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		s, err := cl.FlushSegment(ctx, client.NewFlushSegmentOption(seg.id).WithRowCount(int64(len(pf))).WithFiles(pf...))
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{State: state(s.GetState())}, nil
	})
	if res != history.Fail {
		w.sh.mu.Lock()
		w.sh.flushed = append(w.sh.flushed, seg)
		w.sh.mu.Unlock()
	}
	return true
}

func (w *worker) segmentCompact(ctx context.Context) bool {
	coll := w.pick(Collections)
	w.sh.mu.Lock()
	out, ok := w.sh.take(&w.sh.allocated, w.rng, coll)
	var inputs []segment
	if ok {
		for range 2 {
			if s, ok := w.sh.take(&w.sh.flushed, w.rng, coll); ok {
				inputs = append(inputs, s)
			}
		}
		if len(inputs) == 0 {
			w.sh.allocated = append(w.sh.allocated, out)
			ok = false
		}
	}
	w.sh.mu.Unlock()
	if !ok {
		return false
	}
	hf, pf, err := w.upload(ctx, out.prefix, 1)
	if err != nil {
		w.sh.mu.Lock()
		w.sh.flushed = append(w.sh.flushed, inputs...)
		w.sh.mu.Unlock()
		return false
	}
	var ids []uint64
	for _, s := range inputs {
		ids = append(ids, s.id)
	}
	in := history.Input{Inputs: ids, SegmentID: out.id, Files: hf}
	_, res := w.call(ctx, history.SegmentCompact, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		segs, err := cl.CompactSegments(ctx, client.NewCompactSegmentsOption(ids...).WithOutput(out.id, 1, pf...))
		if err != nil {
			return history.Output{}, err
		}
		o := history.Output{}
		for _, s := range segs {
			if s.GetId() == out.id {
				o.State = state(s.GetState())
			}
		}
		return o, nil
	})
	w.sh.mu.Lock()
	switch res {
	case history.Fail:
		w.sh.flushed = append(w.sh.flushed, inputs...)
	default:
		w.sh.flushed = append(w.sh.flushed, out)
	}
	w.sh.mu.Unlock()
	return true
}

func (w *worker) segmentDrop(ctx context.Context) bool {
	w.sh.mu.Lock()
	seg, ok := w.sh.take(&w.sh.flushed, w.rng, "")
	w.sh.mu.Unlock()
	if !ok {
		return false
	}
	in := history.Input{SegmentIDs: []uint64{seg.id}}
	w.call(ctx, history.SegmentDrop, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		_, err := cl.DropSegments(ctx, client.NewDropSegmentsOption(seg.id))
		return history.Output{}, err
	})
	return true
}

func (w *worker) segmentGet(ctx context.Context) bool {
	w.sh.mu.Lock()
	var id uint64
	if n := len(w.sh.seen); n > 0 {
		// mostly recent segments: their records are the ones still changing
		lo := 0
		if w.rng.IntN(3) > 0 {
			lo = max(0, n-8)
		}
		id = w.sh.seen[lo+w.rng.IntN(n-lo)]
	}
	w.sh.mu.Unlock()
	if id == 0 {
		return false
	}
	in := history.Input{SegmentID: id}
	w.call(ctx, history.SegmentGet, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		s, err := cl.GetSegment(ctx, client.NewGetSegmentOption(id))
		if errors.Is(err, client.ErrNotFound) {
			return history.Output{Found: false}, nil
		}
		if err != nil {
			return history.Output{}, err
		}
		fs := files(s.GetFiles())
		sort.Slice(fs, func(i, j int) bool { return fs[i].Key < fs[j].Key })
		return history.Output{Found: true, State: state(s.GetState()), Files: fs}, nil
	})
	return true
}

func (w *worker) restoreStart(ctx context.Context) bool {
	w.sh.mu.Lock()
	w.sh.restores++
	target := fmt.Sprintf("r%d_%d", w.id, w.sh.restores)
	w.sh.mu.Unlock()
	in := history.Input{Collection: w.pick(w.snapColls), Name: w.pick(SnapshotNames), Target: target}
	out, res := w.call(ctx, history.RestoreStart, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		r, err := cl.RestoreSnapshot(ctx, client.NewRestoreSnapshotOption(in.Collection, in.Name, in.Target))
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{JobID: r.GetJobId(), State: state(r.GetJob().GetState())}, nil
	})
	if res == history.OK {
		w.sh.mu.Lock()
		w.sh.jobs = append(w.sh.jobs, out.JobID)
		w.sh.mu.Unlock()
	}
	return true
}

func (w *worker) job() uint64 {
	w.sh.mu.Lock()
	defer w.sh.mu.Unlock()
	if len(w.sh.jobs) == 0 {
		return 0
	}
	return w.sh.jobs[w.rng.IntN(len(w.sh.jobs))]
}

func (w *worker) restoreStatus(ctx context.Context) bool {
	id := w.job()
	if id == 0 {
		return false
	}
	in := history.Input{JobID: id}
	w.call(ctx, history.RestoreStatus, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		j, err := cl.GetRestoreState(ctx, id)
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{JobID: id, State: state(j.GetState())}, nil
	})
	return true
}

func (w *worker) restoreCancel(ctx context.Context) bool {
	id := w.job()
	if id == 0 {
		return false
	}
	in := history.Input{JobID: id}
	w.call(ctx, history.RestoreCancel, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		j, err := cl.CancelRestore(ctx, client.NewCancelRestoreOption(id).WithReason("jepsen"))
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{JobID: id, State: state(j.GetState())}, nil
	})
	return true
}

func (w *worker) gcRun(ctx context.Context) bool {
	in := history.Input{DryRun: w.rng.IntN(3) == 0}
	w.call(ctx, history.GCRun, in, GCTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		opt := client.NewGCRunOption()
		if in.DryRun {
			opt = opt.WithDryRun()
		} else {
			// grace 0 for dropped segments; the orphan grace stays the default, so
			// uploads not yet flushed are never taken for orphans.
			opt = opt.WithGrace(0)
		}
		r, err := cl.GCRun(ctx, opt)
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{Deleted: r.GetReport().GetObjectsDeleted()}, nil
	})
	return true
}

// SetupRepository registers the repositories workload's repository: bucket
// RepositoryBucket (created if missing) on the S3 endpoint the nodes use.
func SetupRepository(ctx context.Context, cl *client.Client, endpoint string) error {
	_, err := cl.RegisterRepository(ctx, client.NewRegisterRepositoryOption(Repository, RepositoryBucket).
		WithEndpoint(endpoint).WithPathStyle().WithPrefix(RepositoryPrefix))
	return err
}

func (w *worker) addJob(id uint64) {
	w.sh.mu.Lock()
	w.sh.jobs = append(w.sh.jobs, id)
	w.sh.mu.Unlock()
}

func (w *worker) exportStart(ctx context.Context) bool {
	in := history.Input{Collection: w.pick(w.snapColls), Name: w.pick(SnapshotNames)}
	out, res := w.call(ctx, history.ExportStart, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		r, err := cl.ExportSnapshot(ctx, client.NewExportSnapshotOption(in.Collection, in.Name, Repository))
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{JobID: r.GetJobId(), State: state(r.GetJob().GetState())}, nil
	})
	if res == history.OK {
		w.addJob(out.JobID)
	}
	return true
}

// repoRestoreStart restores a snapshot the repository lists (listing is part of the
// operation: a single attempt under one deadline).
func (w *worker) repoRestoreStart(ctx context.Context) bool {
	w.sh.mu.Lock()
	w.sh.restores++
	target := fmt.Sprintf("rr%d_%d", w.id, w.sh.restores)
	w.sh.mu.Unlock()
	in := history.Input{Target: target}
	out, res := w.call(ctx, history.RepoRestoreStart, in, OpTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		list, err := cl.ListRepositorySnapshots(ctx, client.NewListRepositorySnapshotsOption(Repository))
		if err != nil {
			return history.Output{}, err
		}
		if len(list.GetSnapshots()) == 0 {
			return history.Output{}, nil
		}
		snap := list.GetSnapshots()[w.rng.IntN(len(list.GetSnapshots()))]
		r, err := cl.RestoreSnapshot(ctx, client.NewRestoreFromRepositoryOption(Repository, snap.GetId(), target))
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{JobID: r.GetJobId(), State: state(r.GetJob().GetState())}, nil
	})
	if res == history.OK && out.JobID != 0 {
		w.addJob(out.JobID)
	}
	return true
}

func (w *worker) repoCollect(ctx context.Context) bool {
	w.call(ctx, history.RepoCollect, history.Input{}, GCTimeout, func(ctx context.Context, cl *client.Client) (history.Output, error) {
		r, err := cl.CollectRepository(ctx, Repository, false, -1)
		if err != nil {
			return history.Output{}, err
		}
		return history.Output{Deleted: r.GetObjectsDeleted()}, nil
	})
	return true
}
