package restore

import (
	"context"
	"errors"
	"log/slog"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/internal/duty"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
)

// Every node runs a restore Runner: a pipeline that keeps RestoreConcurrency copies
// running for as long as a job has work. A leaser asks the leader for batches
// (LeaseRestoreTasks) whenever fewer than two batches' worth of tasks are queued;
// workers copy tasks one by one with an Executor (retries, verification); a
// reporter sends each lease's outcomes in one ReportRestoreTasks once its last task is
// done. No worker ever waits for a batch's slowest copy or for the leader.
//
// A batch's copies run under the batch's context, which ends at the lease's deadline
// and as soon as this node applies an entry that takes the job out of COPYING (cancel,
// failure): a watcher checks the running batches on every applied entry, so in-flight
// copies are aborted and queued ones skipped within a Raft apply of the cancel. The
// batch's report (possibly empty) then ends the lease, which until then keeps GC off
// the target.

type leasedBatch struct {
	jobID, leaseID uint64
	kind           fsmpb.JobKind
	deadline       time.Time
	// ctx ends at the deadline or when the job leaves COPYING (see watchBatches).
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{} // the job's own concurrency bound, if any
	tasks  []Task
	// exec copies one task at a time on the worker that took it: its settings are
	// resolved once per lease, and no goroutine or context is made per task.
	exec *config

	running *runningBatches

	mu       sync.Mutex
	pending  int
	report   *internalv1.ReportRestoreTasksRequest
	outcomes []internalv1.TaskOutcome // the report's outcomes, allocated once per lease
}

type queuedTask struct {
	batch *leasedBatch
	task  Task
}

// runningBatches are the leased batches not yet fully done, for the watcher.
type runningBatches struct {
	mu      sync.Mutex
	batches map[*leasedBatch]bool
}

func (r *runningBatches) add(b *leasedBatch) {
	r.mu.Lock()
	r.batches[b] = true
	r.mu.Unlock()
}

func (r *runningBatches) remove(b *leasedBatch) {
	r.mu.Lock()
	delete(r.batches, b)
	r.mu.Unlock()
}

// Cluster is what a Runner needs of its node.
type Cluster interface {
	View() *fsm.View
	Changed() <-chan struct{}
	Store() (objstore.Store, error)
	// LeaseTasks and ReportTasks reach the leader (errors are gRPC statuses).
	LeaseTasks(ctx context.Context, req *internalv1.LeaseRestoreTasksRequest) (*internalv1.LeaseRestoreTasksResponse, error)
	// JobStores are the stores a job of kind reads and writes (repository: its name).
	JobStores(kind fsmpb.JobKind, repository string) (JobStores, error)
	ReportTasks(ctx context.Context, req *internalv1.ReportRestoreTasksRequest) error
}

// RunnerConfig tunes a Runner.
type RunnerConfig struct {
	Node string
	// Incarnation is random per process start. It is in every lease request, so the
	// leader returns the leases of this node's earlier processes (killed or crashed:
	// their copies stopped with them) at its first request instead of at their
	// deadline.
	Incarnation        string
	Batch              int // the most tasks one lease asks for
	Concurrency        int // copies at once
	MultipartThreshold int64
	PartSize           int64
	// BeforeReport, when set, runs before a batch's report is sent; an error drops the
	// report (tests).
	BeforeReport func(ctx context.Context, jobID, leaseID uint64) error
	// Copied, when set, is told of every task's result (metrics); Reported after each
	// report (to wake the coordinator).
	Copied   func(fsmpb.JobKind, Result)
	Reported func()
	Logger   *slog.Logger
	Guard    *duty.Guard
}

// Runner is a node's restore executor. Its methods are safe for concurrent use.
type Runner struct {
	cluster Cluster
	cfg     RunnerConfig
	kick    duty.Kicker
	running *runningBatches
}

// NewRunner returns the restore executor of a node.
func NewRunner(cluster Cluster, cfg RunnerConfig) *Runner {
	return &Runner{cluster: cluster, cfg: cfg, kick: duty.NewKicker(), running: &runningBatches{batches: map[*leasedBatch]bool{}}}
}

// Kick makes the runner ask for work now (a job started copying).
func (r *Runner) Kick() { r.kick.Kick() }

// watchBatches cancels the batches of jobs that left COPYING; its loop runs on every
// applied entry.
func (r *Runner) watchBatches() {
	v := r.cluster.View()
	r.running.mu.Lock()
	defer r.running.mu.Unlock()
	for b := range r.running.batches {
		if b.ctx.Err() != nil {
			continue
		}
		if j, err := v.RestoreJob(b.jobID); err != nil || j.State != fsmpb.RestoreState_RESTORE_STATE_COPYING {
			r.cfg.Logger.Info("restore job left copying; aborting its leased copies", "job", b.jobID, "lease", b.leaseID)
			b.cancel()
		}
	}
}

// Loops are the runner's duties, until ctx ends: a watcher of the leased batches and a
// leaser feeding a queue. The workers and the reporter the queue feeds start here (in
// pool) and stop once the leaser's loop has ended.
func (r *Runner) Loops(ctx context.Context, pool *sync.WaitGroup) []duty.Loop {
	queue := make(chan queuedTask, r.cfg.Batch)
	reports := make(chan *internalv1.ReportRestoreTasksRequest, 16)
	var workers sync.WaitGroup
	for range r.cfg.Concurrency {
		workers.Add(1)
		go func() {
			defer workers.Done()
			r.work(ctx, queue, reports)
		}()
	}
	pool.Add(1)
	go func() {
		defer pool.Done()
		r.report(ctx, reports)
	}()
	sems := map[uint64]chan struct{}{}
	return []duty.Loop{
		{Name: "restore-watch", Every: time.Second, Changed: r.cluster.Changed, Pass: func(context.Context) { r.watchBatches() }},
		{Name: "restore-executor", Every: 50 * time.Millisecond, Kick: r.kick, Changed: r.cluster.Changed,
			Pass: func(pass context.Context) { r.lease(pass, ctx, queue, sems) },
			Finally: func() {
				close(queue)
				workers.Wait()
				close(reports)
			}},
	}
}

// lease keeps the queue stocked while this node's state has a copying job: it asks
// for more while a batch's worth is not yet queued, since a lease and a report each
// cost a Raft commit and the workers must not wait for them. After a refusal or an
// error it waits out the delay before its loop looks again.
//
// The batches' contexts derive from base, the runner's: they end when the node stops.
func (r *Runner) lease(ctx, base context.Context, queue chan<- queuedTask, sems map[uint64]chan struct{}) {
	for ctx.Err() == nil && r.copying() && len(queue) < r.cfg.Batch {
		var batch *leasedBatch
		var retry time.Duration
		var err error
		if perr := r.cfg.Guard.Run("restore-executor", func() { batch, retry, err = r.leaseBatch(ctx, base, sems) }); perr != nil {
			err = perr
		}
		if err != nil {
			if ctx.Err() == nil {
				r.cfg.Logger.Debug("restore lease", "err", err)
			}
			retry = max(time.Second, r.cfg.Guard.Backoff("restore-executor"))
		}
		if batch == nil {
			if r.pause(ctx, retry) {
				continue
			}
			return
		}
		for _, t := range batch.tasks {
			select {
			case queue <- queuedTask{batch: batch, task: t}:
			case <-ctx.Done():
				return
			}
		}
	}
}

// pause waits out a retry delay, a floor that state changes do not cut short; a kick
// (a job started, a report sent: there may be work now) does, and then it returns true.
func (r *Runner) pause(ctx context.Context, d time.Duration) (kicked bool) {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
	case <-ctx.Done():
	case <-r.kick:
		return true
	}
	return false
}

// leaseBatch asks the leader for tasks; nil with a delay when there are none for us.
func (r *Runner) leaseBatch(ctx, base context.Context, sems map[uint64]chan struct{}) (*leasedBatch, time.Duration, error) {
	asked := time.Now()
	lease, err := r.cluster.LeaseTasks(ctx, &internalv1.LeaseRestoreTasksRequest{
		Node: r.cfg.Node, MaxTasks: uint32(r.cfg.Batch), Incarnation: r.cfg.Incarnation})
	if err != nil {
		return nil, 0, err
	}
	if len(lease.Tasks) == 0 {
		return nil, time.Duration(max(lease.RetryAfterMs, 100)) * time.Millisecond, nil
	}
	var sem chan struct{}
	if c := int(lease.MaxConcurrency); c > 0 && c < r.cfg.Concurrency {
		if sems[lease.JobId] == nil {
			sems[lease.JobId] = make(chan struct{}, c)
		}
		sem = sems[lease.JobId]
	}
	stores, err := r.cluster.JobStores(fsmpb.JobKind(lease.Kind), lease.Repository)
	if err != nil {
		return nil, 0, err
	}
	return r.newBatch(base, lease, leaseDeadline(lease, asked), stores, sem), 0, nil
}

// leaseDeadline is when a lease granted in answer to a request sent at asked ends for
// this node: its length from asked, on this node's monotonic clock (the leader granted
// it after asked, and its clock may be off by anything); from an older leader that
// does not send the length, the deadline it stamped.
func leaseDeadline(lease *internalv1.LeaseRestoreTasksResponse, asked time.Time) time.Time {
	if lease.LeaseMs > 0 {
		return asked.Add(time.Duration(lease.LeaseMs) * time.Millisecond)
	}
	return time.UnixMilli(lease.DeadlineUnixMs)
}

// newBatch makes a granted lease's batch and adds it to the running ones. Its context
// derives from base (the runner's), so it ends when the node stops, at the lease's
// deadline, or when the watcher cancels it.
func (r *Runner) newBatch(base context.Context, lease *internalv1.LeaseRestoreTasksResponse, deadline time.Time, stores JobStores, sem chan struct{}) *leasedBatch {
	b := &leasedBatch{
		jobID:    lease.JobId,
		kind:     fsmpb.JobKind(lease.Kind),
		leaseID:  lease.LeaseId,
		deadline: deadline,
		pending:  len(lease.Tasks),
		sem:      sem,
		report: &internalv1.ReportRestoreTasksRequest{Node: r.cfg.Node, JobId: lease.JobId, LeaseId: lease.LeaseId,
			Outcomes: make([]*internalv1.TaskOutcome, 0, len(lease.Tasks))},
		outcomes: make([]internalv1.TaskOutcome, len(lease.Tasks)),
		tasks:    make([]Task, 0, len(lease.Tasks)),
	}
	exec := (&Executor{Store: stores.Dest, Source: stores.Source, Stream: stores.Stream, Limiter: stores.Limiter,
		Concurrency: 1, Verify: lease.Verify, ReadBack: lease.ReadBack,
		MultipartThreshold: r.cfg.MultipartThreshold, PartSize: r.cfg.PartSize, Logger: r.logger().With("component", "restore", "job", lease.JobId)}).config()
	b.exec = &exec
	for _, t := range lease.Tasks {
		b.tasks = append(b.tasks, Task{Index: t.Index, Src: t.Src, Dst: t.Dst, Size: t.Size, CRC32C: t.Crc32C})
	}
	// Copy until the lease ends: past it the tasks belong to the pool again.
	b.ctx, b.cancel = context.WithDeadline(base, b.deadline)
	b.running = r.running
	b.running.add(b)
	return b
}

func (r *Runner) logger() *slog.Logger {
	if r.cfg.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return r.cfg.Logger
}

// work copies queued tasks one at a time.
func (r *Runner) work(ctx context.Context, queue <-chan queuedTask, reports chan<- *internalv1.ReportRestoreTasksRequest) {
	for q := range queue {
		b := q.batch
		var res Result
		switch {
		case b.ctx.Err() != nil || ctx.Err() != nil:
			res = Result{Index: q.task.Index, Err: ErrLeaseOver}
		default:
			res = r.copyTask(b, q.task)
		}
		if r.cfg.Copied != nil {
			r.cfg.Copied(b.kind, res)
		}
		if rep := b.add(q.task, res); rep != nil {
			reports <- rep
		}
	}
}

// copyTask copies one leased task, on the worker that took it, until its batch ends:
// the lease's deadline, the job leaving COPYING, or the node stopping (the batch's
// context ends with each; past it the task belongs to the pool again). A panic in the
// copy is recovered as a failure of the task, which goes back to the pool like any
// other.
func (r *Runner) copyTask(b *leasedBatch, t Task) (res Result) {
	if b.sem != nil {
		b.sem <- struct{}{}
		defer func() { <-b.sem }()
	}
	if err := r.cfg.Guard.Run("restore-executor", func() { res = b.exec.runTaskSafely(b.ctx, t) }); err != nil {
		return Result{Index: t.Index, Err: err}
	}
	if res.Err != nil && b.ctx.Err() != nil && !res.Permanent {
		res.Err = ErrLeaseOver
	}
	return res
}

// ErrLeaseOver marks a task not copied before its lease ended, its job left COPYING or
// the node stopped: it is left out of the report and returns to the pool (if the job
// still runs) when the report arrives or the lease ends.
var ErrLeaseOver = errors.New("lease over")

// add records a task's outcome and returns the batch's report once it is complete.
func (b *leasedBatch) add(t Task, r Result) *internalv1.ReportRestoreTasksRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.report.Attempts += uint64(r.Attempts)
	if !errors.Is(r.Err, ErrLeaseOver) {
		o := &b.outcomes[len(b.report.Outcomes)]
		o.Index, o.Ok, o.Bytes, o.Verified = r.Index, r.Err == nil, r.Bytes, uint32(copyVerification(r.Verified))
		if r.Err != nil {
			o.Key, o.Error, o.Permanent = t.Src, r.Err.Error(), r.Permanent
		}
		b.report.Outcomes = append(b.report.Outcomes, o)
	}
	b.pending--
	if b.pending > 0 {
		return nil
	}
	b.cancel()
	b.running.remove(b)
	return b.report
}

// report sends complete batches' reports to the leader.
func (r *Runner) report(ctx context.Context, reports <-chan *internalv1.ReportRestoreTasksRequest) {
	for rep := range reports {
		// Even a report with no outcome is sent: it ends the lease (its tasks return to
		// the pool, or a cancelled job's target becomes collectable) at once.
		if h := r.cfg.BeforeReport; h != nil {
			if err := h(ctx, rep.JobId, rep.LeaseId); err != nil {
				continue
			}
		}
		var err error
		if perr := r.cfg.Guard.Run("restore-executor", func() { err = r.send(ctx, rep) }); perr != nil {
			err = perr
		}
		if err != nil && ctx.Err() == nil {
			r.cfg.Logger.Warn("restore report lost; its tasks will be leased again", "job", rep.JobId, "lease", rep.LeaseId, "err", err)
		}
		r.Kick()
		if r.cfg.Reported != nil {
			r.cfg.Reported()
		}
	}
}

// copying reports whether this node's state has a copying job.
func (r *Runner) copying() bool {
	for _, j := range r.cluster.View().RunningRestoreJobs() {
		if j.State == fsmpb.RestoreState_RESTORE_STATE_COPYING {
			return true
		}
	}
	return false
}

// send sends a report to the leader, retrying while there is none: the copies
// are done, and losing the report would only mean copying them again.
func (r *Runner) send(ctx context.Context, report *internalv1.ReportRestoreTasksRequest) error {
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		if err = r.cluster.ReportTasks(ctx, report); err == nil {
			return nil
		}
		if code := status.Code(err); code != codes.Unavailable && code != codes.FailedPrecondition {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(time.Duration(100*(attempt+1)) * time.Millisecond):
		}
	}
	return err
}

// copyVerification is the catalog's name for what verified a copy.
func copyVerification(v Verification) fsmpb.CopyVerification {
	switch v {
	case VerifiedByCopyResponse:
		return fsmpb.CopyVerification_COPY_VERIFICATION_COPY_RESPONSE
	case VerifiedByHead:
		return fsmpb.CopyVerification_COPY_VERIFICATION_HEAD
	case VerifiedByReadBack:
		return fsmpb.CopyVerification_COPY_VERIFICATION_READ_BACK
	case VerifiedByStream:
		return fsmpb.CopyVerification_COPY_VERIFICATION_STREAM
	}
	return fsmpb.CopyVerification_COPY_VERIFICATION_NONE
}
