package fsm

import (
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/fsmpb"
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
	blob, err := encodeFiles(realisticFiles(12, 3456789), "segment", func(f *fsmpb.File) (string, error) { return layout.Snapkeep.SegmentFileRel(ref, f) })
	require.NoError(t, err)
	require.LessOrEqual(t, len(blob), 160)
}
