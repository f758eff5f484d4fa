package fsm

import (
	"github.com/google/btree"
	"sync"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// The state store: each table is a copy-on-write B-tree (google/btree) of records,
// ordered by its primary key, plus secondary B-trees over the same records. A B-tree
// costs about 10 bytes per row and index, where an immutable radix tree (go-memdb)
// costs about 400: the catalog must hold millions of segments in memory.
//
// Transactions and read views are clones: Clone is O(1) and marks every node shared,
// so a clone and its original never see each other's writes. Apply writes into a clone
// of the committed tables and publishes it on success (or drops it on error, which is
// the whole rollback); a read view is a clone that nobody writes.

const btreeDegree = 16

// index is one ordering of a table's records; include, when set, limits it to the
// records it returns true for.
type index[T any] struct {
	tree    *btree.BTreeG[T]
	include func(T) bool
}

// nestedIndex orders the ids of the objects nested in a table's records (a
// collection's partitions and indexes, a segment's index builds), so an id of such an
// object is found without a scan.
type nestedIndex[T any] struct {
	tree *btree.BTreeG[nestedID]
	ids  func(T) []nestedID
}

// nestedID says that record owner (its primary id) holds the nested object id.
type nestedID struct{ id, owner uint64 }

func lessNestedID(a, b nestedID) bool {
	if a.id != b.id {
		return a.id < b.id
	}
	return a.owner < b.owner
}

// table is a set of records with a primary ordering (unique) and secondary ones.
type table[T any] struct {
	primary   *btree.BTreeG[T]
	secondary []index[T]
	nested    []nestedIndex[T]
	// tally, when set, weighs each record; totals is the sum over the table, kept by
	// put and remove (derived, never stored: see stats.go).
	tally  func(T) counts
	totals counts
	// borrowedUnder, when set, says the trees are another table's, one that is only read
	// from now on (a committed state's): this table clones them, under this lock, the
	// first time it is written (own). A state that writes few of its tables (most
	// commands write two or three of twenty) clones only those.
	borrowedUnder *sync.Mutex
}

func newTable[T any](less btree.LessFunc[T], secondary ...index[T]) *table[T] {
	return &table[T]{primary: btree.NewG(btreeDegree, less), secondary: secondary}
}

func secondaryIndex[T any](less btree.LessFunc[T], include func(T) bool) index[T] {
	return index[T]{tree: btree.NewG(btreeDegree, less), include: include}
}

// withNested adds a nested index to a new table.
func (t *table[T]) withNested(ids func(T) []nestedID) *table[T] {
	t.nested = append(t.nested, nestedIndex[T]{tree: btree.NewG(btreeDegree, lessNestedID), ids: ids})
	return t
}

// borrow returns a copy of t that shares its trees until the copy's first write (see
// borrowedUnder): t must not be written again. mu is the lock every clone of t's trees
// is taken under.
func (t *table[T]) borrow(mu *sync.Mutex) *table[T] {
	c := *t
	c.borrowedUnder = mu
	return &c
}

// own gives a borrowed table trees of its own (copy-on-write clones of the ones it
// shares), before its first write.
func (t *table[T]) own() {
	mu := t.borrowedUnder
	if mu == nil {
		return
	}
	mu.Lock()
	defer mu.Unlock()
	secondary := make([]index[T], len(t.secondary))
	for i, ix := range t.secondary {
		secondary[i] = index[T]{tree: ix.tree.Clone(), include: ix.include}
	}
	var nested []nestedIndex[T]
	for _, n := range t.nested {
		nested = append(nested, nestedIndex[T]{tree: n.tree.Clone(), ids: n.ids})
	}
	t.primary, t.secondary, t.nested, t.borrowedUnder = t.primary.Clone(), secondary, nested, nil
}

// holdsNested reports whether a record holds nested object id in nested index i.
func (t *table[T]) holdsNested(i int, id uint64) bool {
	found := false
	t.nested[i].tree.AscendGreaterOrEqual(nestedID{id: id}, func(n nestedID) bool {
		found = n.id == id
		return false
	})
	return found
}

func (t *table[T]) updateNested(old T, hadOld bool, rec T, hasRec bool) {
	for _, n := range t.nested {
		if hadOld {
			for _, id := range n.ids(old) {
				n.tree.Delete(id)
			}
		}
		if hasRec {
			for _, id := range n.ids(rec) {
				n.tree.ReplaceOrInsert(id)
			}
		}
	}
}

// put inserts or replaces the record with the same primary key, keeping every
// secondary index in step.
func (t *table[T]) put(rec T) {
	t.own()
	old, replaced := t.primary.ReplaceOrInsert(rec)
	t.count(old, replaced, rec, true)
	t.updateNested(old, replaced, rec, true)
	for _, ix := range t.secondary {
		if replaced && (ix.include == nil || ix.include(old)) {
			ix.tree.Delete(old)
		}
		if ix.include == nil || ix.include(rec) {
			ix.tree.ReplaceOrInsert(rec)
		}
	}
}

// remove deletes the record with rec's primary key.
func (t *table[T]) remove(rec T) {
	t.own()
	old, found := t.primary.Delete(rec)
	if !found {
		return
	}
	t.count(old, true, rec, false)
	t.updateNested(old, true, rec, false)
	for _, ix := range t.secondary {
		if ix.include == nil || ix.include(old) {
			ix.tree.Delete(old)
		}
	}
}

func (t *table[T]) get(probe T) (T, bool) { return t.primary.Get(probe) }

func (t *table[T]) len() int { return t.primary.Len() }

// each visits every record in primary order until fn returns false.
func (t *table[T]) each(fn func(T) bool) { t.primary.Ascend(fn) }

// tables is the whole replicated state.
type tables struct {
	meta        *fsmpb.Meta
	databases   *table[*fsmpb.Database]      // by name; [0] by id
	collections *table[*fsmpb.Collection]    // by id; [0] live ones by (database id, name)
	segments    *table[*fsmpb.Segment]       // by id; [0] by (collection id, id); [1] leased by (deadline, id)
	nodes       *table[*fsmpb.Node]          // by id
	requests    *table[*fsmpb.RequestRecord] // by request id; [0] by seq
	snapshots   *table[*fsmpb.Snapshot]      // by id; see snapshotsBy* for the secondary orders

	// The reference index, derived from the snapshots table (rebuilt on restore, never
	// stored): which live snapshots pin which segments and index builds.
	segmentPins *btree.BTreeG[pin]
	buildPins   *btree.BTreeG[pin]
	// With it, the sizes of the pinned objects' file lists (space.go): a snapshot's
	// exclusive and shared bytes cost a lookup per captured object, not a file walk.
	segmentSizes *btree.BTreeG[listSize]
	buildSizes   *btree.BTreeG[listSize]

	// Restores: jobs, their plans and leases, and each job's pool of tasks waiting for
	// a lease (as ranges), with the failed attempts of pooled tasks that have some.
	restoreJobs     *table[*fsmpb.RestoreJob]   // by id; see restoreJobs* for the secondary orders
	restorePlans    *table[*fsmpb.RestorePlan]  // by (job id, part)
	restoreLeases   *table[*fsmpb.RestoreLease] // by id; [0] by (deadline, id)
	restorePool     *btree.BTreeG[taskRange]
	restoreAttempts *btree.BTreeG[taskAttempts]
	// Derived from restoreLeases (rebuilt on restore): which lease holds a task.
	leasedTasks *btree.BTreeG[leasedTask]

	// The last GC reports, by id.
	gcReports *table[*fsmpb.GCReport]

	// Backup repositories, by name.
	repositories *table[*fsmpb.Repository]

	// Snapshot policies, by name.
	policies *table[*fsmpb.Policy]
}

// taskRange is the tasks [start, end) of a job waiting in its pool.
type taskRange struct {
	job        uint64
	start, end uint32
}

func lessTaskRange(a, b taskRange) bool {
	if a.job != b.job {
		return a.job < b.job
	}
	return a.start < b.start
}

// taskAttempts is the failed attempts of a pooled task.
type taskAttempts struct {
	job      uint64
	task     uint32
	attempts uint8
}

func lessTaskAttempts(a, b taskAttempts) bool {
	if a.job != b.job {
		return a.job < b.job
	}
	return a.task < b.task
}

// leasedTask says that a task is in a lease.
type leasedTask struct {
	job   uint64
	task  uint32
	lease uint64
}

func lessLeasedTask(a, b leasedTask) bool {
	if a.job != b.job {
		return a.job < b.job
	}
	return a.task < b.task
}

// pin says that snapshot (PENDING or COMMITTED) needs object id (a segment or a build).
type pin struct{ id, snapshot uint64 }

func lessPin(a, b pin) bool {
	if a.id != b.id {
		return a.id < b.id
	}
	return a.snapshot < b.snapshot
}

// Nested index positions.
const (
	collectionsPartitionIDs = 0
	collectionsIndexIDs     = 1
	segmentsBuildIDs        = 0
)

func partitionIDs(c *fsmpb.Collection) []nestedID {
	out := make([]nestedID, len(c.Partitions))
	for i, p := range c.Partitions {
		out[i] = nestedID{p.Id, c.Id}
	}
	return out
}

func indexIDs(c *fsmpb.Collection) []nestedID {
	out := make([]nestedID, len(c.Indexes))
	for i, ix := range c.Indexes {
		out[i] = nestedID{ix.Id, c.Id}
	}
	return out
}

func buildIDs(s *fsmpb.Segment) []nestedID {
	if len(s.IndexBuilds) == 0 {
		return nil
	}
	out := make([]nestedID, len(s.IndexBuilds))
	for i, b := range s.IndexBuilds {
		out[i] = nestedID{b.BuildId, s.Id}
	}
	return out
}

// Secondary index positions.
const (
	databasesByID          = 0
	collectionsLiveByName  = 0
	segmentsByCollection   = 0
	segmentsLeasedDeadline = 1
	requestsBySeq          = 0
	// Live snapshots (pending or committed) by (database id, collection name, name,
	// collection id): lookups by name, for live and dropped collections alike.
	snapshotsLiveByName = 0
	// Every snapshot by (database id, collection name, id): a collection's snapshots in
	// creation order.
	snapshotsByCollection = 1
	// Pending and deleting snapshots by id: the leader's work list.
	snapshotsUnfinished = 2
	// Snapshots a policy took, by (policy id, collection id, id): its retention's list.
	snapshotsByPolicy = 3
	// Pending and copying restore jobs by id.
	restoreJobsRunning = 0
	// Restore jobs by (target collection id, id).
	restoreJobsByTarget = 1
	// Restore leases by (deadline, id).
	restoreLeasesByDeadline = 0
	// Dropped segments by (dropped at, id): what GC reclaims, oldest first.
	segmentsDropped = 2
	// Live segments holding a dropped index build, by id.
	segmentsWithDroppedBuilds = 3
)

func newTables() *tables {
	t := &tables{
		meta: &fsmpb.Meta{},
		databases: newTable(func(a, b *fsmpb.Database) bool { return a.Name < b.Name },
			secondaryIndex(func(a, b *fsmpb.Database) bool { return a.Id < b.Id }, nil)),
		collections: newTable(func(a, b *fsmpb.Collection) bool { return a.Id < b.Id },
			secondaryIndex(lessLiveName, isLiveCollection)).
			withNested(partitionIDs).withNested(indexIDs),
		segments: newTable(func(a, b *fsmpb.Segment) bool { return a.Id < b.Id },
			secondaryIndex(lessCollectionSegment, nil),
			secondaryIndex(lessLeased, holdsLease),
			secondaryIndex(lessDropped, isDropped),
			secondaryIndex(func(a, b *fsmpb.Segment) bool { return a.Id < b.Id }, hasDroppedBuild)).
			withNested(buildIDs),
		nodes: newTable(func(a, b *fsmpb.Node) bool { return a.Id < b.Id }),
		requests: newTable(func(a, b *fsmpb.RequestRecord) bool { return a.RequestId < b.RequestId },
			secondaryIndex(func(a, b *fsmpb.RequestRecord) bool { return a.Seq < b.Seq }, nil)),
		snapshots: newTable(func(a, b *fsmpb.Snapshot) bool { return a.Id < b.Id },
			secondaryIndex(lessSnapshotName, isLiveSnapshot),
			secondaryIndex(lessSnapshotCollection, nil),
			secondaryIndex(func(a, b *fsmpb.Snapshot) bool { return a.Id < b.Id }, isUnfinishedSnapshot),
			secondaryIndex(lessPolicySnapshot, func(s *fsmpb.Snapshot) bool { return s.PolicyId != 0 })),
		segmentPins:  btree.NewG(btreeDegree, lessPin),
		buildPins:    btree.NewG(btreeDegree, lessPin),
		segmentSizes: btree.NewG(btreeDegree, lessListSize),
		buildSizes:   btree.NewG(btreeDegree, lessListSize),
		restoreJobs: newTable(func(a, b *fsmpb.RestoreJob) bool { return a.Id < b.Id },
			secondaryIndex(func(a, b *fsmpb.RestoreJob) bool { return a.Id < b.Id }, isRunningRestore),
			secondaryIndex(func(a, b *fsmpb.RestoreJob) bool {
				if a.TargetCollectionId != b.TargetCollectionId {
					return a.TargetCollectionId < b.TargetCollectionId
				}
				return a.Id < b.Id
			}, nil)),
		restorePlans: newTable(func(a, b *fsmpb.RestorePlan) bool {
			if a.JobId != b.JobId {
				return a.JobId < b.JobId
			}
			return a.Part < b.Part
		}),
		restoreLeases: newTable(func(a, b *fsmpb.RestoreLease) bool { return a.Id < b.Id },
			secondaryIndex(func(a, b *fsmpb.RestoreLease) bool {
				if a.Deadline != b.Deadline {
					return a.Deadline < b.Deadline
				}
				return a.Id < b.Id
			}, nil)),
		restorePool:     btree.NewG(btreeDegree, lessTaskRange),
		restoreAttempts: btree.NewG(btreeDegree, lessTaskAttempts),
		leasedTasks:     btree.NewG(btreeDegree, lessLeasedTask),
		gcReports:       newTable(func(a, b *fsmpb.GCReport) bool { return a.Id < b.Id }),
		repositories:    newTable(func(a, b *fsmpb.Repository) bool { return a.Name < b.Name }),
		policies:        newTable(func(a, b *fsmpb.Policy) bool { return a.Name < b.Name }),
	}
	t.setTallies()
	return t
}

func lessPolicySnapshot(a, b *fsmpb.Snapshot) bool {
	if a.PolicyId != b.PolicyId {
		return a.PolicyId < b.PolicyId
	}
	if a.CollectionId != b.CollectionId {
		return a.CollectionId < b.CollectionId
	}
	return a.Id < b.Id
}

func isDropped(s *fsmpb.Segment) bool { return s.State == fsmpb.SegmentState_SEGMENT_STATE_DROPPED }

func lessDropped(a, b *fsmpb.Segment) bool {
	if a.DroppedAt != b.DroppedAt {
		return a.DroppedAt < b.DroppedAt
	}
	return a.Id < b.Id
}

// hasDroppedBuild: a segment that is not dropped but holds a dropped index build.
func hasDroppedBuild(s *fsmpb.Segment) bool {
	if isDropped(s) {
		return false
	}
	for _, b := range s.IndexBuilds {
		if b.State == fsmpb.BuildState_BUILD_STATE_DROPPED {
			return true
		}
	}
	return false
}

// isRunningRestore: a job (of any kind) that has not ended.
func isRunningRestore(j *fsmpb.RestoreJob) bool {
	switch j.State {
	case fsmpb.RestoreState_RESTORE_STATE_PENDING, fsmpb.RestoreState_RESTORE_STATE_COPYING,
		fsmpb.RestoreState_RESTORE_STATE_PLANNING, fsmpb.RestoreState_RESTORE_STATE_FINALIZING:
		return true
	}
	return false
}

// clone returns an independent copy-on-write copy of a state that is only read from
// now on (a committed one): its tables are borrowed (table.borrow) and clone their
// trees under mu at their first write; the bare trees are cloned now. Call it with mu
// held; the copies may be used concurrently afterwards.
func (t *tables) clone(mu *sync.Mutex) *tables {
	return &tables{
		meta:         t.meta,
		databases:    t.databases.borrow(mu),
		collections:  t.collections.borrow(mu),
		segments:     t.segments.borrow(mu),
		nodes:        t.nodes.borrow(mu),
		requests:     t.requests.borrow(mu),
		snapshots:    t.snapshots.borrow(mu),
		segmentPins:  t.segmentPins.Clone(),
		buildPins:    t.buildPins.Clone(),
		segmentSizes: t.segmentSizes.Clone(),
		buildSizes:   t.buildSizes.Clone(),

		restoreJobs:     t.restoreJobs.borrow(mu),
		restorePlans:    t.restorePlans.borrow(mu),
		restoreLeases:   t.restoreLeases.borrow(mu),
		restorePool:     t.restorePool.Clone(),
		restoreAttempts: t.restoreAttempts.Clone(),
		leasedTasks:     t.leasedTasks.Clone(),
		gcReports:       t.gcReports.borrow(mu),
		repositories:    t.repositories.borrow(mu),
		policies:        t.policies.borrow(mu),
	}
}

func isLiveCollection(c *fsmpb.Collection) bool {
	return c.State != fsmpb.CollectionState_COLLECTION_STATE_DROPPED
}

func lessLiveName(a, b *fsmpb.Collection) bool {
	if a.DatabaseId != b.DatabaseId {
		return a.DatabaseId < b.DatabaseId
	}
	return a.Name < b.Name
}

func lessCollectionSegment(a, b *fsmpb.Segment) bool {
	if a.CollectionId != b.CollectionId {
		return a.CollectionId < b.CollectionId
	}
	return a.Id < b.Id
}

func holdsLease(s *fsmpb.Segment) bool {
	_, ok := earliestLease(s)
	return ok
}

func lessLeased(a, b *fsmpb.Segment) bool {
	da, _ := earliestLease(a)
	db, _ := earliestLease(b)
	if da != db {
		return da < db
	}
	return a.Id < b.Id
}

// earliestLease is the soonest lease deadline a segment holds: its own while allocated,
// or that of an allocated index build.
func earliestLease(s *fsmpb.Segment) (int64, bool) {
	if s.RestoreJobId != 0 {
		return 0, false // a restore's target: its job protects it
	}
	var deadline int64
	found := false
	if s.State == fsmpb.SegmentState_SEGMENT_STATE_ALLOCATED {
		deadline, found = s.LeaseDeadline, true
	}
	for _, b := range s.IndexBuilds {
		if b.State == fsmpb.BuildState_BUILD_STATE_ALLOCATED && (!found || b.LeaseDeadline < deadline) {
			deadline, found = b.LeaseDeadline, true
		}
	}
	return deadline, found
}

func isLiveSnapshot(s *fsmpb.Snapshot) bool {
	return s.State == fsmpb.SnapshotState_SNAPSHOT_STATE_PENDING || s.State == fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED
}

func isUnfinishedSnapshot(s *fsmpb.Snapshot) bool {
	return s.State == fsmpb.SnapshotState_SNAPSHOT_STATE_PENDING || s.State == fsmpb.SnapshotState_SNAPSHOT_STATE_DELETING
}

func lessSnapshotName(a, b *fsmpb.Snapshot) bool {
	if a.DatabaseId != b.DatabaseId {
		return a.DatabaseId < b.DatabaseId
	}
	if a.CollectionName != b.CollectionName {
		return a.CollectionName < b.CollectionName
	}
	if a.Name != b.Name {
		return a.Name < b.Name
	}
	return a.CollectionId < b.CollectionId
}

func lessSnapshotCollection(a, b *fsmpb.Snapshot) bool {
	if a.DatabaseId != b.DatabaseId {
		return a.DatabaseId < b.DatabaseId
	}
	if a.CollectionName != b.CollectionName {
		return a.CollectionName < b.CollectionName
	}
	return a.Id < b.Id
}

// setPins adds (or, with add false, removes) a snapshot's pins, and keeps the sizes of
// the pinned objects: an object's size is recorded with its first pin and forgotten
// with its last (its file list never changes while pinned).
func (t *tables) setPins(s *fsmpb.Snapshot, add bool) {
	for _, id := range s.SegmentIds {
		t.setPin(t.segmentPins, t.segmentSizes, pin{id: id, snapshot: s.Id}, add, t.segmentFileList)
	}
	for _, id := range s.BuildIds {
		t.setPin(t.buildPins, t.buildSizes, pin{id: id, snapshot: s.Id}, add, t.buildFileList)
	}
}

func (t *tables) setPin(pins *btree.BTreeG[pin], sizes *btree.BTreeG[listSize], p pin, add bool, fileList func(uint64) []byte) {
	if add {
		if !sizes.Has(listSize{id: p.id}) {
			sizes.ReplaceOrInsert(sizeOfList(p.id, fileList(p.id)))
		}
		pins.ReplaceOrInsert(p)
		return
	}
	pins.Delete(p)
	if len(pinnedBy(pins, p.id)) == 0 {
		sizes.Delete(listSize{id: p.id})
	}
}

// rebuildPins derives the reference index (and the pinned objects' sizes) from the
// snapshots table; the segments must be loaded first.
func (t *tables) rebuildPins() {
	t.segmentPins = btree.NewG(btreeDegree, lessPin)
	t.buildPins = btree.NewG(btreeDegree, lessPin)
	t.segmentSizes = btree.NewG(btreeDegree, lessListSize)
	t.buildSizes = btree.NewG(btreeDegree, lessListSize)
	t.snapshots.each(func(s *fsmpb.Snapshot) bool {
		if isLiveSnapshot(s) {
			t.setPins(s, true)
		}
		return true
	})
}

// rebuildLeasedTasks derives which lease holds each task from the leases table.
func (t *tables) rebuildLeasedTasks() {
	t.leasedTasks = btree.NewG(btreeDegree, lessLeasedTask)
	t.restoreLeases.each(func(l *fsmpb.RestoreLease) bool {
		for _, task := range l.Tasks {
			t.leasedTasks.ReplaceOrInsert(leasedTask{job: l.JobId, task: task, lease: l.Id})
		}
		return true
	})
}
