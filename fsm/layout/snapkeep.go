package layout

import (
	"strings"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// snapkeepLayout is snapkeep's own layout: every segment owns one prefix,
//
//	collections/<collection>/segments/<segment>/<kind dir>/<anything>  a segment's file
//	collections/<collection>/segments/<segment>/index/<build>/<anything>  a build's file
//
// and a file list keeps the key below its owner's prefix.
type snapkeepLayout struct{}

func (snapkeepLayout) ID() fsmpb.KeyLayout { return fsmpb.KeyLayout_KEY_LAYOUT_SNAPKEEP }

// SegmentsPrefix is the prefix every segment of a collection sits under in the
// snapkeep layout.
func SegmentsPrefix(collectionID uint64) string {
	return "collections/" + u64(collectionID) + "/segments/"
}

// SnapkeepSegmentPrefix is the prefix every file of a segment sits under in the
// snapkeep layout.
func SnapkeepSegmentPrefix(collectionID, segmentID uint64) string {
	return SegmentsPrefix(collectionID) + u64(segmentID) + "/"
}

// SnapkeepBuildPrefix is the prefix every file of an index build sits under in the
// snapkeep layout.
func SnapkeepBuildPrefix(collectionID, segmentID, buildID uint64) string {
	return SnapkeepSegmentPrefix(collectionID, segmentID) + "index/" + u64(buildID) + "/"
}

// KindDir is, in the snapkeep layout, the first path component of a segment file's
// key below the segment's prefix: each kind of file has its own directory.
func KindDir(k fsmpb.FileKind) string {
	switch k {
	case fsmpb.FileKind_FILE_KIND_INSERT:
		return "insert"
	case fsmpb.FileKind_FILE_KIND_DELTA:
		return "delta"
	case fsmpb.FileKind_FILE_KIND_STATS:
		return "stats"
	case fsmpb.FileKind_FILE_KIND_BM25:
		return "bm25"
	case fsmpb.FileKind_FILE_KIND_INDEX:
		return "index"
	case fsmpb.FileKind_FILE_KIND_TEXT_INDEX:
		return "text"
	case fsmpb.FileKind_FILE_KIND_JSON_KEY_INDEX:
		return "json_key"
	}
	return ""
}

func (snapkeepLayout) SegmentPrefix(s Segment) string {
	return SnapkeepSegmentPrefix(s.Collection, s.Segment)
}

func (l snapkeepLayout) UploadPrefixes(s Segment) []string { return []string{l.SegmentPrefix(s)} }

func (snapkeepLayout) BuildPrefix(b Build) string {
	return SnapkeepBuildPrefix(b.Collection, b.Segment.Segment, b.Build)
}

func (l snapkeepLayout) SegmentFileRel(s Segment, f *fsmpb.File) (string, error) {
	if err := segmentDataKind(f); err != nil {
		return "", err
	}
	rel, err := under(f.Key, l.SegmentPrefix(s), "segment "+u64(s.Segment))
	if err != nil {
		return "", err
	}
	if dir := KindDir(f.Kind); !strings.HasPrefix(rel, dir+"/") {
		return "", badKey("file %q of kind %s must sit under the segment prefix's %q directory", f.Key, kindName(f.Kind), dir+"/")
	}
	return rel, nil
}

func (l snapkeepLayout) SegmentFileKey(s Segment, rel string) string {
	return l.SegmentPrefix(s) + rel
}

func (l snapkeepLayout) BuildFileRel(b Build, f *fsmpb.File) (string, error) {
	if err := indexKind(f); err != nil {
		return "", err
	}
	return under(f.Key, l.BuildPrefix(b), "index build "+u64(b.Build))
}

func (l snapkeepLayout) BuildFileKey(b Build, rel string) string {
	return l.BuildPrefix(b) + rel
}

// Parse parses a key of the snapkeep layout. Ids must be canonical decimals (no sign,
// no leading zero, not 0, within uint64), so a parsed key is exactly its owner's
// prefix + Rel. "…/index/<build>" without a slash after the build id is not under the
// build's prefix: it is the segment's key "index/<build>".
func (snapkeepLayout) Parse(key string) (owner Owner, ok bool) {
	rest, ok := strings.CutPrefix(key, "collections/")
	if !ok {
		return Owner{}, false
	}
	if owner.Collection, rest, ok = cutID(rest); !ok {
		return Owner{}, false
	}
	if rest, ok = strings.CutPrefix(rest, "segments/"); !ok {
		return Owner{}, false
	}
	if owner.Segment, rest, ok = cutID(rest); !ok {
		return Owner{}, false
	}
	owner.Rel = rest
	if build, ok := strings.CutPrefix(rest, "index/"); ok {
		if id, rel, ok := cutID(build); ok {
			owner.Build, owner.Rel = id, rel
		}
	}
	return owner, true
}

// ListPrefix shards a collection's segments by the first digit of the segment id:
// nine prefixes cover every segment, and they can be listed in parallel.
func (l snapkeepLayout) ListPrefix(key string) string {
	o, ok := l.Parse(key)
	if !ok {
		return ""
	}
	return SegmentsPrefix(o.Collection) + u64(o.Segment)[:1]
}

// under checks that key is a file under prefix and returns the part below it.
func under(key, prefix, owner string) (string, error) {
	rel, ok := strings.CutPrefix(key, prefix)
	if !ok {
		return "", badKey("key %q is outside %s's prefix %q", key, owner, prefix)
	}
	if err := checkPath(key, rel); err != nil {
		return "", err
	}
	return rel, nil
}

// segmentDataKind checks that a segment file has a data kind.
func segmentDataKind(f *fsmpb.File) error {
	switch f.Kind {
	case fsmpb.FileKind_FILE_KIND_INSERT, fsmpb.FileKind_FILE_KIND_DELTA, fsmpb.FileKind_FILE_KIND_STATS,
		fsmpb.FileKind_FILE_KIND_BM25, fsmpb.FileKind_FILE_KIND_TEXT_INDEX, fsmpb.FileKind_FILE_KIND_JSON_KEY_INDEX:
		return nil
	case fsmpb.FileKind_FILE_KIND_INDEX:
		return badKey("file %q: index files belong to index builds (AllocateIndexBuild, AddIndexBuild), not to FlushSegment", f.Key)
	}
	return badKey("file %q: unknown file kind %d", f.Key, f.Kind)
}

func indexKind(f *fsmpb.File) error {
	if f.Kind != fsmpb.FileKind_FILE_KIND_INDEX {
		return badKey("file %q: index builds hold only files of kind index, not %s", f.Key, kindName(f.Kind))
	}
	return nil
}
