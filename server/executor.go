package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/restore"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
)

// Every node runs a restore executor: a pipeline that keeps RestoreConcurrency copies
// running for as long as a job has work. A leaser asks the leader for batches
// (LeaseRestoreTasks) whenever fewer than two batches' worth of tasks are queued;
// workers copy tasks one by one with restore.Executor (retries, verification); a
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
	deadline       time.Time
	// ctx ends at the deadline or when the job leaves COPYING (see watchBatches).
	ctx    context.Context
	cancel context.CancelFunc
	sem    chan struct{} // the job's own concurrency bound, if any
	tasks  []restore.Task
	exec   *restore.Executor // copies one task per Run

	running *runningBatches

	mu      sync.Mutex
	pending int
	report  *internalv1.ReportRestoreTasksRequest
}

type queuedTask struct {
	batch *leasedBatch
	task  restore.Task
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

// watchBatches cancels the batches of jobs that left COPYING, checking on every
// applied entry.
func (n *Node) watchBatches(running *runningBatches) {
	for {
		_, changed := n.fsm.AppliedCh()
		v := n.fsm.View()
		running.mu.Lock()
		for b := range running.batches {
			if b.ctx.Err() != nil {
				continue
			}
			if j, err := v.RestoreJob(b.jobID); err != nil || j.State != fsmpb.RestoreState_RESTORE_STATE_COPYING {
				n.logger.Info("restore job left copying; aborting its leased copies", "job", b.jobID, "lease", b.leaseID)
				b.cancel()
			}
		}
		running.mu.Unlock()
		select {
		case <-n.stop:
			return
		case <-changed:
		}
	}
}

func (n *Node) runExecutors() {
	running := &runningBatches{batches: map[*leasedBatch]bool{}}
	n.executing = running
	queue := make(chan queuedTask, n.cfg.RestoreBatch)
	reports := make(chan *internalv1.ReportRestoreTasksRequest, 16)
	var workers sync.WaitGroup
	for i := 0; i < n.cfg.RestoreConcurrency; i++ {
		workers.Add(1)
		go func() {
			defer workers.Done()
			n.runRestoreWorker(queue, reports)
		}()
	}
	n.wg.Add(3)
	go func() {
		defer n.wg.Done()
		n.watchBatches(running)
	}()
	go func() {
		defer n.wg.Done()
		n.runLeaser(queue)
		workers.Wait()
		close(reports)
	}()
	go func() {
		defer n.wg.Done()
		n.runReporter(reports)
	}()
}

// runLeaser keeps the queue stocked while this node's state has a copying job.
func (n *Node) runLeaser(queue chan<- queuedTask) {
	defer close(queue)
	ctx, cancel := n.stopping()
	defer cancel()
	sems := map[uint64]chan struct{}{}
	// Ask for more while a batch's worth is not yet queued: a lease and a report each
	// cost a Raft commit, and the workers must not wait for them.
	low := n.cfg.RestoreBatch
	wait := time.Duration(0)
	for {
		if wait > 0 || !n.restoreCopying() || len(queue) >= low {
			_, changed := n.fsm.AppliedCh()
			timer := time.NewTimer(max(wait, 50*time.Millisecond))
			select {
			case <-n.stop:
				timer.Stop()
				return
			case <-n.execKick:
			case <-timer.C:
			case <-changed:
				if wait > 0 { // a retry delay is a floor
					select {
					case <-timer.C:
					case <-n.stop:
						timer.Stop()
						return
					}
				}
			}
			timer.Stop()
			wait = 0
			continue
		}
		var batch *leasedBatch
		var retry time.Duration
		err := n.guarded("restore-executor", func() (err error) {
			batch, retry, err = n.leaseBatch(ctx, sems)
			return err
		})
		if err != nil {
			if ctx.Err() != nil {
				return
			}
			n.logger.Debug("restore lease", "err", err)
			wait = max(time.Second, n.duties.Backoff("restore-executor"))
			continue
		}
		if batch == nil {
			wait = retry
			continue
		}
		for _, t := range batch.tasks {
			select {
			case queue <- queuedTask{batch: batch, task: t}:
			case <-n.stop:
				return
			}
		}
	}
}

// leaseBatch asks the leader for tasks; nil with a delay when there are none for us.
func (n *Node) leaseBatch(ctx context.Context, sems map[uint64]chan struct{}) (*leasedBatch, time.Duration, error) {
	conn, _, err := n.leaderConn()
	if err != nil {
		return nil, 0, err
	}
	lease, err := internalv1.NewInternalClient(conn).LeaseRestoreTasks(ctx, &internalv1.LeaseRestoreTasksRequest{
		Node: n.cfg.NodeID, MaxTasks: uint32(n.cfg.RestoreBatch), Incarnation: n.incarnation})
	if err != nil {
		return nil, 0, err
	}
	if len(lease.Tasks) == 0 {
		return nil, time.Duration(max(lease.RetryAfterMs, 100)) * time.Millisecond, nil
	}
	b := &leasedBatch{
		jobID:    lease.JobId,
		leaseID:  lease.LeaseId,
		deadline: time.UnixMilli(lease.DeadlineUnixMs),
		pending:  len(lease.Tasks),
		report:   &internalv1.ReportRestoreTasksRequest{Node: n.cfg.NodeID, JobId: lease.JobId, LeaseId: lease.LeaseId},
	}
	if c := int(lease.MaxConcurrency); c > 0 && c < n.cfg.RestoreConcurrency {
		if sems[lease.JobId] == nil {
			sems[lease.JobId] = make(chan struct{}, c)
		}
		b.sem = sems[lease.JobId]
	}
	objects, err := n.objectStore()
	if err != nil {
		return nil, 0, err
	}
	b.exec = &restore.Executor{Store: objects, Concurrency: 1, Verify: lease.Verify, ReadBack: lease.ReadBack,
		MultipartThreshold: n.cfg.MultipartThreshold, PartSize: n.cfg.MultipartPartSize, Logger: n.logger.With("component", "restore", "job", lease.JobId)}
	for _, t := range lease.Tasks {
		b.tasks = append(b.tasks, restore.Task{Index: t.Index, Src: t.Src, Dst: t.Dst, Size: t.Size, CRC32C: t.Crc32C})
	}
	// Copy until the lease ends: past it the tasks belong to the pool again.
	b.ctx, b.cancel = context.WithDeadline(ctx, b.deadline)
	b.running = n.executing
	b.running.add(b)
	return b, 0, nil
}

// runRestoreWorker copies queued tasks one at a time.
func (n *Node) runRestoreWorker(queue <-chan queuedTask, reports chan<- *internalv1.ReportRestoreTasksRequest) {
	ctx, cancel := n.stopping()
	defer cancel()
	for q := range queue {
		b := q.batch
		var res restore.Result
		switch {
		case b.ctx.Err() != nil || ctx.Err() != nil:
			res = restore.Result{Index: q.task.Index, Err: errLeaseOver}
		default:
			res = n.copyTask(ctx, b, q.task)
		}
		n.metrics.restoreCopied(res)
		if r := b.add(q.task, res); r != nil {
			reports <- r
		}
	}
}

// copyTask copies one leased task until its batch ends: the lease's deadline, the
// job leaving COPYING, or the node stopping (past it the task belongs to the pool
// again). A panic in the copy is recovered as a failure of the task, which goes back
// to the pool like any other.
func (n *Node) copyTask(ctx context.Context, b *leasedBatch, t restore.Task) (res restore.Result) {
	if b.sem != nil {
		b.sem <- struct{}{}
		defer func() { <-b.sem }()
	}
	copyCtx, cancelCopy := context.WithCancel(b.ctx)
	defer cancelCopy()
	stopCopy := context.AfterFunc(ctx, cancelCopy) // the node stopping
	defer stopCopy()
	err := n.guarded("restore-executor", func() error {
		res = b.exec.Run(copyCtx, []restore.Task{t})[0]
		return nil
	})
	if err != nil {
		return restore.Result{Index: t.Index, Err: err}
	}
	if res.Err != nil && copyCtx.Err() != nil && !res.Permanent {
		res.Err = errLeaseOver
	}
	return res
}

// errLeaseOver marks a task not copied before its lease ended, its job left COPYING or
// the node stopped: it is left out of the report and returns to the pool (if the job
// still runs) when the report arrives or the lease ends.
var errLeaseOver = errors.New("lease over")

// add records a task's outcome and returns the batch's report once it is complete.
func (b *leasedBatch) add(t restore.Task, r restore.Result) *internalv1.ReportRestoreTasksRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.report.Attempts += uint64(r.Attempts)
	if !errors.Is(r.Err, errLeaseOver) {
		o := &internalv1.TaskOutcome{Index: r.Index, Ok: r.Err == nil, Bytes: r.Bytes, Verified: uint32(copyVerification(r.Verified))}
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

// runReporter sends complete batches' reports to the leader.
func (n *Node) runReporter(reports <-chan *internalv1.ReportRestoreTasksRequest) {
	ctx, cancel := n.stopping()
	defer cancel()
	for r := range reports {
		// Even a report with no outcome is sent: it ends the lease (its tasks return to
		// the pool, or a cancelled job's target becomes collectable) at once.
		if fp := n.cfg.Failpoints; fp != nil && fp.BeforeRestoreReport != nil {
			if err := fp.BeforeRestoreReport(ctx, r.JobId, r.LeaseId); err != nil {
				continue
			}
		}
		if err := n.guarded("restore-executor", func() error { return n.reportRestore(ctx, r) }); err != nil && ctx.Err() == nil {
			n.logger.Warn("restore report lost; its tasks will be leased again", "job", r.JobId, "lease", r.LeaseId, "err", err)
		}
		n.kickRestores()
	}
}

// restoreCopying reports whether this node's state has a copying job.
func (n *Node) restoreCopying() bool {
	for _, j := range n.fsm.View().RunningRestoreJobs() {
		if j.State == fsmpb.RestoreState_RESTORE_STATE_COPYING {
			return true
		}
	}
	return false
}

// reportRestore sends a report to the leader, retrying while there is none: the copies
// are done, and losing the report would only mean copying them again.
func (n *Node) reportRestore(ctx context.Context, report *internalv1.ReportRestoreTasksRequest) error {
	var err error
	for attempt := 0; attempt < 20; attempt++ {
		conn, _, lerr := n.leaderConn()
		if lerr == nil {
			if _, err = internalv1.NewInternalClient(conn).ReportRestoreTasks(ctx, report); err == nil {
				return nil
			}
		} else {
			err = lerr
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
func copyVerification(v restore.Verification) fsmpb.CopyVerification {
	switch v {
	case restore.VerifiedByCopyResponse:
		return fsmpb.CopyVerification_COPY_VERIFICATION_COPY_RESPONSE
	case restore.VerifiedByHead:
		return fsmpb.CopyVerification_COPY_VERIFICATION_HEAD
	case restore.VerifiedByReadBack:
		return fsmpb.CopyVerification_COPY_VERIFICATION_READ_BACK
	}
	return fsmpb.CopyVerification_COPY_VERIFICATION_NONE
}
