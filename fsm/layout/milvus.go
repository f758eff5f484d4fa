package layout

import (
	"strings"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// milvusLayout places files where Milvus writes them (its rootPath is the storage
// root). A segment's files, kind first:
//
//	insert_log/<collection>/<partition>/<segment>/<field>/<log>
//	stats_log/<collection>/<partition>/<segment>/<field>/<log>
//	bm25_stats/<collection>/<partition>/<segment>/<field>/<log>
//	delta_log/<collection>/<partition>/<segment>/<log>
//	text_log/<build>/<version>/<collection>/<partition>/<segment>/<field>/<file...>
//	json_key_index_log/<build>/<version>/<collection>/<partition>/<segment>/<field>/<file...>
//	json_stats/<format>/<build>/<version>/<collection>/<partition>/<segment>/<field>/<file...>
//
// and an index build's files:
//
//	index_files/<build>/<version>/<partition>/<segment>/<file...>
//
// A file list keeps the key without the owner's ids: "insert_log/<field>/<log>",
// "text_log/<build>/<version>/<field>/<file...>", and "<version>/<file...>" for a
// build's file, so a restore rebuilds every key with the target's ids. Collection,
// partition, segment, build and log ids are canonical decimals above 0; field ids,
// versions and formats may be 0 (Milvus's row-id and timestamp fields are 0 and 1).
// Text and JSON key index builds are a segment's files here (their keys name the
// segment); their build ids and versions are kept as they are.
type milvusLayout struct{}

// milvusDir describes one top-level directory of a Milvus segment's files.
type milvusDir struct {
	name string
	kind fsmpb.FileKind
	// lead is what comes before <collection>/<partition>/<segment>: for each number,
	// whether it may be 0.
	lead []bool
	// tail: "field/log" (two numbers), "log" (one), or "field/file..." (a number then
	// a free path).
	tail tailShape
}

type tailShape int

const (
	tailFieldLog tailShape = iota
	tailLog
	tailFieldFile
)

var milvusDirs = []milvusDir{
	{"insert_log", fsmpb.FileKind_FILE_KIND_INSERT, nil, tailFieldLog},
	{"stats_log", fsmpb.FileKind_FILE_KIND_STATS, nil, tailFieldLog},
	{"bm25_stats", fsmpb.FileKind_FILE_KIND_BM25, nil, tailFieldLog},
	{"delta_log", fsmpb.FileKind_FILE_KIND_DELTA, nil, tailLog},
	{"text_log", fsmpb.FileKind_FILE_KIND_TEXT_INDEX, []bool{false, true}, tailFieldFile},
	{"json_key_index_log", fsmpb.FileKind_FILE_KIND_JSON_KEY_INDEX, []bool{false, true}, tailFieldFile},
	{"json_stats", fsmpb.FileKind_FILE_KIND_JSON_KEY_INDEX, []bool{true, false, true}, tailFieldFile},
}

// milvusIndexDir is the directory of index builds' files.
const milvusIndexDir = "index_files"

// MilvusDirs are the top-level directories of the Milvus layout, each with its
// trailing slash.
func MilvusDirs() []string {
	out := []string{milvusIndexDir + "/"}
	for _, d := range milvusDirs {
		out = append(out, d.name+"/")
	}
	return out
}

func milvusDirOf(key string) (milvusDir, string, bool) {
	name, rest, ok := strings.Cut(key, "/")
	if !ok {
		return milvusDir{}, "", false
	}
	for _, d := range milvusDirs {
		if d.name == name {
			return d, rest, true
		}
	}
	return milvusDir{}, "", false
}

func (milvusLayout) ID() fsmpb.KeyLayout { return fsmpb.KeyLayout_KEY_LAYOUT_MILVUS }

func (milvusLayout) SegmentPrefix(Segment) string { return "" }

func (milvusLayout) UploadPrefixes(s Segment) []string {
	var out []string
	for _, d := range milvusDirs {
		if len(d.lead) == 0 {
			out = append(out, d.name+"/"+u64(s.Collection)+"/"+u64(s.Partition)+"/"+u64(s.Segment)+"/")
		}
	}
	return out
}

func (milvusLayout) BuildPrefix(b Build) string {
	return milvusIndexDir + "/" + u64(b.Build) + "/"
}

// cutLead cuts a directory's lead numbers off rest and returns them as written.
func cutLead(d milvusDir, rest string) (lead, after string, ok bool) {
	after = rest
	for _, zero := range d.lead {
		if _, after, ok = cutNumber(after, zero); !ok {
			return "", "", false
		}
	}
	return rest[:len(rest)-len(after)], after, true
}

// checkTail checks what follows <collection>/<partition>/<segment> and returns the
// field id it names (0 for a delta log).
func checkTail(d milvusDir, key, tail string) (field uint64, err error) {
	var ok bool
	switch d.tail {
	case tailFieldLog:
		var logID string
		if field, logID, ok = cutNumber(tail, true); ok {
			_, ok = parseNumber(logID, false)
		}
		if !ok {
			return 0, badKey("key %q: a %s key ends in <field>/<log id>", key, d.name)
		}
	case tailLog:
		if _, ok = parseNumber(tail, false); !ok {
			return 0, badKey("key %q: a %s key ends in <log id>", key, d.name)
		}
	case tailFieldFile:
		var file string
		if field, file, ok = cutNumber(tail, true); !ok {
			return 0, badKey("key %q: a %s key ends in <field>/<file>", key, d.name)
		}
		if err := checkPath(key, file); err != nil {
			return 0, err
		}
	}
	return field, nil
}

func (milvusLayout) SegmentFileRel(s Segment, f *fsmpb.File) (string, error) {
	if err := segmentDataKind(f); err != nil {
		return "", err
	}
	d, rest, ok := milvusDirOf(f.Key)
	if !ok || d.kind != f.Kind {
		return "", badKey("file %q of kind %s is not where Milvus keeps one (%s)", f.Key, kindName(f.Kind), milvusDirsOf(f.Kind))
	}
	lead, rest, ok := cutLead(d, rest)
	if !ok {
		return "", badKey("key %q: the ids after %s/ are not canonical decimals", f.Key, d.name)
	}
	ids := u64(s.Collection) + "/" + u64(s.Partition) + "/" + u64(s.Segment) + "/"
	tail, ok := strings.CutPrefix(rest, ids)
	if !ok {
		return "", badKey("key %q is not segment %d's: its %s key must name collection/partition/segment %s", f.Key, s.Segment, d.name, strings.TrimSuffix(ids, "/"))
	}
	field, err := checkTail(d, f.Key, tail)
	if err != nil {
		return "", err
	}
	if d.tail != tailLog && field != uint64(f.FieldId) {
		return "", badKey("file %q names field %d, but its field id is %d", f.Key, field, f.FieldId)
	}
	return d.name + "/" + lead + tail, nil
}

// milvusDirsOf names the directories a kind of file sits in.
func milvusDirsOf(k fsmpb.FileKind) string {
	var dirs []string
	for _, d := range milvusDirs {
		if d.kind == k {
			dirs = append(dirs, d.name+"/")
		}
	}
	return strings.Join(dirs, " or ")
}

func (milvusLayout) SegmentFileKey(s Segment, rel string) string {
	d, rest, ok := milvusDirOf(rel)
	if !ok {
		return rel // not a kept form (never so for a validated file list)
	}
	lead, tail, ok := cutLead(d, rest)
	if !ok {
		return rel
	}
	return d.name + "/" + lead + u64(s.Collection) + "/" + u64(s.Partition) + "/" + u64(s.Segment) + "/" + tail
}

func (l milvusLayout) BuildFileRel(b Build, f *fsmpb.File) (string, error) {
	if err := indexKind(f); err != nil {
		return "", err
	}
	prefix := l.BuildPrefix(b)
	rest, ok := strings.CutPrefix(f.Key, prefix)
	if !ok {
		return "", badKey("key %q is outside index build %d's prefix %q", f.Key, b.Build, prefix)
	}
	version, tail, ok := cutNumber(rest, true)
	ids := u64(b.Partition) + "/" + u64(b.Segment.Segment) + "/"
	if !ok || !strings.HasPrefix(tail, ids) {
		return "", badKey("key %q: an index file of build %d sits at index_files/%d/<version>/%s<file>", f.Key, b.Build, b.Build, ids)
	}
	file := tail[len(ids):]
	if err := checkPath(f.Key, file); err != nil {
		return "", err
	}
	return u64(version) + "/" + file, nil
}

func (l milvusLayout) BuildFileKey(b Build, rel string) string {
	version, file, ok := strings.Cut(rel, "/")
	if !ok {
		return l.BuildPrefix(b) + rel
	}
	return l.BuildPrefix(b) + version + "/" + u64(b.Partition) + "/" + u64(b.Segment.Segment) + "/" + file
}

// Parse parses a key of the Milvus layout: a known directory, then its numbers and
// ids as canonical decimals; what follows the ids is Rel's tail and is not judged.
func (milvusLayout) Parse(key string) (Owner, bool) {
	owner := Owner{Layout: fsmpb.KeyLayout_KEY_LAYOUT_MILVUS}
	if rest, ok := strings.CutPrefix(key, milvusIndexDir+"/"); ok {
		var version uint64
		if owner.Build, rest, ok = cutID(rest); !ok {
			return Owner{}, false
		}
		if version, rest, ok = cutNumber(rest, true); !ok {
			return Owner{}, false
		}
		if owner.Partition, rest, ok = cutID(rest); !ok {
			return Owner{}, false
		}
		if owner.Segment, rest, ok = cutID(rest); !ok {
			return Owner{}, false
		}
		owner.Rel = u64(version) + "/" + rest
		return owner, true
	}
	d, rest, ok := milvusDirOf(key)
	if !ok {
		return Owner{}, false
	}
	lead, rest, ok := cutLead(d, rest)
	if !ok {
		return Owner{}, false
	}
	if owner.Collection, rest, ok = cutID(rest); !ok {
		return Owner{}, false
	}
	if owner.Partition, rest, ok = cutID(rest); !ok {
		return Owner{}, false
	}
	if owner.Segment, rest, ok = cutID(rest); !ok {
		return Owner{}, false
	}
	owner.Rel = d.name + "/" + lead + rest
	return owner, true
}

// ListPrefix: a collection's files of one kind ("insert_log/<collection>/"), or one
// build's ("index_files/<build>/", "text_log/<build>/", "json_stats/<format>/<build>/").
func (l milvusLayout) ListPrefix(key string) string {
	o, ok := l.Parse(key)
	if !ok {
		return ""
	}
	if o.Build != 0 {
		return l.BuildPrefix(Build{Build: o.Build})
	}
	d, rest, _ := milvusDirOf(key)
	if len(d.lead) == 0 {
		return d.name + "/" + u64(o.Collection) + "/"
	}
	lead, _, _ := cutLead(d, rest)
	// The lead up to and including the build id (the version may differ per file).
	parts := strings.SplitAfter(lead, "/")
	return d.name + "/" + strings.Join(parts[:len(d.lead)-1], "")
}
