// Package adopt registers a Milvus collection's existing files with snapkeep without
// copying or rewriting anything. Scan lists the bucket and plans; Apply creates the
// collection in the Milvus layout with Milvus's ids and registers the plan. A dry run
// is Scan alone: the same plan, nothing registered.
//
// What Scan lists:
//
//   - the collection's insert_log/N/, delta_log/N/, stats_log/N/ and bm25_stats/N/
//     prefixes: the segments (every segment with at least one such log is adopted),
//     grouped by the partition and segment ids in the keys;
//   - text_log/, json_key_index_log/ and json_stats/ whole: text and JSON key index
//     files start with their build id, not the collection's, so the directories are
//     listed entirely and filtered by the collection id parsed from each key. In
//     snapkeep's Milvus layout they are files of their segment;
//   - index_files/ whole: index builds (index_files/<build>/<version>/<partition>/
//     <segment>/<file...>) name no collection; the builds of adopted segments are
//     kept.
//
// Listing whole directories costs one LIST request per 1,000 objects of every
// collection in the bucket, not only the adopted one's. The directories are listed
// concurrently; index_files/ pages wait (at most 64) until the segments are known.
//
// The index a build belongs to is not in its key (Milvus keeps it in etcd's
// segment-index records): the caller gives the collection's index definitions with
// Milvus's index ids (Options.Indexes) and the build → index mapping
// (Options.BuildIndex). When exactly one index is given, a build of a segment that
// has no other build belongs to it. Any other build is reported in Plan.Unmapped with
// the reason and not registered — never guessed, never fatal. A segment holds one
// current build per index: two builds of a segment mapped to one index are both
// reported.
//
// Builds are registered ready with their files, in the same RegisterSegments entry as
// their segment (or, for a segment an earlier run registered, in entries of builds
// alone), Batch segments and BuildBatch builds per entry, all or nothing per entry.
// Re-running an interrupted adoption registers only what is missing: segments not yet
// registered and builds their segments do not hold yet.
//
// What the keys do not say stays empty until the caller supplies it: partition names
// (ids become "p<id>", the lowest id "_default" unless told otherwise), row counts,
// the segments' and binlogs' Milvus metadata (level, channel, positions, entries,
// timestamps), index parameters (unless given with the index), the field of an index
// file. CRC-32C is taken from the listing when the server reports one; with
// Options.Checksum every adopted file is read (rate-limited, ChecksumConcurrency
// reads at a time) and its CRC-32C recorded; otherwise it stays 0 and restores verify
// such files by reading source and copy. Every file listed is adopted: files of
// superseded text/JSON key index builds or older index versions still in the bucket
// cannot be told from the current ones by their keys (Plan.Warnings names them).
package adopt

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/sync/errgroup"

	"github.com/snapkeep/snapkeep/client"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/objstore"
	"github.com/snapkeep/snapkeep/rpc/snapkeepv1"
)

// DefaultBatch is how many segments one RegisterSegments call carries.
const DefaultBatch = 500

// DefaultBuildBatch is how many index builds one RegisterSegments call carries at
// most (the server takes up to 4,000).
const DefaultBuildBatch = 2000

// Index is one index definition of the adopted collection, with Milvus's index id.
type Index struct {
	ID      uint64            `json:"id"`
	Name    string            `json:"name"`
	FieldID int64             `json:"field_id"`
	Params  map[string]string `json:"params,omitempty"`
}

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
	// BuildBatch is the most index builds per registration call (0:
	// DefaultBuildBatch).
	BuildBatch int

	// Indexes are the collection's index definitions, created with Milvus's ids.
	Indexes []Index
	// BuildIndex maps a build id to the id of its index (one of Indexes).
	BuildIndex map[uint64]uint64

	// Checksum reads every adopted file and records its CRC-32C.
	Checksum bool
	// ChecksumRate bounds the bytes read per second by Checksum (0: unbounded).
	ChecksumRate float64
	// ChecksumConcurrency bounds the reads in flight (0: DefaultChecksumConcurrency).
	ChecksumConcurrency int
	// Clock paces the checksum reads (nil: the real clock).
	Clock Clock
}

// Partition is one partition of a plan.
type Partition struct {
	ID       uint64 `json:"id"`
	Name     string `json:"name"`
	Segments int    `json:"segments"`
	// Files and Bytes count the segments' files (logs, text and JSON key index files).
	Files int    `json:"files"`
	Bytes uint64 `json:"bytes"`
	// Builds counts the index builds to register.
	Builds int `json:"builds"`
}

// Unmapped is an index build of an adopted segment that is not registered: its index
// is unknown or ambiguous.
type Unmapped struct {
	BuildID   uint64 `json:"build_id"`
	SegmentID uint64 `json:"segment_id"`
	Files     int    `json:"files"`
	Bytes     uint64 `json:"bytes"`
	Reason    string `json:"reason"`
}

// Plan is what Scan found and Apply registers.
type Plan struct {
	CollectionID uint64
	// Partitions in registration order ("_default" first).
	Partitions []Partition
	// Indexes are the index definitions to create (Options.Indexes).
	Indexes []Index
	// Segments sorted by id, their files sorted by key (full keys).
	Segments []*snapkeepv1.RegisteredSegment
	// Builds are the index builds to register, sorted by segment and build id, their
	// files sorted by key (full keys).
	Builds []*snapkeepv1.RegisteredBuild
	// Unmapped are the builds of adopted segments left out, with the reason, sorted by
	// segment and build id.
	Unmapped []Unmapped
	// Files and Bytes count the segments' files; BuildFiles and BuildBytes the
	// builds'.
	Files      int
	Bytes      uint64
	BuildFiles int
	BuildBytes uint64
	// Checksummed counts the files read for their CRC-32C (Options.Checksum).
	Checksummed int
	// Listed counts the objects listed; Skipped names the keys under the listed
	// prefixes of the collection (or of its segments' builds) that are not adopted,
	// with the reason (reported, never fatal); Warnings says what was adopted but
	// deserves a look.
	Listed   int
	Skipped  []string
	Warnings []string
}

// segmentDir is a directory of segment files.
type segmentDir struct {
	name string
	kind fsmpb.FileKind
	// lead is the number of path components between the directory and the
	// collection id (build, version, format); 0: the collection id comes first and
	// only the collection's prefix is listed.
	lead int
}

var segmentDirs = []segmentDir{
	{"insert_log", fsmpb.FileKind_FILE_KIND_INSERT, 0},
	{"delta_log", fsmpb.FileKind_FILE_KIND_DELTA, 0},
	{"stats_log", fsmpb.FileKind_FILE_KIND_STATS, 0},
	{"bm25_stats", fsmpb.FileKind_FILE_KIND_BM25, 0},
	{"text_log", fsmpb.FileKind_FILE_KIND_TEXT_INDEX, 2},
	{"json_key_index_log", fsmpb.FileKind_FILE_KIND_JSON_KEY_INDEX, 2},
	{"json_stats", fsmpb.FileKind_FILE_KIND_JSON_KEY_INDEX, 3},
}

const indexDir = "index_files"

// segFile is a listed file of a segment of the collection.
type segFile struct {
	partition, segment uint64
	file               *snapkeepv1.File
	// For a text or JSON key index file: what it indexes ("text_log field 102") and
	// its build and version ("44/1", with json_stats' format first).
	indexes, build string
}

// dirListing is what one directory's listing found.
type dirListing struct {
	files   []segFile
	skipped []string
	listed  int
}

// Scan lists the collection's keys and plans the adoption. Keys that are not a file
// of the collection in Milvus's shape are reported in Skipped; builds whose index is
// not known in Unmapped.
func Scan(ctx context.Context, store objstore.Store, opts Options) (*Plan, error) {
	if opts.CollectionID == 0 {
		return nil, errors.New("adopt: no collection id given")
	}
	indexes, err := checkIndexes(opts)
	if err != nil {
		return nil, err
	}
	root := strings.Trim(opts.Root, "/")
	full := func(rel string) string {
		if root == "" {
			return rel
		}
		return root + "/" + rel
	}
	relOf := func(key string) string {
		if root == "" {
			return key
		}
		return strings.TrimPrefix(key, root+"/")
	}
	coll := strconv.FormatUint(opts.CollectionID, 10)

	// The segment directories, each listed by its own goroutine; merged in order.
	found := make([]dirListing, len(segmentDirs))
	// index_files/ is listed meanwhile; its pages wait (at most indexPagesAhead of
	// them) until the adopted segments are known.
	lctx, cancel := context.WithCancel(ctx)
	defer cancel()
	pages := make(chan []objstore.ObjectInfo, indexPagesAhead)
	ig, ictx := errgroup.WithContext(lctx)
	ig.Go(func() error {
		defer close(pages)
		return listPages(ictx, store, full(indexDir+"/"), func(objs []objstore.ObjectInfo) error {
			select {
			case pages <- objs:
				return nil
			case <-ictx.Done():
				return ictx.Err()
			}
		})
	})
	g, gctx := errgroup.WithContext(lctx)
	for i, d := range segmentDirs {
		prefix := full(d.name + "/")
		if d.lead == 0 {
			prefix = full(d.name + "/" + coll + "/")
		}
		g.Go(func() error {
			out := &found[i]
			return listAll(gctx, store, prefix, func(obj objstore.ObjectInfo) {
				out.listed++
				rel := relOf(obj.Key)
				own, ok := layout.Milvus.Parse(rel)
				if !ok || own.Build != 0 {
					out.skipped = append(out.skipped, obj.Key+": not a Milvus key of "+d.name+"/")
					return
				}
				if own.Collection != opts.CollectionID {
					if d.lead == 0 {
						out.skipped = append(out.skipped, obj.Key+": not a segment file of collection "+coll)
					}
					return // another collection's text or JSON key index file
				}
				f, build, err := fileOf(d, own, obj)
				if err == nil {
					ref := layout.Segment{Collection: own.Collection, Partition: own.Partition, Segment: own.Segment}
					_, err = layout.Milvus.SegmentFileRel(ref, &fsmpb.File{Key: rel, Kind: fsmpb.FileKind(f.Kind), FieldId: f.FieldId})
				}
				if err != nil {
					out.skipped = append(out.skipped, obj.Key+": "+err.Error())
					return
				}
				sf := segFile{partition: own.Partition, segment: own.Segment, file: f, build: build}
				if build != "" {
					sf.indexes = d.name + " field " + strconv.FormatInt(f.FieldId, 10)
				}
				out.files = append(out.files, sf)
			})
		})
	}
	if err := g.Wait(); err != nil {
		cancel()
		_ = ig.Wait()
		return nil, err
	}

	plan := &Plan{CollectionID: opts.CollectionID, Indexes: indexes}
	segs := map[uint64]*snapkeepv1.RegisteredSegment{}
	groups := map[uint64]map[string][]string{} // segment → "dir field" → builds/versions
	for i, d := range segmentDirs {
		l := found[i]
		plan.Listed += l.listed
		plan.Skipped = append(plan.Skipped, l.skipped...)
		for _, sf := range l.files {
			s := segs[sf.segment]
			switch {
			case s == nil && d.lead == 0:
				s = &snapkeepv1.RegisteredSegment{SegmentId: sf.segment, PartitionId: sf.partition}
				segs[sf.segment] = s
			case s == nil:
				plan.Skipped = append(plan.Skipped, fmt.Sprintf("%s: segment %d has no insert, delta, stats or BM25 log under collection %s's prefixes: not adopted",
					sf.file.Key, sf.segment, coll))
				continue
			case s.PartitionId != sf.partition:
				plan.Skipped = append(plan.Skipped, fmt.Sprintf("%s: names partition %d, but segment %d's logs are in partition %d",
					sf.file.Key, sf.partition, sf.segment, s.PartitionId))
				continue
			}
			s.Files = append(s.Files, sf.file)
			if sf.build != "" {
				if groups[sf.segment] == nil {
					groups[sf.segment] = map[string][]string{}
				}
				if bs := groups[sf.segment][sf.indexes]; !slices.Contains(bs, sf.build) {
					groups[sf.segment][sf.indexes] = append(bs, sf.build)
				}
			}
		}
	}
	for _, id := range slices.Sorted(maps.Keys(groups)) {
		for _, field := range slices.Sorted(maps.Keys(groups[id])) {
			if vs := groups[id][field]; len(vs) > 1 {
				plan.Warnings = append(plan.Warnings, fmt.Sprintf("segment %d has %s files of %d builds (build/version %s); all are adopted: the keys do not say which one Milvus uses",
					id, field, len(vs), strings.Join(vs, ", ")))
			}
		}
	}

	builds := scanBuilds(pages, full(indexDir+"/"), relOf, segs, plan)
	if err := ig.Wait(); err != nil {
		return nil, err
	}
	mapBuilds(builds, opts, indexes, plan)

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
	for _, b := range plan.Builds {
		parts[segs[b.SegmentId].PartitionId].Builds++
		for _, f := range b.Files {
			plan.BuildFiles++
			plan.BuildBytes += f.Size
		}
	}
	slices.SortFunc(plan.Segments, func(a, b *snapkeepv1.RegisteredSegment) int { return cmp.Compare(a.SegmentId, b.SegmentId) })
	def := opts.DefaultPartition
	if def == 0 && len(parts) > 0 {
		def = slices.Min(slices.Collect(maps.Keys(parts)))
	}
	if def != 0 && parts[def] == nil {
		parts[def] = &Partition{ID: def}
	}
	for _, id := range slices.Sorted(maps.Keys(parts)) {
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
	if opts.Checksum {
		if err := checksum(ctx, store, plan, opts); err != nil {
			return nil, err
		}
	}
	return plan, nil
}

// checkIndexes checks the caller's index definitions and build mapping.
func checkIndexes(opts Options) ([]Index, error) {
	byID := map[uint64]bool{}
	byName := map[string]bool{}
	out := make([]Index, 0, len(opts.Indexes))
	for _, ix := range opts.Indexes {
		switch {
		case ix.ID == 0:
			return nil, fmt.Errorf("adopt: index %q has no id: give Milvus's index id", ix.Name)
		case ix.Name == "":
			return nil, fmt.Errorf("adopt: index %d has no name", ix.ID)
		case byID[ix.ID]:
			return nil, fmt.Errorf("adopt: index id %d is given twice", ix.ID)
		case byName[ix.Name]:
			return nil, fmt.Errorf("adopt: index name %q is given twice", ix.Name)
		}
		byID[ix.ID], byName[ix.Name] = true, true
		ix.Params = maps.Clone(ix.Params)
		out = append(out, ix)
	}
	for _, build := range slices.Sorted(maps.Keys(opts.BuildIndex)) {
		if index := opts.BuildIndex[build]; !byID[index] {
			return nil, fmt.Errorf("adopt: build %d is mapped to index %d, which is not one of the indexes given", build, index)
		}
	}
	return out, nil
}

// indexPagesAhead bounds the pages of index_files/ listed before the adopted
// segments are known (memory: about 1,000 keys a page).
const indexPagesAhead = 64

// listAll lists every object under prefix.
func listAll(ctx context.Context, store objstore.Store, prefix string, fn func(objstore.ObjectInfo)) error {
	return listPages(ctx, store, prefix, func(objs []objstore.ObjectInfo) error {
		for _, obj := range objs {
			fn(obj)
		}
		return nil
	})
}

// listPages lists every object under prefix, a page at a time.
func listPages(ctx context.Context, store objstore.Store, prefix string, fn func([]objstore.ObjectInfo) error) error {
	token := ""
	for {
		page, err := store.List(ctx, prefix, token, 1000)
		if err != nil {
			return fmt.Errorf("adopt: list %s: %w", prefix, err)
		}
		if err := fn(page.Objects); err != nil {
			return err
		}
		if page.NextToken == "" || page.NextToken == token {
			return nil
		}
		token = page.NextToken
	}
}

// fileOf describes a listed object of a segment directory: the field (and for logs
// the log id) from its key, the size (and CRC-32C, when listed) from the listing. For
// a text or JSON key index file build is what precedes the collection id in its key
// (build and version; json_stats: format, build and version).
func fileOf(d segmentDir, own layout.Owner, obj objstore.ObjectInfo) (f *snapkeepv1.File, build string, err error) {
	if obj.Size < 0 {
		return nil, "", errors.New("the listing gives no size")
	}
	f = &snapkeepv1.File{Key: obj.Key, Kind: snapkeepv1.FileKind(d.kind), Size: uint64(obj.Size)}
	if obj.HasCRC32C { // some servers list checksums: keep them
		f.Crc32C = obj.CRC32C
	}
	// own.Rel is "<dir>/<lead...>/<tail>": the tail is "<field>/<log>", "<log>" or
	// "<field>/<file...>".
	parts := strings.Split(own.Rel, "/")
	if len(parts) < 2+d.lead {
		return nil, "", errors.New("the key ends before its file name")
	}
	tail := parts[1+d.lead:]
	if d.lead > 0 {
		if len(tail) < 2 {
			return nil, "", fmt.Errorf("a %s key ends in <field>/<file>", d.name)
		}
		if f.FieldId, err = strconv.ParseInt(tail[0], 10, 64); err != nil {
			return nil, "", fmt.Errorf("field %q is not a number", tail[0])
		}
		return f, strings.Join(parts[1:1+d.lead], "/"), nil
	}
	last := tail[len(tail)-1]
	if f.LogId, err = strconv.ParseInt(last, 10, 64); err != nil {
		return nil, "", fmt.Errorf("log id %q is not a number", last)
	}
	if d.kind != fsmpb.FileKind_FILE_KIND_DELTA && len(tail) == 2 {
		if f.FieldId, err = strconv.ParseInt(tail[0], 10, 64); err != nil {
			return nil, "", fmt.Errorf("field %q is not a number", tail[0])
		}
	}
	return f, "", nil
}

// listedBuild is an index build found under index_files/.
type listedBuild struct {
	id                 uint64
	partition, segment uint64
	files              []*snapkeepv1.File
	versions           []uint64
}

// scanBuilds reads the pages of index_files/ and returns the builds of the adopted
// segments.
// A build's keys are contiguous in the listing (they start with its id), so one build
// is gathered at a time: one whose keys name several segments, another partition than
// its segment's, or a key that is not a build file in Milvus's shape, is skipped.
func scanBuilds(pages <-chan []objstore.ObjectInfo, prefix string, relOf func(string) string,
	segs map[uint64]*snapkeepv1.RegisteredSegment, plan *Plan) []*listedBuild {
	var out []*listedBuild
	var cur *listedBuild
	var curBad []string       // the current build's keys that cannot be kept
	var curOthers [][2]uint64 // other (partition, segment) pairs its keys name
	finish := func() {
		b := cur
		cur = nil
		if b == nil {
			return
		}
		adopted := segs[b.segment] != nil
		for _, o := range curOthers {
			adopted = adopted || segs[o[1]] != nil
		}
		if !adopted {
			return // another collection's build
		}
		bp := strings.TrimSuffix(prefix, indexDir+"/") + layout.Milvus.BuildPrefix(layout.Build{Build: b.id})
		switch {
		case len(curOthers) > 0:
			names := []string{fmt.Sprintf("%d/%d", b.partition, b.segment)}
			for _, o := range curOthers {
				names = append(names, fmt.Sprintf("%d/%d", o[0], o[1]))
			}
			plan.Skipped = append(plan.Skipped, fmt.Sprintf("%s: index build %d's files name several partition/segment pairs (%s): not adopted",
				bp, b.id, strings.Join(names, ", ")))
			return
		case segs[b.segment].PartitionId != b.partition:
			plan.Skipped = append(plan.Skipped, fmt.Sprintf("%s: index build %d names partition %d, but segment %d's logs are in partition %d: not adopted",
				bp, b.id, b.partition, b.segment, segs[b.segment].PartitionId))
			return
		case len(curBad) > 0:
			for _, s := range curBad {
				plan.Skipped = append(plan.Skipped, fmt.Sprintf("%s (index build %d is not adopted)", s, b.id))
			}
			return
		}
		if len(b.versions) > 1 {
			vs := make([]string, len(b.versions))
			for i, v := range b.versions {
				vs[i] = strconv.FormatUint(v, 10)
			}
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("index build %d of segment %d has files of versions %s; all are adopted: the keys do not say which one Milvus uses",
				b.id, b.segment, strings.Join(vs, ", ")))
		}
		out = append(out, b)
	}
	add := func(obj objstore.ObjectInfo) {
		plan.Listed++
		rel := relOf(obj.Key)
		own, ok := layout.Milvus.Parse(rel)
		if !ok || own.Build == 0 {
			plan.Skipped = append(plan.Skipped, obj.Key+": not a Milvus index file key (index_files/<build>/<version>/<partition>/<segment>/<file>)")
			return
		}
		if cur == nil || cur.id != own.Build {
			finish()
			cur = &listedBuild{id: own.Build, partition: own.Partition, segment: own.Segment}
			curBad, curOthers = nil, nil
		}
		if own.Partition != cur.partition || own.Segment != cur.segment {
			if !slices.Contains(curOthers, [2]uint64{own.Partition, own.Segment}) {
				curOthers = append(curOthers, [2]uint64{own.Partition, own.Segment})
			}
			return
		}
		f := &snapkeepv1.File{Key: obj.Key, Kind: snapkeepv1.FileKind_FILE_KIND_INDEX, Size: uint64(max(obj.Size, 0))}
		if obj.HasCRC32C {
			f.Crc32C = obj.CRC32C
		}
		ref := layout.Build{Segment: layout.Segment{Partition: own.Partition, Segment: own.Segment}, Build: own.Build}
		kept, err := layout.Milvus.BuildFileRel(ref, &fsmpb.File{Key: rel, Kind: fsmpb.FileKind_FILE_KIND_INDEX})
		if err == nil && obj.Size < 0 {
			err = errors.New("the listing gives no size")
		}
		if err != nil {
			curBad = append(curBad, obj.Key+": "+err.Error())
			return
		}
		v, _, _ := strings.Cut(kept, "/") // "<version>/<file...>"
		if n, _ := strconv.ParseUint(v, 10, 64); !slices.Contains(cur.versions, n) {
			cur.versions = append(cur.versions, n)
		}
		cur.files = append(cur.files, f)
	}
	for objs := range pages {
		for _, obj := range objs {
			add(obj)
		}
	}
	finish()
	return out
}

// mapBuilds gives each listed build its index (Options.BuildIndex, or the one index
// given when its segment has no other build) and fills plan.Builds and plan.Unmapped.
func mapBuilds(builds []*listedBuild, opts Options, indexes []Index, plan *Plan) {
	bySegment := map[uint64][]*listedBuild{}
	for _, b := range builds {
		bySegment[b.segment] = append(bySegment[b.segment], b)
	}
	found := map[uint64]bool{}
	for _, seg := range slices.Sorted(maps.Keys(bySegment)) {
		list := bySegment[seg]
		slices.SortFunc(list, func(a, b *listedBuild) int { return cmp.Compare(a.id, b.id) })
		index := map[uint64]uint64{}
		reason := map[uint64]string{}
		for _, b := range list {
			found[b.id] = true
			if ix, ok := opts.BuildIndex[b.id]; ok {
				index[b.id] = ix
				continue
			}
			switch {
			case len(indexes) == 0:
				reason[b.id] = "no index is given: the index a build belongs to is not in its key (give the collection's indexes and the build map)"
			case len(indexes) == 1 && len(list) == 1:
				index[b.id] = indexes[0].ID
			case len(indexes) == 1:
				reason[b.id] = fmt.Sprintf("segment %d has %d index builds (%s) and the build map does not name this one: which is index %q's cannot be told",
					seg, len(list), buildIDs(list), indexes[0].Name)
			default:
				reason[b.id] = fmt.Sprintf("the build map does not name it and %d indexes are given", len(indexes))
			}
		}
		// A segment holds one current build per index.
		byIndex := map[uint64][]uint64{}
		for _, b := range list {
			if ix, ok := index[b.id]; ok {
				byIndex[ix] = append(byIndex[ix], b.id)
			}
		}
		for ix, ids := range byIndex {
			if len(ids) < 2 {
				continue
			}
			for _, id := range ids {
				delete(index, id)
				reason[id] = fmt.Sprintf("segment %d's builds %s all map to index %q: a segment has one current build per index; map only the current one",
					seg, joinIDs(ids), nameOf(indexes, ix))
			}
		}
		for _, b := range list {
			slices.SortFunc(b.files, func(x, y *snapkeepv1.File) int { return cmp.Compare(x.Key, y.Key) })
			if ix, ok := index[b.id]; ok {
				plan.Builds = append(plan.Builds, &snapkeepv1.RegisteredBuild{SegmentId: seg, BuildId: b.id, IndexId: ix, Files: b.files})
				continue
			}
			u := Unmapped{BuildID: b.id, SegmentID: seg, Files: len(b.files), Reason: reason[b.id]}
			for _, f := range b.files {
				u.Bytes += f.Size
			}
			plan.Unmapped = append(plan.Unmapped, u)
		}
	}
	for _, build := range slices.Sorted(maps.Keys(opts.BuildIndex)) {
		if !found[build] {
			plan.Warnings = append(plan.Warnings, fmt.Sprintf("build %d of the build map was not found under %s/ for a segment of collection %d",
				build, indexDir, opts.CollectionID))
		}
	}
}

func buildIDs(list []*listedBuild) string {
	ids := make([]uint64, len(list))
	for i, b := range list {
		ids[i] = b.id
	}
	return joinIDs(ids)
}

func joinIDs(ids []uint64) string {
	s := make([]string, len(ids))
	for i, id := range ids {
		s[i] = strconv.FormatUint(id, 10)
	}
	return strings.Join(s, ", ")
}

func nameOf(indexes []Index, id uint64) string {
	for _, ix := range indexes {
		if ix.ID == id {
			return ix.Name
		}
	}
	return strconv.FormatUint(id, 10)
}

// Result is what Apply registered.
type Result struct {
	Collection *snapkeepv1.Collection
	// Segments, Files and Bytes count the segments (and their files) this call
	// registered; Builds, BuildFiles and BuildBytes the index builds. Resumed and
	// ResumedBuilds count what an earlier, interrupted adoption had registered
	// already; IndexesCreated the indexes this call created.
	Segments       int
	Files          int
	Bytes          uint64
	Builds         int
	BuildFiles     int
	BuildBytes     uint64
	Resumed        int
	ResumedBuilds  int
	IndexesCreated int
}

// Apply creates the collection (Milvus layout, the plan's collection and partition
// ids), its indexes (the plan's, with their ids) and registers the plan's segments
// with their builds, Batch segments and at most BuildBatch builds at a time. An
// adoption interrupted part-way (the process killed, a node lost) is resumed by
// running it again: a collection of that name with the plan's id and the Milvus layout
// is taken as the earlier run's, and what it registered already is skipped (builds
// of segments registered before are registered on their own). Another collection of
// that name, an index of another id or field under a planned index's name, or a
// planned build registered with another index is refused before anything is
// registered.
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
	var registered map[uint64]map[uint64]uint64 // segment → build → index
	if errors.Is(err, client.ErrAlreadyExists) {
		coll, registered, err = resumable(ctx, cl, plan, opts)
	}
	if err != nil {
		return nil, fmt.Errorf("adopt: create collection %q: %w", opts.Name, err)
	}
	res := &Result{Collection: coll}
	if err := checkResumedBuilds(plan, registered); err != nil {
		return nil, err
	}
	if coll, err = createIndexes(ctx, cl, coll, plan, opts, res); err != nil {
		return res, err
	}
	res.Collection = coll

	// What is left: segments not registered, with their builds; builds of segments
	// registered before that they do not hold yet.
	buildsOf := map[uint64][]*snapkeepv1.RegisteredBuild{}
	var loose []*snapkeepv1.RegisteredBuild
	for _, b := range plan.Builds {
		held, done := registered[b.SegmentId]
		switch {
		case !done:
			buildsOf[b.SegmentId] = append(buildsOf[b.SegmentId], b)
		case held[b.BuildId] != 0:
			res.ResumedBuilds++
		default:
			loose = append(loose, b)
		}
	}
	todo := make([]*snapkeepv1.RegisteredSegment, 0, len(plan.Segments))
	for _, s := range plan.Segments {
		if _, done := registered[s.SegmentId]; !done {
			todo = append(todo, s)
		}
	}
	res.Resumed = len(plan.Segments) - len(todo)
	batch, buildBatch := cmp.Or(opts.Batch, DefaultBatch), cmp.Or(opts.BuildBatch, DefaultBuildBatch)
	for start := 0; start < len(todo); {
		var chunk []*snapkeepv1.RegisteredSegment
		var builds []*snapkeepv1.RegisteredBuild
		for _, s := range todo[start:] {
			bs := buildsOf[s.SegmentId]
			if len(chunk) == batch || (len(chunk) > 0 && len(builds)+len(bs) > buildBatch) {
				break
			}
			chunk = append(chunk, s)
			builds = append(builds, bs...)
		}
		if _, err := cl.RegisterSegmentsWithBuilds(ctx, opts.Database, opts.Name, chunk, builds); err != nil {
			return res, fmt.Errorf("adopt: register segments %d to %d of %d (run the adoption again to resume): %w",
				start+1, start+len(chunk), len(todo), err)
		}
		start += len(chunk)
		res.Segments += len(chunk)
		for _, s := range chunk {
			for _, f := range s.Files {
				res.Files++
				res.Bytes += f.Size
			}
		}
		res.countBuilds(builds)
	}
	for start := 0; start < len(loose); start += buildBatch {
		chunk := loose[start:min(start+buildBatch, len(loose))]
		if _, err := cl.RegisterSegmentsWithBuilds(ctx, opts.Database, opts.Name, nil, chunk); err != nil {
			return res, fmt.Errorf("adopt: register index builds %d to %d of %d of segments registered before (run the adoption again to resume): %w",
				start+1, start+len(chunk), len(loose), err)
		}
		res.countBuilds(chunk)
	}
	return res, nil
}

func (r *Result) countBuilds(builds []*snapkeepv1.RegisteredBuild) {
	r.Builds += len(builds)
	for _, b := range builds {
		for _, f := range b.Files {
			r.BuildFiles++
			r.BuildBytes += f.Size
		}
	}
}

// createIndexes creates the plan's indexes the collection lacks; one it has must have
// the same id and field.
func createIndexes(ctx context.Context, cl *client.Client, coll *snapkeepv1.Collection, plan *Plan, opts Options, res *Result) (*snapkeepv1.Collection, error) {
	for _, ix := range plan.Indexes {
		if i := slices.IndexFunc(coll.GetIndexes(), func(d *snapkeepv1.Index) bool { return d.GetName() == ix.Name || d.GetId() == ix.ID }); i >= 0 {
			d := coll.GetIndexes()[i]
			if d.GetName() != ix.Name || d.GetId() != ix.ID || d.GetFieldId() != ix.FieldID {
				return coll, fmt.Errorf("adopt: collection %q has index %q (id %d, field %d); the adoption's is %q (id %d, field %d)",
					opts.Name, d.GetName(), d.GetId(), d.GetFieldId(), ix.Name, ix.ID, ix.FieldID)
			}
			continue
		}
		next, err := cl.CreateIndex(ctx, client.NewCreateIndexOption(opts.Name, ix.Name, ix.FieldID).WithDatabase(opts.Database).
			WithID(ix.ID).WithParams(ix.Params))
		if err != nil {
			return coll, fmt.Errorf("adopt: create index %q (id %d) on %q (run the adoption again to resume): %w", ix.Name, ix.ID, opts.Name, err)
		}
		coll = next
		res.IndexesCreated++
	}
	return coll, nil
}

// checkResumedBuilds refuses a resumed adoption whose plan maps a build an earlier
// run registered to another index.
func checkResumedBuilds(plan *Plan, registered map[uint64]map[uint64]uint64) error {
	for _, b := range plan.Builds {
		if ix := registered[b.SegmentId][b.BuildId]; ix != 0 && ix != b.IndexId {
			return fmt.Errorf("adopt: index build %d of segment %d is registered with index %d; this adoption maps it to index %d: "+
				"drop the collection and adopt again, or map the build to index %d", b.BuildId, b.SegmentId, ix, b.IndexId, ix)
		}
	}
	return nil
}

// resumable checks that the existing collection of the adoption's name is an earlier
// run's (the plan's collection id, the Milvus layout, live) and returns its segments
// with the builds they hold (build → index; listed with files only when the plan
// has builds, the listing without files leaves builds out).
func resumable(ctx context.Context, cl *client.Client, plan *Plan, opts Options) (*snapkeepv1.Collection, map[uint64]map[uint64]uint64, error) {
	desc, err := cl.DescribeCollection(ctx, client.NewDescribeCollectionOption(opts.Name).WithDatabase(opts.Database))
	if err != nil {
		return nil, nil, err
	}
	c := desc.GetCollection()
	if c.GetId() != plan.CollectionID || c.GetLayout() != snapkeepv1.KeyLayout_KEY_LAYOUT_MILVUS ||
		c.GetState() != snapkeepv1.CollectionState_COLLECTION_STATE_ACTIVE {
		return nil, nil, fmt.Errorf("%w: collection %q exists (id %d, %s, %s) and is not an earlier adoption of Milvus collection %d",
			client.ErrAlreadyExists, opts.Name, c.GetId(), c.GetLayout(), c.GetState(), plan.CollectionID)
	}
	list := client.NewListSegmentsOption(opts.Name).WithDatabase(opts.Database)
	if len(plan.Builds) == 0 {
		list = list.WithoutFiles()
	}
	registered := map[uint64]map[uint64]uint64{}
	for seg, err := range cl.ListAllSegments(ctx, list) {
		if err != nil {
			return nil, nil, err
		}
		held := map[uint64]uint64{}
		for _, b := range seg.GetIndexBuilds() {
			held[b.GetBuildId()] = b.GetIndexId()
		}
		registered[seg.GetId()] = held
	}
	return c, registered, nil
}
