package fsm

import (
	"maps"
	"slices"

	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
)

// Databases, collections, partitions and index definitions.

func applyCreateDatabase(c *applyCtx, cmd *fsmpb.CreateDatabase) (proto.Message, error) {
	if err := ValidateName("database", cmd.Name); err != nil {
		return nil, err
	}
	if err := ValidateProperties("database property", cmd.Properties); err != nil {
		return nil, err
	}
	if _, err := c.database(cmd.Name); err == nil {
		return nil, existsf("database %q already exists", cmd.Name)
	}
	if n := len(c.databases()); n >= MaxDatabases {
		return nil, exhaustedf("cannot create database %q: the cluster already has %d databases, the limit", cmd.Name, n)
	}
	db := &fsmpb.Database{Id: c.nextID(), Name: cmd.Name, Properties: cmd.Properties, CreatedAt: c.now}
	c.t.databases.put(db)
	return &fsmpb.DatabaseResponse{Database: db}, nil
}

func applyDropDatabase(c *applyCtx, cmd *fsmpb.DropDatabase) (proto.Message, error) {
	if cmd.Name == DefaultDatabase || cmd.Name == "" {
		return nil, invalidf("the %q database cannot be dropped", DefaultDatabase)
	}
	db, err := c.database(cmd.Name)
	if err != nil {
		return nil, err
	}
	if live := c.liveCollections(db.Id); len(live) > 0 {
		return nil, preconditionf("database %q still has %d collections (%q, ...); drop them first", cmd.Name, len(live), live[0].Name)
	}
	c.t.databases.remove(db)
	return &fsmpb.DatabaseResponse{Database: db}, nil
}

func applyCreateCollection(c *applyCtx, cmd *fsmpb.CreateCollection) (proto.Message, error) {
	if err := ValidateCreateCollection(cmd); err != nil {
		return nil, err
	}
	db, err := c.database(cmd.Database)
	if err != nil {
		return nil, err
	}
	if _, _, err := c.collection(db.Name, cmd.Name); err == nil {
		return nil, existsf("collection %q already exists in database %q", cmd.Name, db.Name)
	}
	if n := len(c.liveCollections(db.Id)); n >= MaxCollectionsPerDB {
		return nil, exhaustedf("database %q already has %d collections, the limit", db.Name, n)
	}
	id, err := c.takeID(idCollection, cmd.CollectionId)
	if err != nil {
		return nil, err
	}
	coll := &fsmpb.Collection{
		Id:            id,
		DatabaseId:    db.Id,
		Name:          cmd.Name,
		State:         fsmpb.CollectionState_COLLECTION_STATE_ACTIVE,
		Schema:        cmd.Schema,
		Properties:    cmd.Properties,
		Description:   cmd.Description,
		CreatedAt:     c.now,
		Layout:        cmd.Layout,
		VerifyOnFlush: cmd.VerifyOnFlush,
	}
	for i, name := range append([]string{DefaultPartition}, cmd.Partitions...) {
		var want uint64
		if len(cmd.PartitionIds) > 0 {
			want = cmd.PartitionIds[i]
		}
		pid, err := c.takeID(idPartition, want)
		if err != nil {
			return nil, err
		}
		coll.Partitions = append(coll.Partitions, &fsmpb.Partition{Id: pid, Name: name, CreatedAt: c.now})
	}
	c.t.collections.put(coll)
	return &fsmpb.CollectionResponse{Collection: coll, Database: db.Name}, nil
}

// ValidateCreateCollection checks what can be checked without the state.
func ValidateCreateCollection(cmd *fsmpb.CreateCollection) error {
	if cmd.Database != "" {
		if err := ValidateName("database", cmd.Database); err != nil {
			return err
		}
	}
	if err := ValidateName("collection", cmd.Name); err != nil {
		return err
	}
	if _, err := layout.For(cmd.Layout); err != nil {
		return invalidf("collection %q: %v", cmd.Name, err)
	}
	if n := len(cmd.PartitionIds); n > 0 && n != 1+len(cmd.Partitions) {
		return invalidf("collection %q: %d partition ids given for %d partitions (\"_default\" first, then each one named)", cmd.Name, n, 1+len(cmd.Partitions))
	}
	ids := map[uint64]bool{}
	for _, id := range cmd.PartitionIds {
		if id != 0 && ids[id] {
			return invalidf("collection %q: partition id %d is given twice", cmd.Name, id)
		}
		ids[id] = true
	}
	if len(cmd.Schema) > MaxSchemaBytes {
		return invalidf("schema of collection %q is %d bytes; the limit is %d (1 MiB)", cmd.Name, len(cmd.Schema), MaxSchemaBytes)
	}
	if len(cmd.Description) > MaxDescriptionBytes {
		return invalidf("description of collection %q is %d bytes; the limit is %d", cmd.Name, len(cmd.Description), MaxDescriptionBytes)
	}
	if err := ValidateProperties("collection property", cmd.Properties); err != nil {
		return err
	}
	if len(cmd.Partitions)+1 > MaxPartitions {
		return exhaustedf("%d partitions requested; a collection holds at most %d", len(cmd.Partitions)+1, MaxPartitions)
	}
	seen := map[string]bool{DefaultPartition: true}
	for _, p := range cmd.Partitions {
		if err := ValidateName("partition", p); err != nil {
			return err
		}
		if seen[p] {
			return existsf("partition %q is named twice (\"_default\" always exists)", p)
		}
		seen[p] = true
	}
	return nil
}

// editableCollection returns a live collection that user commands may change: a
// collection being restored belongs to its restore job until the job ends, so
// changing its partitions, indexes or segments underneath the job is refused.
func (c *applyCtx) editableCollection(dbName, name string) (*fsmpb.Collection, *fsmpb.Database, error) {
	coll, db, err := c.collection(dbName, name)
	if err != nil {
		return nil, nil, err
	}
	if err := notRestoring(coll); err != nil {
		return nil, nil, err
	}
	return coll, db, nil
}

func notRestoring(coll *fsmpb.Collection) error {
	if coll.State == fsmpb.CollectionState_COLLECTION_STATE_RESTORING {
		return preconditionf("collection %q is being restored; wait for the restore to finish or cancel it", coll.Name)
	}
	return nil
}

// updateCollection stores a modified copy of a collection.
func (c *applyCtx) updateCollection(coll *fsmpb.Collection, edit func(*fsmpb.Collection) error) (*fsmpb.Collection, error) {
	next := proto.CloneOf(coll)
	if err := edit(next); err != nil {
		return nil, err
	}
	c.t.collections.put(next)
	return next, nil
}

func applyDropCollection(c *applyCtx, cmd *fsmpb.DropCollection) (proto.Message, error) {
	coll, db, err := c.collection(cmd.Database, cmd.Name)
	if err != nil {
		return nil, err
	}
	if coll.State == fsmpb.CollectionState_COLLECTION_STATE_RESTORING {
		return nil, preconditionf("collection %q is being restored; cancel the restore instead", cmd.Name)
	}
	next, err := c.updateCollection(coll, func(n *fsmpb.Collection) error {
		n.State = fsmpb.CollectionState_COLLECTION_STATE_DROPPED
		n.DroppedAt = c.now
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.dropSegmentsWhere(coll.Id, fsmpb.DropReason_DROP_REASON_COLLECTION_DROPPED, func(*fsmpb.Segment) bool { return true })
	return &fsmpb.CollectionResponse{Collection: next, Database: db.Name}, nil
}

func applyAlterCollection(c *applyCtx, cmd *fsmpb.AlterCollection) (proto.Message, error) {
	if err := ValidateProperties("collection property", cmd.SetProperties); err != nil {
		return nil, err
	}
	for _, k := range cmd.DeleteProperties {
		if err := validatePropertyKey("collection property", k); err != nil {
			return nil, err
		}
		if _, both := cmd.SetProperties[k]; both {
			return nil, invalidf("property %q is both set and deleted", k)
		}
	}
	coll, db, err := c.editableCollection(cmd.Database, cmd.Name)
	if err != nil {
		return nil, err
	}
	next, err := c.updateCollection(coll, func(n *fsmpb.Collection) error {
		if n.Properties == nil {
			n.Properties = map[string]string{}
		}
		maps.Copy(n.Properties, cmd.SetProperties)
		for _, k := range cmd.DeleteProperties {
			delete(n.Properties, k)
		}
		if len(n.Properties) > MaxProperties {
			return exhaustedf("collection %q would have %d properties; the limit is %d", cmd.Name, len(n.Properties), MaxProperties)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &fsmpb.CollectionResponse{Collection: next, Database: db.Name}, nil
}

func applyCreatePartition(c *applyCtx, cmd *fsmpb.CreatePartition) (proto.Message, error) {
	if err := ValidateName("partition", cmd.Name); err != nil {
		return nil, err
	}
	coll, db, err := c.editableCollection(cmd.Database, cmd.Collection)
	if err != nil {
		return nil, err
	}
	next, err := c.updateCollection(coll, func(n *fsmpb.Collection) error {
		if partitionByName(n, cmd.Name) != nil {
			return existsf("partition %q already exists in collection %q", cmd.Name, cmd.Collection)
		}
		if len(n.Partitions) >= MaxPartitions {
			return exhaustedf("collection %q already has %d partitions, the limit", cmd.Collection, len(n.Partitions))
		}
		id, err := c.takeID(idPartition, cmd.PartitionId)
		if err != nil {
			return err
		}
		n.Partitions = append(n.Partitions, &fsmpb.Partition{Id: id, Name: cmd.Name, CreatedAt: c.now})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &fsmpb.CollectionResponse{Collection: next, Database: db.Name}, nil
}

func applyDropPartition(c *applyCtx, cmd *fsmpb.DropPartition) (proto.Message, error) {
	if cmd.Name == DefaultPartition {
		return nil, invalidf("the %q partition cannot be dropped", DefaultPartition)
	}
	coll, db, err := c.editableCollection(cmd.Database, cmd.Collection)
	if err != nil {
		return nil, err
	}
	p := partitionByName(coll, cmd.Name)
	if p == nil {
		return nil, notFoundf("partition %q not found in collection %q", cmd.Name, cmd.Collection)
	}
	next, err := c.updateCollection(coll, func(n *fsmpb.Collection) error {
		n.Partitions = slices.DeleteFunc(n.Partitions, func(q *fsmpb.Partition) bool { return q.Id == p.Id })
		return nil
	})
	if err != nil {
		return nil, err
	}
	c.dropSegmentsWhere(coll.Id, fsmpb.DropReason_DROP_REASON_PARTITION_DROPPED, func(s *fsmpb.Segment) bool { return s.PartitionId == p.Id })
	return &fsmpb.CollectionResponse{Collection: next, Database: db.Name}, nil
}

func applyCreateIndex(c *applyCtx, cmd *fsmpb.CreateIndex) (proto.Message, error) {
	if err := ValidateName("index", cmd.Name); err != nil {
		return nil, err
	}
	if cmd.FieldId < 0 || cmd.FieldId > maxFieldID {
		return nil, invalidf("field id %d is out of range", cmd.FieldId)
	}
	if err := ValidateProperties("index parameter", cmd.Params); err != nil {
		return nil, err
	}
	coll, db, err := c.editableCollection(cmd.Database, cmd.Collection)
	if err != nil {
		return nil, err
	}
	next, err := c.updateCollection(coll, func(n *fsmpb.Collection) error {
		if indexByName(n, cmd.Name) != nil {
			return existsf("index %q already exists on collection %q", cmd.Name, cmd.Collection)
		}
		if len(n.Indexes) >= MaxIndexes {
			return exhaustedf("collection %q already has %d indexes, the limit", cmd.Collection, len(n.Indexes))
		}
		id, err := c.takeID(idIndex, cmd.IndexId)
		if err != nil {
			return err
		}
		n.Indexes = append(n.Indexes, &fsmpb.IndexDef{Id: id, Name: cmd.Name, FieldId: cmd.FieldId, Params: cmd.Params, CreatedAt: c.now})
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &fsmpb.CollectionResponse{Collection: next, Database: db.Name}, nil
}

func applyDropIndex(c *applyCtx, cmd *fsmpb.DropIndex) (proto.Message, error) {
	coll, db, err := c.editableCollection(cmd.Database, cmd.Collection)
	if err != nil {
		return nil, err
	}
	ix := indexByName(coll, cmd.Name)
	if ix == nil {
		return nil, notFoundf("index %q not found on collection %q", cmd.Name, cmd.Collection)
	}
	next, err := c.updateCollection(coll, func(n *fsmpb.Collection) error {
		n.Indexes = slices.DeleteFunc(n.Indexes, func(q *fsmpb.IndexDef) bool { return q.Id == ix.Id })
		return nil
	})
	if err != nil {
		return nil, err
	}
	// Every build of the index, in every segment, is dropped with it.
	var changed []*fsmpb.Segment
	c.eachSegment(coll.Id, 0, func(s *fsmpb.Segment) bool {
		if slices.ContainsFunc(s.IndexBuilds, func(b *fsmpb.IndexBuild) bool {
			return b.IndexId == ix.Id && b.State != fsmpb.BuildState_BUILD_STATE_DROPPED
		}) {
			changed = append(changed, s)
		}
		return true
	})
	for _, s := range changed {
		n := proto.CloneOf(s)
		for _, b := range n.IndexBuilds {
			if b.IndexId == ix.Id && b.State != fsmpb.BuildState_BUILD_STATE_DROPPED {
				dropBuild(b, c.now, fsmpb.DropReason_DROP_REASON_INDEX_DROPPED)
			}
		}
		c.t.segments.put(n)
	}
	return &fsmpb.CollectionResponse{Collection: next, Database: db.Name}, nil
}

func dropBuild(b *fsmpb.IndexBuild, now int64, reason fsmpb.DropReason) {
	b.State = fsmpb.BuildState_BUILD_STATE_DROPPED
	b.DroppedAt = now
	b.DropReason = reason
}

func applyRegisterNode(c *applyCtx, cmd *fsmpb.RegisterNode) (proto.Message, error) {
	n := cmd.Node
	if n == nil || n.Id == "" || len(n.Id) > MaxNodeIDBytes {
		return nil, invalidf("node id must be 1–%d bytes", MaxNodeIDBytes)
	}
	if len(n.RaftAddr) > maxAddressBytes || len(n.GrpcAddr) > maxAddressBytes || len(n.Version) > maxVersionBytes {
		return nil, invalidf("node %q: address or version too long", n.Id)
	}
	next := proto.CloneOf(n)
	next.UpdatedAt = c.now
	c.t.nodes.put(next)
	return &fsmpb.Empty{}, nil
}
