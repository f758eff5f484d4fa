package fsm

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"testing"

	"github.com/stretchr/testify/require"
	"google.golang.org/protobuf/proto"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

// sizedFiles returns insert files of the given sizes under the segment's prefix.
func sizedFiles(s *fsmpb.Segment, sizes ...uint64) []*fsmpb.File {
	out := make([]*fsmpb.File, len(sizes))
	for i, size := range sizes {
		out[i] = &fsmpb.File{Key: fmt.Sprintf("%sinsert/100/%d", SegmentPrefix(s.CollectionId, s.Id), 1000+i),
			Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldId: 100, Size: size}
	}
	return out
}

// buildFiles returns index files of the given sizes under the build's prefix.
func buildFiles(s *fsmpb.Segment, buildID uint64, sizes ...uint64) []*fsmpb.File {
	out := make([]*fsmpb.File, len(sizes))
	for i, size := range sizes {
		out[i] = &fsmpb.File{Key: fmt.Sprintf("%sf%d", BuildPrefix(s.CollectionId, s.Id, buildID), i),
			Kind: fsmpb.FileKind_FILE_KIND_INDEX, FieldId: 101, Size: size}
	}
	return out
}

func (h *harness) sizedSegment(coll string, sizes ...uint64) *fsmpb.Segment {
	h.t.Helper()
	s := h.allocate(coll)
	var resp fsmpb.SegmentResponse
	h.ok(&fsmpb.FlushSegment{SegmentId: s.Id, RowCount: 10, Files: sizedFiles(s, sizes...)}, &resp)
	return resp.Segment
}

func (h *harness) readyBuild(s *fsmpb.Segment, index string, sizes ...uint64) uint64 {
	h.t.Helper()
	var br fsmpb.IndexBuildResponse
	h.ok(&fsmpb.AllocateIndexBuild{SegmentId: s.Id, Index: index, Lease: 60 * second}, &br)
	h.ok(&fsmpb.AddIndexBuild{SegmentId: s.Id, BuildId: br.BuildId, Files: buildFiles(s, br.BuildId, sizes...)}, nil)
	return br.BuildId
}

func (h *harness) space(s *fsmpb.Snapshot) Space {
	h.t.Helper()
	sp, ok := h.f.View().SnapshotSpace(h.snapshotByID(s.Id))
	require.True(h.t, ok)
	return sp
}

func TestSnapshotSpace(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "docs", Name: "vec", FieldId: 101}, nil)
	a := h.sizedSegment("docs", 100, 200)
	b := h.sizedSegment("docs", 1000)
	c := h.sizedSegment("docs", 10000, 20000)
	h.readyBuild(a, "vec", 5)

	s1 := h.snapshot("s1")
	h.ok(commitFor(s1), nil) // a 100-byte manifest
	require.Equal(t, Space{ExclusiveObjects: 1, ExclusiveBytes: 100, LiveObjects: 6, LiveBytes: 31305}, h.space(s1),
		"everything live; the manifest is the snapshot's own")

	s2 := h.snapshot("s2") // pending: no manifest yet
	h.ok(&fsmpb.DropSegments{SegmentIds: []uint64{c.Id}}, nil)
	require.Equal(t, Space{ExclusiveObjects: 1, ExclusiveBytes: 100, SharedObjects: 2, SharedBytes: 30000, LiveObjects: 4, LiveBytes: 1305}, h.space(s1),
		"c is dropped and pinned by both")
	require.Equal(t, Space{SharedObjects: 2, SharedBytes: 30000, LiveObjects: 4, LiveBytes: 1305}, h.space(s2))

	// Dropping both frees c and both manifests (one so far); either alone frees less.
	var freed []Freed
	both := h.f.View().DropPreview([]*fsmpb.Snapshot{h.snapshotByID(s2.Id), h.snapshotByID(s1.Id), h.snapshotByID(s1.Id)}, func(f Freed) { freed = append(freed, f) })
	require.Equal(t, Space{ExclusiveObjects: 3, ExclusiveBytes: 30100, LiveObjects: 4, LiveBytes: 1305}, both)
	require.Len(t, freed, 2)
	require.Equal(t, s1.Id, freed[0].Snapshot.GetId())
	require.Equal(t, c.Id, freed[1].Segment.GetId())

	// A newer build of the index supersedes a's (pinned by both), and b is compacted
	// away after s2 dropped: a's old build and b are s1's alone, within grace or not.
	h.readyBuild(a, "vec", 7)
	h.ok(&fsmpb.SnapshotMarkDeleting{SnapshotId: s2.Id}, nil)
	out := h.allocate("docs")
	h.ok(&fsmpb.Compact{Inputs: []uint64{b.Id}, Outputs: []*fsmpb.CompactOutput{{SegmentId: out.Id, RowCount: 10, Files: sizedFiles(out, 999)}}}, nil)
	require.Equal(t, Space{ExclusiveObjects: 1 + 1 + 1 + 2, ExclusiveBytes: 100 + 5 + 1000 + 30000, LiveObjects: 2, LiveBytes: 300}, h.space(s1))
	_, ok := h.f.View().SnapshotSpace(h.snapshotByID(s2.Id))
	require.False(t, ok, "a deleting snapshot keeps nothing any more")
	require.NoError(t, h.f.View().CheckDerived())

	// A dropped segment goes whole: a build it held that s1 never captured goes with it.
	d := h.sizedSegment("docs", 1)
	s3 := h.snapshot("s3")
	h.readyBuild(d, "vec", 40, 2)
	h.ok(&fsmpb.DropSegments{SegmentIds: []uint64{d.Id}}, nil)
	require.Equal(t, Space{ExclusiveObjects: 3, ExclusiveBytes: 1 + 40 + 2, LiveObjects: 4, LiveBytes: 300 + 7 + 999}, h.space(s3))
	require.NoError(t, h.f.View().CheckDerived())
}

// TestSnapshotSpaceAgreesWithBruteForce builds random catalogs — collections,
// segments with random file sizes, index builds (superseded ones included),
// compactions, drops, snapshots taken, committed and dropped, GC removing what it may —
// and checks every live snapshot's figures, and random sets' drop previews, against a
// naive computation: the objects GC would free with and without the snapshots' pins,
// found by scanning every segment and every snapshot.
func TestSnapshotSpaceAgreesWithBruteForce(t *testing.T) {
	for seed := uint64(1); seed <= 40; seed++ {
		t.Run(fmt.Sprint(seed), func(t *testing.T) { randomSpaceCatalog(t, seed) })
	}
}

func randomSpaceCatalog(t *testing.T, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 18))
	h := newHarness(t)
	names := []string{"c0", "c1", "c2"}
	try := func(cmd proto.Message, resp proto.Message) bool {
		res := h.apply("", cmd)
		if res.Code != fsmpb.ErrorCode_ERROR_CODE_OK {
			return false
		}
		if resp != nil {
			require.NoError(t, proto.Unmarshal(res.Response, resp))
		}
		return true
	}
	randomSizes := func(max int) []uint64 {
		out := make([]uint64, rng.IntN(max+1))
		for i := range out {
			out[i] = 1 + rng.Uint64N(1<<20)
		}
		return out
	}
	liveSegments := func(coll string) []*fsmpb.Segment {
		c, _, err := h.f.View().Collection("", coll)
		if err != nil {
			return nil
		}
		var out []*fsmpb.Segment
		h.f.View().r.eachSegment(c.Id, 0, func(s *fsmpb.Segment) bool {
			if s.State == fsmpb.SegmentState_SEGMENT_STATE_FLUSHED {
				out = append(out, s)
			}
			return true
		})
		return out
	}
	snapshots := 0
	for step := 0; step < 160; step++ {
		coll := names[rng.IntN(len(names))]
		switch op := rng.IntN(100); {
		case op < 8:
			if try(&fsmpb.CreateCollection{Name: coll}, nil) {
				try(&fsmpb.CreateIndex{Collection: coll, Name: "vec", FieldId: 101}, nil)
			}
		case op < 35:
			var seg fsmpb.SegmentResponse
			if try(&fsmpb.AllocateSegment{Collection: coll, Lease: 60 * second}, &seg) {
				try(&fsmpb.FlushSegment{SegmentId: seg.Segment.Id, RowCount: 1, Files: sizedFiles(seg.Segment, randomSizes(4)...)}, nil)
			}
		case op < 47:
			segs := liveSegments(coll)
			if len(segs) == 0 {
				continue
			}
			s := segs[rng.IntN(len(segs))]
			var br fsmpb.IndexBuildResponse
			if try(&fsmpb.AllocateIndexBuild{SegmentId: s.Id, Index: "vec", Lease: 60 * second}, &br) && rng.IntN(5) > 0 {
				try(&fsmpb.AddIndexBuild{SegmentId: s.Id, BuildId: br.BuildId, Files: buildFiles(s, br.BuildId, randomSizes(3)...)}, nil)
			}
		case op < 57:
			segs := liveSegments(coll)
			if len(segs) == 0 {
				continue
			}
			rng.Shuffle(len(segs), func(i, j int) { segs[i], segs[j] = segs[j], segs[i] })
			inputs := []uint64{}
			for _, s := range segs[:1+rng.IntN(min(3, len(segs)))] {
				inputs = append(inputs, s.Id)
			}
			var out fsmpb.SegmentResponse
			if try(&fsmpb.AllocateSegment{Collection: coll, Lease: 60 * second}, &out) {
				try(&fsmpb.Compact{Inputs: inputs, Outputs: []*fsmpb.CompactOutput{{SegmentId: out.Segment.Id, RowCount: 1, Files: sizedFiles(out.Segment, randomSizes(3)...)}}}, nil)
			}
		case op < 64:
			if segs := liveSegments(coll); len(segs) > 0 {
				try(&fsmpb.DropSegments{SegmentIds: []uint64{segs[rng.IntN(len(segs))].Id}}, nil)
			}
		case op < 78:
			snapshots++
			try(&fsmpb.SnapshotBegin{Collection: coll, Name: fmt.Sprintf("s%d", snapshots), MaxPerCollection: 1000, PendingTimeout: 600 * second}, nil)
		case op < 86:
			if s := randomSnapshot(h, rng, fsmpb.SnapshotState_SNAPSHOT_STATE_PENDING); s != nil {
				cmd := commitFor(s)
				cmd.ManifestSize = 1 + rng.Uint64N(5000)
				try(cmd, nil)
			}
		case op < 93:
			if s := randomSnapshot(h, rng, fsmpb.SnapshotState_SNAPSHOT_STATE_COMMITTED); s != nil {
				try(&fsmpb.SnapshotMarkDeleting{SnapshotId: s.Id}, nil)
			}
		case op < 95:
			if try(&fsmpb.DropIndex{Collection: coll, Name: "vec"}, nil) {
				try(&fsmpb.CreateIndex{Collection: coll, Name: "vec", FieldId: 101}, nil)
			}
		case op < 96:
			try(&fsmpb.DropCollection{Name: coll}, nil)
		default:
			h.gcEverything()
		}
		h.now += second
		if step%20 == 19 {
			checkSpaceAgainstBruteForce(t, h, rng)
		}
	}
	checkSpaceAgainstBruteForce(t, h, rng)
	require.NoError(t, h.f.View().CheckDerived())
}

// gcEverything removes every record GC may remove now (grace 0).
func (h *harness) gcEverything() {
	v := h.f.View()
	cmd := &fsmpb.GCRemove{}
	v.EachDroppedSegment(func(s *fsmpb.Segment) bool {
		if ok, _ := v.SegmentReclaim(s, h.now, 0); ok {
			cmd.Segments = append(cmd.Segments, s.Id)
		}
		return true
	})
	v.EachSegmentWithDroppedBuilds(func(s *fsmpb.Segment) bool {
		for _, b := range s.IndexBuilds {
			if ok, _ := v.BuildReclaim(s, b, h.now, 0); ok {
				cmd.Builds = append(cmd.Builds, &fsmpb.BuildRef{SegmentId: s.Id, BuildId: b.BuildId})
			}
		}
		return true
	})
	h.ok(cmd, nil)
}

func randomSnapshot(h *harness, rng *rand.Rand, state fsmpb.SnapshotState) *fsmpb.Snapshot {
	var found []*fsmpb.Snapshot
	h.f.current().snapshots.each(func(s *fsmpb.Snapshot) bool {
		if s.State == state {
			found = append(found, s)
		}
		return true
	})
	if len(found) == 0 {
		return nil
	}
	return found[rng.IntN(len(found))]
}

// naiveObject is one object as the brute force names it, with its size.
type naiveObject struct {
	key  string
	size uint64
}

func naiveFiles(owner string, blob []byte) []naiveObject {
	entries, err := filelist.Decode(blob)
	if err != nil {
		panic(err)
	}
	out := make([]naiveObject, len(entries))
	for i, e := range entries {
		out[i] = naiveObject{owner + e.Key, e.Size}
	}
	return out
}

func segmentOwner(s *fsmpb.Segment) string  { return fmt.Sprintf("segment %d/", s.Id) }
func buildOwner(b *fsmpb.IndexBuild) string { return fmt.Sprintf("build %d/", b.BuildId) }
func manifestObject(s *fsmpb.Snapshot) naiveObject {
	return naiveObject{fmt.Sprintf("manifest %d", s.Id), s.ManifestSize}
}

// naiveFreeable is every listed object GC would delete (grace aside) if exactly the
// snapshots in live were live: found by scanning every segment and, for each, every
// live snapshot's id lists.
func naiveFreeable(segments []*fsmpb.Segment, live []*fsmpb.Snapshot) map[string]uint64 {
	pinned := func(id uint64, build bool) bool {
		for _, s := range live {
			ids := s.SegmentIds
			if build {
				ids = s.BuildIds
			}
			if slices.Contains(ids, id) {
				return true
			}
		}
		return false
	}
	out := map[string]uint64{}
	add := func(objs []naiveObject) {
		for _, o := range objs {
			out[o.key] = o.size
		}
	}
	for _, s := range segments {
		if s.State == fsmpb.SegmentState_SEGMENT_STATE_DROPPED {
			kept := pinned(s.Id, false)
			for _, b := range s.IndexBuilds {
				kept = kept || pinned(b.BuildId, true)
			}
			if !kept {
				add(naiveFiles(segmentOwner(s), s.Files))
				for _, b := range s.IndexBuilds {
					add(naiveFiles(buildOwner(b), b.Files))
				}
			}
			continue
		}
		for _, b := range s.IndexBuilds {
			if b.State == fsmpb.BuildState_BUILD_STATE_DROPPED && !pinned(b.BuildId, true) {
				add(naiveFiles(buildOwner(b), b.Files))
			}
		}
	}
	return out
}

// naiveSpace is the figures of a set of snapshots by brute force, and the objects
// dropping them frees.
func naiveSpace(segments []*fsmpb.Segment, live, set []*fsmpb.Snapshot) (Space, map[string]uint64) {
	inSet := func(s *fsmpb.Snapshot) bool {
		return slices.ContainsFunc(set, func(x *fsmpb.Snapshot) bool { return x.Id == s.Id })
	}
	before := naiveFreeable(segments, live)
	after := naiveFreeable(segments, slices.DeleteFunc(slices.Clone(live), inSet))
	exclusive := map[string]uint64{}
	for k, size := range after {
		if _, ok := before[k]; !ok {
			exclusive[k] = size
		}
	}
	for _, s := range set {
		if s.ManifestSize > 0 {
			m := manifestObject(s)
			exclusive[m.key] = m.size
		}
	}
	var sp Space
	for _, size := range exclusive {
		sp.ExclusiveObjects++
		sp.ExclusiveBytes += size
	}
	// What the set needs: its captured segments' and builds' listed files.
	needed := map[string]naiveObject{}
	isLive := map[string]bool{}
	for _, seg := range segments {
		segCaptured := slices.ContainsFunc(set, func(s *fsmpb.Snapshot) bool { return slices.Contains(s.SegmentIds, seg.Id) })
		segLive := seg.State != fsmpb.SegmentState_SEGMENT_STATE_DROPPED
		if segCaptured {
			for _, o := range naiveFiles(segmentOwner(seg), seg.Files) {
				needed[o.key], isLive[o.key] = o, segLive
			}
		}
		for _, b := range seg.IndexBuilds {
			if slices.ContainsFunc(set, func(s *fsmpb.Snapshot) bool { return slices.Contains(s.BuildIds, b.BuildId) }) {
				for _, o := range naiveFiles(buildOwner(b), b.Files) {
					needed[o.key], isLive[o.key] = o, segLive && b.State != fsmpb.BuildState_BUILD_STATE_DROPPED
				}
			}
		}
	}
	for k, o := range needed {
		_, excl := exclusive[k]
		switch {
		case isLive[k]:
			sp.LiveObjects++
			sp.LiveBytes += o.size
		case !excl:
			sp.SharedObjects++
			sp.SharedBytes += o.size
		}
	}
	return sp, exclusive
}

func checkSpaceAgainstBruteForce(t *testing.T, h *harness, rng *rand.Rand) {
	t.Helper()
	tb := h.f.current()
	var segments []*fsmpb.Segment
	tb.segments.each(func(s *fsmpb.Segment) bool {
		segments = append(segments, s)
		return true
	})
	var live []*fsmpb.Snapshot
	tb.snapshots.each(func(s *fsmpb.Snapshot) bool {
		if isLiveSnapshot(s) {
			live = append(live, s)
		}
		return true
	})
	v := h.f.View()
	for _, s := range live {
		want, _ := naiveSpace(segments, live, []*fsmpb.Snapshot{s})
		have, ok := v.SnapshotSpace(s)
		require.True(t, ok)
		require.Equal(t, want, have, "snapshot %d (%s of %s)", s.Id, s.Name, s.CollectionName)
	}
	// Random sets, and the records their preview names hold exactly what it counts.
	for range 3 {
		if len(live) == 0 {
			break
		}
		var set []*fsmpb.Snapshot
		for range 1 + rng.IntN(3) {
			set = append(set, live[rng.IntN(len(live))])
		}
		want, wantFreed := naiveSpace(segments, live, set)
		haveFreed := map[string]uint64{}
		add := func(objs []naiveObject) {
			for _, o := range objs {
				haveFreed[o.key] = o.size
			}
		}
		have := v.DropPreview(set, func(f Freed) {
			switch {
			case f.Snapshot != nil:
				add([]naiveObject{manifestObject(f.Snapshot)})
			case f.Build != nil:
				add(naiveFiles(buildOwner(f.Build), f.Build.Files))
			default:
				add(naiveFiles(segmentOwner(f.Segment), f.Segment.Files))
				for _, b := range f.Segment.IndexBuilds {
					add(naiveFiles(buildOwner(b), b.Files))
				}
			}
		})
		require.Equal(t, want, have, "set %v", snapshotIDs(set))
		require.Equal(t, wantFreed, haveFreed, "set %v", snapshotIDs(set))
	}
}

func snapshotIDs(snaps []*fsmpb.Snapshot) []uint64 {
	out := make([]uint64, len(snaps))
	for i, s := range snaps {
		out[i] = s.Id
	}
	return out
}
