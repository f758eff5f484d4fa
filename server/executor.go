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

type leasedBatch struct {
	jobID, leaseID uint64
	deadline       time.Time
	sem            chan struct{} // the job's own concurrency bound, if any
	tasks          []restore.Task
	exec           *restore.Executor // copies one task per Run

	mu      sync.Mutex
	pending int
	report  *internalv1.ReportRestoreTasksRequest
}

type queuedTask struct {
	batch *leasedBatch
	task  restore.Task
}

func (n *Node) runExecutors() {
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
	n.wg.Add(2)
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
		Node: n.cfg.NodeID, MaxTasks: uint32(n.cfg.RestoreBatch)})
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
	b.exec = &restore.Executor{Store: objects, Concurrency: 1, Verify: lease.Verify,
		MultipartThreshold: n.cfg.MultipartThreshold, PartSize: n.cfg.MultipartPartSize, Logger: n.logger.With("component", "restore", "job", lease.JobId)}
	for _, t := range lease.Tasks {
		b.tasks = append(b.tasks, restore.Task{Index: t.Index, Src: t.Src, Dst: t.Dst, Size: t.Size, CRC32C: t.Crc32C})
	}
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
		case !time.Now().Before(b.deadline):
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

// copyTask copies one leased task until the lease ends (past it the task belongs to
// the pool again). A panic in the copy is recovered as a failure of the task, which
// goes back to the pool like any other.
func (n *Node) copyTask(ctx context.Context, b *leasedBatch, t restore.Task) (res restore.Result) {
	if b.sem != nil {
		b.sem <- struct{}{}
		defer func() { <-b.sem }()
	}
	copyCtx, cancelCopy := context.WithDeadline(ctx, b.deadline)
	defer cancelCopy()
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

// errLeaseOver marks a task not copied before its lease ended (or the node stopped):
// it is left out of the report and returns to the pool with its lease.
var errLeaseOver = errors.New("lease over")

// add records a task's outcome and returns the batch's report once it is complete.
func (b *leasedBatch) add(t restore.Task, r restore.Result) *internalv1.ReportRestoreTasksRequest {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.report.Attempts += uint64(r.Attempts)
	if !errors.Is(r.Err, errLeaseOver) {
		o := &internalv1.TaskOutcome{Index: r.Index, Ok: r.Err == nil, Bytes: r.Bytes}
		if r.Err != nil {
			o.Key, o.Error, o.Permanent = t.Src, r.Err.Error(), r.Permanent
		}
		b.report.Outcomes = append(b.report.Outcomes, o)
	}
	b.pending--
	if b.pending > 0 {
		return nil
	}
	return b.report
}

// runReporter sends complete batches' reports to the leader.
func (n *Node) runReporter(reports <-chan *internalv1.ReportRestoreTasksRequest) {
	ctx, cancel := n.stopping()
	defer cancel()
	for r := range reports {
		if len(r.Outcomes) == 0 {
			continue
		}
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
