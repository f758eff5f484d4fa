package fsm

import (
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// reader holds the lookups shared by command handlers (on a transaction's tables) and
// by read views. Returned records are shared with the store: treat them as read-only.
type reader struct {
	t *tables
}

func (r reader) meta() *fsmpb.Meta { return r.t.meta }

func (r reader) database(name string) (*fsmpb.Database, error) {
	if name == "" {
		name = DefaultDatabase
	}
	db, ok := r.t.databases.get(&fsmpb.Database{Name: name})
	if !ok {
		return nil, notFoundf("database %q not found", name)
	}
	return db, nil
}

func (r reader) databaseByID(id uint64) (*fsmpb.Database, error) {
	db, ok := r.t.databases.secondary[databasesByID].tree.Get(&fsmpb.Database{Id: id})
	if !ok {
		return nil, notFoundf("database %d not found", id)
	}
	return db, nil
}

func (r reader) databases() []*fsmpb.Database {
	out := make([]*fsmpb.Database, 0, r.t.databases.len())
	r.t.databases.each(func(db *fsmpb.Database) bool {
		out = append(out, db)
		return true
	})
	return out
}

// collection finds a live collection by database and name.
func (r reader) collection(dbName, name string) (*fsmpb.Collection, *fsmpb.Database, error) {
	db, err := r.database(dbName)
	if err != nil {
		return nil, nil, err
	}
	c, ok := r.t.collections.secondary[collectionsLiveByName].tree.Get(&fsmpb.Collection{DatabaseId: db.Id, Name: name})
	if !ok {
		return nil, nil, notFoundf("collection %q not found in database %q", name, db.Name)
	}
	return c, db, nil
}

func (r reader) collectionByID(id uint64) (*fsmpb.Collection, error) {
	c, ok := r.t.collections.get(&fsmpb.Collection{Id: id})
	if !ok {
		return nil, notFoundf("collection %d not found", id)
	}
	return c, nil
}

// liveCollections lists a database's live collections in name order.
func (r reader) liveCollections(dbID uint64) []*fsmpb.Collection {
	var out []*fsmpb.Collection
	r.t.collections.secondary[collectionsLiveByName].tree.AscendGreaterOrEqual(&fsmpb.Collection{DatabaseId: dbID}, func(c *fsmpb.Collection) bool {
		if c.DatabaseId != dbID {
			return false
		}
		out = append(out, c)
		return true
	})
	return out
}

func (r reader) segment(id uint64) (*fsmpb.Segment, error) {
	s, ok := r.t.segments.get(&fsmpb.Segment{Id: id})
	if !ok {
		return nil, notFoundf("segment %d not found", id)
	}
	return s, nil
}

// eachSegment calls fn for the collection's segments with id > after, in id order,
// until fn returns false.
func (r reader) eachSegment(collectionID, after uint64, fn func(*fsmpb.Segment) bool) {
	if after == ^uint64(0) {
		return
	}
	r.t.segments.secondary[segmentsByCollection].tree.AscendGreaterOrEqual(&fsmpb.Segment{CollectionId: collectionID, Id: after + 1}, func(s *fsmpb.Segment) bool {
		return s.CollectionId == collectionID && fn(s)
	})
}

// eachLeased calls fn for segments holding a lease, earliest deadline first, until fn
// returns false.
func (r reader) eachLeased(fn func(*fsmpb.Segment) bool) {
	r.t.segments.secondary[segmentsLeasedDeadline].tree.Ascend(fn)
}

func (r reader) nodes() []*fsmpb.Node {
	var out []*fsmpb.Node
	r.t.nodes.each(func(n *fsmpb.Node) bool {
		out = append(out, n)
		return true
	})
	return out
}

func (r reader) request(id string) *fsmpb.RequestRecord {
	rec, ok := r.t.requests.get(&fsmpb.RequestRecord{RequestId: id})
	if !ok {
		return nil
	}
	return rec
}

// partitionByName finds a live partition of a collection.
func partitionByName(c *fsmpb.Collection, name string) *fsmpb.Partition {
	for _, p := range c.Partitions {
		if p.Name == name {
			return p
		}
	}
	return nil
}

func indexByName(c *fsmpb.Collection, name string) *fsmpb.IndexDef {
	for _, ix := range c.Indexes {
		if ix.Name == name {
			return ix
		}
	}
	return nil
}
