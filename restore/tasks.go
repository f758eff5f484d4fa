package restore

import (
	"fmt"
	"maps"
	"slices"
	"sort"
	"strings"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/manifest/repository"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
)

// taskResolver turns a job's task numbers into what an executor needs: the source and
// destination keys (full keys in their stores), the size and the CRC-32C. A task is a
// file of a planned segment (or of one of its builds), numbered as fsm.RestorePlan
// describes. Where the keys are depends on the job's kind:
//
//   - restore: the source segment's key and the target segment's, both in the
//     cluster's bucket, in the collections' key layout;
//   - export: the source segment's key in the cluster's bucket, and the repository's
//     data key of the same root-relative key under this cluster's id;
//   - repository restore: the repository's data key of the source segment's
//     root-relative key (built from the source ids the plan keeps) under the exporting
//     cluster's id, and the target segment's key in the cluster's bucket. The file
//     lists are the target segments' own (they came from the repository's manifest).
type taskResolver struct {
	view *fsm.View
	root layout.Root
	job  *fsmpb.RestoreJob
	// parts are the plan's non-empty parts in task order: searched in place, never
	// merged (a repository restore of a million segments has a thousand parts, and a
	// resolver is made per lease).
	parts   []*fsmpb.RestorePlan
	layout  layout.Layout
	dstKeys fsm.FileKeys
	repo    repository.Keys // exports and repository restores

	// The last owner found and file list decoded, since tasks come in runs of one
	// segment: a lease resolves each segment's keys, and decodes its list, once.
	cachedOwner     owner
	hasOwner        bool
	cachedBlobOwner string
	cachedFiles     []filelist.Entry
}

func newTaskResolver(view *fsm.View, root layout.Root, job *fsmpb.RestoreJob) (*taskResolver, error) {
	parts := view.RestorePlanParts(job.Id)
	if len(parts) == 0 && job.FilesTotal > 0 {
		return nil, fmt.Errorf("job %d has %d tasks and no plan", job.Id, job.FilesTotal)
	}
	r := &taskResolver{view: view, root: root, job: job, parts: parts}
	switch job.Kind {
	case fsmpb.JobKind_JOB_KIND_RESTORE:
		r.layout = view.KeysOfCollection(job.SourceCollectionId).Layout()
		r.dstKeys = view.KeysOfCollection(job.TargetCollectionId)
	case fsmpb.JobKind_JOB_KIND_EXPORT:
		r.layout = view.KeysOfCollection(job.SourceCollectionId).Layout()
	case fsmpb.JobKind_JOB_KIND_REPOSITORY_RESTORE:
		r.dstKeys = view.KeysOfCollection(job.TargetCollectionId)
		r.layout = r.dstKeys.Layout() // a restore keeps the snapshot's layout
	default:
		return nil, fmt.Errorf("job %d is of unknown kind %d", job.Id, job.Kind)
	}
	if job.Kind != fsmpb.JobKind_JOB_KIND_RESTORE {
		repo, err := view.Repository(job.Repository)
		if err != nil {
			return nil, err
		}
		r.repo = repository.NewKeys(repo.Prefix)
	}
	return r, nil
}

// owner is a run of tasks that share one file list: a segment's files or a build's.
type owner struct {
	first, files uint32
	blob         []byte
	// rel builds a file's root-relative source key from its entry; src and dst the
	// full keys in the source's and the destination's stores.
	rel, src, dst func(entry string) string
	id            string // cache key
}

// ownerOf finds the file list task t belongs to.
func (r *taskResolver) ownerOf(t uint32) (owner, error) {
	if o := r.cachedOwner; r.hasOwner && t >= o.first && t < o.first+o.files {
		return o, nil
	}
	o, err := r.findOwner(t)
	if err != nil {
		return owner{}, err
	}
	r.cachedOwner, r.hasOwner = o, true
	return o, nil
}

// findOwner finds the file list task t belongs to in the plan.
func (r *taskResolver) findOwner(t uint32) (owner, error) {
	// The last segment whose first task is at most t, in the last part that has one.
	p := sort.Search(len(r.parts), func(i int) bool { return r.parts[i].Segments[0].FirstTask > t }) - 1
	if p < 0 {
		return owner{}, fmt.Errorf("job %d has no task %d", r.job.Id, t)
	}
	segs := r.parts[p].Segments
	ps := segs[sort.Search(len(segs), func(i int) bool { return segs[i].FirstTask > t })-1]
	if t < ps.FirstTask+ps.Files {
		return r.segmentOwner(ps)
	}
	for _, pb := range ps.Builds {
		if t >= pb.FirstTask && t < pb.FirstTask+pb.Files {
			return r.buildOwner(ps, pb)
		}
	}
	return owner{}, fmt.Errorf("job %d has no task %d", r.job.Id, t)
}

// sourceRef is the source segment as a layout builds its keys: from the catalog when
// the source is this cluster's, else from the ids the plan and job keep.
func (r *taskResolver) sourceRef(ps *fsmpb.PlannedSegment) (layout.Segment, *fsmpb.Segment, error) {
	if r.job.Kind == fsmpb.JobKind_JOB_KIND_REPOSITORY_RESTORE {
		return layout.Segment{Collection: r.job.SourceCollectionId, Partition: ps.SourcePartitionId, Segment: ps.SourceId}, nil, nil
	}
	src, err := r.view.Segment(ps.SourceId)
	if err != nil {
		return layout.Segment{}, nil, err
	}
	return layout.Segment{Collection: src.CollectionId, Partition: src.PartitionId, Segment: src.Id}, src, nil
}

// ends fills an owner's key builders from its root-relative source keys and, when
// there is a target, its target keys.
func (r *taskResolver) ends(o *owner, rel, target func(string) string) {
	o.rel = rel
	switch r.job.Kind {
	case fsmpb.JobKind_JOB_KIND_EXPORT:
		o.src = func(e string) string { return r.root.Full(rel(e)) }
		o.dst = func(e string) string { return r.repo.Data(r.job.SourceClusterId, rel(e)) }
	case fsmpb.JobKind_JOB_KIND_REPOSITORY_RESTORE:
		o.src = func(e string) string { return r.repo.Data(r.job.SourceClusterId, rel(e)) }
		o.dst = func(e string) string { return r.root.Full(target(e)) }
	default:
		o.src = func(e string) string { return r.root.Full(rel(e)) }
		o.dst = func(e string) string { return r.root.Full(target(e)) }
	}
}

func (r *taskResolver) segmentOwner(ps *fsmpb.PlannedSegment) (owner, error) {
	ref, src, err := r.sourceRef(ps)
	if err != nil {
		return owner{}, err
	}
	o := owner{first: ps.FirstTask, files: ps.Files, id: fmt.Sprint("s", ps.SourceId)}
	var target func(string) string
	if r.job.Kind != fsmpb.JobKind_JOB_KIND_EXPORT {
		dst, err := r.view.Segment(ps.TargetId)
		if err != nil {
			return owner{}, err
		}
		target = func(e string) string { return r.dstKeys.Segment(dst, e) }
		o.blob = dst.Files
	}
	if src != nil {
		o.blob = src.Files
	}
	r.ends(&o, func(e string) string { return r.layout.SegmentFileKey(ref, e) }, target)
	return o, nil
}

func (r *taskResolver) buildOwner(ps *fsmpb.PlannedSegment, pb *fsmpb.PlannedBuild) (owner, error) {
	ref, src, err := r.sourceRef(ps)
	if err != nil {
		return owner{}, err
	}
	o := owner{first: pb.FirstTask, files: pb.Files, id: fmt.Sprint("b", pb.SourceBuildId)}
	var target func(string) string
	if r.job.Kind != fsmpb.JobKind_JOB_KIND_EXPORT {
		dst, err := r.view.Segment(ps.TargetId)
		if err != nil {
			return owner{}, err
		}
		target = func(e string) string { return r.dstKeys.Build(dst, pb.TargetBuildId, e) }
		if src == nil {
			i := slices.IndexFunc(dst.IndexBuilds, func(b *fsmpb.IndexBuild) bool { return b.BuildId == pb.TargetBuildId })
			if i < 0 {
				return owner{}, fmt.Errorf("job %d: target build %d is missing", r.job.Id, pb.TargetBuildId)
			}
			o.blob = dst.IndexBuilds[i].Files
		}
	}
	if src != nil {
		i := slices.IndexFunc(src.IndexBuilds, func(b *fsmpb.IndexBuild) bool { return b.BuildId == pb.SourceBuildId })
		if i < 0 {
			return owner{}, fmt.Errorf("job %d: source build %d is missing", r.job.Id, pb.SourceBuildId)
		}
		o.blob = src.IndexBuilds[i].Files
	}
	bref := layout.Build{Segment: ref, Build: pb.SourceBuildId}
	r.ends(&o, func(e string) string { return r.layout.BuildFileKey(bref, e) }, target)
	return o, nil
}

func (r *taskResolver) files(o owner) ([]filelist.Entry, error) {
	if r.cachedBlobOwner == o.id {
		return r.cachedFiles, nil
	}
	files, err := filelist.Decode(o.blob)
	if err != nil {
		return nil, err
	}
	if uint32(len(files)) != o.files {
		return nil, fmt.Errorf("job %d: %s lists %d files, the plan %d", r.job.Id, o.id, len(files), o.files)
	}
	r.cachedBlobOwner, r.cachedFiles = o.id, files
	return files, nil
}

// task resolves one task.
func (r *taskResolver) task(t uint32) (*internalv1.RestoreTask, error) {
	o, err := r.ownerOf(t)
	if err != nil {
		return nil, err
	}
	files, err := r.files(o)
	if err != nil {
		return nil, err
	}
	f := files[t-o.first]
	return &internalv1.RestoreTask{
		Index:  t,
		Src:    o.src(f.Key),
		Dst:    o.dst(f.Key),
		Size:   f.Size,
		Crc32C: f.CRC32C,
	}, nil
}

// taskIndex is what a pre-check looks up: every task's key at one end (its source, or
// an export's destination), size and number, found from a listed key by parsing its
// owner.
type taskIndex struct {
	r *taskResolver
	// prefix is what the end's keys start with before the root-relative key: the
	// storage root's or the repository's data prefix of the cluster.
	prefix string
	// destination: the index is of the tasks' destinations (an export's repository).
	destination bool
	// segments maps a source segment id to its planned entry.
	segments map[uint64]*fsmpb.PlannedSegment
}

// newSourceIndex indexes the tasks' sources.
func newSourceIndex(r *taskResolver) *taskIndex {
	prefix := r.root.Full("")
	if r.job.Kind == fsmpb.JobKind_JOB_KIND_REPOSITORY_RESTORE {
		prefix = r.repo.DataPrefix(r.job.SourceClusterId)
	}
	return newTaskIndex(r, prefix, false)
}

// newRepositoryIndex indexes an export's destinations in the repository.
func newRepositoryIndex(r *taskResolver) *taskIndex {
	return newTaskIndex(r, r.repo.DataPrefix(r.job.SourceClusterId), true)
}

func newTaskIndex(r *taskResolver, prefix string, destination bool) *taskIndex {
	idx := &taskIndex{r: r, prefix: prefix, destination: destination, segments: map[uint64]*fsmpb.PlannedSegment{}}
	for _, part := range r.parts {
		for _, ps := range part.Segments {
			idx.segments[ps.SourceId] = ps
		}
	}
	return idx
}

// Prefix is what every key of this end starts with.
func (s *taskIndex) Prefix() string { return s.prefix }

// Len is the number of tasks.
func (s *taskIndex) Len() int { return int(s.r.job.FilesTotal) }

func (s *taskIndex) end(o owner) func(string) string {
	if s.destination {
		return o.dst
	}
	return o.src
}

// Lookup finds a listed (full) key among the tasks' keys at this end.
func (s *taskIndex) Lookup(key string) (int, uint64, bool) {
	rel, ok := strings.CutPrefix(key, s.prefix)
	if !ok {
		return 0, 0, false
	}
	own, ok := layout.Parse(rel)
	if !ok || own.Layout != s.r.layout.ID() || (own.Collection != 0 && own.Collection != s.r.job.SourceCollectionId) {
		return 0, 0, false
	}
	ps := s.segments[own.Segment]
	if ps == nil {
		return 0, 0, false
	}
	first, found := ps.FirstTask, own.Build == 0
	for _, pb := range ps.Builds {
		if pb.SourceBuildId == own.Build && pb.Files > 0 {
			first, found = pb.FirstTask, true
		}
	}
	if !found || (own.Build == 0 && ps.Files == 0) {
		return 0, 0, false
	}
	o, err := s.r.ownerOf(first)
	if err != nil {
		return 0, 0, false
	}
	files, err := s.r.files(o)
	if err != nil {
		return 0, 0, false
	}
	i := sort.Search(len(files), func(i int) bool { return files[i].Key >= own.Rel })
	// The entry's key rebuilt must be the listed key (the ids a key may leave out,
	// such as a Milvus index file's collection, are checked here).
	if i == len(files) || files[i].Key != own.Rel || s.end(o)(own.Rel) != key {
		return 0, 0, false
	}
	return int(o.first) + i, files[i].Size, true
}

// ListPrefixes are the prefixes, relative to Prefix, to list to find every task's key
// (see layout.ListPrefix), sorted.
func (s *taskIndex) ListPrefixes() ([]string, error) {
	seen := map[string]bool{}
	for t := uint32(0); t < uint32(s.r.job.FilesTotal); {
		o, err := s.r.ownerOf(t)
		if err != nil {
			return nil, err
		}
		files, err := s.r.files(o)
		if err != nil {
			return nil, err
		}
		for _, f := range files {
			seen[layout.ListPrefix(o.rel(f.Key))] = true
		}
		t = o.first + o.files
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// Key is task i's key at this end.
func (s *taskIndex) Key(i int) string {
	t, err := s.r.task(uint32(i))
	if err != nil {
		return fmt.Sprintf("<task %d: %v>", i, err)
	}
	if s.destination {
		return t.Dst
	}
	return t.Src
}

// EachDestination calls fn with the destination key of every task of a job (a
// repository GC spares what running exports write).
func EachDestination(view *fsm.View, root layout.Root, job *fsmpb.RestoreJob, fn func(key string)) error {
	r, err := newTaskResolver(view, root, job)
	if err != nil {
		return err
	}
	for t := uint32(0); t < uint32(job.FilesTotal); {
		o, err := r.ownerOf(t)
		if err != nil {
			return err
		}
		files, err := r.files(o)
		if err != nil {
			return err
		}
		for _, f := range files {
			fn(o.dst(f.Key))
		}
		t = o.first + o.files
	}
	return nil
}
