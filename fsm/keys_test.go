package fsm

import (
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

func TestParseOwner(t *testing.T) {
	seg := func(c, s uint64, rel string) ObjectOwner {
		return ObjectOwner{CollectionID: c, SegmentID: s, Rel: rel}
	}
	build := func(c, s, b uint64, rel string) ObjectOwner {
		return ObjectOwner{CollectionID: c, SegmentID: s, BuildID: b, Rel: rel}
	}
	for _, tc := range []struct {
		key  string
		want ObjectOwner
		ok   bool
	}{
		{"collections/2/segments/5/insert/100/1", seg(2, 5, "insert/100/1"), true},
		{"collections/2/segments/5/", seg(2, 5, ""), true},
		{"collections/2/segments/5/index/9/a/b", build(2, 5, 9, "a/b"), true},
		{"collections/2/segments/5/index/9/", build(2, 5, 9, ""), true},
		// The stray object that crashed every leader: no slash after the build id, so
		// not under the build's prefix, the segment's key "index/9".
		{"collections/2/segments/5/index/9", seg(2, 5, "index/9"), true},
		{"collections/2/segments/5/index/", seg(2, 5, "index/"), true},
		{"collections/2/segments/5/index", seg(2, 5, "index"), true},
		{"collections/2/segments/5/index/x/f", seg(2, 5, "index/x/f"), true},
		{"collections/2/segments/5/index/09/f", seg(2, 5, "index/09/f"), true},
		{"collections/2/segments/5//x", seg(2, 5, "/x"), true},
		{"collections/2/segments/18446744073709551615/f", seg(2, 18446744073709551615, "f"), true},
		{"collections/2/segments/18446744073709551616/f", ObjectOwner{}, false},
		{"collections/2/segments/5", ObjectOwner{}, false},
		{"collections/2/segments/", ObjectOwner{}, false},
		{"collections/2/segments", ObjectOwner{}, false},
		{"collections/2/", ObjectOwner{}, false},
		{"collections/", ObjectOwner{}, false},
		{"collections", ObjectOwner{}, false},
		{"", ObjectOwner{}, false},
		{"collections/02/segments/5/f", ObjectOwner{}, false},
		{"collections/0/segments/5/f", ObjectOwner{}, false},
		{"collections/2/segments/0/f", ObjectOwner{}, false},
		{"collections/+2/segments/5/f", ObjectOwner{}, false},
		{"collections/-2/segments/5/f", ObjectOwner{}, false},
		{"collections/2x/segments/5/f", ObjectOwner{}, false},
		{"collections/2/segment/5/f", ObjectOwner{}, false},
		{"collections//segments/5/f", ObjectOwner{}, false},
		{"/collections/2/segments/5/f", ObjectOwner{}, false},
		{"collections/٢/segments/5/f", ObjectOwner{}, false},
		{"collections/2/segments/5/\x00\xff", seg(2, 5, "\x00\xff"), true},
		{"snapshots/1.skm", ObjectOwner{}, false},
	} {
		got, ok := ParseOwner(tc.key)
		require.Equal(t, tc.ok, ok, "%q", tc.key)
		require.Equal(t, tc.want, got, "%q", tc.key)
		if ok {
			require.Equal(t, tc.key, got.Prefix()+got.Rel, "%q", tc.key)
		}
	}
}

// The stray object of the crash report under a READY build of a flushed segment, and
// its relatives: each is a key nobody owns (an orphan to report), none panics.
func TestKeyOwnedStrayKeysUnderAReadyBuild(t *testing.T) {
	h := newHarness(t)
	h.ok(&fsmpb.CreateCollection{Name: "docs"}, nil)
	h.ok(&fsmpb.CreateIndex{Collection: "docs", Name: "vec", FieldId: 101}, nil)
	s := h.flushedSegment("docs", 2)
	var br fsmpb.IndexBuildResponse
	h.ok(&fsmpb.AllocateIndexBuild{SegmentId: s.Id, Index: "vec", Lease: 60 * second}, &br)
	buildPrefix := BuildPrefix(s.CollectionId, s.Id, br.BuildId)
	h.ok(&fsmpb.AddIndexBuild{SegmentId: s.Id, BuildId: br.BuildId, Files: []*fsmpb.File{{Key: buildPrefix + "g", Kind: fsmpb.FileKind_FILE_KIND_INDEX}}}, nil)

	v := h.f.View()
	owned, _ := v.KeyOwned(buildPrefix + "g")
	require.True(t, owned)
	for _, key := range []string{
		strings.TrimSuffix(buildPrefix, "/"), // collections/C/segments/S/index/B
		buildPrefix,
		buildPrefix + "h",
		SegmentPrefix(s.CollectionId, s.Id) + "index",
		SegmentPrefix(s.CollectionId, s.Id),
		"collections/0" + strings.TrimPrefix(buildPrefix, "collections/") + "g", // a leading zero
	} {
		owned, why := v.KeyOwned(key)
		require.False(t, owned, "%q: %s", key, why)
	}
}

// FuzzParseOwner: any byte string as a key: no panic; a parsed key is its owner's
// prefix plus the rest, and a key built from an owner parses back to it.
func FuzzParseOwner(f *testing.F) {
	for _, seed := range []string{
		"collections/2/segments/5/insert/100/1", "collections/2/segments/5/index/9",
		"collections/2/segments/5/index/9/f", "collections/02/segments/5/f", "snapshots/1.skm", "",
		"collections/18446744073709551615/segments/1/index/18446744073709551615/",
	} {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, key string) {
		own, ok := ParseOwner(key)
		if !ok {
			require.Equal(t, ObjectOwner{}, own)
			return
		}
		require.NotZero(t, own.CollectionID)
		require.NotZero(t, own.SegmentID)
		require.Equal(t, key, own.Prefix()+own.Rel)
		again, ok := ParseOwner(own.Prefix() + own.Rel)
		require.True(t, ok)
		require.Equal(t, own, again)
		if own.BuildID == 0 {
			// The same rest under a build of the segment parses to that build.
			b, ok := ParseOwner(BuildPrefix(own.CollectionID, own.SegmentID, 7) + own.Rel)
			require.True(t, ok)
			require.Equal(t, ObjectOwner{CollectionID: own.CollectionID, SegmentID: own.SegmentID, BuildID: 7, Rel: own.Rel}, b)
		}
	})
}
