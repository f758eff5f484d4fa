package fsm

import (
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"

	"github.com/snapkeep/snapkeep/fsm/filelist"
	"github.com/snapkeep/snapkeep/fsm/fsmpb"
	"github.com/snapkeep/snapkeep/fsm/fsmtest"
	"github.com/snapkeep/snapkeep/fsm/layout"
)

// The file lists the catalog builds from a flush are compact (the codec itself is
// tested in fsm/filelist).

func TestFileListIsCompact(t *testing.T) {
	ref := layout.Segment{Collection: 12, Segment: 3456789}
	blob, err := encodeFiles(fsmtest.SnapkeepFiles(12, 3456789), "segment", func(f *fsmpb.File) (string, error) { return layout.Snapkeep.SegmentFileRel(ref, f) })
	require.NoError(t, err)
	require.LessOrEqual(t, len(blob), 160)
}

// Version 3 stores nothing for a log id that is the key's name, nor for entries and
// timestamps that repeat the previous entry's: Milvus's binlogs of one segment.
func TestFileListVersion3IsSmaller(t *testing.T) {
	ref := layout.Segment{Collection: 449000000000000100, Partition: 449000000000000101, Segment: 449000000000123456}
	files := fsmtest.MilvusFiles(ref.Collection, ref.Partition, ref.Segment)
	blob, err := encodeFiles(files, "segment", func(f *fsmpb.File) (string, error) { return layout.Milvus.SegmentFileRel(ref, f) })
	require.NoError(t, err)
	require.EqualValues(t, 3, blob[0], "version 3")
	entries, err := filelist.Decode(blob)
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
