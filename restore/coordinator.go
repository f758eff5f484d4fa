package restore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/internal/duty"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
)

// The coordinator is the leader's side of restore jobs. Its duty: for a PENDING job it
// checks, in bulk, that every source object exists with its recorded size (one
// paginated listing of the source collection, never a HEAD per file) and then opens
// the job for copying (RestoreStart) or fails it naming the missing keys
// (RestoreFail); it returns the tasks of lapsed leases to the pool and removes
// finished jobs after their retention. Its scheduler answers the executors' lease
// requests (Lease) and records their reports (Report).

// executorHealthy is how recently a node must have asked for work to count as a
// healthy executor.
const executorHealthy = 10 * time.Second

// maxLeasesPerNode bounds a node's outstanding leases: work spreads over the nodes,
// while a node still holds enough to keep copying across a report's and a grant's
// Raft commits.
const maxLeasesPerNode = 3

// nodeGoneAfter is how long gossip must see a lease holder not alive (suspect, dead or
// left) before the leader returns its leases to the pool, well before the lease's own
// deadline (5 minutes by default). A node that comes back after that simply gets new
// leases; a copy it lands twice is harmless.
const nodeGoneAfter = 10 * time.Second

// ProgressDeadline is how old a lease may get without its report before status counts
// its tasks as stalled.
const ProgressDeadline = 30 * time.Second

// LeaderCluster is what the coordinator needs of its node, the leader.
type LeaderCluster interface {
	View() *fsm.View
	Changed() <-chan struct{}
	Propose(ctx context.Context, cmd, resp proto.Message) error
	Store() (objstore.Store, error)
	// JobStores are the stores a job of kind reads and writes (repository: its name).
	JobStores(kind fsmpb.JobKind, repository string) (JobStores, error)
	// Alive reports whether gossip considers a node alive (true without gossip).
	Alive(node string) bool
	// OtherVoterAlive reports whether a voter other than this node is alive.
	OtherVoterAlive() bool
}

// CoordinatorConfig tunes a Coordinator.
type CoordinatorConfig struct {
	Node      string      // this node's id
	Root      layout.Root // the storage root of the keys in the state
	Batch     int         // the most tasks one lease grants
	Lease     time.Duration
	Retention time.Duration // how long a finished job is kept
	// Started is called when a job opens for copying (to wake this node's executor).
	Started func()
	Logger  *slog.Logger
	Guard   *duty.Guard
	// Now is the cluster clock, for comparisons with times in the catalog (lease
	// deadlines, job start times); nil: time.Now.
	Now func() time.Time
}

// Coordinator coordinates restore jobs on the leader. Its methods are safe for
// concurrent use.
type Coordinator struct {
	cluster LeaderCluster
	cfg     CoordinatorConfig
	kick    duty.Kicker

	mu        sync.Mutex
	checking  map[uint64]bool
	retryAt   map[uint64]time.Time
	executors map[string]*executorStats // node → its last request, its throughput
	// notAliveSince is when gossip was first seen not to consider a lease holder alive.
	notAliveSince map[string]time.Time
}

// NewCoordinator returns the coordinator of cluster's restore jobs.
func NewCoordinator(cluster LeaderCluster, cfg CoordinatorConfig) *Coordinator {
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	return &Coordinator{cluster: cluster, cfg: cfg, kick: duty.NewKicker(), checking: map[uint64]bool{},
		retryAt: map[uint64]time.Time{}, executors: map[string]*executorStats{}, notAliveSince: map[string]time.Time{}}
}

// Kick wakes the coordinator now.
func (c *Coordinator) Kick() { c.kick.Kick() }

// Loop is the coordinator's duty for one term as leader.
func (c *Coordinator) Loop() duty.Loop {
	var checks sync.WaitGroup
	return duty.Loop{Name: "restore-coordinator", Every: time.Second, Kick: c.kick, Changed: c.cluster.Changed,
		Pass:    func(ctx context.Context) { c.coordinate(ctx, &checks) },
		Finally: checks.Wait}
}

func (c *Coordinator) coordinate(ctx context.Context, checks *sync.WaitGroup) {
	v := c.cluster.View()
	now := time.Now()
	for _, job := range v.RunningRestoreJobs() {
		var step func(context.Context, *fsmpb.RestoreJob) error
		switch job.State {
		case fsmpb.RestoreState_RESTORE_STATE_PENDING:
			step = c.precheck
		case fsmpb.RestoreState_RESTORE_STATE_COPYING:
			if !job.SourcesUnchecked {
				continue
			}
			step = c.checkSources // a former leader opened the job and did not finish
		case fsmpb.RestoreState_RESTORE_STATE_PLANNING:
			step = c.plan
		case fsmpb.RestoreState_RESTORE_STATE_FINALIZING:
			step = c.finalize
		default:
			continue
		}
		c.mu.Lock()
		start := !c.checking[job.Id] && !now.Before(c.retryAt[job.Id])
		if start {
			c.checking[job.Id] = true
		}
		c.mu.Unlock()
		if !start {
			continue
		}
		checks.Add(1)
		go func() {
			defer checks.Done()
			var err error
			if perr := c.cfg.Guard.Run("restore-coordinator", func() { err = step(ctx, job) }); perr != nil {
				err = perr
			}
			c.mu.Lock()
			delete(c.checking, job.Id)
			if err != nil {
				c.retryAt[job.Id] = time.Now().Add(5 * time.Second)
			} else {
				delete(c.retryAt, job.Id)
			}
			c.mu.Unlock()
			if err != nil && ctx.Err() == nil {
				c.cfg.Logger.Warn("job step failed; will retry", "job", job.Id, "state", job.State.String(), "err", err)
			}
		}()
	}
	leases := v.RestoreLeases()
	gone := c.goneHolders(leases, c.cluster.Alive, now)
	if len(leases) > 0 && (leases[0].Deadline < c.cfg.Now().UnixNano() || len(gone) > 0) {
		var resp fsmpb.ExpireRestoreLeasesResponse
		if len(gone) > 0 {
			c.cfg.Logger.Warn("gossip has not seen restore lease holders alive; returning their leases", "nodes", gone, "after", nodeGoneAfter)
		}
		if err := c.cluster.Propose(ctx, &fsmpb.ExpireRestoreLeases{GoneNodes: gone}, &resp); err != nil {
			c.cfg.Logger.Warn("expire restore leases", "err", err)
		} else if len(resp.LeaseIds) > 0 {
			c.cfg.Logger.Info("restore leases expired; their tasks return to the pool", "leases", resp.LeaseIds)
		}
	}
	removed := 0
	v.EachRestoreJob(0, func(j *fsmpb.RestoreJob) bool {
		if j.FinishedAt != 0 && c.cfg.Now().Sub(time.Unix(0, j.FinishedAt)) > c.cfg.Retention {
			if err := c.cluster.Propose(ctx, &fsmpb.RestoreRemove{JobId: j.Id}, nil); err != nil && !errors.Is(err, fsm.ErrNotFound) {
				c.cfg.Logger.Warn("remove finished restore job", "job", j.Id, "err", err)
			}
			removed++
		}
		return removed < 16
	})
}

// precheck opens a job for copying, listing its sources to check every task's size
// when its copies do not check themselves: server-side copies without verification.
// Such a restore opens first and is checked while it copies (it completes only once
// checked); an export lists the repository first and opens only then, skipping the
// tasks whose file the repository holds. Every other job lists no sources: a streamed
// copy reads its source and checks its size and CRC-32C before the upload may
// complete, a verified server-side copy is checked after it (its size and CRC-32C, by
// the copy's response, HEAD or reading it back), and a missing source fails its copy,
// naming the key — a listing would find nothing the copies do not, at the cost of
// listing every source. It returns an error only when the check could not be made (it
// is retried).
func (c *Coordinator) precheck(ctx context.Context, job *fsmpb.RestoreJob) error {
	stores, err := c.cluster.JobStores(job.Kind, job.Repository)
	if err != nil {
		return err
	}
	listSources := !stores.Stream && !job.Verify
	if job.Kind != fsmpb.JobKind_JOB_KIND_EXPORT {
		err := ignoreDone(c.cluster.Propose(ctx, &fsmpb.RestoreStart{JobId: job.Id, SourcesUnchecked: listSources}, nil))
		if err != nil {
			return err
		}
		c.opened()
		if !listSources {
			return nil
		}
		return c.checkSources(ctx, job)
	}
	v := c.cluster.View()
	// The repository's GC epoch before it is listed: RestoreStart refuses the skips if
	// a GC run began since (it may have deleted what the listing saw).
	repo, err := v.Repository(job.Repository)
	if err != nil {
		return err
	}
	if repo.GcDeadline > c.cfg.Now().UnixNano() {
		return fmt.Errorf("a garbage collection of repository %q is running; the export waits for it", repo.Name)
	}
	gcEpoch := repo.GcEpoch
	// The repository is listed, and the sources of unverified server-side copies at the same time
	// (a resolver each: they cache what they decode).
	other, err := newTaskResolver(v, c.cfg.Root, job)
	if err != nil {
		return err
	}
	held := newRepositoryIndex(other)
	present := make([]bool, held.Len())
	var presentBytes uint64
	heldErr := make(chan error, 1)
	go func() {
		_, err := c.list(ctx, stores.Dest, held, func(i int, size uint64) { present[i], presentBytes = true, presentBytes+size })
		heldErr <- err
	}()
	var report PrecheckReport
	if listSources {
		report, err = c.listSources(ctx, v, stores, job)
	}
	if herr := <-heldErr; herr != nil && err == nil {
		return fmt.Errorf("list the repository under %q: %w", held.Prefix(), herr)
	}
	if err != nil {
		return err
	}
	if !report.OK() {
		return c.failSources(ctx, job, report, "nothing was copied")
	}
	startCmd := &fsmpb.RestoreStart{JobId: job.Id, RepositoryGcEpoch: gcEpoch, Skip: skipSpans(present), SkippedBytes: presentBytes}
	c.cfg.Logger.Info("export: files the repository holds are skipped", "job", job.Id, "files", held.Len(),
		"spans", len(startCmd.Skip), "bytes_skipped", startCmd.SkippedBytes)
	err = ignoreDone(c.cluster.Propose(ctx, startCmd, nil))
	c.opened()
	return err
}

// opened wakes the executors of a job that opened for copying.
func (c *Coordinator) opened() {
	c.Kick()
	if c.cfg.Started != nil {
		c.cfg.Started()
	}
}

// checkSources lists the sources of a restore that copies meanwhile, and records that
// they are all there (the job may then complete) or fails it (its copies, like a
// cancelled job's, are left to the GC).
func (c *Coordinator) checkSources(ctx context.Context, job *fsmpb.RestoreJob) error {
	stores, err := c.cluster.JobStores(job.Kind, job.Repository)
	if err != nil {
		return err
	}
	report, err := c.listSources(ctx, c.cluster.View(), stores, job)
	if err != nil {
		return err
	}
	if !report.OK() {
		return c.failSources(ctx, job, report, "the copies made meanwhile are left to the garbage collector")
	}
	return ignoreDone(c.cluster.Propose(ctx, &fsmpb.RestoreSourcesChecked{JobId: job.Id}, nil))
}

// listSources lists a job's sources and checks every task's against the listing.
func (c *Coordinator) listSources(ctx context.Context, v *fsm.View, stores JobStores, job *fsmpb.RestoreJob) (PrecheckReport, error) {
	resolver, err := newTaskResolver(v, c.cfg.Root, job)
	if err != nil {
		return PrecheckReport{}, err
	}
	sources := newSourceIndex(resolver)
	start := time.Now()
	report, err := c.list(ctx, stores.Source, sources, nil)
	if err != nil {
		return PrecheckReport{}, fmt.Errorf("list the sources under %q: %w", sources.Prefix(), err)
	}
	if report.OK() {
		c.cfg.Logger.Info("job sources checked", "job", job.Id, "files", report.Expected, "listed", report.Listed, "took", time.Since(start))
	}
	return report, nil
}

// failSources fails a job whose sources a listing found missing or of the wrong size.
func (c *Coordinator) failSources(ctx context.Context, job *fsmpb.RestoreJob, report PrecheckReport, copies string) error {
	msg := fmt.Sprintf("%d of %d source objects are missing and %d have the wrong size; %s", report.MissingCount, report.Expected, report.WrongSizeCount, copies)
	failing := append(append([]string{}, report.Missing...), report.WrongSize...)
	if len(report.WrongSize) > 0 {
		msg += " (" + strings.Join(report.WrongSize[:min(3, len(report.WrongSize))], "; ") + ")"
	}
	c.cfg.Logger.Warn("job sources missing", "job", job.Id, "missing", report.MissingCount, "wrong_size", report.WrongSizeCount)
	return ignoreDone(c.cluster.Propose(ctx, &fsmpb.RestoreFail{JobId: job.Id, Error: msg, FailingKeys: failing}, nil))
}

// list checks an index's keys against a listing of its prefix, sharded by the keys'
// list prefixes: in the snapkeep layout the first digit of the segment id (up to 9),
// in the Milvus layout one per kind of file and one per index build.
func (c *Coordinator) list(ctx context.Context, store objstore.Store, idx *taskIndex, present func(int, uint64)) (PrecheckReport, error) {
	shards, err := idx.ListPrefixes()
	if err != nil {
		return PrecheckReport{}, err
	}
	if len(shards) == 0 { // no files, nothing to list (no shards would list everything)
		return PrecheckReport{}, nil
	}
	return PrecheckWithOptions(ctx, store, idx.Prefix(), idx, PrecheckOptions{Shards: shards, Parallelism: 9, Present: present})
}

// skipSpans turns the tasks a listing found with their size into sorted spans.
func skipSpans(present []bool) []*fsmpb.TaskSpan {
	var spans []*fsmpb.TaskSpan
	for i, ok := range present {
		if !ok {
			continue
		}
		if n := len(spans); n > 0 && spans[n-1].End == uint32(i) {
			spans[n-1].End++
			continue
		}
		spans = append(spans, &fsmpb.TaskSpan{Start: uint32(i), End: uint32(i) + 1})
	}
	return spans
}

// ignoreDone treats "the job is already past that" as success: another leader (or a
// cancel) got there first.
func ignoreDone(err error) error {
	if errors.Is(err, fsm.ErrFailedPrecondition) || errors.Is(err, fsm.ErrNotFound) {
		return nil
	}
	return err
}

// goneHolders lists the lease holders gossip has not seen alive for nodeGoneAfter,
// and forgets the ones it sees alive again.
func (c *Coordinator) goneHolders(leases []*fsmpb.RestoreLease, alive func(string) bool, now time.Time) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	holders := map[string]bool{}
	for _, l := range leases {
		holders[l.Node] = true
	}
	var gone []string
	for node := range holders {
		if alive(node) {
			delete(c.notAliveSince, node)
			continue
		}
		since, seen := c.notAliveSince[node]
		if !seen {
			c.notAliveSince[node] = now
			continue
		}
		if now.Sub(since) >= nodeGoneAfter {
			gone = append(gone, node)
		}
	}
	for node := range c.notAliveSince {
		if !holders[node] {
			delete(c.notAliveSince, node)
		}
	}
	sort.Strings(gone)
	return gone
}

// noteExecutor records that node asked for work or reported, and returns its record
// (c.mu held).
func (c *Coordinator) noteExecutorLocked(node string, now time.Time) *executorStats {
	s := c.executors[node]
	if s == nil {
		s = &executorStats{}
		c.executors[node] = s
	}
	s.asked = now
	return s
}

func (c *Coordinator) noteExecutor(node string) {
	c.mu.Lock()
	c.noteExecutorLocked(node, time.Now())
	c.mu.Unlock()
}

// healthyExecutors lists the nodes that asked for work recently and gossip sees alive.
func (c *Coordinator) healthyExecutors() []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []string
	for node, s := range c.executors {
		if time.Since(s.asked) < executorHealthy && c.cluster.Alive(node) {
			out = append(out, node)
		}
	}
	sort.Strings(out)
	return out
}

// withMeasured adds to healthy the nodes whose throughput this leader measured and
// gossip sees alive: the executors a job's work is split over. A follower asks for
// work only while a job is copying, so when a job starts its last request is as old
// as the previous job's end; counted only once it asks, the first asker would get
// the whole of a small job (a lease of its measured 2 s of work) and the other
// follower nothing. A node counted that never asks costs only smaller leases to the
// others at the job's end.
func (c *Coordinator) withMeasured(healthy []string) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := slices.Clone(healthy)
	for node, s := range c.executors {
		if s.rate > 0 && !slices.Contains(out, node) && c.cluster.Alive(node) {
			out = append(out, node)
		}
	}
	sort.Strings(out)
	return out
}

// rates are the measured throughputs of nodes (0: not measured yet).
func (c *Coordinator) rates(nodes []string) []float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	out := make([]float64, len(nodes))
	for i, node := range nodes {
		if s := c.executors[node]; s != nil {
			out[i] = s.rate
		}
	}
	return out
}

// leaderLeavesCopying decides whether the leader's own executor gets no lease: while
// another node asked for work recently, and also during the first executorHealthy of a
// job's copying while another voter is alive. The followers' executors ask only while
// a job is copying, so at a job's start their last request is as old as the previous
// job, and the leader — which applies RestoreStart first and asks first — would
// otherwise take the first leases for itself.
func leaderLeavesCopying(self string, healthy []string, otherVoterAlive bool, newestStart, now time.Time) bool {
	for _, node := range healthy {
		if node != self {
			return true
		}
	}
	return otherVoterAlive && !newestStart.IsZero() && now.Sub(newestStart) < executorHealthy
}

// newestCopyingStart is when the most recently started copying job started (zero if
// none is copying).
func newestCopyingStart(v *fsm.View) time.Time {
	var newest int64
	for _, job := range v.RunningRestoreJobs() {
		if job.State == fsmpb.RestoreState_RESTORE_STATE_COPYING && job.StartedAt > newest {
			newest = job.StartedAt
		}
	}
	if newest == 0 {
		return time.Time{}
	}
	return time.Unix(0, newest)
}

// Lease is the scheduler: it grants a node a batch of a copying job's pooled tasks. It
// prefers followers (the leader gets work only when no other node is a healthy
// executor), bounds each node's outstanding leases, and splits the remaining pool over
// the healthy executors so the tail of a job spreads too. Errors are gRPC statuses.
func (c *Coordinator) Lease(ctx context.Context, req *internalv1.LeaseRestoreTasksRequest) (*internalv1.LeaseRestoreTasksResponse, error) {
	if req.Node == "" || req.MaxTasks == 0 {
		return nil, status.Error(codes.InvalidArgument, "a lease request names the node and the most tasks it takes")
	}
	if len(req.Node) > fsm.MaxNodeIDBytes || len(req.Incarnation) > fsm.MaxNodeIDBytes {
		return nil, status.Errorf(codes.InvalidArgument, "a node id and an incarnation are at most %d bytes", fsm.MaxNodeIDBytes)
	}
	c.noteExecutor(req.Node)
	wait := &internalv1.LeaseRestoreTasksResponse{RetryAfterMs: 500}
	// A restarted node asking is proof that its earlier process's leases will never be
	// reported, whatever gossip says of it yet: return them to the pool now.
	v := c.cluster.View()
	for _, l := range v.RestoreLeases() {
		if l.Node == req.Node && req.Incarnation != "" && l.Incarnation != req.Incarnation {
			var resp fsmpb.ExpireRestoreLeasesResponse
			if err := c.cluster.Propose(ctx, &fsmpb.ExpireRestoreLeases{Node: req.Node, Incarnation: req.Incarnation}, &resp); err != nil {
				return nil, err
			}
			c.cfg.Logger.Info("restore leases of a node's earlier incarnation returned to the pool", "node", req.Node, "incarnation", req.Incarnation, "leases", resp.LeaseIds)
			v = c.cluster.View()
			break
		}
	}
	if !c.cluster.Alive(req.Node) {
		return wait, nil // gossip reports it suspect, dead or left
	}
	healthy := c.healthyExecutors()
	// The executors the remaining work is spread over: the healthy and the measured
	// ones, but for the leader while it leaves the copying to the followers.
	copiers := c.withMeasured(healthy)
	if leaderLeavesCopying(c.cfg.Node, healthy, c.cluster.OtherVoterAlive(), newestCopyingStart(v), c.cfg.Now()) {
		if req.Node == c.cfg.Node {
			return wait, nil // followers do the copying while they are there
		}
		copiers = slices.DeleteFunc(copiers, func(n string) bool { return n == c.cfg.Node })
	}
	if !slices.Contains(copiers, req.Node) {
		copiers = append(copiers, req.Node)
	}
	leases := v.RestoreLeases()
	held := 0
	for _, l := range leases {
		if l.Node == req.Node && len(l.Tasks) > 0 {
			held++
		}
	}
	if held >= maxLeasesPerNode {
		return wait, nil
	}
	rates := c.rates(copiers)
	for _, job := range v.RunningRestoreJobs() {
		if job.State != fsmpb.RestoreState_RESTORE_STATE_COPYING {
			continue
		}
		pooled := v.PooledTasks(job.Id)
		if pooled == 0 {
			continue
		}
		sizing := leaseSizing{maxTasks: min(int(req.MaxTasks), c.cfg.Batch), pooled: pooled, rates: rates}
		for i, node := range copiers {
			if node == req.Node {
				sizing.rate = rates[i]
			}
		}
		for _, l := range leases {
			if l.JobId == job.Id && slices.Contains(copiers, l.Node) {
				sizing.heldAll += len(l.Tasks)
				if l.Node == req.Node {
					sizing.held += len(l.Tasks)
				}
			}
		}
		size := leaseSize(sizing)
		if size == 0 {
			continue // it holds its share of this job already
		}
		var grant fsmpb.RestoreGrantResponse
		cmd := &fsmpb.RestoreGrant{JobId: job.Id, Node: req.Node, MaxTasks: uint32(size), Lease: int64(c.cfg.Lease), Incarnation: req.Incarnation}
		if err := c.cluster.Propose(ctx, cmd, &grant); err != nil {
			if ignoreDone(err) == nil {
				continue
			}
			return nil, err
		}
		if grant.Lease == nil {
			continue
		}
		resolver, err := newTaskResolver(c.cluster.View(), c.cfg.Root, job)
		if err != nil {
			return nil, status.Errorf(codes.Internal, "resolve tasks of job %d: %v", job.Id, err)
		}
		out := &internalv1.LeaseRestoreTasksResponse{
			JobId:          job.Id,
			LeaseId:        grant.Lease.Id,
			DeadlineUnixMs: time.Unix(0, grant.Lease.Deadline).UnixMilli(),
			LeaseMs:        cmd.Lease / int64(time.Millisecond),
			Verify:         job.Verify,
			ReadBack:       job.ReadBack,
			MaxConcurrency: job.MaxConcurrency,
			Kind:           uint32(job.Kind),
			Repository:     job.Repository,
		}
		for _, t := range grant.Lease.Tasks {
			task, err := resolver.task(t)
			if err != nil {
				return nil, status.Errorf(codes.Internal, "resolve task %d of job %d: %v", t, job.Id, err)
			}
			out.Tasks = append(out.Tasks, task)
		}
		return out, nil
	}
	return wait, nil
}

// Report records a batch's outcomes in one entry, and measures the executor's
// throughput from it (see leaseSize).
func (c *Coordinator) Report(ctx context.Context, req *internalv1.ReportRestoreTasksRequest) error {
	var granted time.Time
	stillHolds := false // other leases with tasks, which this report does not end
	for _, l := range c.cluster.View().RestoreLeases() {
		switch {
		case l.Node != req.Node:
		case l.Id == req.LeaseId:
			granted = time.Unix(0, l.Deadline).Add(-c.cfg.Lease)
		case len(l.Tasks) > 0:
			stillHolds = true
		}
	}
	c.noteExecutor(req.Node)
	cmd := &fsmpb.RestoreReport{JobId: req.JobId, LeaseId: req.LeaseId, Attempts: req.Attempts}
	ok := 0
	for _, o := range req.Outcomes {
		if o.Ok {
			ok++
		}
	}
	// The outcomes of a lease, in one allocation.
	done := make([]fsmpb.TaskDone, ok)
	cmd.Done = make([]*fsmpb.TaskDone, 0, ok)
	for _, o := range req.Outcomes {
		if o.Ok {
			d := &done[len(cmd.Done)]
			d.Task, d.Bytes, d.Verified = o.Index, o.Bytes, fsmpb.CopyVerification(o.Verified)
			cmd.Done = append(cmd.Done, d)
		} else {
			cmd.Failed = append(cmd.Failed, &fsmpb.TaskFailed{Task: o.Index, Key: o.Key, Error: o.Error, Permanent: o.Permanent})
		}
	}
	if err := c.cluster.Propose(ctx, cmd, nil); err != nil {
		return err
	}
	c.mu.Lock()
	c.noteExecutorLocked(req.Node, time.Now()).observeReport(len(req.Outcomes), granted, c.cfg.Now(), stillHolds)
	c.mu.Unlock()
	return nil
}
