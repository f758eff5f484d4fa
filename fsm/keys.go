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
}

// ParseOwner parses a root-relative key of the segment layout. ok is false for keys
// outside it.
func ParseOwner(key string) (owner ObjectOwner, ok bool) {
	parts := strings.SplitN(key, "/", 7)
	if len(parts) < 5 || parts[0] != "collections" || parts[2] != "segments" {
		return ObjectOwner{}, false
	}
	cid, err1 := strconv.ParseUint(parts[1], 10, 64)
	sid, err2 := strconv.ParseUint(parts[3], 10, 64)
	if err1 != nil || err2 != nil || cid == 0 || sid == 0 {
		return ObjectOwner{}, false
	}
	owner = ObjectOwner{CollectionID: cid, SegmentID: sid}
	if parts[4] == "index" && len(parts) >= 6 {
		bid, err := strconv.ParseUint(parts[5], 10, 64)
		if err != nil || bid == 0 {
			return ObjectOwner{}, false
		}
		owner.BuildID = bid
	}
	return owner, true
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
