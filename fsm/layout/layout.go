// Package layout says where a collection's files sit under the storage root. A layout
// builds the key of a segment's or an index build's file from the owner's ids and the
// part of the key a file list keeps (the "rel"), takes a given key apart again to check
// it belongs where it claims, and parses any key back to its owner (orphan scan, GC,
// the restore pre-check).
//
// Two layouts exist: snapkeep's own, where every segment owns one prefix, and Milvus's,
// where files sit where Milvus writes them, kind first. Their keys never overlap (the
// first path component tells them apart), so one storage root can hold both.
//
// Keys are relative to the storage root. Every function takes any string (keys come
// from listing a bucket that others write too) and never panics.
package layout

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// ErrBadKey is what every key check's error wraps.
var ErrBadKey = errors.New("bad key")

// Segment names a segment for key building: the ids its keys may contain.
type Segment struct {
	Collection, Partition, Segment uint64
}

// Build names an index build of a segment.
type Build struct {
	Segment
	Build uint64
}

// Owner is what a key says about who owns it.
type Owner struct {
	Layout fsmpb.KeyLayout
	// Collection and Partition are 0 when the key does not name them (snapkeep keys
	// name no partition; Milvus index files no collection).
	Collection, Partition uint64
	Segment               uint64
	// Build is 0 unless the key is an index build's.
	Build uint64
	// Rel is what the owner's file list keeps for the key: SegmentFileKey or
	// BuildFileKey of the owner and Rel gives the key back. It may be empty or not a
	// valid path; parsing never judges it.
	Rel string
}

// Layout is one way of placing a collection's files. Implementations are stateless.
type Layout interface {
	// ID is the layout's value in the catalog.
	ID() fsmpb.KeyLayout
	// SegmentFileRel checks that f.Key is where a file of f's kind (and field) of
	// segment s sits, and returns the part its file list keeps. Index files are
	// refused: they belong to index builds.
	SegmentFileRel(s Segment, f *fsmpb.File) (string, error)
	// SegmentFileKey is the key of segment s's file kept as rel.
	SegmentFileKey(s Segment, rel string) string
	// BuildFileRel checks that f.Key is an index file of build b and returns the part
	// its file list keeps.
	BuildFileRel(b Build, f *fsmpb.File) (string, error)
	// BuildFileKey is the key of build b's file kept as rel.
	BuildFileKey(b Build, rel string) string
	// SegmentPrefix is the prefix every file of segment s sits under, or "" when the
	// layout has none (Milvus: one per kind).
	SegmentPrefix(s Segment) string
	// BuildPrefix is the longest prefix every file of build b sits under.
	BuildPrefix(b Build) string
	// UploadPrefixes are the prefixes that hold only segment s's files and that its
	// ids alone name: what GC lists to take an upload the catalog never listed (an
	// expired allocation). Milvus's text and JSON key index files sit under build
	// ids first and are not among them.
	UploadPrefixes(s Segment) []string
	// Parse tells the owner of a key of this layout; ok is false for any other key.
	Parse(key string) (owner Owner, ok bool)
	// ListPrefix is a prefix of key to list in order to find it, shared by many keys
	// of one collection (the restore pre-check lists these, not the whole root); ""
	// when key is not of this layout.
	ListPrefix(key string) string
}

// DataFileKey is where a writer puts a new data file of segment s: an insert, stats
// or BM25 log of field with id logID, or a delta log (no field) — in the snapkeep
// layout "<segment prefix><kind dir>/<field>/<log>", in Milvus's its own shape. Text
// and JSON key index files need a build and version, index files a build: not here.
func DataFileKey(l Layout, s Segment, kind fsmpb.FileKind, field, logID int64) (string, error) {
	if field < 0 || logID <= 0 {
		return "", badKey("field %d, log %d: a field id is 0 or more, a log id above 0", field, logID)
	}
	f, id := strconv.FormatInt(field, 10), strconv.FormatInt(logID, 10)
	if l.ID() == fsmpb.KeyLayout_KEY_LAYOUT_SNAPKEEP {
		switch kind {
		case fsmpb.FileKind_FILE_KIND_INSERT, fsmpb.FileKind_FILE_KIND_DELTA, fsmpb.FileKind_FILE_KIND_STATS, fsmpb.FileKind_FILE_KIND_BM25:
			return l.SegmentPrefix(s) + KindDir(kind) + "/" + f + "/" + id, nil
		}
		return "", badKey("DataFileKey writes insert, delta, stats and BM25 logs, not %s", kindName(kind))
	}
	for _, d := range milvusDirs {
		if d.kind != kind || len(d.lead) > 0 {
			continue
		}
		if d.tail == tailLog {
			return l.SegmentFileKey(s, d.name+"/"+id), nil
		}
		return l.SegmentFileKey(s, d.name+"/"+f+"/"+id), nil
	}
	return "", badKey("DataFileKey writes insert, delta, stats and BM25 logs, not %s", kindName(kind))
}

// Snapkeep and Milvus are the two layouts.
var (
	Snapkeep Layout = snapkeepLayout{}
	Milvus   Layout = milvusLayout{}
)

// For returns the layout with the given catalog value, or an error for an unknown one.
func For(id fsmpb.KeyLayout) (Layout, error) {
	switch id {
	case fsmpb.KeyLayout_KEY_LAYOUT_SNAPKEEP:
		return Snapkeep, nil
	case fsmpb.KeyLayout_KEY_LAYOUT_MILVUS:
		return Milvus, nil
	}
	return nil, badKey("unknown key layout %d (known: snapkeep, milvus)", id)
}

// MustFor is For for values the catalog already validated; an unknown value gives
// the snapkeep layout (never a panic: records are read from disk).
func MustFor(id fsmpb.KeyLayout) Layout {
	if l, err := For(id); err == nil {
		return l
	}
	return Snapkeep
}

// Name is the layout's name as users write it: "snapkeep" or "milvus".
func Name(id fsmpb.KeyLayout) string {
	switch id {
	case fsmpb.KeyLayout_KEY_LAYOUT_SNAPKEEP:
		return "snapkeep"
	case fsmpb.KeyLayout_KEY_LAYOUT_MILVUS:
		return "milvus"
	}
	return "layout(" + strconv.Itoa(int(id)) + ")"
}

// Parse parses a key of any layout.
func Parse(key string) (Owner, bool) {
	if o, ok := Snapkeep.Parse(key); ok {
		return o, true
	}
	return Milvus.Parse(key)
}

// ListPrefix is the ListPrefix of key in whichever layout it belongs to, or "".
func ListPrefix(key string) string {
	if p := Snapkeep.ListPrefix(key); p != "" {
		return p
	}
	return Milvus.ListPrefix(key)
}

// KeyError says why a key is not where a file may sit; it matches ErrBadKey.
type KeyError struct{ msg string }

func (e *KeyError) Error() string { return e.msg }

// Is makes errors.Is(err, ErrBadKey) hold.
func (e *KeyError) Is(target error) bool { return target == ErrBadKey }

func badKey(format string, args ...any) error {
	return &KeyError{msg: fmt.Sprintf(format, args...)}
}

// checkPath checks a key's free-form part (below the ids its layout fixes):
// non-empty path components, no "." or "..", valid UTF-8 without control characters
// or backslashes.
func checkPath(full, rel string) error {
	if rel == "" {
		return badKey("key %q names the prefix itself, not a file under it", full)
	}
	if !utf8.ValidString(rel) || strings.ContainsFunc(rel, isControl) || strings.ContainsRune(rel, '\\') {
		return badKey("key %q has invalid characters (control characters, backslashes or bad UTF-8)", full)
	}
	for part := range strings.SplitSeq(rel, "/") {
		switch part {
		case "":
			return badKey("key %q has an empty path component", full)
		case ".", "..":
			return badKey("key %q has a %q path component", full, part)
		}
	}
	return nil
}

func isControl(r rune) bool { return r < 0x20 || r == 0x7f }

// cutID cuts "<id>/" off the front of s: a canonical decimal id, 1 to 2^64-1.
func cutID(s string) (id uint64, rest string, ok bool) {
	return cutNumber(s, false)
}

// cutNumber cuts "<n>/" off the front of s: a canonical decimal (no sign, no leading
// zero), 0 allowed only when zero is set.
func cutNumber(s string, zero bool) (n uint64, rest string, ok bool) {
	digits, rest, found := strings.Cut(s, "/")
	if !found {
		return 0, "", false
	}
	n, ok = parseNumber(digits, zero)
	return n, rest, ok
}

func parseNumber(digits string, zero bool) (uint64, bool) {
	if digits == "" || len(digits) > 20 {
		return 0, false
	}
	if digits[0] == '0' {
		return 0, zero && digits == "0"
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, false
		}
	}
	n, err := strconv.ParseUint(digits, 10, 64)
	return n, err == nil
}

func u64(n uint64) string { return strconv.FormatUint(n, 10) }

func kindName(k fsmpb.FileKind) string {
	if name, ok := fsmpb.FileKind_name[int32(k)]; ok {
		return strings.ToLower(strings.TrimPrefix(name, "FILE_KIND_"))
	}
	return "kind(" + strconv.Itoa(int(k)) + ")"
}
