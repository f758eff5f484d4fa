package filelist

import (
	"bytes"
	"encoding/hex"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/fsmtest"
)

func TestFileListRoundTrip(t *testing.T) {
	entries := []Entry{
		{Key: "bm25/7", Kind: fsmpb.FileKind_FILE_KIND_BM25, FieldID: 7, Size: 1},
		{Key: "delta/0", Kind: fsmpb.FileKind_FILE_KIND_DELTA, Size: 0},
		{Key: "delta/007", Kind: fsmpb.FileKind_FILE_KIND_DELTA, Size: 9},             // leading zero: kept as text
		{Key: "insert/1/18446744073709551615", Kind: fsmpb.FileKind_FILE_KIND_INSERT}, // max uint64
		{Key: "insert/1/2", Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldID: -3, Size: 1 << 40, CRC32C: 0xffffffff},
		{Key: "insert/100/449000000000000001", Kind: fsmpb.FileKind_FILE_KIND_INSERT, FieldID: 100, Size: 4096, CRC32C: 1},
		{Key: "insert/100/99999999999999999999", Kind: fsmpb.FileKind_FILE_KIND_INSERT}, // too long for a number
		{Key: "stats/ünïcödé name+%.bin", Kind: fsmpb.FileKind_FILE_KIND_STATS},
		{Key: "top-level-name", Kind: fsmpb.FileKind_FILE_KIND_STATS},
	}
	blob := EncodeSorted(entries)
	got, err := Decode(blob)
	require.NoError(t, err)
	require.Equal(t, entries, got)
	n, err := Count(blob)
	require.NoError(t, err)
	require.Equal(t, len(entries), n)

	// Stopping early is honoured.
	seen := 0
	require.NoError(t, ForEach(blob, func(Entry) bool { seen++; return seen < 3 }))
	require.Equal(t, 3, seen)

	// Every truncation is an error, never a panic.
	for i := 0; i < len(blob); i++ {
		_, err := Decode(blob[:i])
		if i == 0 {
			require.NoError(t, err, "an empty blob is an empty list")
			continue
		}
		require.Error(t, err, "truncated to %d bytes", i)
	}
}

// TestFileListIsCompact pins the size of a realistic segment's file list: eight files
// with Milvus's 18-digit log ids take 153 bytes, under 20 per file.
// Per-file metadata makes a version-2 list that decodes to the same entries; a list
// without any stays version 1, byte for byte what it was.
func TestFileListWithMetadata(t *testing.T) {
	plain := []Entry{{Key: "insert_log/100/449000000000000001", Kind: 1, Size: 3}, {Key: "insert_log/100/449000000000000002", Kind: 1, Size: 4}}
	blob, err := Encode(plain)
	require.NoError(t, err)
	require.EqualValues(t, fileListVersion, blob[0])

	withMeta := []Entry{
		{Key: "delta_log/449000000000000009", Kind: 2, Size: 9, LogID: 449000000000000009, Entries: 3, TimestampFrom: 449000000000000000, TimestampTo: 449000000000000500},
		{Key: "insert_log/100/449000000000000001", Kind: 1, Size: 3, LogID: 449000000000000001, Entries: 1000, TimestampFrom: 448999999999999000, TimestampTo: 449000000000000001, MemorySize: 4096},
		{Key: "insert_log/100/449000000000000002", Kind: 1, Size: 4},
		{Key: "stats_log/100/449000000000000003", Kind: 3, Size: 5, TimestampTo: 7},
	}
	blob, err = Encode(withMeta)
	require.NoError(t, err)
	require.EqualValues(t, fileListVersionMeta, blob[0])
	got, err := Decode(blob)
	require.NoError(t, err)
	require.Equal(t, withMeta, got)
	t.Logf("%d files with metadata: %d bytes", len(withMeta), len(blob))
}

func TestFileListVersion2StillReads(t *testing.T) {
	blob, err := hex.DecodeString(fsmtest.GoldenFileListV2)
	require.NoError(t, err)
	got, err := Decode(blob)
	require.NoError(t, err)
	require.Equal(t, goldenEntries(), got)

	upgraded, err := Upgrade(blob)
	require.NoError(t, err)
	require.EqualValues(t, fileListVersionMeta, upgraded[0])
	again, err := Decode(upgraded)
	require.NoError(t, err)
	require.Equal(t, got, again)
	same, err := Upgrade(upgraded)
	require.NoError(t, err)
	require.Equal(t, upgraded, same, "a version 3 list is left as it is")
}

func TestFileListVersion3RefusesInconsistentFlags(t *testing.T) {
	one := []Entry{{Key: "a/7", Kind: 1, LogID: 7, Entries: 1}}
	blob := EncodeSorted(one)
	// kind, field, size, crc32c, then the presence byte
	at := 1 + 1 + 1 + 1 + 1 + 4
	require.EqualValues(t, metaLogIDIsName|metaEntries, blob[at])
	for _, present := range []byte{
		metaLogIDIsName | metaLogID | metaEntries, // both kinds of log id
		metaSameAsPrevious,                        // no previous entry
		metaLogIDIsName | metaEntries | 0x80,      // an unknown bit
	} {
		bad := bytes.Clone(blob)
		bad[at] = present
		_, err := Decode(bad)
		require.ErrorIs(t, err, errCorrupt, "presence %08b", present)
	}
	named := EncodeSorted([]Entry{{Key: "a/x", Kind: 1, LogID: 7}})
	require.EqualValues(t, metaLogID, named[at], "a log id differing from a non-numeric name is stored")
	named[at] = metaLogIDIsName
	_, err := Decode(named)
	require.ErrorIs(t, err, errCorrupt, "a log id taken from a name that is not a number")
}

// FuzzFileList: any blob decodes or is refused, never a panic, and what decodes
// re-encodes to a list that decodes the same.
func FuzzFileList(f *testing.F) {
	f.Add(EncodeSorted([]Entry{{Key: "insert/1/2", Kind: 1, Size: 3}, {Key: "insert/1/3", Kind: 1, FieldID: -4, CRC32C: 9}}))
	f.Add([]byte{1, 0})
	f.Add([]byte{1, 200, 1})
	f.Add(EncodeSorted([]Entry{{Key: "insert_log/100/449000000000000001", Kind: 1, Size: 3, LogID: 449000000000000001, Entries: 7, TimestampFrom: 5, TimestampTo: 9, MemorySize: 11},
		{Key: "insert_log/101/449000000000000002", Kind: 1, LogID: 449000000000000002, TimestampTo: 1}}))
	golden, err := hex.DecodeString(fsmtest.GoldenFileListV2)
	require.NoError(f, err)
	f.Add(golden)
	f.Fuzz(func(t *testing.T, blob []byte) {
		entries, err := Decode(blob)
		// The walk without keys (totals, counts) accepts and rejects exactly what the
		// full decoding does, and sees the same entries but their keys.
		var metas []Entry
		metaErr := ForEachMeta(blob, func(e Entry) bool { metas = append(metas, e); return true })
		files, bytes, totalsErr := Totals(blob)
		require.Equal(t, err == nil, metaErr == nil, "Decode: %v, ForEachMeta: %v", err, metaErr)
		require.Equal(t, err == nil, totalsErr == nil)
		if err != nil {
			return
		}
		require.Len(t, metas, len(entries))
		var sum uint64
		for i := range entries {
			withoutKey := entries[i]
			withoutKey.Key = ""
			require.Equal(t, withoutKey, metas[i])
			sum += entries[i].Size
		}
		require.Equal(t, len(entries), files)
		require.Equal(t, sum, bytes)
		// Whatever decodes re-encodes to something that decodes the same.
		again, err := Decode(EncodeSorted(entries))
		require.NoError(t, err)
		if len(entries) == 0 {
			require.Empty(t, again)
			return
		}
		require.Equal(t, entries, again)
	})
}

// goldenEntries are the entries of fsmtest.GoldenFileListV2.
func goldenEntries() []Entry {
	return []Entry{
		{Key: "delta_log/449000000000000023", Kind: 2, Size: 4096, LogID: 449000000000000023, Entries: 3, TimestampFrom: 449000000262144100, TimestampTo: 449000000262144200},
		{Key: "insert_log/0/449000000000000016", Kind: 1, FieldID: 0, Size: 1 << 20, CRC32C: 7, LogID: 449000000000000016, Entries: 1000, TimestampFrom: 449000000262144000, TimestampTo: 449000000262406143, MemorySize: 3 << 20},
		{Key: "insert_log/1/449000000000000017", Kind: 1, FieldID: 1, Size: 1 << 20, CRC32C: 8, LogID: 449000000000000017, Entries: 1000, TimestampFrom: 449000000262144000, TimestampTo: 449000000262406143, MemorySize: 3 << 20},
		{Key: "text_log/9/1/100/idx.bin", Kind: 6, FieldID: 100, Size: 77, LogID: 5},
	}
}
