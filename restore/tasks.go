package restore

import (
	"fmt"
	"maps"
	"slices"
	"sort"

	"github.com/snapkeep/snapkeep/fsm"
	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/rpc/internalv1"
)

// taskResolver turns a restore job's task numbers into what an executor needs: the
// source and destination keys, the size and the CRC-32C. A task is a file of a planned
// segment (or of one of its builds), numbered as fsm.RestorePlan describes; the keys
// are the file list's entry built with the source's and with the target's ids, in the
// collections' key layout (a restore keeps the snapshot's layout).
type taskResolver struct {
	view             *fsm.View
	keys             layout.Root
	job              *fsmpb.RestoreJob
	plan             *fsmpb.RestorePlan
	srcKeys, dstKeys fsm.FileKeys

	// The last file list decoded, since tasks come in runs of one segment.
	cachedBlobOwner string
	cachedFiles     []filelist.Entry
}

func newTaskResolver(view *fsm.View, keys layout.Root, job *fsmpb.RestoreJob) (*taskResolver, error) {
	plan, err := view.RestorePlan(job.Id)
	if err != nil {
		return nil, err
	}
	return &taskResolver{view: view, keys: keys, job: job, plan: plan,
		srcKeys: view.KeysOfCollection(job.SourceCollectionId), dstKeys: view.KeysOfCollection(job.TargetCollectionId)}, nil
}

// owner is a run of tasks that share one file list: a segment's files or a build's.
type owner struct {
	first, files uint32
	blob         []byte
	// src and dst build a file's root-relative source and target keys from its entry.
	src, dst func(rel string) string
	id       string // cache key
}

// ownerOf finds the file list task t belongs to.
func (r *taskResolver) ownerOf(t uint32) (owner, error) {
	segs := r.plan.Segments
	i := sort.Search(len(segs), func(i int) bool { return segs[i].FirstTask > t }) - 1
	if i < 0 {
		return owner{}, fmt.Errorf("restore job %d has no task %d", r.job.Id, t)
	}
	ps := segs[i]
	src, err := r.view.Segment(ps.SourceId)
	if err != nil {
		return owner{}, err
	}
	dst, err := r.view.Segment(ps.TargetId)
	if err != nil {
		return owner{}, err
	}
	if t < ps.FirstTask+ps.Files {
		return owner{first: ps.FirstTask, files: ps.Files, blob: src.Files,
			src: func(rel string) string { return r.srcKeys.Segment(src, rel) },
			dst: func(rel string) string { return r.dstKeys.Segment(dst, rel) },
			id:  fmt.Sprint("s", ps.SourceId)}, nil
	}
	for _, pb := range ps.Builds {
		if t >= pb.FirstTask && t < pb.FirstTask+pb.Files {
			for _, b := range src.IndexBuilds {
				if b.BuildId == pb.SourceBuildId {
					return owner{first: pb.FirstTask, files: pb.Files, blob: b.Files,
						src: func(rel string) string { return r.srcKeys.Build(src, pb.SourceBuildId, rel) },
						dst: func(rel string) string { return r.dstKeys.Build(dst, pb.TargetBuildId, rel) },
						id:  fmt.Sprint("b", pb.SourceBuildId)}, nil
				}
			}
		}
	}
	return owner{}, fmt.Errorf("restore job %d has no task %d", r.job.Id, t)
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
		return nil, fmt.Errorf("restore job %d: %s lists %d files, the plan %d", r.job.Id, o.id, len(files), o.files)
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
		Src:    r.keys.Full(o.src(f.Key)),
		Dst:    r.keys.Full(o.dst(f.Key)),
		Size:   f.Size,
		Crc32C: f.CRC32C,
	}, nil
}

// sourceIndex is what the pre-check looks up: every task's source key, size and
// number, found from a listed key by parsing its owner.
type sourceIndex struct {
	r *taskResolver
	// segments maps a source segment id to its planned entry.
	segments map[uint64]*fsmpb.PlannedSegment
}

func newSourceIndex(r *taskResolver) *sourceIndex {
	idx := &sourceIndex{r: r, segments: make(map[uint64]*fsmpb.PlannedSegment, len(r.plan.Segments))}
	for _, ps := range r.plan.Segments {
		idx.segments[ps.SourceId] = ps
	}
	return idx
}

// Len is the number of tasks.
func (s *sourceIndex) Len() int { return int(s.r.job.FilesTotal) }

// Lookup finds a listed (full) key among the tasks' sources.
func (s *sourceIndex) Lookup(key string) (int, uint64, bool) {
	rel, ok := s.r.keys.Relative(key)
	if !ok {
		return 0, 0, false
	}
	own, ok := layout.Parse(rel)
	if !ok || own.Layout != s.r.srcKeys.Layout().ID() || (own.Collection != 0 && own.Collection != s.r.job.SourceCollectionId) {
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
	if i == len(files) || files[i].Key != own.Rel || o.src(own.Rel) != rel {
		return 0, 0, false
	}
	return int(o.first) + i, files[i].Size, true
}

// ListPrefixes are the root-relative prefixes to list to find every source (see
// layout.ListPrefix), sorted.
func (s *sourceIndex) ListPrefixes() ([]string, error) {
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
			seen[layout.ListPrefix(o.src(f.Key))] = true
		}
		t = o.first + o.files
	}
	return slices.Sorted(maps.Keys(seen)), nil
}

// Key is task i's source key.
func (s *sourceIndex) Key(i int) string {
	t, err := s.r.task(uint32(i))
	if err != nil {
		return fmt.Sprintf("<task %d: %v>", i, err)
	}
	return t.Src
}
