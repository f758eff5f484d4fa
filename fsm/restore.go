package fsm

import (
	"maps"
	"slices"
	"strings"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Restores: RestoreBegin plans the job (target collection, segments, builds, one task
// per file) and pins the snapshot; RestoreStart opens it for copying once the leader
// has checked the sources; RestoreGrant leases pooled tasks to a node; RestoreReport
// records outcomes (and completes the job with its last task); ExpireRestoreLeases
// returns the tasks of lapsed leases to the pool; RestoreFail and RestoreCancel roll
// the job back (the target is dropped, its copies become garbage); RestoreRemove
// forgets a finished job.

// Restore limits.
const (
	DefaultRestoreAttempts = 10
	MaxRestoreAttempts     = 100
	MaxRestoreConcurrency  = 1024
	MaxGrantTasks          = 10000
	maxFailingKeys         = 100
)

// ValidateRestoreBegin checks what can be checked without the state.
func ValidateRestoreBegin(cmd *fsmpb.RestoreBegin) error {
	for _, n := range []struct{ what, name string }{{"database", cmd.Database}, {"database", cmd.TargetDatabase}} {
		if n.name != "" {
			if err := ValidateName(n.what, n.name); err != nil {
				return err
			}
		}
	}
	if cmd.Repository != "" || cmd.FromRepository != nil {
		if err := validateRepositoryRestore(cmd); err != nil {
			return err
		}
	} else {
		if err := ValidateName("collection", cmd.Collection); err != nil {
			return err
		}
		if err := ValidateSnapshotName(cmd.Snapshot); err != nil {
			return err
		}
	}
	if err := ValidateName("target collection", cmd.TargetCollection); err != nil {
		return err
	}
	if cmd.ReadBack && !cmd.Verify {
		return invalidf("read-back verification needs verification on: drop --no-verify or the read-back")
	}
	seen := map[string]bool{}
	for _, p := range cmd.Partitions {
		if err := ValidateName("partition", p); err != nil {
			return err
		}
		if seen[p] {
			return invalidf("partition %q is named twice", p)
		}
		seen[p] = true
	}
	if cmd.MaxAttempts > MaxRestoreAttempts {
		return invalidf("max attempts %d is over the limit of %d", cmd.MaxAttempts, MaxRestoreAttempts)
	}
	if cmd.MaxConcurrency > MaxRestoreConcurrency {
		return invalidf("max concurrency %d is over the limit of %d", cmd.MaxConcurrency, MaxRestoreConcurrency)
	}
	for _, m := range []struct {
		kind string
		ids  []*fsmpb.IdMapping
	}{{"partition", cmd.TargetPartitions}, {"index", cmd.TargetIndexes}, {"segment", cmd.TargetSegments}, {"index build", cmd.TargetBuilds}} {
		if _, err := idMap(m.kind, m.ids); err != nil {
			return err
		}
	}
	return nil
}

// idMap checks a command's source → target ids of one kind (ids above 0, each source
// and each target named once) and returns them as a map.
func idMap(kind string, ids []*fsmpb.IdMapping) (map[uint64]uint64, error) {
	if len(ids) > MaxSegmentsPerCommand*2 {
		return nil, exhaustedf("%d %s ids given; at most %d", len(ids), kind, MaxSegmentsPerCommand*2)
	}
	out := make(map[uint64]uint64, len(ids))
	targets := make(map[uint64]bool, len(ids))
	for _, m := range ids {
		switch {
		case m == nil || m.Source == 0 || m.Target == 0:
			return nil, invalidf("a %s id mapping needs a source and a target id above 0", kind)
		case out[m.Source] != 0:
			return nil, invalidf("source %s %d is mapped twice", kind, m.Source)
		case targets[m.Target]:
			return nil, invalidf("target %s id %d is given twice", kind, m.Target)
		}
		out[m.Source], targets[m.Target] = m.Target, true
	}
	return out, nil
}

// unmapped refuses caller ids for source objects the restore does not have.
func unmapped(kind string, ids map[uint64]uint64, used map[uint64]bool) error {
	for src := range ids {
		if !used[src] {
			return invalidf("target %s ids name source %s %d, which the restore does not copy", kind, kind, src)
		}
	}
	return nil
}

// sortedMapping is m as IdMappings by source id.
func sortedMapping(m map[uint64]uint64) []*fsmpb.IdMapping {
	out := make([]*fsmpb.IdMapping, 0, len(m))
	for _, src := range slices.Sorted(maps.Keys(m)) {
		out = append(out, &fsmpb.IdMapping{Source: src, Target: m[src]})
	}
	return out
}

func applyRestoreBegin(c *applyCtx, cmd *fsmpb.RestoreBegin) (proto.Message, error) {
	if err := ValidateRestoreBegin(cmd); err != nil {
		return nil, err
	}
	if cmd.Repository != "" || cmd.FromRepository != nil {
		return applyRepositoryRestoreBegin(c, cmd)
	}
	snap, err := c.snapshotByName(cmd.Database, cmd.Collection, cmd.Snapshot)
	if err != nil {
		return nil, err
	}
	if snap.State != fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED {
		return nil, preconditionf("snapshot %q of collection %q is %s; only a committed snapshot can be restored", snap.Name, snap.CollectionName, snapshotStateName(snap.State))
	}
	src := restoreSource{name: snap.Name, schema: snap.Schema, properties: snap.Properties, description: snap.CollectionDescription,
		layout: snap.Layout, partitions: snap.Partitions, indexes: snap.Indexes}
	same := func(job *fsmpb.RestoreJob) bool {
		return job.SnapshotId == snap.Id && samePartitions(job.Partitions, cmd.Partitions) && job.Verify == cmd.Verify && job.ReadBack == cmd.ReadBack
	}
	tgt, existing, err := c.createRestoreTarget(cmd, src, same)
	if existing != nil || err != nil {
		return existing, err
	}
	target, partitionMap, indexMap, restored, jobID := tgt.collection, tgt.partitions, tgt.indexes, tgt.restored, tgt.jobID
	wantSegments, _ := idMap("segment", cmd.TargetSegments)
	wantBuilds, _ := idMap("index build", cmd.TargetBuilds)

	job := &fsmpb.RestoreJob{
		Id:                 jobID,
		SnapshotId:         snap.Id,
		SnapshotName:       snap.Name,
		SourceCollectionId: snap.CollectionId,
		SourceCollection:   snap.CollectionName,
		SourceDatabase:     snap.DatabaseName,
		TargetDatabaseId:   tgt.database.Id,
		TargetDatabase:     tgt.database.Name,
		TargetCollection:   target.Name,
		TargetCollectionId: target.Id,
		Partitions:         cmd.Partitions,
		State:              fsmpb.RestoreState_RESTORE_STATE_PENDING,
		Verify:             cmd.Verify,
		ReadBack:           cmd.ReadBack,
		MaxConcurrency:     cmd.MaxConcurrency,
		MaxAttempts:        cmd.MaxAttempts,
		CreatedAt:          c.now,
		PartitionMap:       sortedMapping(partitionMap),
		IndexMap:           sortedMapping(indexMap),
	}
	if job.MaxAttempts == 0 {
		job.MaxAttempts = DefaultRestoreAttempts
	}
	plan := &fsmpb.RestorePlan{JobId: jobID}
	var tasks uint64
	addFiles := func(blob []byte) (uint32, error) {
		files, bytes, err := filelist.Totals(blob)
		if err != nil {
			return 0, err
		}
		job.BytesTotal += bytes
		tasks += uint64(files)
		return uint32(files), nil
	}
	usedSegments, usedBuilds := map[uint64]bool{}, map[uint64]bool{}
	for _, id := range snap.SegmentIds {
		src, err := c.segment(id)
		if err != nil {
			return nil, err
		}
		if !restored(src.PartitionId) {
			continue
		}
		usedSegments[src.Id] = true
		dstID, err := c.takeID(idSegment, wantSegments[src.Id])
		if err != nil {
			return nil, err
		}
		dst := &fsmpb.Segment{
			Id:           dstID,
			CollectionId: target.Id,
			PartitionId:  partitionMap[src.PartitionId],
			State:        fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED,
			RowCount:     src.RowCount,
			AllocatedAt:  c.now,
			RestoreJobId: jobID,
			RestoredFrom: src.Id,
			PackedMeta:   src.PackedMeta,
		}
		ps := &fsmpb.PlannedSegment{SourceId: src.Id, TargetId: dst.Id, FirstTask: uint32(tasks)}
		if ps.Files, err = addFiles(src.Files); err != nil {
			return nil, err
		}
		for _, b := range src.IndexBuilds {
			if _, pinned := slices.BinarySearch(snap.BuildIds, b.BuildId); !pinned {
				continue
			}
			usedBuilds[b.BuildId] = true
			buildID, err := c.takeID(idBuild, wantBuilds[b.BuildId])
			if err != nil {
				return nil, err
			}
			nb := &fsmpb.IndexBuild{BuildId: buildID, IndexId: indexMap[b.IndexId], State: fsmpb.BuildState_BUILD_STATE_ALLOCATED, CreatedAt: c.now}
			pb := &fsmpb.PlannedBuild{SourceBuildId: b.BuildId, TargetBuildId: nb.BuildId, FirstTask: uint32(tasks)}
			if pb.Files, err = addFiles(b.Files); err != nil {
				return nil, err
			}
			dst.IndexBuilds = append(dst.IndexBuilds, nb)
			ps.Builds = append(ps.Builds, pb)
		}
		if tasks > 1<<32-1 {
			return nil, exhaustedf("snapshot %q has more than %d files; a restore copies at most that many", snap.Name, uint32(1<<32-1))
		}
		c.t.segments.put(dst)
		plan.Segments = append(plan.Segments, ps)
	}
	if err := unmapped("segment", wantSegments, usedSegments); err != nil {
		return nil, err
	}
	if err := unmapped("index build", wantBuilds, usedBuilds); err != nil {
		return nil, err
	}
	job.FilesTotal = tasks
	c.t.collections.put(target)
	c.t.restoreJobs.put(job)
	c.t.restorePlans.put(plan)
	if tasks > 0 {
		c.t.restorePool.ReplaceOrInsert(taskRange{job: jobID, start: 0, end: uint32(tasks)})
	}
	return &fsmpb.RestoreJobResponse{Job: job}, nil
}

func samePartitions(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

func partitionList(ps []*fsmpb.Partition) string {
	names := make([]string, len(ps))
	for i, p := range ps {
		names[i] = `"` + p.Name + `"`
	}
	return strings.Join(names, ", ")
}

// restoreJobOfTarget is the newest job restoring into a collection, if any.
func (r reader) restoreJobOfTarget(collectionID uint64) *fsmpb.RestoreJob {
	var found *fsmpb.RestoreJob
	r.t.restoreJobs.secondary[restoreJobsByTarget].tree.AscendGreaterOrEqual(&fsmpb.RestoreJob{TargetCollectionId: collectionID},
		func(j *fsmpb.RestoreJob) bool {
			if j.TargetCollectionId != collectionID {
				return false
			}
			found = j
			return true
		})
	return found
}

func (r reader) restoreJob(id uint64) (*fsmpb.RestoreJob, error) {
	j, ok := r.t.restoreJobs.get(&fsmpb.RestoreJob{Id: id})
	if !ok {
		return nil, notFoundf("restore job %d not found", id)
	}
	return j, nil
}

// runningJob returns a job that must be pending or copying.
func (c *applyCtx) runningJob(id uint64) (*fsmpb.RestoreJob, error) {
	j, err := c.restoreJob(id)
	if err != nil {
		return nil, err
	}
	if !isRunningRestore(j) {
		return nil, preconditionf("restore job %d is already %s", id, restoreStateName(j.State))
	}
	return j, nil
}

func applyRestoreStart(c *applyCtx, cmd *fsmpb.RestoreStart) (proto.Message, error) {
	j, err := c.runningJob(cmd.JobId)
	if err != nil {
		return nil, err
	}
	if j.State != fsmpb.RestoreState_RESTORE_STATE_PENDING {
		return nil, preconditionf("restore job %d is already %s", j.Id, restoreStateName(j.State))
	}
	next := proto.CloneOf(j)
	if j.Kind == fsmpb.JobKind_JOB_KIND_EXPORT {
		repo, err := c.writableRepository(j.Repository)
		if err != nil {
			return nil, err
		}
		if repo.GcDeadline > c.now {
			return nil, preconditionf("a garbage collection of repository %q is running; export job %d starts after it", repo.Name, j.Id)
		}
		if cmd.RepositoryGcEpoch != repo.GcEpoch {
			return nil, preconditionf("repository %q was garbage-collected since export job %d listed it; list it again", repo.Name, j.Id)
		}
		if err := c.skipTasks(next, cmd.Skip, cmd.SkippedBytes); err != nil {
			return nil, err
		}
	} else if len(cmd.Skip) > 0 {
		return nil, invalidf("only an export skips tasks")
	}
	if cmd.SourcesUnchecked && j.Kind == fsmpb.JobKind_JOB_KIND_EXPORT {
		// An export's skips come from the repository's listing: it cannot open before it.
		return nil, invalidf("an export opens for copying only after its listings")
	}
	next.State = fsmpb.RestoreState_RESTORE_STATE_COPYING
	next.StartedAt = c.now
	next.SourcesUnchecked = cmd.SourcesUnchecked
	if next.FilesDone == next.FilesTotal {
		if err := c.copyingDone(next); err != nil {
			return nil, err
		}
	}
	c.t.restoreJobs.put(next)
	return &fsmpb.RestoreJobResponse{Job: next}, nil
}

func applyRestoreSourcesChecked(c *applyCtx, cmd *fsmpb.RestoreSourcesChecked) (proto.Message, error) {
	j, err := c.runningJob(cmd.JobId)
	if err != nil {
		return nil, err
	}
	if j.State != fsmpb.RestoreState_RESTORE_STATE_COPYING || !j.SourcesUnchecked {
		return nil, preconditionf("restore job %d is %s and not waiting for its sources to be checked", j.Id, restoreStateName(j.State))
	}
	next := proto.CloneOf(j)
	next.SourcesUnchecked = false
	if next.FilesDone == next.FilesTotal {
		if err := c.copyingDone(next); err != nil {
			return nil, err
		}
	}
	c.t.restoreJobs.put(next)
	return &fsmpb.RestoreJobResponse{Job: next}, nil
}

func applyRestoreGrant(c *applyCtx, cmd *fsmpb.RestoreGrant) (proto.Message, error) {
	if cmd.Node == "" || len(cmd.Node) > MaxNodeIDBytes {
		return nil, invalidf("a grant names the node (1–%d bytes)", MaxNodeIDBytes)
	}
	if cmd.MaxTasks == 0 || cmd.MaxTasks > MaxGrantTasks {
		return nil, invalidf("a grant takes 1–%d tasks, not %d", MaxGrantTasks, cmd.MaxTasks)
	}
	if len(cmd.Incarnation) > MaxNodeIDBytes {
		return nil, invalidf("an incarnation is at most %d bytes", MaxNodeIDBytes)
	}
	if err := ValidateLease(cmd.Lease); err != nil {
		return nil, err
	}
	j, err := c.runningJob(cmd.JobId)
	if err != nil {
		return nil, err
	}
	if j.State != fsmpb.RestoreState_RESTORE_STATE_COPYING {
		return nil, preconditionf("restore job %d is %s; tasks are granted while copying", j.Id, restoreStateName(j.State))
	}
	tasks := c.takeFromPool(j.Id, int(cmd.MaxTasks))
	if len(tasks) == 0 {
		return &fsmpb.RestoreGrantResponse{}, nil
	}
	lease := &fsmpb.RestoreLease{Id: c.nextID(), JobId: j.Id, Node: cmd.Node, Deadline: c.now + cmd.Lease, Tasks: tasks, Attempts: make([]byte, len(tasks)), Incarnation: cmd.Incarnation}
	for i, t := range tasks {
		if a, ok := c.t.restoreAttempts.Delete(taskAttempts{job: j.Id, task: t}); ok {
			lease.Attempts[i] = a.attempts
		}
		c.t.leasedTasks.ReplaceOrInsert(leasedTask{job: j.Id, task: t, lease: lease.Id})
	}
	if bugLeaseTwice {
		c.returnOtherLeases(j.Id)
	}
	c.t.restoreLeases.put(lease)
	next := proto.CloneOf(j)
	next.Leases++
	c.t.restoreJobs.put(next)
	return &fsmpb.RestoreGrantResponse{Lease: lease}, nil
}

// returnOtherLeases is the lease-twice bug (bug_jepsenbug.go): a grant takes the job's
// other leases back into the pool, deadline or not, so their tasks are granted again
// while their holders still copy them.
func (c *applyCtx) returnOtherLeases(job uint64) {
	for _, l := range c.jobLeases(job) {
		c.returnLeaseTasks(l)
		c.t.restoreLeases.remove(l)
	}
}

// returnLeaseTasks puts a lease's tasks back in its job's pool.
func (c *applyCtx) returnLeaseTasks(l *fsmpb.RestoreLease) {
	for i, t := range l.Tasks {
		c.t.leasedTasks.Delete(leasedTask{job: l.JobId, task: t})
		c.returnToPool(l.JobId, t, l.Attempts[i])
	}
}

// jobLeases are a job's leases.
func (c *applyCtx) jobLeases(job uint64) []*fsmpb.RestoreLease {
	var ls []*fsmpb.RestoreLease
	c.t.restoreLeases.each(func(l *fsmpb.RestoreLease) bool {
		if l.JobId == job {
			ls = append(ls, l)
		}
		return true
	})
	return ls
}

// takeFromPool removes up to n of a job's pooled tasks, lowest first.
func (c *applyCtx) takeFromPool(job uint64, n int) []uint32 {
	var ranges []taskRange
	have := 0
	c.t.restorePool.AscendGreaterOrEqual(taskRange{job: job}, func(r taskRange) bool {
		if r.job != job {
			return false
		}
		ranges = append(ranges, r)
		have += int(r.end - r.start)
		return have < n
	})
	var out []uint32
	for _, r := range ranges {
		c.t.restorePool.Delete(r)
		take := min(uint32(n-len(out)), r.end-r.start)
		for t := r.start; t < r.start+take; t++ {
			out = append(out, t)
		}
		if r.start+take < r.end {
			c.t.restorePool.ReplaceOrInsert(taskRange{job: job, start: r.start + take, end: r.end})
		}
		if len(out) == n {
			break
		}
	}
	return out
}

// returnToPool puts a task back in its job's pool, merging with neighbouring ranges.
func (c *applyCtx) returnToPool(job uint64, task uint32, attempts uint8) {
	r := taskRange{job: job, start: task, end: task + 1}
	if prev, ok := c.poolRangeBefore(job, task); ok && prev.end == task {
		c.t.restorePool.Delete(prev)
		r.start = prev.start
	}
	if next, ok := c.t.restorePool.Get(taskRange{job: job, start: task + 1}); ok {
		c.t.restorePool.Delete(next)
		r.end = next.end
	}
	c.t.restorePool.ReplaceOrInsert(r)
	if attempts > 0 {
		c.t.restoreAttempts.ReplaceOrInsert(taskAttempts{job: job, task: task, attempts: attempts})
	}
}

// poolRangeBefore is the job's range with the greatest start <= task.
func (r reader) poolRangeBefore(job uint64, task uint32) (taskRange, bool) {
	var found taskRange
	ok := false
	r.t.restorePool.DescendLessOrEqual(taskRange{job: job, start: task}, func(tr taskRange) bool {
		if tr.job == job {
			found, ok = tr, true
		}
		return false
	})
	return found, ok
}

// removeFromPool takes one task out of the pool, if it is there.
func (c *applyCtx) removeFromPool(job uint64, task uint32) (attempts uint8, ok bool) {
	r, found := c.poolRangeBefore(job, task)
	if !found || task >= r.end {
		return 0, false
	}
	c.t.restorePool.Delete(r)
	if r.start < task {
		c.t.restorePool.ReplaceOrInsert(taskRange{job: job, start: r.start, end: task})
	}
	if task+1 < r.end {
		c.t.restorePool.ReplaceOrInsert(taskRange{job: job, start: task + 1, end: r.end})
	}
	if a, had := c.t.restoreAttempts.Delete(taskAttempts{job: job, task: task}); had {
		attempts = a.attempts
	}
	return attempts, true
}

func applyRestoreReport(c *applyCtx, cmd *fsmpb.RestoreReport) (proto.Message, error) {
	j, err := c.restoreJob(cmd.JobId)
	if err != nil {
		return nil, err
	}
	if !isRunningRestore(j) {
		// A late report for a finished job: its lease, kept since the job ended so GC
		// spares the target while copies may still land, is over.
		if l, ok := c.t.restoreLeases.get(&fsmpb.RestoreLease{Id: cmd.LeaseId}); ok && l.JobId == j.Id {
			c.t.restoreLeases.remove(l)
		}
		return &fsmpb.RestoreJobResponse{Job: j}, nil
	}
	next := proto.CloneOf(j)
	next.Attempts += cmd.Attempts
	leases := map[uint64]*reportedLease{} // modified copies
	// take removes a task from wherever it waits (its lease or the pool) and returns its
	// failed attempts; ok is false when it is done already.
	take := func(task uint32) (attempts uint8, ok bool) {
		if lt, held := c.t.leasedTasks.Get(leasedTask{job: j.Id, task: task}); held {
			l := leases[lt.lease]
			if l == nil {
				orig, _ := c.t.restoreLeases.get(&fsmpb.RestoreLease{Id: lt.lease})
				l = newReportedLease(orig)
				leases[lt.lease] = l
			}
			attempts = l.take(task)
			c.t.leasedTasks.Delete(lt)
			return attempts, true
		}
		return c.removeFromPool(j.Id, task)
	}
	for _, d := range cmd.Done {
		if d.Task >= uint32(j.FilesTotal) {
			return nil, invalidf("restore job %d has no task %d", j.Id, d.Task)
		}
		if _, ok := take(d.Task); ok {
			next.FilesDone++
			next.BytesDone += d.Bytes
			switch d.Verified {
			case fsmpb.CopyVerification_COPY_VERIFICATION_COPY_RESPONSE:
				next.VerifiedByCopyResponse++
			case fsmpb.CopyVerification_COPY_VERIFICATION_HEAD:
				next.VerifiedByHead++
			case fsmpb.CopyVerification_COPY_VERIFICATION_READ_BACK:
				next.VerifiedByReadBack++
			case fsmpb.CopyVerification_COPY_VERIFICATION_STREAM:
				next.VerifiedByStream++
			default:
				next.NotVerified++
			}
		}
	}
	var fatal *fsmpb.TaskFailed
	for _, f := range cmd.Failed {
		if f.Task >= uint32(j.FilesTotal) {
			return nil, invalidf("restore job %d has no task %d", j.Id, f.Task)
		}
		attempts, ok := take(f.Task)
		if !ok {
			continue
		}
		next.FailedAttempts++
		if attempts < 255 {
			attempts++
		}
		if f.Permanent || uint32(attempts) >= j.MaxAttempts {
			if fatal == nil {
				fatal = f
			}
			continue
		}
		c.returnToPool(j.Id, f.Task, attempts)
	}
	// A report is the whole outcome of its lease (the executor sends it once every task
	// is done, copied or given up for the lease's end or the job's): the tasks it leaves
	// out were not copied and return to the pool now rather than at the deadline.
	if orig, ok := c.t.restoreLeases.get(&fsmpb.RestoreLease{Id: cmd.LeaseId}); ok && orig.JobId == j.Id && leases[orig.Id] == nil {
		leases[orig.Id] = newReportedLease(orig)
	}
	if rl := leases[cmd.LeaseId]; rl != nil {
		l := rl.compact()
		for i, t := range l.Tasks {
			c.t.leasedTasks.Delete(leasedTask{job: j.Id, task: t})
			c.returnToPool(j.Id, t, l.Attempts[i])
		}
		l.Tasks, l.Attempts = nil, nil
	}
	// In lease id order: the map's order is random, the tables' changes must not be.
	for _, id := range slices.Sorted(maps.Keys(leases)) {
		l := leases[id].compact()
		if len(l.Tasks) == 0 {
			c.t.restoreLeases.remove(l)
		} else {
			c.t.restoreLeases.put(l)
		}
	}
	switch {
	case fatal != nil:
		why := fatal.Error
		if !fatal.Permanent {
			why = "out of attempts (" + formatUint(uint64(j.MaxAttempts)) + "): " + why
		}
		keys := []string{}
		for _, f := range cmd.Failed {
			if (f.Permanent || f == fatal) && len(keys) < maxFailingKeys && f.Key != "" {
				keys = append(keys, f.Key)
			}
		}
		c.abortRestore(next, fsmpb.RestoreState_RESTORE_STATE_FAILED, "copying "+fatal.Key+" failed: "+why, keys)
	case next.FilesDone == next.FilesTotal && next.State == fsmpb.RestoreState_RESTORE_STATE_COPYING:
		if err := c.copyingDone(next); err != nil {
			return nil, err
		}
	}
	c.t.restoreJobs.put(next)
	return &fsmpb.RestoreJobResponse{Job: next}, nil
}

// reportedLease is a lease a report takes tasks out of: a copy, whose taken tasks are
// marked and removed all at once (a report of a whole lease would otherwise search and
// shift its task list once per task).
type reportedLease struct {
	l     *fsmpb.RestoreLease
	index map[uint32]int // task → its position in l.Tasks, made at the first take
	taken []bool
	n     int // tasks taken
}

func newReportedLease(orig *fsmpb.RestoreLease) *reportedLease {
	return &reportedLease{l: proto.CloneOf(orig)}
}

// take marks a task of the lease taken and returns its failed attempts.
func (r *reportedLease) take(task uint32) uint8 {
	if r.index == nil {
		r.index = make(map[uint32]int, len(r.l.Tasks))
		for i, t := range r.l.Tasks {
			r.index[t] = i
		}
		r.taken = make([]bool, len(r.l.Tasks))
	}
	i, ok := r.index[task]
	if !ok || r.taken[i] {
		return 0
	}
	r.taken[i] = true
	r.n++
	return r.l.Attempts[i]
}

// compact removes the taken tasks from the lease, keeping the others' order, and
// returns it.
func (r *reportedLease) compact() *fsmpb.RestoreLease {
	if r.n == 0 {
		return r.l
	}
	tasks, attempts := r.l.Tasks[:0], r.l.Attempts[:0]
	for i, t := range r.l.Tasks {
		if !r.taken[i] {
			tasks, attempts = append(tasks, t), append(attempts, r.l.Attempts[i])
		}
	}
	r.l.Tasks, r.l.Attempts = tasks, attempts
	r.index, r.taken, r.n = nil, nil, 0
	return r.l
}

// copyingDone ends a job's copying: an export waits for the leader to write its
// manifest and index generation (FINALIZING), a restore completes — once its sources
// are checked (until then it stays COPYING with every task done).
func (c *applyCtx) copyingDone(job *fsmpb.RestoreJob) error {
	if job.SourcesUnchecked {
		return nil
	}
	if job.Kind == fsmpb.JobKind_JOB_KIND_EXPORT {
		job.State = fsmpb.RestoreState_RESTORE_STATE_FINALIZING
		c.clearRestoreTasks(job.Id)
		return nil
	}
	return c.completeRestore(job)
}

// completeRestore makes the target real: its segments flushed with the source
// segments' file lists (the same keys under the new prefixes), its builds ready, the
// collection active. job is the caller's modifiable copy.
func (c *applyCtx) completeRestore(job *fsmpb.RestoreJob) error {
	plan, ok := c.restorePlan(job.Id)
	if !ok && job.FilesTotal > 0 {
		return newError(fsmpb.ErrorCode_ERROR_CODE_INTERNAL, "restore job %d has no plan", job.Id)
	}
	fromRepository := job.Kind == fsmpb.JobKind_JOB_KIND_REPOSITORY_RESTORE
	for _, ps := range plan.GetSegments() {
		dst, err := c.segment(ps.TargetId)
		if err != nil {
			return err
		}
		n := proto.CloneOf(dst)
		n.State = fsmpb.SegmentState_SEGMENT_STATE_FLUSHED
		n.FlushedAt = c.now
		n.RestoreJobId = 0
		if fromRepository {
			// The target segments hold their file lists since they were planned.
			for _, b := range n.IndexBuilds {
				b.State = fsmpb.BuildState_BUILD_STATE_READY
				b.ReadyAt = c.now
			}
			c.t.segments.put(n)
			continue
		}
		src, err := c.segment(ps.SourceId)
		if err != nil {
			return err
		}
		n.Files = src.Files
		for _, pb := range ps.Builds {
			i := slices.IndexFunc(src.IndexBuilds, func(b *fsmpb.IndexBuild) bool { return b.BuildId == pb.SourceBuildId })
			k := slices.IndexFunc(n.IndexBuilds, func(b *fsmpb.IndexBuild) bool { return b.BuildId == pb.TargetBuildId })
			if i < 0 || k < 0 {
				return newError(fsmpb.ErrorCode_ERROR_CODE_INTERNAL, "restore job %d: build %d or %d is missing", job.Id, pb.SourceBuildId, pb.TargetBuildId)
			}
			n.IndexBuilds[k].Files = src.IndexBuilds[i].Files
			n.IndexBuilds[k].State = fsmpb.BuildState_BUILD_STATE_READY
			n.IndexBuilds[k].ReadyAt = c.now
		}
		c.t.segments.put(n)
	}
	coll, err := c.collectionByID(job.TargetCollectionId)
	if err != nil {
		return err
	}
	if _, err := c.updateCollection(coll, func(n *fsmpb.Collection) error {
		n.State = fsmpb.CollectionState_COLLECTION_STATE_ACTIVE
		return nil
	}); err != nil {
		return err
	}
	job.State = fsmpb.RestoreState_RESTORE_STATE_COMPLETED
	job.FinishedAt = c.now
	c.clearRestoreTasks(job.Id)
	return nil
}

// abortRestore rolls a job back: the target collection and its segments are dropped
// (their copies are garbage for GC), the tasks forgotten, the reason kept.
func (c *applyCtx) abortRestore(job *fsmpb.RestoreJob, state fsmpb.RestoreState, reason string, keys []string) {
	if coll, err := c.collectionByID(job.TargetCollectionId); err == nil && coll.State != fsmpb.CollectionState_COLLECTION_STATE_DROPPED {
		_, _ = c.updateCollection(coll, func(n *fsmpb.Collection) error {
			n.State = fsmpb.CollectionState_COLLECTION_STATE_DROPPED
			n.DroppedAt = c.now
			return nil
		})
		var victims []*fsmpb.Segment
		c.eachSegment(coll.Id, 0, func(s *fsmpb.Segment) bool {
			victims = append(victims, s)
			return true
		})
		for _, s := range victims {
			n := dropped(s, c.now, fsmpb.DropReason_DROP_REASON_RESTORE_ABORTED)
			n.RestoreJobId = 0
			for _, b := range n.IndexBuilds {
				if b.State != fsmpb.BuildState_BUILD_STATE_DROPPED {
					dropBuild(b, c.now, fsmpb.DropReason_DROP_REASON_RESTORE_ABORTED)
				}
			}
			c.t.segments.put(n)
		}
	}
	job.State = state
	job.FinishedAt = c.now
	job.Error = reason
	job.FailingKeys = keys
	c.clearRestoreTasks(job.Id)
}

// clearRestoreTasks forgets a job's pool, attempts and leased tasks. The leases
// themselves stay, emptied, until reported or expired: while one is outstanding an
// executor may still land a copy under the target, so GC spares it (see
// restoreWritesPending).
func (c *applyCtx) clearRestoreTasks(job uint64) {
	var ranges []taskRange
	c.t.restorePool.AscendGreaterOrEqual(taskRange{job: job}, func(r taskRange) bool {
		if r.job != job {
			return false
		}
		ranges = append(ranges, r)
		return true
	})
	for _, r := range ranges {
		c.t.restorePool.Delete(r)
	}
	var attempts []taskAttempts
	c.t.restoreAttempts.AscendGreaterOrEqual(taskAttempts{job: job}, func(a taskAttempts) bool {
		if a.job != job {
			return false
		}
		attempts = append(attempts, a)
		return true
	})
	for _, a := range attempts {
		c.t.restoreAttempts.Delete(a)
	}
	var held []leasedTask
	leaseIDs := map[uint64]bool{}
	c.t.leasedTasks.AscendGreaterOrEqual(leasedTask{job: job}, func(lt leasedTask) bool {
		if lt.job != job {
			return false
		}
		held = append(held, lt)
		leaseIDs[lt.lease] = true
		return true
	})
	for _, lt := range held {
		c.t.leasedTasks.Delete(lt)
	}
	for id := range leaseIDs {
		if l, ok := c.t.restoreLeases.get(&fsmpb.RestoreLease{Id: id}); ok {
			n := proto.CloneOf(l)
			n.Tasks, n.Attempts = nil, nil
			c.t.restoreLeases.put(n)
		}
	}
}

// removeRestoreLeases forgets every lease of a job.
func (c *applyCtx) removeRestoreLeases(job uint64) {
	for _, l := range c.jobLeases(job) {
		c.t.restoreLeases.remove(l)
	}
}

// restoreWritesPending reports whether a restore into a collection may still write
// to it: a lease of its job is outstanding (even after the job left COPYING, until
// the lease is reported or expires). GC spares such a collection's dropped segments.
func (r reader) restoreWritesPending(collectionID uint64) bool {
	job := r.restoreJobOfTarget(collectionID)
	if job == nil {
		return false
	}
	pending := false
	r.t.restoreLeases.each(func(l *fsmpb.RestoreLease) bool {
		pending = l.JobId == job.Id
		return !pending
	})
	return pending
}

func applyRestoreFail(c *applyCtx, cmd *fsmpb.RestoreFail) (proto.Message, error) {
	j, err := c.runningJob(cmd.JobId)
	if err != nil {
		return nil, err
	}
	next := proto.CloneOf(j)
	keys := cmd.FailingKeys
	if len(keys) > maxFailingKeys {
		keys = keys[:maxFailingKeys]
	}
	c.abortRestore(next, fsmpb.RestoreState_RESTORE_STATE_FAILED, cmd.Error, keys)
	c.t.restoreJobs.put(next)
	return &fsmpb.RestoreJobResponse{Job: next}, nil
}

func applyRestoreCancel(c *applyCtx, cmd *fsmpb.RestoreCancel) (proto.Message, error) {
	j, err := c.runningJob(cmd.JobId)
	if err != nil {
		return nil, err
	}
	if j.State == fsmpb.RestoreState_RESTORE_STATE_FINALIZING {
		return nil, preconditionf("export job %d has copied every file and is being recorded in repository %q; it can no longer be cancelled (delete the snapshot from the repository afterwards)", j.Id, j.Repository)
	}
	next := proto.CloneOf(j)
	reason := cmd.Reason
	if reason == "" {
		reason = "cancelled on request"
	}
	c.abortRestore(next, fsmpb.RestoreState_RESTORE_STATE_CANCELLED, reason, nil)
	c.t.restoreJobs.put(next)
	return &fsmpb.RestoreJobResponse{Job: next}, nil
}

// ValidateExpireRestoreLeases checks what can be checked without the state.
func ValidateExpireRestoreLeases(cmd *fsmpb.ExpireRestoreLeases) error {
	if len(cmd.Node) > MaxNodeIDBytes || len(cmd.Incarnation) > MaxNodeIDBytes {
		return invalidf("a node id and an incarnation are at most %d bytes", MaxNodeIDBytes)
	}
	if cmd.Node != "" && cmd.Incarnation == "" {
		return invalidf("returning a node's earlier leases needs its current incarnation")
	}
	if len(cmd.GoneNodes) > 1000 {
		return invalidf("at most 1000 gone nodes, not %d", len(cmd.GoneNodes))
	}
	for _, g := range cmd.GoneNodes {
		if g == "" || len(g) > MaxNodeIDBytes {
			return invalidf("a gone node's id is 1–%d bytes", MaxNodeIDBytes)
		}
	}
	return nil
}

func applyExpireRestoreLeases(c *applyCtx, cmd *fsmpb.ExpireRestoreLeases) (proto.Message, error) {
	if err := ValidateExpireRestoreLeases(cmd); err != nil {
		return nil, err
	}
	var due []*fsmpb.RestoreLease
	c.t.restoreLeases.secondary[restoreLeasesByDeadline].tree.Ascend(func(l *fsmpb.RestoreLease) bool {
		if l.Deadline >= c.now {
			return false
		}
		due = append(due, l)
		return true
	})
	if cmd.Node != "" || len(cmd.GoneNodes) > 0 {
		c.t.restoreLeases.each(func(l *fsmpb.RestoreLease) bool {
			if l.Deadline >= c.now && ((l.Node == cmd.Node && l.Incarnation != cmd.Incarnation) || slices.Contains(cmd.GoneNodes, l.Node)) {
				due = append(due, l)
			}
			return true
		})
	}
	resp := &fsmpb.ExpireRestoreLeasesResponse{}
	for _, l := range due {
		// The tasks of a finished job's lease are gone with the job; only the lease
		// (kept so GC spares the target) is left to forget.
		if j, err := c.restoreJob(l.JobId); err == nil && isRunningRestore(j) {
			c.returnLeaseTasks(l)
		}
		c.t.restoreLeases.remove(l)
		resp.LeaseIds = append(resp.LeaseIds, l.Id)
	}
	return resp, nil
}

func applyRestoreRemove(c *applyCtx, cmd *fsmpb.RestoreRemove) (proto.Message, error) {
	j, err := c.restoreJob(cmd.JobId)
	if err != nil {
		return nil, err
	}
	if isRunningRestore(j) {
		return nil, preconditionf("restore job %d is %s; only a finished job is removed", j.Id, restoreStateName(j.State))
	}
	c.t.restoreJobs.remove(j)
	for _, p := range c.restorePlanParts(j.Id) {
		c.t.restorePlans.remove(p)
	}
	c.removeRestoreLeases(j.Id)
	return &fsmpb.RestoreJobResponse{Job: j}, nil
}

func restoreStateName(s fsmpb.RestoreState) string {
	return trimEnum(s.String(), "RESTORE_STATE_")
}

func keysOf(m map[uint64]uint64) map[uint64]bool {
	out := make(map[uint64]bool, len(m))
	for k := range m {
		out[k] = true
	}
	return out
}

// restorePlanParts are a job's plan parts in order.
func (r reader) restorePlanParts(job uint64) []*fsmpb.RestorePlan {
	var out []*fsmpb.RestorePlan
	r.t.restorePlans.primary.AscendGreaterOrEqual(&fsmpb.RestorePlan{JobId: job}, func(p *fsmpb.RestorePlan) bool {
		if p.JobId != job {
			return false
		}
		out = append(out, p)
		return true
	})
	return out
}

// restorePlan is a job's whole plan: its parts' segments in task order (the one part
// itself when there is one).
func (r reader) restorePlan(job uint64) (*fsmpb.RestorePlan, bool) {
	parts := r.restorePlanParts(job)
	switch len(parts) {
	case 0:
		return nil, false
	case 1:
		return parts[0], true
	}
	n := 0
	for _, p := range parts {
		n += len(p.Segments)
	}
	whole := &fsmpb.RestorePlan{JobId: job, Segments: make([]*fsmpb.PlannedSegment, 0, n)}
	for _, p := range parts {
		whole.Segments = append(whole.Segments, p.Segments...)
	}
	return whole, true
}
