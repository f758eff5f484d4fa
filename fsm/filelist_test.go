package fsm

import (
	"bytes"
	"encoding/hex"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/fsmtest"
	"github.com/snapkeep/snapkeep/fsm/layout"
)

func TestFileListRoundTrip(t *testing.T) {
	entries := []FileEntry{
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
	blob := encodeFileList(entries)
	got, err := DecodeFileList(blob)
	require.NoError(t, err)
	require.Equal(t, entries, got)
	n, err := FileCount(blob)
	require.NoError(t, err)
	require.Equal(t, len(entries), n)

	// Stopping early is honoured.
	seen := 0
	require.NoError(t, ForEachFile(blob, func(FileEntry) bool { seen++; return seen < 3 }))
	require.Equal(t, 3, seen)

	// Every truncation is an error, never a panic.
	for i := 0; i < len(blob); i++ {
		_, err := DecodeFileList(blob[:i])
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
	plain := []FileEntry{{Key: "insert_log/100/449000000000000001", Kind: 1, Size: 3}, {Key: "insert_log/100/449000000000000002", Kind: 1, Size: 4}}
	blob, err := EncodeFileList(plain)
	require.NoError(t, err)
	require.EqualValues(t, fileListVersion, blob[0])

	withMeta := []FileEntry{
		{Key: "delta_log/449000000000000009", Kind: 2, Size: 9, LogID: 449000000000000009, Entries: 3, TimestampFrom: 449000000000000000, TimestampTo: 449000000000000500},
		{Key: "insert_log/100/449000000000000001", Kind: 1, Size: 3, LogID: 449000000000000001, Entries: 1000, TimestampFrom: 448999999999999000, TimestampTo: 449000000000000001, MemorySize: 4096},
		{Key: "insert_log/100/449000000000000002", Kind: 1, Size: 4},
		{Key: "stats_log/100/449000000000000003", Kind: 3, Size: 5, TimestampTo: 7},
	}
	blob, err = EncodeFileList(withMeta)
	require.NoError(t, err)
	require.EqualValues(t, fileListVersionMeta, blob[0])
	got, err := DecodeFileList(blob)
	require.NoError(t, err)
	require.Equal(t, withMeta, got)
	t.Logf("%d files with metadata: %d bytes", len(withMeta), len(blob))
}

func TestFileListIsCompact(t *testing.T) {
	ref := layout.Segment{Collection: 12, Segment: 3456789}
	blob, err := encodeFiles(fsmtest.SnapkeepFiles(12, 3456789), "segment", func(f *fsmpb.File) (string, error) { return layout.Snapkeep.SegmentFileRel(ref, f) })
	require.NoError(t, err)
	require.LessOrEqual(t, len(blob), 160)
}

// goldenV2 is a version 2 list written by the encoder before version 3 (Milvus keys,
// one entry without timestamps, one with a non-numeric name).
const goldenV2 = "020402008020000000000fae80b482e0c795bb0c06c881b4fce1c795bb0cc801000a64656c74615f6c6f672f01ae80b482e0c795bb0c0100808040070000001f0dd00fc701feff1f80808003000d696e736572745f6c6f672f302f010d0102808040080000001f02d00f00feff1f808080030b02312f010206c8014d00000000019780b482e0c795bb0c0011746578745f6c6f672f392f312f3130302f00076964782e62696e"

func goldenEntries() []FileEntry {
	return []FileEntry{
		{Key: "delta_log/449000000000000023", Kind: 2, Size: 4096, LogID: 449000000000000023, Entries: 3, TimestampFrom: 449000000262144100, TimestampTo: 449000000262144200},
		{Key: "insert_log/0/449000000000000016", Kind: 1, FieldID: 0, Size: 1 << 20, CRC32C: 7, LogID: 449000000000000016, Entries: 1000, TimestampFrom: 449000000262144000, TimestampTo: 449000000262406143, MemorySize: 3 << 20},
		{Key: "insert_log/1/449000000000000017", Kind: 1, FieldID: 1, Size: 1 << 20, CRC32C: 8, LogID: 449000000000000017, Entries: 1000, TimestampFrom: 449000000262144000, TimestampTo: 449000000262406143, MemorySize: 3 << 20},
		{Key: "text_log/9/1/100/idx.bin", Kind: 6, FieldID: 100, Size: 77, LogID: 5},
	}
}

func TestFileListVersion2StillReads(t *testing.T) {
	blob, err := hex.DecodeString(goldenV2)
	require.NoError(t, err)
	got, err := DecodeFileList(blob)
	require.NoError(t, err)
	require.Equal(t, goldenEntries(), got)

	upgraded, err := upgradeFileList(blob)
	require.NoError(t, err)
	require.EqualValues(t, fileListVersionMeta, upgraded[0])
	again, err := DecodeFileList(upgraded)
	require.NoError(t, err)
	require.Equal(t, got, again)
	same, err := upgradeFileList(upgraded)
	require.NoError(t, err)
	require.Equal(t, upgraded, same, "a version 3 list is left as it is")
}

// Version 3 stores nothing for a log id that is the key's name, nor for entries and
// timestamps that repeat the previous entry's: Milvus's binlogs of one segment.
func TestFileListVersion3IsSmaller(t *testing.T) {
	ref := layout.Segment{Collection: 449000000000000100, Partition: 449000000000000101, Segment: 449000000000123456}
	files := fsmtest.MilvusFiles(ref.Collection, ref.Partition, ref.Segment)
	blob, err := encodeFiles(files, "segment", func(f *fsmpb.File) (string, error) { return layout.Milvus.SegmentFileRel(ref, f) })
	require.NoError(t, err)
	require.EqualValues(t, fileListVersionMeta, blob[0])
	entries, err := DecodeFileList(blob)
	require.NoError(t, err)
	require.Len(t, entries, len(files))
	for _, e := range entries {
		require.EqualValues(t, 1000, e.Entries)
		require.NotZero(t, e.LogID)
		require.True(t, strings.HasSuffix(e.Key, "/"+strconv.FormatInt(e.LogID, 10)), e.Key)
	}
	// Measured: 278 bytes as version 2; the same list without metadata is 153.
	require.LessOrEqual(t, len(blob), 220)
}

func TestFileListVersion3RefusesInconsistentFlags(t *testing.T) {
	one := []FileEntry{{Key: "a/7", Kind: 1, LogID: 7, Entries: 1}}
	blob := encodeFileList(one)
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
		_, err := DecodeFileList(bad)
		require.ErrorIs(t, err, errBadFileList, "presence %08b", present)
	}
	named := encodeFileList([]FileEntry{{Key: "a/x", Kind: 1, LogID: 7}})
	require.EqualValues(t, metaLogID, named[at], "a log id differing from a non-numeric name is stored")
	named[at] = metaLogIDIsName
	_, err := DecodeFileList(named)
	require.ErrorIs(t, err, errBadFileList, "a log id taken from a name that is not a number")
}
