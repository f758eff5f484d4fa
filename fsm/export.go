package fsm

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
)

// Jobs of the other kinds share the restore engine (plan, pool, leases, reports):
//
//   - an export (ExportBegin) copies a committed snapshot's files into a repository:
//     PENDING (the leader lists the sources and the repository; RestoreStart skips
//     what the repository holds) → COPYING → FINALIZING (the leader writes the
//     manifest and an index generation) → COMPLETED (ExportComplete). It pins the
//     snapshot and creates nothing in the catalog.
//   - a repository restore (RestoreBegin with a repository) creates the target
//     collection from the repository's capture, then PLANNING: the leader adds the
//     manifest's segments in batches (RestorePlanSegments), each a plan part, the
//     target segments holding their file lists from the start → PENDING (the leader
//     lists the repository's data objects) → COPYING → COMPLETED, as a restore.

// restoreSource is what a restore's target is made from: a snapshot of this cluster or
// a repository's capture.
type restoreSource struct {
	name        string // the snapshot's, for messages
	schema      []byte
	properties  map[string]string
	description string
	layout      fsmpb.KeyLayout
	partitions  []*fsmpb.Partition
	indexes     []*fsmpb.IndexDef
}

// restoreTarget is a new target collection with its id mappings.
type restoreTarget struct {
	jobID                 uint64
	database              *fsmpb.Database
	collection            *fsmpb.Collection
	partitions, indexes   map[uint64]uint64 // source id → target id
	restored              func(partitionID uint64) bool
	wantSegments, wantBld map[uint64]uint64
}

// createRestoreTarget takes the job's id and creates its target collection (RESTORING)
// with the source's partitions (all, or the subset and "_default") and indexes under
// new ids. When the target name is held by a running job that same accepts, that job is
// answered instead (existing).
func (c *applyCtx) createRestoreTarget(cmd *fsmpb.RestoreBegin, src restoreSource, same func(*fsmpb.RestoreJob) bool) (*restoreTarget, proto.Message, error) {
	targetDB, err := c.database(cmd.TargetDatabase)
	if err != nil {
		return nil, nil, err
	}
	if existing, _, err := c.collection(targetDB.Name, cmd.TargetCollection); err == nil {
		if job := c.restoreJobOfTarget(existing.Id); job != nil && isRunningRestore(job) {
			if same(job) {
				return nil, &fsmpb.RestoreJobResponse{Job: job, Existing: true}, nil
			}
			return nil, nil, existsf("collection %q in database %q is being restored by job %d from snapshot %q; a different restore cannot take its name",
				cmd.TargetCollection, targetDB.Name, job.Id, job.SnapshotName)
		}
		return nil, nil, existsf("collection %q already exists in database %q; restore into a new name", cmd.TargetCollection, targetDB.Name)
	}

	// The partitions to restore, by source id.
	selected := map[uint64]bool{}
	for _, name := range cmd.Partitions {
		i := slices.IndexFunc(src.partitions, func(p *fsmpb.Partition) bool { return p.Name == name })
		if i < 0 {
			return nil, nil, notFoundf("partition %q is not in snapshot %q (it has %s)", name, src.name, partitionList(src.partitions))
		}
		selected[src.partitions[i].Id] = true
	}
	t := &restoreTarget{database: targetDB, partitions: map[uint64]uint64{}, indexes: map[uint64]uint64{},
		restored: func(partitionID uint64) bool { return len(cmd.Partitions) == 0 || selected[partitionID] }}

	// The caller's ids for the target's objects (validated before: no error here).
	wantPartitions, _ := idMap("partition", cmd.TargetPartitions)
	wantIndexes, _ := idMap("index", cmd.TargetIndexes)

	t.jobID = c.nextID()
	targetID, err := c.takeID(idCollection, cmd.TargetCollectionId)
	if err != nil {
		return nil, nil, err
	}
	t.collection = &fsmpb.Collection{
		Id:          targetID,
		DatabaseId:  targetDB.Id,
		Name:        cmd.TargetCollection,
		State:       fsmpb.CollectionState_COLLECTION_STATE_RESTORING,
		Schema:      src.schema,
		Properties:  src.properties,
		Description: src.description,
		CreatedAt:   c.now,
		Layout:      src.layout,
	}
	for _, p := range src.partitions {
		if p.Name == DefaultPartition || t.restored(p.Id) {
			id, err := c.takeID(idPartition, wantPartitions[p.Id])
			if err != nil {
				return nil, nil, err
			}
			t.partitions[p.Id] = id
			t.collection.Partitions = append(t.collection.Partitions, &fsmpb.Partition{Id: id, Name: p.Name, CreatedAt: c.now})
		}
	}
	for _, ix := range src.indexes {
		nix := proto.CloneOf(ix)
		if nix.Id, err = c.takeID(idIndex, wantIndexes[ix.Id]); err != nil {
			return nil, nil, err
		}
		nix.CreatedAt = c.now
		t.indexes[ix.Id] = nix.Id
		t.collection.Indexes = append(t.collection.Indexes, nix)
	}
	if err := unmapped("partition", wantPartitions, keysOf(t.partitions)); err != nil {
		return nil, nil, err
	}
	if err := unmapped("index", wantIndexes, keysOf(t.indexes)); err != nil {
		return nil, nil, err
	}
	return t, nil, nil
}

// validateRepositoryRestore checks a repository restore's command without the state.
func validateRepositoryRestore(cmd *fsmpb.RestoreBegin) error {
	if err := ValidateName("repository", cmd.Repository); err != nil {
		return err
	}
	f := cmd.FromRepository
	if f == nil {
		return invalidf("a restore from repository %q needs the repository snapshot's capture", cmd.Repository)
	}
	if cmd.Collection != "" || cmd.Snapshot != "" || cmd.Database != "" {
		return invalidf("a restore from a repository names the repository snapshot, not a collection and snapshot of this cluster")
	}
	if len(cmd.TargetSegments) > 0 || len(cmd.TargetBuilds) > 0 {
		return invalidf("a restore from a repository takes no caller segment or index build ids")
	}
	if err := ValidateRepositorySnapshotID(f.Id); err != nil {
		return err
	}
	if err := ValidateClusterID(f.SourceClusterId); err != nil {
		return err
	}
	if f.CollectionId == 0 {
		return invalidf("repository snapshot %s: the source collection id is 0", f.Id)
	}
	if len(f.Schema) > MaxSchemaBytes {
		return invalidf("repository snapshot %s: the schema is %d bytes; the limit is %d", f.Id, len(f.Schema), MaxSchemaBytes)
	}
	if len(f.CollectionDescription) > MaxDescriptionBytes {
		return invalidf("repository snapshot %s: the description is over %d bytes", f.Id, MaxDescriptionBytes)
	}
	if err := ValidateProperties("property", f.Properties); err != nil {
		return err
	}
	if _, err := layout.For(f.Layout); err != nil {
		return invalidf("repository snapshot %s: unknown key layout %d", f.Id, f.Layout)
	}
	if len(f.Partitions) == 0 || len(f.Partitions) > MaxPartitions || len(f.Indexes) > MaxIndexes {
		return invalidf("repository snapshot %s: %d partitions and %d indexes (1–%d and at most %d)", f.Id, len(f.Partitions), len(f.Indexes), MaxPartitions, MaxIndexes)
	}
	ids, names := map[uint64]bool{}, map[string]bool{}
	for _, p := range f.Partitions {
		if p == nil || p.Id == 0 || ids[p.Id] || names[p.Name] {
			return invalidf("repository snapshot %s: partitions need distinct ids above 0 and distinct names", f.Id)
		}
		if err := ValidateName("partition", p.Name); err != nil {
			return err
		}
		ids[p.Id], names[p.Name] = true, true
	}
	if !names[DefaultPartition] {
		return invalidf("repository snapshot %s has no %q partition", f.Id, DefaultPartition)
	}
	names = map[string]bool{}
	for _, ix := range f.Indexes {
		if ix == nil || ix.Id == 0 || ids[ix.Id] || names[ix.Name] || ix.FieldId < 0 || ix.FieldId > maxFieldID {
			return invalidf("repository snapshot %s: indexes need distinct ids above 0, distinct names and a field id in range", f.Id)
		}
		if err := ValidateName("index", ix.Name); err != nil {
			return err
		}
		if err := ValidateProperties("index parameter", ix.Params); err != nil {
			return err
		}
		ids[ix.Id], names[ix.Name] = true, true
	}
	return nil
}

func applyRepositoryRestoreBegin(c *applyCtx, cmd *fsmpb.RestoreBegin) (proto.Message, error) {
	if _, ok := c.t.repositories.get(&fsmpb.Repository{Name: cmd.Repository}); !ok {
		return nil, notFoundf("repository %q is not registered", cmd.Repository)
	}
	f := cmd.FromRepository
	src := restoreSource{name: f.SnapshotName, schema: f.Schema, properties: f.Properties, description: f.CollectionDescription,
		layout: f.Layout, partitions: f.Partitions, indexes: f.Indexes}
	same := func(job *fsmpb.RestoreJob) bool {
		return job.Kind == fsmpb.JobKind_JOB_KIND_REPOSITORY_RESTORE && job.Repository == cmd.Repository && job.RepositorySnapshot == f.Id &&
			samePartitions(job.Partitions, cmd.Partitions) && job.Verify == cmd.Verify && job.ReadBack == cmd.ReadBack
	}
	tgt, existing, err := c.createRestoreTarget(cmd, src, same)
	if existing != nil || err != nil {
		return existing, err
	}
	job := &fsmpb.RestoreJob{
		Id:                 tgt.jobID,
		Kind:               fsmpb.JobKind_JOB_KIND_REPOSITORY_RESTORE,
		Repository:         cmd.Repository,
		RepositorySnapshot: f.Id,
		SourceClusterId:    f.SourceClusterId,
		SourceSnapshotId:   f.SourceSnapshotId,
		SnapshotName:       f.SnapshotName,
		SourceCollectionId: f.CollectionId,
		SourceCollection:   f.Collection,
		SourceDatabase:     f.Database,
		TargetDatabaseId:   tgt.database.Id,
		TargetDatabase:     tgt.database.Name,
		TargetCollection:   tgt.collection.Name,
		TargetCollectionId: tgt.collection.Id,
		Partitions:         cmd.Partitions,
		State:              fsmpb.RestoreState_RESTORE_STATE_PLANNING,
		Verify:             cmd.Verify,
		ReadBack:           cmd.ReadBack,
		MaxConcurrency:     cmd.MaxConcurrency,
		MaxAttempts:        cmd.MaxAttempts,
		CreatedAt:          c.now,
		PartitionMap:       sortedMapping(tgt.partitions),
		IndexMap:           sortedMapping(tgt.indexes),
		SegmentsTotal:      f.Segments,
	}
	if job.MaxAttempts == 0 {
		job.MaxAttempts = DefaultRestoreAttempts
	}
	c.t.collections.put(tgt.collection)
	c.t.restoreJobs.put(job)
	return &fsmpb.RestoreJobResponse{Job: job}, nil
}

// mapped looks a source id up in a job's mapping.
func mapped(ms []*fsmpb.IdMapping, source uint64) (uint64, bool) {
	i, ok := slices.BinarySearchFunc(ms, source, func(m *fsmpb.IdMapping, s uint64) int {
		switch {
		case m.Source < s:
			return -1
		case m.Source > s:
			return 1
		}
		return 0
	})
	if !ok {
		return 0, false
	}
	return ms[i].Target, true
}

// lastPlanPart is a job's plan part with the highest number, if any.
func (r reader) lastPlanPart(job uint64) (*fsmpb.RestorePlan, bool) {
	var last *fsmpb.RestorePlan
	r.t.restorePlans.primary.DescendLessOrEqual(&fsmpb.RestorePlan{JobId: job, Part: ^uint32(0)}, func(p *fsmpb.RestorePlan) bool {
		if p.JobId == job {
			last = p
		}
		return false
	})
	return last, last != nil
}

func applyRestorePlanSegments(c *applyCtx, cmd *fsmpb.RestorePlanSegments) (proto.Message, error) {
	j, err := c.restoreJob(cmd.JobId)
	if err != nil {
		return nil, err
	}
	if j.Kind != fsmpb.JobKind_JOB_KIND_REPOSITORY_RESTORE {
		return nil, invalidf("job %d is not a restore from a repository", j.Id)
	}
	end := cmd.First + uint64(len(cmd.Segments))
	switch {
	case end <= j.SegmentsPlanned && isRunningRestore(j) && (cmd.First < j.SegmentsPlanned || j.State != fsmpb.RestoreState_RESTORE_STATE_PLANNING):
		return &fsmpb.RestoreJobResponse{Job: j, Existing: true}, nil // a batch added before (a new leader's retry)
	case j.State != fsmpb.RestoreState_RESTORE_STATE_PLANNING:
		return nil, preconditionf("restore job %d is %s; segments are added while it is planning", j.Id, restoreStateName(j.State))
	}
	if cmd.First != j.SegmentsPlanned {
		return nil, preconditionf("restore job %d has %d segments planned; the next batch starts there, not at %d", j.Id, j.SegmentsPlanned, cmd.First)
	}
	if len(cmd.Segments) > maxPlanSegments {
		return nil, exhaustedf("%d segments in one batch; the limit is %d", len(cmd.Segments), maxPlanSegments)
	}
	coll, err := c.collectionByID(j.TargetCollectionId)
	if err != nil {
		return nil, err
	}
	l := layoutOf(coll)
	next := proto.CloneOf(j)
	part := &fsmpb.RestorePlan{JobId: j.Id}
	var prevPart, prevID uint64
	if last, ok := c.lastPlanPart(j.Id); ok {
		part.Part = last.Part + 1
		if n := len(last.Segments); n > 0 {
			prevPart, prevID = last.Segments[n-1].SourcePartitionId, last.Segments[n-1].SourceId
		}
	}
	for _, s := range cmd.Segments {
		if s == nil || s.Id == 0 {
			return nil, invalidf("restore job %d: a source segment needs an id above 0", j.Id)
		}
		// Manifest order, (partition, id) increasing, which also keeps source ids unique.
		if s.PartitionId < prevPart || s.PartitionId == prevPart && s.Id <= prevID {
			return nil, invalidf("restore job %d: source segments come in (partition, id) order; %d/%d follows %d/%d", j.Id, s.PartitionId, s.Id, prevPart, prevID)
		}
		prevPart, prevID = s.PartitionId, s.Id
		targetPartition, ok := mapped(j.PartitionMap, s.PartitionId)
		if !ok {
			return nil, invalidf("restore job %d: source segment %d is in partition %d, which the restore does not copy", j.Id, s.Id, s.PartitionId)
		}
		if s.RowCount < 0 || s.RowCount > maxRowCount {
			return nil, invalidf("source segment %d: row count %d is out of range", s.Id, s.RowCount)
		}
		if err := validateSegmentMeta(s.Id, s.Meta); err != nil {
			return nil, err
		}
		dstID, err := c.takeID(idSegment, 0)
		if err != nil {
			return nil, err
		}
		dst := &fsmpb.Segment{Id: dstID, CollectionId: coll.Id, PartitionId: targetPartition, State: fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED,
			RowCount: s.RowCount, AllocatedAt: c.now, RestoreJobId: j.Id, RestoredFrom: s.Id, PackedMeta: packSegmentMeta(s.Meta), Files: s.Files}
		ps := &fsmpb.PlannedSegment{SourceId: s.Id, TargetId: dstID, FirstTask: uint32(next.FilesTotal), SourcePartitionId: s.PartitionId}
		files, bytes, err := checkSourceFiles(s.Files, "source segment "+u64(s.Id), func(e filelist.Entry) (string, error) {
			return l.SegmentFileRel(segmentRef(dst), &fsmpb.File{Key: l.SegmentFileKey(segmentRef(dst), e.Key), Kind: e.Kind, FieldId: e.FieldID})
		})
		if err != nil {
			return nil, err
		}
		ps.Files = files
		next.FilesTotal += uint64(files)
		next.BytesTotal += bytes
		for _, b := range s.Builds {
			if b == nil || b.BuildId == 0 {
				return nil, invalidf("source segment %d: an index build needs an id above 0", s.Id)
			}
			indexID, ok := mapped(j.IndexMap, b.IndexId)
			if !ok {
				return nil, invalidf("source segment %d: build %d is of index %d, which the snapshot does not define", s.Id, b.BuildId, b.IndexId)
			}
			if slices.ContainsFunc(ps.Builds, func(pb *fsmpb.PlannedBuild) bool { return pb.SourceBuildId == b.BuildId }) {
				return nil, invalidf("source segment %d: build %d is listed twice", s.Id, b.BuildId)
			}
			buildID, err := c.takeID(idBuild, 0)
			if err != nil {
				return nil, err
			}
			ref := buildRef(dst, buildID)
			n, bytes, err := checkSourceFiles(b.Files, "source index build "+u64(b.BuildId), func(e filelist.Entry) (string, error) {
				return l.BuildFileRel(ref, &fsmpb.File{Key: l.BuildFileKey(ref, e.Key), Kind: e.Kind, FieldId: e.FieldID})
			})
			if err != nil {
				return nil, err
			}
			dst.IndexBuilds = append(dst.IndexBuilds, &fsmpb.IndexBuild{BuildId: buildID, IndexId: indexID, State: fsmpb.BuildState_BUILD_STATE_ALLOCATED, CreatedAt: c.now, Files: b.Files})
			ps.Builds = append(ps.Builds, &fsmpb.PlannedBuild{SourceBuildId: b.BuildId, TargetBuildId: buildID, FirstTask: uint32(next.FilesTotal), Files: n})
			next.FilesTotal += uint64(n)
			next.BytesTotal += bytes
		}
		if next.FilesTotal > 1<<32-1 {
			return nil, exhaustedf("repository snapshot %s has more than %d files; a restore copies at most that many", j.RepositorySnapshot, uint32(1<<32-1))
		}
		c.t.segments.put(dst)
		part.Segments = append(part.Segments, ps)
	}
	if next.FilesTotal > j.FilesTotal {
		c.t.restorePool.ReplaceOrInsert(taskRange{job: j.Id, start: uint32(j.FilesTotal), end: uint32(next.FilesTotal)})
	}
	next.SegmentsPlanned = end
	if len(part.Segments) > 0 {
		c.t.restorePlans.put(part)
	}
	if cmd.Last {
		next.State = fsmpb.RestoreState_RESTORE_STATE_PENDING
		next.SegmentsTotal = next.SegmentsPlanned
	}
	c.t.restoreJobs.put(next)
	return &fsmpb.RestoreJobResponse{Job: next}, nil
}

// maxPlanSegments bounds a RestorePlanSegments batch.
const maxPlanSegments = 1000

// checkSourceFiles checks a file list from a repository: it decodes, holds at most
// MaxFilesPerSegment entries, and each entry's kept key is one the target's layout
// accepts for its owner (rel rebuilds the key and parses it back).
func checkSourceFiles(blob []byte, owner string, rel func(filelist.Entry) (string, error)) (uint32, uint64, error) {
	entries, err := filelist.Decode(blob)
	if err != nil {
		return 0, 0, invalidf("%s: its file list does not decode: %v", owner, err)
	}
	if len(entries) > MaxFilesPerSegment {
		return 0, 0, exhaustedf("%s: %d files; the limit is %d", owner, len(entries), MaxFilesPerSegment)
	}
	var bytes uint64
	for i, e := range entries {
		got, err := rel(e)
		if err != nil {
			return 0, 0, invalidf("%s: %v", owner, err)
		}
		if got != e.Key {
			return 0, 0, invalidf("%s: file %q is not a key of its layout", owner, e.Key)
		}
		if i > 0 && entries[i-1].Key >= e.Key {
			return 0, 0, invalidf("%s: its file list is not sorted", owner)
		}
		bytes += e.Size
	}
	return uint32(len(entries)), bytes, nil
}

// ValidateExportBegin checks what can be checked without the state.
func ValidateExportBegin(cmd *fsmpb.ExportBegin) error {
	if cmd.Database != "" {
		if err := ValidateName("database", cmd.Database); err != nil {
			return err
		}
	}
	if err := ValidateName("collection", cmd.Collection); err != nil {
		return err
	}
	if err := ValidateSnapshotName(cmd.Snapshot); err != nil {
		return err
	}
	if err := ValidateName("repository", cmd.Repository); err != nil {
		return err
	}
	if err := ValidateRepositorySnapshotID(cmd.RepositorySnapshot); err != nil {
		return err
	}
	if cmd.MaxAttempts > MaxRestoreAttempts {
		return invalidf("max attempts %d is over the limit of %d", cmd.MaxAttempts, MaxRestoreAttempts)
	}
	if cmd.MaxConcurrency > MaxRestoreConcurrency {
		return invalidf("max concurrency %d is over the limit of %d", cmd.MaxConcurrency, MaxRestoreConcurrency)
	}
	return nil
}

func applyExportBegin(c *applyCtx, cmd *fsmpb.ExportBegin) (proto.Message, error) {
	if err := ValidateExportBegin(cmd); err != nil {
		return nil, err
	}
	if _, err := c.writableRepository(cmd.Repository); err != nil {
		return nil, err
	}
	snap, err := c.snapshotByName(cmd.Database, cmd.Collection, cmd.Snapshot)
	if err != nil {
		return nil, err
	}
	return c.beginExport(snap, cmd)
}

// beginExport starts exporting a snapshot (or returns the export of it into the same
// repository that is running): ExportBegin's and a policy's one path. cmd's
// repository is writable, its other fields valid.
func (c *applyCtx) beginExport(snap *fsmpb.Snapshot, cmd *fsmpb.ExportBegin) (*fsmpb.RestoreJobResponse, error) {
	if snap.State != fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED {
		return nil, preconditionf("snapshot %q of collection %q is %s; only a committed snapshot can be exported", snap.Name, snap.CollectionName, snapshotStateName(snap.State))
	}
	var running *fsmpb.RestoreJob
	c.t.restoreJobs.secondary[restoreJobsRunning].tree.Ascend(func(j *fsmpb.RestoreJob) bool {
		if j.Kind == fsmpb.JobKind_JOB_KIND_EXPORT && j.SnapshotId == snap.Id && j.Repository == cmd.Repository {
			running = j
		}
		return running == nil
	})
	if running != nil {
		return &fsmpb.RestoreJobResponse{Job: running, Existing: true}, nil
	}
	job := &fsmpb.RestoreJob{
		Id:                 c.nextID(),
		Kind:               fsmpb.JobKind_JOB_KIND_EXPORT,
		Repository:         cmd.Repository,
		RepositorySnapshot: cmd.RepositorySnapshot,
		SnapshotId:         snap.Id,
		SnapshotName:       snap.Name,
		SourceCollectionId: snap.CollectionId,
		SourceCollection:   snap.CollectionName,
		SourceDatabase:     snap.DatabaseName,
		SourceClusterId:    c.t.meta.ClusterId,
		State:              fsmpb.RestoreState_RESTORE_STATE_PENDING,
		Verify:             true,
		ReadBack:           cmd.ReadBack,
		MaxConcurrency:     cmd.MaxConcurrency,
		MaxAttempts:        cmd.MaxAttempts,
		CreatedAt:          c.now,
	}
	if job.MaxAttempts == 0 {
		job.MaxAttempts = DefaultRestoreAttempts
	}
	// One task per file of the snapshot, numbered as a restore's (the plan's targets
	// are left 0: nothing is created).
	plan := &fsmpb.RestorePlan{JobId: job.Id}
	var tasks uint64
	for _, id := range snap.SegmentIds {
		src, err := c.segment(id)
		if err != nil {
			return nil, err
		}
		ps := &fsmpb.PlannedSegment{SourceId: src.Id, FirstTask: uint32(tasks)}
		files, bytes, err := filelist.Totals(src.Files)
		if err != nil {
			return nil, err
		}
		ps.Files, tasks, job.BytesTotal = uint32(files), tasks+uint64(files), job.BytesTotal+bytes
		for _, b := range src.IndexBuilds {
			if _, pinned := slices.BinarySearch(snap.BuildIds, b.BuildId); !pinned {
				continue
			}
			files, bytes, err := filelist.Totals(b.Files)
			if err != nil {
				return nil, err
			}
			ps.Builds = append(ps.Builds, &fsmpb.PlannedBuild{SourceBuildId: b.BuildId, FirstTask: uint32(tasks), Files: uint32(files)})
			tasks, job.BytesTotal = tasks+uint64(files), job.BytesTotal+bytes
		}
		if tasks > 1<<32-1 {
			return nil, exhaustedf("snapshot %q has more than %d files; an export copies at most that many", snap.Name, uint32(1<<32-1))
		}
		plan.Segments = append(plan.Segments, ps)
	}
	job.FilesTotal = tasks
	c.t.restoreJobs.put(job)
	c.t.restorePlans.put(plan)
	if tasks > 0 {
		c.t.restorePool.ReplaceOrInsert(taskRange{job: job.Id, start: 0, end: uint32(tasks)})
	}
	return &fsmpb.RestoreJobResponse{Job: job}, nil
}

func applyExportComplete(c *applyCtx, cmd *fsmpb.ExportComplete) (proto.Message, error) {
	j, err := c.restoreJob(cmd.JobId)
	if err != nil {
		return nil, err
	}
	if j.Kind != fsmpb.JobKind_JOB_KIND_EXPORT {
		return nil, invalidf("job %d is not an export", j.Id)
	}
	if j.State == fsmpb.RestoreState_RESTORE_STATE_COMPLETED && j.RepositoryGeneration == cmd.Generation {
		return &fsmpb.RestoreJobResponse{Job: j, Existing: true}, nil
	}
	if j.State != fsmpb.RestoreState_RESTORE_STATE_FINALIZING {
		return nil, preconditionf("export job %d is %s; it completes from FINALIZING", j.Id, restoreStateName(j.State))
	}
	if cmd.Generation == 0 {
		return nil, invalidf("an export completes with the index generation that recorded it (above 0)")
	}
	next := proto.CloneOf(j)
	next.State = fsmpb.RestoreState_RESTORE_STATE_COMPLETED
	next.RepositoryGeneration = cmd.Generation
	next.FinishedAt = c.now
	c.t.restoreJobs.put(next)
	return &fsmpb.RestoreJobResponse{Job: next}, nil
}

// skipTasks takes an export's tasks the repository already holds out of its pool and
// counts them done. The spans must be sorted, disjoint and pooled.
func (c *applyCtx) skipTasks(job *fsmpb.RestoreJob, spans []*fsmpb.TaskSpan, bytes uint64) error {
	var prevEnd uint32
	var files uint64
	for i, s := range spans {
		if s == nil || s.Start >= s.End || uint64(s.End) > job.FilesTotal || (i > 0 && s.Start < prevEnd) {
			return invalidf("export job %d: skipped tasks must be sorted, disjoint, non-empty spans within its %d tasks", job.Id, job.FilesTotal)
		}
		prevEnd = s.End
		r, found := c.poolRangeBefore(job.Id, s.Start)
		if !found || s.End > r.end {
			return preconditionf("export job %d: tasks %d–%d are not all waiting", job.Id, s.Start, s.End-1)
		}
		c.t.restorePool.Delete(r)
		if r.start < s.Start {
			c.t.restorePool.ReplaceOrInsert(taskRange{job: job.Id, start: r.start, end: s.Start})
		}
		if s.End < r.end {
			c.t.restorePool.ReplaceOrInsert(taskRange{job: job.Id, start: s.End, end: r.end})
		}
		files += uint64(s.End - s.Start)
	}
	if bytes > job.BytesTotal {
		return invalidf("export job %d: %d bytes skipped of %d", job.Id, bytes, job.BytesTotal)
	}
	job.FilesSkipped += files
	job.BytesSkipped += bytes
	job.FilesDone += files
	job.BytesDone += bytes
	return nil
}
