package repository

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/klauspost/compress/zstd"
	"github.com/stretchr/testify/require"
)

const testIndexKey = "backups/repo/index/00000000000000000003"

// TestIndexRoundTrip encodes random indexes (0 to 300 entries, unicode, labels,
// uint64 extremes) and decodes them back equal; encoding is deterministic.
func TestIndexRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(1, 2))
	for _, n := range []int{0, 1, 2, 17, 300} {
		ix := sampleIndex(rng, 3, n)
		b, err := EncodeIndex(ix)
		require.NoError(t, err)
		again, err := EncodeIndex(ix)
		require.NoError(t, err)
		require.Equal(t, b, again, "deterministic")
		got, err := DecodeIndex(testIndexKey, b)
		require.NoError(t, err)
		require.Equal(t, ix, got)
	}
}

// TestIndexJSONShape pins the JSON field names and encodings readers without this
// package depend on.
func TestIndexJSONShape(t *testing.T) {
	ix := sampleIndex(rand.New(rand.NewPCG(3, 4)), 3, 1)
	e := &ix.Snapshots[0]
	e.CollectionID, e.SourceSnapshotID, e.ManifestXXHash64 = 1<<63+1, 18446744073709551615, 0xab
	e.Labels = map[string]string{"b": "2", "a": "1"}
	b, err := EncodeIndex(ix)
	require.NoError(t, err)
	js, err := decompress(b[IndexHeaderLen:], MaxIndexJSON)
	require.NoError(t, err)
	var m map[string]any
	require.NoError(t, json.Unmarshal(js, &m))
	require.ElementsMatch(t, []string{"repository_id", "generation", "writer_cluster_id", "written_at", "snapshots"}, keysOf(m))
	snap := m["snapshots"].([]any)[0].(map[string]any)
	require.ElementsMatch(t, []string{"id", "name", "database", "collection", "collection_id", "source_cluster_id", "source_snapshot_id",
		"layout", "created_at", "exported_at", "manifest_key", "manifest_size", "manifest_xxhash64", "segments", "rows", "files", "bytes",
		"labels", "description"}, keysOf(snap))
	require.Equal(t, "9223372036854775809", snap["collection_id"])
	require.Equal(t, "18446744073709551615", snap["source_snapshot_id"])
	require.Equal(t, "00000000000000ab", snap["manifest_xxhash64"])
	require.Equal(t, "snapshots/"+e.ID+".skm", snap["manifest_key"])
	require.Contains(t, string(js), `"labels":{"a":"1","b":"2"}`)
	require.Equal(t, "SNAPKIDX", string(b[:8]))
	require.Equal(t, uint16(1), binary.BigEndian.Uint16(b[8:]))
	require.Equal(t, uint16(0), binary.BigEndian.Uint16(b[10:]))
	require.Equal(t, uint32(len(b)-20), binary.BigEndian.Uint32(b[12:]))
}

func keysOf(m map[string]any) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestIndexCorruption flips every bit pattern of every byte of an encoded index, and
// truncates and extends it: each is refused with ErrCorrupt, naming the key.
func TestIndexCorruption(t *testing.T) {
	ix := sampleIndex(rand.New(rand.NewPCG(5, 6)), 3, 4)
	b, err := EncodeIndex(ix)
	require.NoError(t, err)
	check := func(what string, data []byte) {
		_, err := DecodeIndex(testIndexKey, data)
		require.ErrorIs(t, err, ErrCorrupt, what)
		require.NotErrorIs(t, err, ErrUnsupportedVersion, what)
		require.Contains(t, err.Error(), testIndexKey, what)
	}
	for i := range b {
		for _, mask := range []byte{0x01, 0x80, 0xff} {
			data := append([]byte(nil), b...)
			data[i] ^= mask
			check(fmt.Sprintf("byte %d ^ %02x", i, mask), data)
		}
	}
	for n := range len(b) {
		check(fmt.Sprintf("truncated to %d bytes", n), b[:n])
	}
	check("one byte more", append(append([]byte(nil), b...), 0))
}

// frame wraps a JSON document in an index frame with a valid CRC.
func frame(t *testing.T, version, flags uint16, js []byte) []byte {
	t.Helper()
	enc, err := zstd.NewWriter(nil)
	require.NoError(t, err)
	defer enc.Close()
	out := make([]byte, IndexHeaderLen)
	out = enc.EncodeAll(js, out)
	copy(out, IndexMagic)
	binary.BigEndian.PutUint16(out[8:], version)
	binary.BigEndian.PutUint16(out[10:], flags)
	binary.BigEndian.PutUint32(out[12:], uint32(len(out)-IndexHeaderLen))
	binary.BigEndian.PutUint32(out[16:], frameCRC(out[8:16], out[IndexHeaderLen:]))
	return out
}

func TestIndexVersionAndFlags(t *testing.T) {
	ix := sampleIndex(rand.New(rand.NewPCG(7, 8)), 3, 2)
	b, err := EncodeIndex(ix)
	require.NoError(t, err)
	js, err := decompress(b[IndexHeaderLen:], MaxIndexJSON)
	require.NoError(t, err)

	_, err = DecodeIndex(testIndexKey, frame(t, 1, 0, js))
	require.NoError(t, err, "the test's framing is right")
	for _, v := range []uint16{2, 3, 0x100, 0xffff} {
		_, err = DecodeIndex(testIndexKey, frame(t, v, 0, js))
		require.ErrorIs(t, err, ErrUnsupportedVersion, "version %d", v)
		require.NotErrorIs(t, err, ErrCorrupt)
		require.Contains(t, err.Error(), testIndexKey)
		require.Contains(t, err.Error(), fmt.Sprintf("format version %d", v))
	}
	_, err = DecodeIndex(testIndexKey, frame(t, 0, 0, js))
	require.ErrorIs(t, err, ErrCorrupt)
	_, err = DecodeIndex(testIndexKey, frame(t, 1, 1, js))
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "flags")
}

// TestIndexValidation: well-framed JSON with bad content is refused with ErrCorrupt
// saying what is wrong.
func TestIndexValidation(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	base := sampleIndex(rng, 3, 3)
	encode := func(mutate func(j map[string]any, snaps []any)) []byte {
		b, err := json.Marshal(toJSON(base))
		require.NoError(t, err)
		var j map[string]any
		dec := json.NewDecoder(bytes.NewReader(b))
		dec.UseNumber() // keep 64-bit counts exact
		require.NoError(t, dec.Decode(&j))
		mutate(j, j["snapshots"].([]any))
		out, err := json.Marshal(j)
		require.NoError(t, err)
		return out
	}
	snap := func(s []any, i int) map[string]any { return s[i].(map[string]any) }
	cases := []struct {
		name   string
		js     []byte
		expect string
	}{
		{"not json", []byte("{"), "JSON"},
		{"no snapshots", encode(func(j map[string]any, _ []any) { delete(j, "snapshots") }), "no snapshots array"},
		{"null snapshots", encode(func(j map[string]any, _ []any) { j["snapshots"] = nil }), "no snapshots array"},
		{"other generation", encode(func(j map[string]any, _ []any) { j["generation"] = 4 }), "not the key's 3"},
		{"bad repository id", encode(func(j map[string]any, _ []any) { j["repository_id"] = "x" }), "repository_id"},
		{"no writer", encode(func(j map[string]any, _ []any) { j["writer_cluster_id"] = "" }), "writer_cluster_id"},
		{"writer with slash", encode(func(j map[string]any, _ []any) { j["writer_cluster_id"] = "a/b" }), "writer_cluster_id"},
		{"empty id", encode(func(_ map[string]any, s []any) { snap(s, 0)["id"] = "" }), "not a UUID"},
		{"duplicate id", encode(func(_ map[string]any, s []any) {
			snap(s, 1)["id"] = snap(s, 0)["id"]
			snap(s, 1)["manifest_key"] = snap(s, 0)["manifest_key"]
		}), "listed twice"},
		{"unsorted", encode(func(_ map[string]any, s []any) { s[0], s[1] = s[1], s[0] }), "not sorted"},
		{"manifest elsewhere", encode(func(_ map[string]any, s []any) { snap(s, 0)["manifest_key"] = "data/x.skm" }), "manifest_key"},
		{"manifest of another id", encode(func(_ map[string]any, s []any) { snap(s, 0)["manifest_key"] = snap(s, 1)["manifest_key"] }), "manifest_key"},
		{"zero manifest size", encode(func(_ map[string]any, s []any) { snap(s, 0)["manifest_size"] = 0 }), "manifest_size"},
		{"huge manifest size", encode(func(_ map[string]any, s []any) { snap(s, 0)["manifest_size"] = int64(MaxManifestSize) + 1 }), "manifest_size"},
		{"negative rows", encode(func(_ map[string]any, s []any) { snap(s, 0)["rows"] = -1 }), "rows"},
		{"bad layout", encode(func(_ map[string]any, s []any) { snap(s, 0)["layout"] = "other" }), "layout"},
		{"bad hash", encode(func(_ map[string]any, s []any) { snap(s, 0)["manifest_xxhash64"] = "12" }), "manifest_xxhash64"},
		{"uppercase hash", encode(func(_ map[string]any, s []any) { snap(s, 0)["manifest_xxhash64"] = "ABCDEF0123456789" }), "manifest_xxhash64"},
		{"numeric id", encode(func(_ map[string]any, s []any) { snap(s, 0)["collection_id"] = 5 }), "JSON"},
		{"no source cluster", encode(func(_ map[string]any, s []any) { snap(s, 0)["source_cluster_id"] = "" }), "source_cluster_id"},
		{"no exported_at", encode(func(_ map[string]any, s []any) { delete(snap(s, 0), "exported_at") }), "exported_at"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := DecodeIndex(testIndexKey, frame(t, 1, 0, tc.js))
			require.ErrorIs(t, err, ErrCorrupt)
			require.Contains(t, err.Error(), testIndexKey)
			require.Contains(t, err.Error(), tc.expect)
		})
	}
	t.Run("unknown fields are ignored", func(t *testing.T) {
		js := encode(func(j map[string]any, s []any) { j["future"] = 1; snap(s, 0)["future"] = "x" })
		got, err := DecodeIndex(testIndexKey, frame(t, 1, 0, js))
		require.NoError(t, err)
		require.Equal(t, base, got)
	})
	t.Run("key must be a generation's", func(t *testing.T) {
		b, err := EncodeIndex(base)
		require.NoError(t, err)
		for _, key := range []string{"", "x", "index/3", "p/index/0000000000000000003", "p/idx/00000000000000000003", "p/xindex/00000000000000000003", "p/index/00000000000000000000"} {
			_, err := DecodeIndex(key, b)
			require.ErrorIs(t, err, ErrCorrupt, key)
		}
		_, err = DecodeIndex("index/00000000000000000003", b)
		require.NoError(t, err, "a repository at the bucket's root")
	})
	t.Run("encode refuses what decode would", func(t *testing.T) {
		bad := base.clone()
		bad.Snapshots[0], bad.Snapshots[1] = bad.Snapshots[1], bad.Snapshots[0]
		_, err := EncodeIndex(bad)
		require.ErrorContains(t, err, "not sorted")
		require.NotErrorIs(t, err, ErrCorrupt)
		bad = base.clone()
		bad.Generation = 0
		_, err = EncodeIndex(bad)
		require.Error(t, err)
	})
}

// TestIndexDecompressionBound: a body inflating past the bound is refused without
// being inflated whole.
func TestIndexDecompressionBound(t *testing.T) {
	js := []byte(`{"snapshots":[],"pad":"` + strings.Repeat("x", 4<<20) + `"}`)
	data := frame(t, 1, 0, js)
	require.Less(t, len(data), 4<<10, "highly compressible")
	_, err := decodeIndex(testIndexKey, data, 1<<20)
	require.ErrorIs(t, err, ErrCorrupt)
	require.Contains(t, err.Error(), "limit")
}

func TestDecodeMarker(t *testing.T) {
	m := Marker{Format: FormatName, Version: 1, RepositoryID: NewID(), CreatedAt: t0, WriterClusterID: "cluster-a"}
	b, err := encodeMarker(m)
	require.NoError(t, err)
	got, err := DecodeMarker(b)
	require.NoError(t, err)
	require.Equal(t, m, got)
	require.Contains(t, string(b), `"format": "snapkeep-repository"`)

	for _, tc := range []struct {
		js   string
		want error
	}{
		{`{`, ErrCorrupt},
		{`[]`, ErrCorrupt},
		{`{}`, ErrNotARepository},
		{`{"format":"tarball","version":1}`, ErrNotARepository},
		{`{"format":"snapkeep-repository"}`, ErrCorrupt},
		{`{"format":"snapkeep-repository","version":0}`, ErrCorrupt},
		{`{"format":"snapkeep-repository","version":2,"anything":[1]}`, ErrUnsupportedVersion},
		{`{"format":"snapkeep-repository","version":1,"repository_id":"x","created_at":"2025-01-01T00:00:00Z"}`, ErrCorrupt},
		{`{"format":"snapkeep-repository","version":1,"repository_id":"` + m.RepositoryID + `"}`, ErrCorrupt},
		{`{"format":"snapkeep-repository","version":1,"repository_id":"` + m.RepositoryID + `","created_at":"2025-01-01T00:00:00Z","writer_cluster_id":"a b"}`, ErrCorrupt},
	} {
		_, err := DecodeMarker([]byte(tc.js))
		require.ErrorIs(t, err, tc.want, tc.js)
	}
	ro, err := DecodeMarker([]byte(`{"format":"snapkeep-repository","version":1,"repository_id":"` + m.RepositoryID + `","created_at":"2025-01-01T00:00:00Z","writer_cluster_id":"","extra":true}`))
	require.NoError(t, err, "read-only marker, unknown field ignored")
	require.Empty(t, ro.WriterClusterID)
}

func TestKeys(t *testing.T) {
	k := NewKeys("backups/r1")
	id := NewID()
	require.True(t, ValidID(id))
	require.Equal(t, "backups/r1/snapkeep-repository", k.Marker())
	require.Equal(t, "backups/r1/index/00000000000000000042", k.Index(42))
	require.Equal(t, "backups/r1/snapshots/"+id+".skm", k.Manifest(id))
	require.Equal(t, "backups/r1/data/c1/collections/1/segments/2/insert/101/7", k.Data("c1", "collections/1/segments/2/insert/101/7"))
	for key, want := range map[string]KeyInfo{
		k.Marker():                                             {Kind: KeyMarker},
		k.Index(42):                                            {Kind: KeyIndex, Generation: 42},
		k.Manifest(id):                                         {Kind: KeyManifest, Snapshot: id},
		k.Data("c", "x"):                                       {Kind: KeyData, Cluster: "c", Rel: "x"},
		"backups/r1/index/00000000000000000000":                {Kind: KeyUnknown},
		"backups/r1/index/99999999999999999999":                {Kind: KeyUnknown}, // over 2^64
		"backups/r1/index/18446744073709551615":                {Kind: KeyIndex, Generation: 1<<64 - 1},
		"backups/r1/index/0000000000000000004x":                {Kind: KeyUnknown},
		"backups/r1/index/00000000000000000042.tmp":            {Kind: KeyUnknown},
		"backups/r1/snapshots/" + strings.ToUpper(id) + ".skm": {Kind: KeyUnknown},
		"backups/r1/snapshots/x.skm":                           {Kind: KeyUnknown},
		"backups/r1/data/c/":                                   {Kind: KeyUnknown},
		"backups/r1/data/../x":                                 {Kind: KeyUnknown},
		"backups/r1/data/c":                                    {Kind: KeyUnknown},
		"backups/r1/other":                                     {Kind: KeyUnknown},
	} {
		got, ok := k.Parse(key)
		require.True(t, ok, key)
		require.Equal(t, want, got, key)
	}
	_, ok := k.Parse("backups/r10/snapkeep-repository")
	require.False(t, ok)
	for _, bad := range []string{"", ".", "..", "a/b", "a b", "é", strings.Repeat("a", MaxClusterIDLen+1), "\xff"} {
		require.Error(t, CheckClusterID(bad), "%q", bad)
	}
	for _, good := range []string{"a", "cluster-1", "c_2.prod", NewID(), strings.Repeat("a", MaxClusterIDLen)} {
		require.NoError(t, CheckClusterID(good), good)
	}
	require.False(t, errors.Is(CheckClusterID("x"), ErrCorrupt))
}
