package api

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/layout"
	"github.com/snapkeep/snapkeep/restore"
)

// verifyFlush checks, when asked (the request, or the collection's verify_on_flush),
// that every file of a flush is in the bucket with its size, by listing the segment's
// prefixes — one LIST per prefix and page, never a HEAD per file — before the flush is
// proposed. files are root-relative.
func (s *services) verifyFlush(ctx context.Context, segmentID uint64, files []*fsmpb.File, asked bool) error {
	v := s.b.View()
	seg, err := v.Segment(segmentID)
	if err != nil && !asked {
		return nil // the FSM says what is wrong with the flush
	}
	var keys layout.Layout = layout.Snapkeep
	if seg != nil {
		coll, err := v.CollectionByID(seg.CollectionId)
		if err == nil {
			asked = asked || coll.VerifyOnFlush
			keys = layout.MustFor(coll.Layout)
		}
	}
	if !asked || len(files) == 0 {
		return nil
	}
	objects, err := s.b.Store()
	if err != nil {
		return status.Errorf(codes.FailedPrecondition, "cannot verify the flush: %v", err)
	}
	ks := s.cfg.Root
	want := &flushFiles{index: make(map[string]int, len(files))}
	prefixes := map[string]bool{}
	if seg != nil {
		for _, p := range keys.UploadPrefixes(layout.Segment{Collection: seg.CollectionId, Partition: seg.PartitionId, Segment: seg.Id}) {
			prefixes[p] = true
		}
	}
	for _, f := range files {
		if _, dup := want.index[ks.Full(f.Key)]; dup {
			continue // the FSM refuses a file listed twice
		}
		want.index[ks.Full(f.Key)] = len(want.keys)
		want.keys = append(want.keys, ks.Full(f.Key))
		want.sizes = append(want.sizes, f.Size)
		if !underAny(f.Key, prefixes) {
			// A key outside the segment's own prefixes (a Milvus text or JSON key index
			// file, or a key the FSM will refuse): list its own prefix.
			p := layout.ListPrefix(f.Key)
			if p == "" {
				p = f.Key
			}
			prefixes[p] = true
		}
	}
	report, err := restore.PrecheckWithOptions(ctx, objects, ks.Full(""), want,
		restore.PrecheckOptions{Shards: slices.Sorted(maps.Keys(prefixes)), Parallelism: 4, MaxReported: 5})
	if err != nil {
		return status.Errorf(codes.Unavailable, "could not list the bucket to verify the flush of segment %d: %v; retry", segmentID, err)
	}
	if report.OK() {
		return nil
	}
	var why []string
	if report.MissingCount > 0 {
		why = append(why, fmt.Sprintf("%d missing (%s)", report.MissingCount, strings.Join(report.Missing, ", ")))
	}
	if report.WrongSizeCount > 0 {
		why = append(why, fmt.Sprintf("%d of another size (%s)", report.WrongSizeCount, strings.Join(report.WrongSize, "; ")))
	}
	return status.Errorf(codes.FailedPrecondition, "flush of segment %d refused: of its %d files, %s; upload them, then flush again",
		segmentID, len(files), strings.Join(why, ", "))
}

func underAny(key string, prefixes map[string]bool) bool {
	for p := range prefixes {
		if strings.HasPrefix(key, p) {
			return true
		}
	}
	return false
}

// flushFiles is what a flush's verification expects to list.
type flushFiles struct {
	keys  []string
	sizes []uint64
	index map[string]int
}

func (f *flushFiles) Len() int { return len(f.keys) }

func (f *flushFiles) Lookup(key string) (int, uint64, bool) {
	i, ok := f.index[key]
	if !ok {
		return 0, 0, false
	}
	return i, f.sizes[i], true
}

func (f *flushFiles) Key(i int) string { return f.keys[i] }
