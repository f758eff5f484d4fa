package fsm

import (
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
)

// Object keys inside the FSM are relative to the storage root: the server adds and
// strips "<root>/" at the API boundary. Where a collection's files sit is its key
// layout (fsm/layout); the owner of any object is a parse of its key and a lookup.

// layoutOf is the key layout of a collection's files.
func layoutOf(c *fsmpb.Collection) layout.Layout { return layout.MustFor(c.GetLayout()) }

// segmentRef is what a layout needs of a segment to build its keys.
func segmentRef(s *fsmpb.Segment) layout.Segment {
	return layout.Segment{Collection: s.CollectionId, Partition: s.PartitionId, Segment: s.Id}
}

// buildRef is what a layout needs of an index build to build its keys.
func buildRef(s *fsmpb.Segment, buildID uint64) layout.Build {
	return layout.Build{Segment: segmentRef(s), Build: buildID}
}

// FileKeys builds the keys of a collection's files from their file lists.
type FileKeys struct{ l layout.Layout }

// KeysOf returns the key builder of a collection's layout.
func KeysOf(c *fsmpb.Collection) FileKeys { return FileKeys{layoutOf(c)} }

// KeysFor returns the key builder of a layout (a snapshot's, say).
func KeysFor(id fsmpb.KeyLayout) FileKeys { return FileKeys{layout.MustFor(id)} }

// Layout is the layout the keys are built in.
func (k FileKeys) Layout() layout.Layout { return k.l }

// Segment is the key of segment s's file kept as rel in its file list.
func (k FileKeys) Segment(s *fsmpb.Segment, rel string) string {
	return k.l.SegmentFileKey(segmentRef(s), rel)
}

// Build is the key of build b's (of segment s) file kept as rel.
func (k FileKeys) Build(s *fsmpb.Segment, buildID uint64, rel string) string {
	return k.l.BuildFileKey(buildRef(s, buildID), rel)
}

// SegmentPrefix is the prefix every file of s sits under, "" when the layout has none.
func (k FileKeys) SegmentPrefix(s *fsmpb.Segment) string { return k.l.SegmentPrefix(segmentRef(s)) }

// UploadPrefixes are the prefixes holding only s's files that its ids name.
func (k FileKeys) UploadPrefixes(s *fsmpb.Segment) []string { return k.l.UploadPrefixes(segmentRef(s)) }

// BuildPrefix is the longest prefix every file of build b of s sits under.
func (k FileKeys) BuildPrefix(s *fsmpb.Segment, buildID uint64) string {
	return k.l.BuildPrefix(buildRef(s, buildID))
}

// checkKeyLength refuses keys longer than MaxKeyBytes.
func checkKeyLength(key string) error {
	if len(key) > MaxKeyBytes {
		return invalidf("key %.60q… is %d bytes; the limit is %d", key, len(key), MaxKeyBytes)
	}
	return nil
}
