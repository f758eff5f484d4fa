package fsm

import (
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Collection snapshots: Begin captures and pins, Commit records the manifest,
// MarkDeleting releases the pins, Remove forgets the record.

// OwnedNamespaces are the root-relative prefixes under which every object is
// snapkeep's own: the snapkeep layout's collections and the manifests. The orphan scan
// lists only these: anything else under the root (a Milvus layout's files, another
// system's objects) belongs to whoever wrote it.
var OwnedNamespaces = []string{"collections/", "snapshots/"}

// ManifestKey is where a snapshot's manifest lives, relative to the storage root.
func ManifestKey(snapshotID uint64) string {
	return "snapshots/" + formatUint(snapshotID) + ".skm"
}

// ValidateSnapshotBegin checks what can be checked without the state.
func ValidateSnapshotBegin(cmd *fsmpb.SnapshotBegin) error {
	if cmd.Database != "" {
		if err := ValidateName("database", cmd.Database); err != nil {
			return err
		}
	}
	if err := ValidateName("collection", cmd.Collection); err != nil {
		return err
	}
	if err := ValidateSnapshotName(cmd.Name); err != nil {
		return err
	}
	if len(cmd.Description) > MaxDescriptionBytes {
		return invalidf("description of snapshot %q is %d bytes; the limit is %d", cmd.Name, len(cmd.Description), MaxDescriptionBytes)
	}
	if err := ValidateProperties("snapshot label", cmd.Labels); err != nil {
		return err
	}
	if cmd.MaxPerCollection == 0 || cmd.MaxPerCollection > MaxSnapshotsPerCollection {
		return invalidf("the per-collection snapshot limit must be 1–%d, not %d", MaxSnapshotsPerCollection, cmd.MaxPerCollection)
	}
	if cmd.PendingTimeout < minLease || cmd.PendingTimeout > MaxLease {
		return invalidf("the snapshot pending timeout must be between 1s and 168h")
	}
	return nil
}

func applySnapshotBegin(c *applyCtx, cmd *fsmpb.SnapshotBegin) (proto.Message, error) {
	if err := ValidateSnapshotBegin(cmd); err != nil {
		return nil, err
	}
	if _, ok := cmd.Labels[PolicyLabel]; ok {
		return nil, invalidf("the label %q marks snapshots a policy took; it cannot be set by hand", PolicyLabel)
	}
	coll, db, err := c.collection(cmd.Database, cmd.Collection)
	if err != nil {
		return nil, err
	}
	snap, err := c.beginSnapshot(db, coll, snapshotBeginArgs{
		name: cmd.Name, description: cmd.Description, labels: cmd.Labels,
		maxPerCollection: cmd.MaxPerCollection, pendingTimeout: cmd.PendingTimeout,
	})
	if err != nil {
		return nil, err
	}
	return snapshotResponse(snap), nil
}

// snapshotBeginArgs is what a new snapshot is given besides its collection.
type snapshotBeginArgs struct {
	name, description string
	labels            map[string]string
	maxPerCollection  uint32
	pendingTimeout    int64
	policyID          uint64 // the policy taking it, 0 on request
	due               int64
}

// beginSnapshot captures and pins a collection (validated arguments): SnapshotBegin's
// and a policy run's one path.
func (c *applyCtx) beginSnapshot(db *fsmpb.Database, coll *fsmpb.Collection, a snapshotBeginArgs) (*fsmpb.Snapshot, error) {
	if coll.State != fsmpb.CollectionState_COLLECTION_STATE_ACTIVE {
		return nil, preconditionf("collection %q is %s; only an active collection can be snapshotted", coll.Name, stateName(coll.State))
	}
	if s := c.liveSnapshot(db.Id, coll.Name, a.name, coll.Id); s != nil {
		return nil, existsf("snapshot %q already exists on collection %q (id %d, %s)", a.name, coll.Name, s.Id, snapshotStateName(s.State))
	}
	if n := c.countSnapshots(coll); n >= int(a.maxPerCollection) {
		return nil, exhaustedf("collection %q already has %d snapshots, the limit; drop some first", coll.Name, n)
	}

	id := c.nextID()
	snap := &fsmpb.Snapshot{
		Id:                    id,
		CollectionId:          coll.Id,
		DatabaseId:            db.Id,
		Name:                  a.name,
		State:                 fsmpb.SnapshotState_SNAPSHOT_STATE_PENDING,
		Description:           a.description,
		CollectionDescription: coll.Description,
		Layout:                coll.Layout,
		Labels:                a.labels,
		CapturedIndex:         c.index,
		CreatedAt:             c.now,
		PendingDeadline:       c.now + a.pendingTimeout,
		DatabaseName:          db.Name,
		CollectionName:        coll.Name,
		Schema:                coll.Schema,
		Properties:            coll.Properties,
		Partitions:            coll.Partitions,
		Indexes:               coll.Indexes,
		ManifestKey:           ManifestKey(id),
		Summary:               &fsmpb.SnapshotSummary{},
		PolicyId:              a.policyID,
		PolicyDue:             a.due,
	}
	// Capture: the flushed segments and their ready builds, at this log index.
	c.eachSegment(coll.Id, 0, func(s *fsmpb.Segment) bool {
		if s.State != fsmpb.SegmentState_SEGMENT_STATE_FLUSHED {
			return true
		}
		snap.SegmentIds = append(snap.SegmentIds, s.Id)
		snap.Summary.Segments++
		snap.Summary.Rows += s.RowCount
		for _, b := range s.IndexBuilds {
			if b.State == fsmpb.BuildState_BUILD_STATE_READY {
				snap.BuildIds = append(snap.BuildIds, b.BuildId)
			}
		}
		return true
	})
	slices.Sort(snap.BuildIds)
	snap.Summary.IndexBuilds = uint64(len(snap.BuildIds))
	c.t.snapshots.put(snap)
	c.t.setPins(snap, true)
	return snap, nil
}

// snapshotResponse strips the pinned id lists, which can be large, from a response.
func snapshotResponse(s *fsmpb.Snapshot) *fsmpb.SnapshotResponse {
	out := proto.CloneOf(s)
	out.SegmentIds, out.BuildIds = nil, nil
	return &fsmpb.SnapshotResponse{Snapshot: out}
}

func (c *applyCtx) snapshotByID(id uint64) (*fsmpb.Snapshot, error) {
	s, ok := c.t.snapshots.get(&fsmpb.Snapshot{Id: id})
	if !ok {
		return nil, notFoundf("snapshot %d not found", id)
	}
	return s, nil
}

func applySnapshotCommit(c *applyCtx, cmd *fsmpb.SnapshotCommit) (proto.Message, error) {
	s, err := c.snapshotByID(cmd.SnapshotId)
	if err != nil {
		return nil, err
	}
	if s.State != fsmpb.SnapshotState_SNAPSHOT_STATE_PENDING {
		return nil, preconditionf("snapshot %d is %s; only a pending snapshot is committed", s.Id, snapshotStateName(s.State))
	}
	if cmd.ManifestSize == 0 || cmd.Summary == nil {
		return nil, invalidf("snapshot %d: a commit needs the manifest's size, checksum and summary", s.Id)
	}
	if cmd.Summary.Segments != uint64(len(s.SegmentIds)) || cmd.Summary.IndexBuilds != uint64(len(s.BuildIds)) {
		return nil, invalidf("snapshot %d: the manifest holds %d segments and %d index builds, but %d and %d were captured",
			s.Id, cmd.Summary.Segments, cmd.Summary.IndexBuilds, len(s.SegmentIds), len(s.BuildIds))
	}
	next := proto.CloneOf(s)
	next.State = fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED
	next.CommittedAt = c.now
	next.ManifestSize = cmd.ManifestSize
	next.ManifestChecksum = cmd.ManifestChecksum
	next.Summary = cmd.Summary
	c.t.snapshots.put(next)
	c.policySnapshotEvent(next, true, "")
	return snapshotResponse(next), nil
}

func applySnapshotMarkDeleting(c *applyCtx, cmd *fsmpb.SnapshotMarkDeleting) (proto.Message, error) {
	s, err := c.snapshotByID(cmd.SnapshotId)
	if err != nil {
		return nil, err
	}
	if len(cmd.Reason) > MaxDescriptionBytes {
		return nil, invalidf("reason is %d bytes; the limit is %d", len(cmd.Reason), MaxDescriptionBytes)
	}
	next, err := c.markSnapshotDeleting(s, cmd.Reason)
	if err != nil {
		return nil, err
	}
	return snapshotResponse(next), nil
}

// markSnapshotDeleting is the drop path: it releases the pins of a snapshot nothing
// holds and no job reads. A DELETING snapshot is left as it is.
func (c *applyCtx) markSnapshotDeleting(s *fsmpb.Snapshot, reason string) (*fsmpb.Snapshot, error) {
	if s.State == fsmpb.SnapshotState_SNAPSHOT_STATE_DELETING {
		return s, nil
	}
	if h := activeHold(s, c.now); h != nil {
		if h.Until != 0 {
			return nil, preconditionf("snapshot %q is held until %s (hold %d: %s); nobody, admins included, can drop it before then",
				s.Name, fmtTime(h.Until), h.Id, h.Reason)
		}
		return nil, preconditionf("snapshot %q is held (hold %d: %s); remove the hold first", s.Name, h.Id, h.Reason)
	}
	if job := c.restoreReading(s.Id); job != nil {
		return nil, preconditionf("snapshot %q is being restored by job %d into collection %q; wait for the job to end or cancel it", s.Name, job.Id, job.TargetCollection)
	}
	if s.State == fsmpb.SnapshotState_SNAPSHOT_STATE_PENDING {
		c.policySnapshotEvent(s, false, reason)
	}
	next := proto.CloneOf(s)
	next.State = fsmpb.SnapshotState_SNAPSHOT_STATE_DELETING
	next.DeletingAt = c.now
	next.DeleteReason = reason
	c.t.setPins(s, false)
	c.t.snapshots.put(next)
	return next, nil
}

func applySnapshotRemove(c *applyCtx, cmd *fsmpb.SnapshotRemove) (proto.Message, error) {
	s, err := c.snapshotByID(cmd.SnapshotId)
	if err != nil {
		return nil, err
	}
	if s.State != fsmpb.SnapshotState_SNAPSHOT_STATE_DELETING {
		return nil, preconditionf("snapshot %d is %s; only a deleting snapshot is removed", s.Id, snapshotStateName(s.State))
	}
	c.t.snapshots.remove(s)
	return snapshotResponse(s), nil
}

// liveSnapshot finds a pending or committed snapshot by names and collection id.
func (r reader) liveSnapshot(dbID uint64, collection, name string, collectionID uint64) *fsmpb.Snapshot {
	s, ok := r.t.snapshots.secondary[snapshotsLiveByName].tree.Get(&fsmpb.Snapshot{DatabaseId: dbID, CollectionName: collection, Name: name, CollectionId: collectionID})
	if !ok {
		return nil
	}
	return s
}

// countSnapshots counts a collection's snapshots in any state.
func (r reader) countSnapshots(coll *fsmpb.Collection) int {
	n := 0
	r.eachSnapshotOf(coll.DatabaseId, coll.Name, 0, func(s *fsmpb.Snapshot) bool {
		if s.CollectionId == coll.Id {
			n++
		}
		return true
	})
	return n
}

// eachSnapshotOf visits the snapshots taken of collections with this name in this
// database (dropped predecessors included) with id > after, in creation order.
func (r reader) eachSnapshotOf(dbID uint64, collection string, after uint64, fn func(*fsmpb.Snapshot) bool) {
	r.t.snapshots.secondary[snapshotsByCollection].tree.AscendGreaterOrEqual(
		&fsmpb.Snapshot{DatabaseId: dbID, CollectionName: collection, Id: after + 1},
		func(s *fsmpb.Snapshot) bool {
			return s.DatabaseId == dbID && s.CollectionName == collection && fn(s)
		})
}

func snapshotStateName(s fsmpb.SnapshotState) string {
	return trimEnum(s.String(), "SNAPSHOT_STATE_")
}

func (r reader) snapshotByName(database, collection, name string) (*fsmpb.Snapshot, error) {
	db, err := r.database(database)
	if err != nil {
		return nil, err
	}
	if coll, _, err := r.collection(db.Name, collection); err == nil {
		if s := r.liveSnapshot(db.Id, collection, name, coll.Id); s != nil {
			return s, nil
		}
	}
	var found *fsmpb.Snapshot
	r.t.snapshots.secondary[snapshotsLiveByName].tree.AscendGreaterOrEqual(
		&fsmpb.Snapshot{DatabaseId: db.Id, CollectionName: collection, Name: name},
		func(s *fsmpb.Snapshot) bool {
			if s.DatabaseId != db.Id || s.CollectionName != collection || s.Name != name {
				return false
			}
			found = s // ascending collection id: the last is the newest
			return true
		})
	if found == nil {
		return nil, notFoundf("snapshot %q not found on collection %q in database %q", name, collection, db.Name)
	}
	return found, nil
}

// restoreReading is a running restore job of the snapshot, if any.
func (r reader) restoreReading(snapshotID uint64) *fsmpb.RestoreJob {
	var found *fsmpb.RestoreJob
	r.t.restoreJobs.secondary[restoreJobsRunning].tree.Ascend(func(j *fsmpb.RestoreJob) bool {
		if j.SnapshotId == snapshotID {
			found = j
			return false
		}
		return true
	})
	return found
}
