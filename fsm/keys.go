package fsm

import (
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// Object keys inside the FSM are relative to the storage root: the server adds and
// strips "<root>/" at the API boundary. Every segment owns one prefix, so the owner of
// any object is a parse of its key and a lookup.

// SegmentsPrefix is the prefix every segment of a collection sits under.
func SegmentsPrefix(collectionID uint64) string {
	return "collections/" + strconv.FormatUint(collectionID, 10) + "/segments/"
}

// SegmentPrefix is the prefix every file of a segment sits under.
func SegmentPrefix(collectionID, segmentID uint64) string {
	return SegmentsPrefix(collectionID) + strconv.FormatUint(segmentID, 10) + "/"
}

// BuildPrefix is the prefix every file of an index build sits under.
func BuildPrefix(collectionID, segmentID, buildID uint64) string {
	return SegmentPrefix(collectionID, segmentID) + "index/" + strconv.FormatUint(buildID, 10) + "/"
}

// KindDir is the first path component of a segment file's key below the segment
// prefix: each kind of file has its own directory.
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
	}
	return ""
}

// ObjectOwner is what a key's path says about who owns it.
type ObjectOwner struct {
	CollectionID uint64
	SegmentID    uint64
	BuildID      uint64 // 0 unless the key is under an index build's prefix
	// Rel is the rest of the key below the owner's prefix (Prefix): possibly empty or
	// not a valid file path; parsing never judges it.
	Rel string
}

// Prefix is the owner's key prefix: the index build's when BuildID is set, else the
// segment's. A parsed key is always Prefix() + Rel.
func (o ObjectOwner) Prefix() string {
	if o.BuildID != 0 {
		return BuildPrefix(o.CollectionID, o.SegmentID, o.BuildID)
	}
	return SegmentPrefix(o.CollectionID, o.SegmentID)
}

// ParseOwner parses a root-relative key of the segment layout:
//
//	collections/<collection>/segments/<segment>/<rel>                a segment's key
//	collections/<collection>/segments/<segment>/index/<build>/<rel>  an index build's key
//
// ok is false for any key outside it, ids that are not canonical decimals (no sign,
// no leading zero, not 0, within uint64) included, so a parsed key is exactly
// Prefix() + Rel. "…/index/<build>" without a slash after the build id is not under
// the build's prefix: it is the segment's key "index/<build>". Any byte string may be
// given (keys come from listing a bucket that others write too); it never panics.
func ParseOwner(key string) (owner ObjectOwner, ok bool) {
	rest, ok := strings.CutPrefix(key, "collections/")
	if !ok {
		return ObjectOwner{}, false
	}
	if owner.CollectionID, rest, ok = cutID(rest); !ok {
		return ObjectOwner{}, false
	}
	if rest, ok = strings.CutPrefix(rest, "segments/"); !ok {
		return ObjectOwner{}, false
	}
	if owner.SegmentID, rest, ok = cutID(rest); !ok {
		return ObjectOwner{}, false
	}
	owner.Rel = rest
	if build, ok := strings.CutPrefix(rest, "index/"); ok {
		if id, rel, ok := cutID(build); ok {
			owner.BuildID, owner.Rel = id, rel
		}
	}
	return owner, true
}

// cutID cuts "<id>/" off the front of s: a canonical decimal id, 1 to 2^64-1.
func cutID(s string) (id uint64, rest string, ok bool) {
	digits, rest, found := strings.Cut(s, "/")
	if !found || digits == "" || digits[0] == '0' || len(digits) > 20 {
		return 0, "", false
	}
	for i := 0; i < len(digits); i++ {
		if digits[i] < '0' || digits[i] > '9' {
			return 0, "", false
		}
	}
	id, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return 0, "", false
	}
	return id, rest, true
}

// validateRelativePath checks the part of a key below its owner's prefix: non-empty
// path components, no "." or "..", valid UTF-8 without control characters.
func validateRelativePath(full, rel string) error {
	if rel == "" {
		return invalidf("key %q names the prefix itself, not a file under it", full)
	}
	if !utf8.ValidString(rel) || strings.ContainsFunc(rel, isControl) || strings.ContainsRune(rel, '\\') {
		return invalidf("key %q has invalid characters (control characters, backslashes or bad UTF-8)", full)
	}
	for _, part := range strings.Split(rel, "/") {
		switch part {
		case "":
			return invalidf("key %q has an empty path component", full)
		case ".", "..":
			return invalidf("key %q has a %q path component", full, part)
		}
	}
	return nil
}

// validateKeyUnder checks that key is a file under prefix and returns the relative part.
func validateKeyUnder(key, prefix, owner string) (string, error) {
	if len(key) > MaxKeyBytes {
		return "", invalidf("key %.60q… is %d bytes; the limit is %d", key, len(key), MaxKeyBytes)
	}
	if !strings.HasPrefix(key, prefix) {
		return "", invalidf("key %q is outside %s's prefix %q", key, owner, prefix)
	}
	rel := key[len(prefix):]
	if err := validateRelativePath(key, rel); err != nil {
		return "", err
	}
	return rel, nil
}
