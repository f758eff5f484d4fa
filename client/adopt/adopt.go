// Package adopt registers a Milvus collection's existing files with snapkeep without
// copying or rewriting anything: Scan lists the collection's keys in the bucket
// (Milvus's insert_log, delta_log, stats_log and bm25_stats prefixes) and groups them
// into partitions and segments; Apply creates the collection in the Milvus layout with
// Milvus's ids and registers every segment as flushed, in batches. A dry run is Scan
// alone: the same plan, nothing registered.
//
// What the keys do not say stays empty until the caller supplies it: partition names
// (ids become "p<id>", the lowest id "_default" unless told otherwise), row counts,
// the segments' and binlogs' Milvus metadata, CRC-32C unless the listing carries it
// (0: restores verify such files by reading source and copy). Index files (index_files/, keyed by build id) and text
// and JSON key index files (text_log/, json_key_index_log/, json_stats/, keyed by build
// id first) are not adopted: their index definitions are not in the keys.
package adopt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// DefaultBatch is how many segments one RegisterSegments call carries.
const DefaultBatch = 500

// Options say what to adopt.
type Options struct {
	// Database ("" for "default") and Name of the collection to create.
	Database, Name string
	// CollectionID is the Milvus collection id whose keys are adopted.
	CollectionID uint64
	// Root is the storage root (Milvus's rootPath), without slashes at the ends.
	Root string
	// DefaultPartition is the partition id to call "_default" (0: the lowest found).
	DefaultPartition uint64
	// PartitionNames names partitions by id (others: "p<id>").
	PartitionNames map[uint64]string
	// Batch is the segments per registration call (0: DefaultBatch).
	Batch int
}

// Partition is one partition of a plan.
type Partition struct {
	ID       uint64
	Name     string
	Segments int
	Files    int
	Bytes    uint64
}

// Plan is what Scan found and Apply registers.
type Plan struct {
	CollectionID uint64
	// Partitions in registration order ("_default" first).
	Partitions []Partition
	// Segments sorted by id, their files sorted by key (full keys).
	Segments []*snapkeepv1.RegisteredSegment
	Files    int
	Bytes    uint64
	// Listed counts the objects listed; Skipped names the keys under the listed
	// prefixes that are not a segment file (reported, never fatal).
	Listed  int
	Skipped []string
}

// dirs are the listed prefixes: a segment's files whose keys start with the
// collection id.
var dirs = []struct {
	name string
	kind fsmpb.FileKind
}{
	{"insert_log", fsmpb.FileKind_FILE_KIND_INSERT},
	{"delta_log", fsmpb.FileKind_FILE_KIND_DELTA},
	{"stats_log", fsmpb.FileKind_FILE_KIND_STATS},
	{"bm25_stats", fsmpb.FileKind_FILE_KIND_BM25},
}

// Scan lists the collection's keys and plans the adoption. Keys that are not a
// segment file of the collection in Milvus's shape are reported in Skipped.
func Scan(ctx context.Context, store objstore.Store, opts Options) (*Plan, error) {
	if opts.CollectionID == 0 {
		return nil, errors.New("adopt: no collection id given")
	}
	root := strings.Trim(opts.Root, "/")
	full := func(rel string) string {
		if root == "" {
			return rel
		}
		return root + "/" + rel
	}
	type segKey struct{ partition, segment uint64 }
	segs := map[segKey]*snapkeepv1.RegisteredSegment{}
	plan := &Plan{CollectionID: opts.CollectionID}
	for _, d := range dirs {
		prefix := full(d.name + "/" + strconv.FormatUint(opts.CollectionID, 10) + "/")
		token := ""
		for {
			page, err := store.List(ctx, prefix, token, 1000)
			if err != nil {
				return nil, fmt.Errorf("adopt: list %s: %w", prefix, err)
			}
			plan.Listed += len(page.Objects)
			for _, obj := range page.Objects {
				rel := strings.TrimPrefix(strings.TrimPrefix(obj.Key, root), "/")
				own, ok := layout.Milvus.Parse(rel)
				if !ok || own.Collection != opts.CollectionID || own.Build != 0 {
					plan.Skipped = append(plan.Skipped, obj.Key+": not a segment file of collection "+strconv.FormatUint(opts.CollectionID, 10))
					continue
				}
				f, err := fileOf(d.kind, rel, obj)
				if err != nil {
					plan.Skipped = append(plan.Skipped, obj.Key+": "+err.Error())
					continue
				}
				ref := layout.Segment{Collection: own.Collection, Partition: own.Partition, Segment: own.Segment}
				if _, err := layout.Milvus.SegmentFileRel(ref, f); err != nil {
					plan.Skipped = append(plan.Skipped, obj.Key+": "+err.Error())
					continue
				}
				f.Key = obj.Key
				k := segKey{own.Partition, own.Segment}
				s := segs[k]
				if s == nil {
					s = &snapkeepv1.RegisteredSegment{SegmentId: own.Segment, PartitionId: own.Partition}
					segs[k] = s
				}
				pf := &snapkeepv1.File{Key: f.Key, Kind: snapkeepv1.FileKind(f.Kind), FieldId: f.FieldId, Size: f.Size, LogId: f.LogId}
				if obj.HasCRC32C { // some servers list checksums: keep them
					pf.Crc32C = obj.CRC32C
				}
				s.Files = append(s.Files, pf)
			}
			if page.NextToken == "" || page.NextToken == token {
				break
			}
			token = page.NextToken
		}
	}
	parts := map[uint64]*Partition{}
	for _, s := range segs {
		slices.SortFunc(s.Files, func(a, b *snapkeepv1.File) int { return cmp.Compare(a.Key, b.Key) })
		plan.Segments = append(plan.Segments, s)
		p := parts[s.PartitionId]
		if p == nil {
			p = &Partition{ID: s.PartitionId}
			parts[s.PartitionId] = p
		}
		p.Segments++
		for _, f := range s.Files {
			p.Files++
			p.Bytes += f.Size
			plan.Files++
			plan.Bytes += f.Size
		}
	}
	slices.SortFunc(plan.Segments, func(a, b *snapkeepv1.RegisteredSegment) int { return cmp.Compare(a.SegmentId, b.SegmentId) })
	def := opts.DefaultPartition
	if def == 0 && len(parts) > 0 {
		def = slices.Min(slicesKeys(parts))
	}
	if def != 0 && parts[def] == nil {
		parts[def] = &Partition{ID: def}
	}
	for _, id := range slicesKeys(parts) {
		p := parts[id]
		switch {
		case id == def:
			p.Name = "_default"
		case opts.PartitionNames[id] != "":
			p.Name = opts.PartitionNames[id]
		default:
			p.Name = "p" + strconv.FormatUint(id, 10)
		}
		if id == def {
			plan.Partitions = append([]Partition{*p}, plan.Partitions...)
		} else {
			plan.Partitions = append(plan.Partitions, *p)
		}
	}
	return plan, nil
}

func slicesKeys(m map[uint64]*Partition) []uint64 {
	out := make([]uint64, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	slices.Sort(out)
	return out
}

// fileOf describes a listed object as a file of kind: the field and log id from
// its key, the size from the listing.
func fileOf(kind fsmpb.FileKind, rel string, obj objstore.ObjectInfo) (*fsmpb.File, error) {
	if obj.Size < 0 {
		return nil, errors.New("the listing gives no size")
	}
	parts := strings.Split(rel, "/")
	f := &fsmpb.File{Key: rel, Kind: kind, Size: uint64(obj.Size)}
	logID, err := strconv.ParseInt(parts[len(parts)-1], 10, 64)
	if err != nil {
		return nil, fmt.Errorf("log id %q is not a number", parts[len(parts)-1])
	}
	f.LogId = logID
	if kind != fsmpb.FileKind_FILE_KIND_DELTA && len(parts) >= 2 {
		if f.FieldId, err = strconv.ParseInt(parts[len(parts)-2], 10, 64); err != nil {
			return nil, fmt.Errorf("field %q is not a number", parts[len(parts)-2])
		}
	}
	return f, nil
}

// Result is what Apply registered.
type Result struct {
	Collection *snapkeepv1.Collection
	// Segments, Files and Bytes count what this call registered; Resumed counts the
	// segments an earlier, interrupted adoption had registered already.
	Segments int
	Files    int
	Bytes    uint64
	Resumed  int
}

// Apply creates the collection (Milvus layout, the plan's collection and partition
// ids) and registers the plan's segments, Batch at a time. An adoption interrupted
// part-way (the process killed, a node lost) is resumed by running it again: a
// collection of that name with the plan's id and the Milvus layout is taken as the
// earlier run's, and the segments it registered already are skipped. Another
// collection of that name is refused.
func Apply(ctx context.Context, cl *client.Client, plan *Plan, opts Options) (*Result, error) {
	if len(plan.Partitions) == 0 {
		return nil, fmt.Errorf("adopt: no files of collection %d found", plan.CollectionID)
	}
	ids := make([]uint64, len(plan.Partitions))
	var names []string
	for i, p := range plan.Partitions {
		ids[i] = p.ID
		if i > 0 {
			names = append(names, p.Name)
		}
	}
	coll, err := cl.CreateCollection(ctx, client.NewCreateCollectionOption(opts.Name).WithDatabase(opts.Database).
		WithLayout(snapkeepv1.KeyLayout_KEY_LAYOUT_MILVUS).WithPartitions(names...).WithIDs(plan.CollectionID, ids...).
		WithDescription(fmt.Sprintf("adopted from Milvus collection %d", plan.CollectionID)))
	registered := map[uint64]bool{}
	if errors.Is(err, client.ErrAlreadyExists) {
		coll, err = resumable(ctx, cl, plan, opts, registered)
	}
	if err != nil {
		return nil, fmt.Errorf("adopt: create collection %q: %w", opts.Name, err)
	}
	todo := make([]*snapkeepv1.RegisteredSegment, 0, len(plan.Segments))
	for _, s := range plan.Segments {
		if !registered[s.SegmentId] {
			todo = append(todo, s)
		}
	}
	batch := cmp.Or(opts.Batch, DefaultBatch)
	res := &Result{Collection: coll, Resumed: len(plan.Segments) - len(todo)}
	for start := 0; start < len(todo); start += batch {
		chunk := todo[start:min(start+batch, len(todo))]
		if _, err := cl.RegisterSegments(ctx, opts.Database, opts.Name, chunk); err != nil {
			return res, fmt.Errorf("adopt: register segments %d to %d of %d (run the adoption again to resume): %w",
				start+1, start+len(chunk), len(todo), err)
		}
		res.Segments += len(chunk)
		for _, s := range chunk {
			for _, f := range s.Files {
				res.Files++
				res.Bytes += f.Size
			}
		}
	}
	return res, nil
}

// resumable checks that the existing collection of the adoption's name is an earlier
// run's (the plan's collection id, the Milvus layout, live) and fills registered with
// the segments it holds.
func resumable(ctx context.Context, cl *client.Client, plan *Plan, opts Options, registered map[uint64]bool) (*snapkeepv1.Collection, error) {
	desc, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption(opts.Name).WithDatabase(opts.Database))
	if err != nil {
		return nil, err
	}
	c := desc.GetCollection()
	if c.GetId() != plan.CollectionID || c.GetLayout() != snapkeepv1.KeyLayout_KEY_LAYOUT_MILVUS ||
		c.GetState() != snapkeepv1.CollectionState_COLLECTION_STATE_ACTIVE {
		return nil, fmt.Errorf("%w: collection %q exists (id %d, %s, %s) and is not an earlier adoption of Milvus collection %d",
			client.ErrAlreadyExists, opts.Name, c.GetId(), c.GetLayout(), c.GetState(), plan.CollectionID)
	}
	for seg, err := range cl.ListAllSegments(ctx, client.NewListSegmentsOption(opts.Name).WithDatabase(opts.Database).WithoutFiles()) {
		if err != nil {
			return nil, err
		}
		registered[seg.GetId()] = true
	}
	return c, nil
}
