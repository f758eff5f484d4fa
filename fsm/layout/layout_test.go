package layout

import (
	"errors"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
)

const (
	insert = fsmpb.FileKind_FILE_KIND_INSERT
	delta  = fsmpb.FileKind_FILE_KIND_DELTA
	stats  = fsmpb.FileKind_FILE_KIND_STATS
	bm25   = fsmpb.FileKind_FILE_KIND_BM25
	index  = fsmpb.FileKind_FILE_KIND_INDEX
	text   = fsmpb.FileKind_FILE_KIND_TEXT_INDEX
	jsonK  = fsmpb.FileKind_FILE_KIND_JSON_KEY_INDEX
)

var seg = Segment{Collection: 2, Partition: 3, Segment: 5}

func TestSnapkeepParse(t *testing.T) {
	s := func(c, sg uint64, rel string) Owner { return Owner{Collection: c, Segment: sg, Rel: rel} }
	b := func(c, sg, bd uint64, rel string) Owner {
		return Owner{Collection: c, Segment: sg, Build: bd, Rel: rel}
	}
	for _, tc := range []struct {
		key  string
		want Owner
		ok   bool
	}{
		{"collections/2/segments/5/insert/100/1", s(2, 5, "insert/100/1"), true},
		{"collections/2/segments/5/", s(2, 5, ""), true},
		{"collections/2/segments/5/index/9/a/b", b(2, 5, 9, "a/b"), true},
		{"collections/2/segments/5/index/9/", b(2, 5, 9, ""), true},
		// The stray object that crashed every leader: no slash after the build id, so
		// not under the build's prefix, the segment's key "index/9".
		{"collections/2/segments/5/index/9", s(2, 5, "index/9"), true},
		{"collections/2/segments/5/index/", s(2, 5, "index/"), true},
		{"collections/2/segments/5/index", s(2, 5, "index"), true},
		{"collections/2/segments/5/index/x/f", s(2, 5, "index/x/f"), true},
		{"collections/2/segments/5/index/09/f", s(2, 5, "index/09/f"), true},
		{"collections/2/segments/5//x", s(2, 5, "/x"), true},
		{"collections/2/segments/18446744073709551615/f", s(2, 18446744073709551615, "f"), true},
		{"collections/2/segments/18446744073709551616/f", Owner{}, false},
		{"collections/2/segments/5", Owner{}, false},
		{"collections/2/segments/", Owner{}, false},
		{"collections/2/", Owner{}, false},
		{"collections", Owner{}, false},
		{"", Owner{}, false},
		{"collections/02/segments/5/f", Owner{}, false},
		{"collections/0/segments/5/f", Owner{}, false},
		{"collections/2/segments/0/f", Owner{}, false},
		{"collections/+2/segments/5/f", Owner{}, false},
		{"collections/-2/segments/5/f", Owner{}, false},
		{"collections/2x/segments/5/f", Owner{}, false},
		{"collections/2/segment/5/f", Owner{}, false},
		{"collections//segments/5/f", Owner{}, false},
		{"/collections/2/segments/5/f", Owner{}, false},
		{"collections/٢/segments/5/f", Owner{}, false},
		{"collections/2/segments/5/\x00\xff", s(2, 5, "\x00\xff"), true},
		{"snapshots/1.skm", Owner{}, false},
		{"insert_log/2/3/5/100/1", Owner{}, false},
	} {
		got, ok := Snapkeep.Parse(tc.key)
		require.Equal(t, tc.ok, ok, "%q", tc.key)
		require.Equal(t, tc.want, got, "%q", tc.key)
	}
}

func TestMilvusParse(t *testing.T) {
	s := func(c, p, sg uint64, rel string) Owner {
		return Owner{Layout: fsmpb.KeyLayout_KEY_LAYOUT_MILVUS, Collection: c, Partition: p, Segment: sg, Rel: rel}
	}
	b := func(p, sg, bd uint64, rel string) Owner {
		return Owner{Layout: fsmpb.KeyLayout_KEY_LAYOUT_MILVUS, Partition: p, Segment: sg, Build: bd, Rel: rel}
	}
	for _, tc := range []struct {
		key  string
		want Owner
		ok   bool
	}{
		{"insert_log/2/3/5/100/7", s(2, 3, 5, "insert_log/100/7"), true},
		{"insert_log/2/3/5/0/7", s(2, 3, 5, "insert_log/0/7"), true},
		{"stats_log/2/3/5/101/8", s(2, 3, 5, "stats_log/101/8"), true},
		{"bm25_stats/2/3/5/102/9", s(2, 3, 5, "bm25_stats/102/9"), true},
		{"delta_log/2/3/5/10", s(2, 3, 5, "delta_log/10"), true},
		{"text_log/44/1/2/3/5/103/index.tar", s(2, 3, 5, "text_log/44/1/103/index.tar"), true},
		{"json_key_index_log/45/0/2/3/5/104/a/b", s(2, 3, 5, "json_key_index_log/45/0/104/a/b"), true},
		{"json_stats/2/46/1/2/3/5/104/shared/x", s(2, 3, 5, "json_stats/2/46/1/104/shared/x"), true},
		{"index_files/9/1/3/5/HNSW_0", b(3, 5, 9, "1/HNSW_0"), true},
		{"index_files/9/0/3/5/dir/file", b(3, 5, 9, "0/dir/file"), true},
		// The tail is Rel's: parsing does not judge it.
		{"insert_log/2/3/5/", s(2, 3, 5, "insert_log/"), true},
		{"insert_log/2/3/5/x", s(2, 3, 5, "insert_log/x"), true},
		{"index_files/9/1/3/5/", b(3, 5, 9, "1/"), true},
		// Ids are canonical decimals above 0.
		{"insert_log/0/3/5/100/7", Owner{}, false},
		{"insert_log/2/03/5/100/7", Owner{}, false},
		{"insert_log/2/3/-5/100/7", Owner{}, false},
		{"insert_log/2/3/5", Owner{}, false},
		{"insert_log/2/3", Owner{}, false},
		{"insert_log", Owner{}, false},
		{"text_log/0/1/2/3/5/103/f", Owner{}, false},
		{"text_log/44/01/2/3/5/103/f", Owner{}, false},
		// Shape only: a version missing shifts the ids (the field check of a flush
		// refuses such a key; a listed one is simply not found in the file list).
		{"text_log/44/2/3/5/103/f", s(3, 5, 103, "text_log/44/2/f"), true},
		{"json_stats/46/1/2/3/5/104/x", s(3, 5, 104, "json_stats/46/1/2/x"), true},
		{"index_files/9/1/3", Owner{}, false},
		{"index_files/0/1/3/5/f", Owner{}, false},
		{"index_files/9/x/3/5/f", Owner{}, false},
		{"part_stats/2/3/5/1", Owner{}, false},
		{"analyze_stats/1/2", Owner{}, false},
		{"collections/2/segments/5/insert/1", Owner{}, false},
		{"", Owner{}, false},
	} {
		got, ok := Milvus.Parse(tc.key)
		require.Equal(t, tc.ok, ok, "%q", tc.key)
		if ok {
			require.Equal(t, tc.want, got, "%q", tc.key)
		}
	}
}

func TestSegmentFiles(t *testing.T) {
	for _, tc := range []struct {
		name   string
		layout Layout
		kind   fsmpb.FileKind
		field  int64
		key    string
		rel    string // "" when refused
		errHas string
	}{
		{"snapkeep insert", Snapkeep, insert, 100, "collections/2/segments/5/insert/100/1", "insert/100/1", ""},
		{"snapkeep text", Snapkeep, text, 100, "collections/2/segments/5/text/100/a", "text/100/a", ""},
		{"snapkeep wrong dir", Snapkeep, delta, 0, "collections/2/segments/5/insert/1", "", `must sit under the segment prefix's "delta/" directory`},
		{"snapkeep other segment", Snapkeep, insert, 100, "collections/2/segments/6/insert/100/1", "", `is outside segment 5's prefix "collections/2/segments/5/"`},
		{"snapkeep prefix only", Snapkeep, insert, 100, "collections/2/segments/5/", "", "names the prefix itself"},
		{"snapkeep dot", Snapkeep, insert, 100, "collections/2/segments/5/insert/../x", "", `a ".." path component`},
		{"snapkeep index kind", Snapkeep, index, 0, "collections/2/segments/5/index/1/x", "", "belong to index builds"},
		{"milvus insert", Milvus, insert, 100, "insert_log/2/3/5/100/7", "insert_log/100/7", ""},
		{"milvus row id field", Milvus, insert, 0, "insert_log/2/3/5/0/7", "insert_log/0/7", ""},
		{"milvus stats", Milvus, stats, 100, "stats_log/2/3/5/100/8", "stats_log/100/8", ""},
		{"milvus bm25", Milvus, bm25, 101, "bm25_stats/2/3/5/101/9", "bm25_stats/101/9", ""},
		{"milvus delta", Milvus, delta, 0, "delta_log/2/3/5/10", "delta_log/10", ""},
		{"milvus text", Milvus, text, 103, "text_log/44/1/2/3/5/103/index.tar", "text_log/44/1/103/index.tar", ""},
		{"milvus json key", Milvus, jsonK, 104, "json_key_index_log/45/1/2/3/5/104/a/b", "json_key_index_log/45/1/104/a/b", ""},
		{"milvus json stats", Milvus, jsonK, 104, "json_stats/2/46/1/2/3/5/104/shared_key_index/x", "json_stats/2/46/1/104/shared_key_index/x", ""},
		{"milvus wrong kind", Milvus, stats, 100, "insert_log/2/3/5/100/7", "", "not where Milvus keeps one (stats_log/)"},
		{"milvus other partition", Milvus, insert, 100, "insert_log/2/4/5/100/7", "", "must name collection/partition/segment 2/3/5"},
		{"milvus field mismatch", Milvus, insert, 101, "insert_log/2/3/5/100/7", "", "names field 100, but its field id is 101"},
		{"milvus extra component", Milvus, insert, 100, "insert_log/2/3/5/100/7/x", "", "ends in <field>/<log id>"},
		{"milvus log id 0", Milvus, insert, 100, "insert_log/2/3/5/100/0", "", "ends in <field>/<log id>"},
		{"milvus delta with field", Milvus, delta, 0, "delta_log/2/3/5/100/7", "", "ends in <log id>"},
		{"milvus text without file", Milvus, text, 103, "text_log/44/1/2/3/5/103", "", "ends in <field>/<file>"},
		{"milvus text empty component", Milvus, text, 103, "text_log/44/1/2/3/5/103//f", "", "empty path component"},
		{"milvus snapkeep key", Milvus, insert, 100, "collections/2/segments/5/insert/100/1", "", "not where Milvus keeps one"},
		{"milvus index kind", Milvus, index, 0, "index_files/9/1/3/5/f", "", "belong to index builds"},
		{"milvus leading zero", Milvus, insert, 100, "insert_log/02/3/5/100/7", "", "must name collection/partition/segment"},
		{"milvus text build 0", Milvus, text, 103, "text_log/0/1/2/3/5/103/f", "", "not canonical decimals"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel, err := tc.layout.SegmentFileRel(seg, &fsmpb.File{Key: tc.key, Kind: tc.kind, FieldId: tc.field})
			if tc.errHas != "" {
				require.ErrorIs(t, err, ErrBadKey)
				require.ErrorContains(t, err, tc.errHas)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.rel, rel)
			require.Equal(t, tc.key, tc.layout.SegmentFileKey(seg, rel), "key from the kept form")
			o, ok := Parse(tc.key)
			require.True(t, ok)
			require.Equal(t, rel, o.Rel)
			require.Equal(t, tc.layout.ID(), o.Layout)
			require.Equal(t, seg.Segment, o.Segment)
			// A restore rebuilds the key with the target's ids.
			target := Segment{Collection: 20, Partition: 30, Segment: 50}
			moved := tc.layout.SegmentFileKey(target, rel)
			mo, ok := tc.layout.Parse(moved)
			require.True(t, ok, moved)
			require.Equal(t, target.Segment, mo.Segment)
			require.Equal(t, rel, mo.Rel)
		})
	}
}

func TestBuildFiles(t *testing.T) {
	b := Build{Segment: seg, Build: 9}
	for _, tc := range []struct {
		name   string
		layout Layout
		kind   fsmpb.FileKind
		key    string
		rel    string
		errHas string
	}{
		{"snapkeep", Snapkeep, index, "collections/2/segments/5/index/9/HNSW_0", "HNSW_0", ""},
		{"snapkeep other build", Snapkeep, index, "collections/2/segments/5/index/8/HNSW_0", "", "outside index build 9's prefix"},
		{"snapkeep insert kind", Snapkeep, insert, "collections/2/segments/5/index/9/HNSW_0", "", "hold only files of kind index, not insert"},
		{"milvus", Milvus, index, "index_files/9/1/3/5/HNSW_0", "1/HNSW_0", ""},
		{"milvus nested", Milvus, index, "index_files/9/0/3/5/a/b", "0/a/b", ""},
		{"milvus other segment", Milvus, index, "index_files/9/1/3/6/HNSW_0", "", "index_files/9/<version>/3/5/<file>"},
		{"milvus no version", Milvus, index, "index_files/9/3/5/HNSW_0", "", "index_files/9/<version>/3/5/<file>"},
		{"milvus no file", Milvus, index, "index_files/9/1/3/5/", "", "names the prefix itself"},
		{"milvus other build", Milvus, index, "index_files/8/1/3/5/x", "", "outside index build 9's prefix"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			rel, err := tc.layout.BuildFileRel(b, &fsmpb.File{Key: tc.key, Kind: tc.kind})
			if tc.errHas != "" {
				require.ErrorIs(t, err, ErrBadKey)
				require.ErrorContains(t, err, tc.errHas)
				return
			}
			require.NoError(t, err)
			require.Equal(t, tc.rel, rel)
			require.Equal(t, tc.key, tc.layout.BuildFileKey(b, rel))
			o, ok := Parse(tc.key)
			require.True(t, ok)
			require.Equal(t, Owner{Layout: tc.layout.ID(), Collection: o.Collection, Partition: o.Partition, Segment: 5, Build: 9, Rel: rel}, o)
		})
	}
}

func TestListPrefix(t *testing.T) {
	for key, want := range map[string]string{
		"collections/2/segments/517/insert/1/1":    "collections/2/segments/5",
		"insert_log/2/3/5/100/7":                   "insert_log/2/",
		"delta_log/2/3/5/10":                       "delta_log/2/",
		"text_log/44/1/2/3/5/103/f":                "text_log/44/",
		"json_stats/2/46/1/2/3/5/104/x":            "json_stats/2/46/",
		"index_files/9/1/3/5/HNSW_0":               "index_files/9/",
		"part_stats/1/2":                           "",
		"collections/2/segments/x/insert/100/1":    "",
		"json_key_index_log/45/0/2/3/5/104/a":      "json_key_index_log/45/",
		"bm25_stats/2/3/5/102/9":                   "bm25_stats/2/",
		"snapshots/7.skm":                          "",
		"stats_log/18446744073709551615/3/5/100/8": "stats_log/18446744073709551615/",
	} {
		got := ListPrefix(key)
		require.Equal(t, want, got, key)
		require.True(t, strings.HasPrefix(key, got), key)
	}
}

func TestDataFileKey(t *testing.T) {
	for _, tc := range []struct {
		l     Layout
		kind  fsmpb.FileKind
		field int64
		want  string
	}{
		{Snapkeep, insert, 101, "collections/2/segments/5/insert/101/7"},
		{Snapkeep, delta, 0, "collections/2/segments/5/delta/0/7"},
		{Milvus, insert, 101, "insert_log/2/3/5/101/7"},
		{Milvus, stats, 100, "stats_log/2/3/5/100/7"},
		{Milvus, bm25, 104, "bm25_stats/2/3/5/104/7"},
		{Milvus, delta, 0, "delta_log/2/3/5/7"},
	} {
		key, err := DataFileKey(tc.l, seg, tc.kind, tc.field, 7)
		require.NoError(t, err)
		require.Equal(t, tc.want, key)
		_, err = tc.l.SegmentFileRel(seg, &fsmpb.File{Key: key, Kind: tc.kind, FieldId: tc.field})
		require.NoError(t, err, "a written key is accepted at flush")
	}
	for _, l := range []Layout{Snapkeep, Milvus} {
		_, err := DataFileKey(l, seg, index, 0, 7)
		require.ErrorIs(t, err, ErrBadKey)
		_, err = DataFileKey(l, seg, insert, 100, 0)
		require.ErrorIs(t, err, ErrBadKey)
	}
}

func TestFor(t *testing.T) {
	l, err := For(fsmpb.KeyLayout_KEY_LAYOUT_MILVUS)
	require.NoError(t, err)
	require.Equal(t, Milvus, l)
	_, err = For(fsmpb.KeyLayout(9))
	require.True(t, errors.Is(err, ErrBadKey))
	require.Equal(t, Snapkeep, MustFor(fsmpb.KeyLayout(9)))
	require.Equal(t, "milvus", Name(fsmpb.KeyLayout_KEY_LAYOUT_MILVUS))
}

// FuzzParseKey: any key parses without a panic; a parsed key is its owner's key for
// its Rel; and a key a layout accepts for a file is rebuilt exactly from the kept form
// and parses back to it.
func FuzzParseKey(f *testing.F) {
	for _, k := range []string{
		"collections/2/segments/5/insert/100/1", "collections/2/segments/5/index/9/a", "collections/2/segments/5/index/9",
		"insert_log/2/3/5/100/7", "delta_log/2/3/5/10", "stats_log/2/3/5/0/8", "bm25_stats/2/3/5/101/9",
		"text_log/44/1/2/3/5/103/index.tar", "json_key_index_log/45/0/2/3/5/104/a/b", "json_stats/2/46/1/2/3/5/104/x",
		"index_files/9/1/3/5/HNSW_0", "index_files/9/1/3/5/", "insert_log/2/3/5/", "part_stats/1", "", "/", "//",
	} {
		f.Add(k, int64(100))
	}
	kinds := []fsmpb.FileKind{insert, delta, stats, bm25, index, text, jsonK}
	f.Fuzz(func(t *testing.T, key string, field int64) {
		_ = ListPrefix(key)
		o, ok := Parse(key)
		if !ok {
			return
		}
		l := MustFor(o.Layout)
		s := Segment{Collection: o.Collection, Partition: o.Partition, Segment: o.Segment}
		if o.Build != 0 {
			b := Build{Segment: s, Build: o.Build}
			if got := l.BuildFileKey(b, o.Rel); got != key {
				t.Fatalf("%q parsed to %+v, which builds %q", key, o, got)
			}
			if rel, err := l.BuildFileRel(b, &fsmpb.File{Key: key, Kind: index}); err == nil && rel != o.Rel {
				t.Fatalf("%q: kept as %q, parsed as %q", key, rel, o.Rel)
			}
			if !strings.HasPrefix(key, ListPrefix(key)) {
				t.Fatalf("%q does not start with its list prefix", key)
			}
			return
		}
		if got := l.SegmentFileKey(s, o.Rel); got != key {
			t.Fatalf("%q parsed to %+v, which builds %q", key, o, got)
		}
		for _, k := range kinds {
			rel, err := l.SegmentFileRel(s, &fsmpb.File{Key: key, Kind: k, FieldId: field})
			if err != nil {
				continue
			}
			if rel != o.Rel || l.SegmentFileKey(s, rel) != key {
				t.Fatalf("%q (kind %v): kept as %q, parsed as %q", key, k, rel, o.Rel)
			}
		}
		if !strings.HasPrefix(key, ListPrefix(key)) {
			t.Fatalf("%q does not start with its list prefix %q", key, ListPrefix(key))
		}
	})
}
